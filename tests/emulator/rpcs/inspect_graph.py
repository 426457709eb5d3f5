"""inspect.InspectService/ControllerRuntimeDependencies: machined's controller/resource graph (a sample of it)."""
from ..api import inspect_pb2
from .base import rpc

_E = inspect_pb2.DependencyEdgeType
# (controller, edge type, namespace, resource type, resource id)
EDGES = (
    ("config.MachineTypeController", _E.INPUT_WEAK, "config", "MachineConfigs.config.talos.dev", "v1alpha1"),
    ("config.MachineTypeController", _E.OUTPUT_EXCLUSIVE, "config", "MachineTypes.config.talos.dev", ""),
    ("network.AddressStatusController", _E.OUTPUT_EXCLUSIVE, "network", "AddressStatuses.net.talos.dev", ""),
    ("network.LinkStatusController", _E.OUTPUT_EXCLUSIVE, "network", "LinkStatuses.net.talos.dev", ""),
    ("network.HostnameStatusController", _E.INPUT_STRONG, "network", "HostnameSpecs.net.talos.dev", ""),
    ("network.HostnameStatusController", _E.OUTPUT_EXCLUSIVE, "network", "HostnameStatuses.net.talos.dev", ""),
    ("network.NodeAddressController", _E.INPUT_WEAK, "network", "AddressStatuses.net.talos.dev", ""),
    ("network.NodeAddressController", _E.OUTPUT_EXCLUSIVE, "network", "NodeAddresses.net.talos.dev", ""),
    ("runtime.MachineStatusController", _E.INPUT_WEAK, "v1alpha1", "Services.v1alpha1.talos.dev", ""),
    ("runtime.MachineStatusController", _E.OUTPUT_EXCLUSIVE, "runtime", "MachineStatuses.runtime.talos.dev", ""),
    ("runtime.VersionController", _E.OUTPUT_EXCLUSIVE, "runtime", "Versions.runtime.talos.dev", ""),
    ("etcd.MemberController", _E.INPUT_WEAK, "v1alpha1", "Services.v1alpha1.talos.dev", "etcd"),
    ("etcd.MemberController", _E.OUTPUT_EXCLUSIVE, "etcd", "EtcdMembers.etcd.talos.dev", ""),
    ("cluster.MemberController", _E.INPUT_WEAK, "cluster", "Affiliates.cluster.talos.dev", ""),
    ("cluster.MemberController", _E.OUTPUT_SHARED, "cluster", "Members.cluster.talos.dev", ""),
    ("block.VolumeManagerController", _E.INPUT_DESTROY_READY, "runtime", "VolumeConfigs.block.talos.dev", ""),
)


@rpc("inspect.InspectService", "ControllerRuntimeDependencies")
async def controller_runtime_dependencies(call, request):
    edges = [inspect_pb2.ControllerDependencyEdge(controller_name=c, edge_type=t, resource_namespace=ns,
                                                  resource_type=rt, resource_id=rid) for c, t, ns, rt, rid in EDGES]
    return inspect_pb2.ControllerRuntimeDependenciesResponse(messages=[inspect_pb2.ControllerRuntimeDependency(
        edges=edges)])
