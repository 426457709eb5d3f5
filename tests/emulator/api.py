"""The Talos API surface: every service and RPC declared in protos/, read from the generated descriptors."""
import dataclasses

from google.protobuf import empty_pb2, message_factory
from grpclib.const import Cardinality

from ansible_collections.talos.linux.plugins.module_utils._api.cluster import cluster_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.common import common_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.cosi.v1alpha1 import resource_pb2, state_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.google.rpc import status_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.inspect import inspect_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.machine import image_pb2, lifecycle_pb2, machine_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.resource.config import config_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.storage import storage_pb2
from ansible_collections.talos.linux.plugins.module_utils._api.time import time_pb2

__all__ = [
    "RpcMethod", "METHODS", "method_by_name", "cluster_pb2", "common_pb2", "resource_pb2", "state_pb2",
    "status_pb2", "image_pb2", "lifecycle_pb2", "machine_pb2", "config_pb2", "storage_pb2",
    "inspect_pb2", "time_pb2",
]

# Imported only for its side effect: loading empty_pb2 registers google.protobuf.Empty in the default pool.
_WELL_KNOWN_TYPE_MODULES = (empty_pb2,)
_PROTO_MODULES = (machine_pb2, lifecycle_pb2, image_pb2, cluster_pb2, storage_pb2, state_pb2, inspect_pb2, time_pb2)


@dataclasses.dataclass(frozen=True)
class RpcMethod:
    service: str        # "machine.MachineService"
    name: str           # "Version"
    path: str           # "/machine.MachineService/Version"
    cardinality: Cardinality
    request_type: type
    response_type: type

    @property
    def client_streaming(self):
        return self.cardinality.client_streaming

    @property
    def server_streaming(self):
        return self.cardinality.server_streaming


def _cardinality(method_desc):
    return {
        (False, False): Cardinality.UNARY_UNARY,
        (False, True): Cardinality.UNARY_STREAM,
        (True, False): Cardinality.STREAM_UNARY,
        (True, True): Cardinality.STREAM_STREAM,
    }[(method_desc.client_streaming, method_desc.server_streaming)]


def _collect():
    methods = {}
    for module in _PROTO_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for desc in service.methods:
                path = f"/{service.full_name}/{desc.name}"
                methods[path] = RpcMethod(
                    service=service.full_name,
                    name=desc.name,
                    path=path,
                    cardinality=_cardinality(desc),
                    request_type=message_factory.GetMessageClass(desc.input_type),
                    response_type=message_factory.GetMessageClass(desc.output_type),
                )
    return methods


METHODS = _collect()


def method_by_name(rpc):
    """Resolve "Version", "MachineService/Version" or "/machine.MachineService/Version" to a path.

    Short names resolve to COSI State first for its own methods (so "List" is State/List; the file listing
    is "MachineService/List"), then to MachineService (where most RPCs live), then to the only other
    match; "ImageService/List" or "LifecycleService/Upgrade" pick others.
    """
    if rpc in METHODS:
        return rpc
    if rpc.startswith("/") or rpc.count("/") > 1:
        raise KeyError(f"unknown RPC {rpc!r}")
    if "/" in rpc:
        service, name = rpc.split("/")
        matches = [p for p, m in METHODS.items() if m.name == name and m.service.endswith(service)]
    else:
        for preferred in (f"/cosi.resource.State/{rpc}", f"/machine.MachineService/{rpc}"):
            if preferred in METHODS:
                return preferred
        matches = [p for p, m in METHODS.items() if m.name == rpc]
    if len(matches) != 1:
        raise KeyError(f"unknown or ambiguous RPC {rpc!r}: {matches}")
    return matches[0]
