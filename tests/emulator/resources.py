"""COSI resources of one node: registered types, a versioned store and watch subscriptions.

Specs are kept as plain dicts with camelCase keys and turned into `yaml_spec` and `proto_spec` only
when served: MachineConfig and MachineType bring their `proto_spec`, every other type's comes from its
YAML spec through its upstream message (proto_specs.py). ExtensionStatuses has no message in the wire
facts (upstream encodes extensions.Layer); the emulator publishes none.
"""
import asyncio
import collections
import dataclasses
import time

import yaml
from google.protobuf import timestamp_pb2

from . import proto_specs
from .api import resource_pb2


@dataclasses.dataclass(frozen=True)
class ResourceType:
    type: str
    namespace: str
    aliases: tuple = ()
    sensitive: bool = False
    spec_message: str = None   # the protobuf message of proto_spec, when it is not given with the spec


D = "talos.resource.definitions."
RESOURCE_TYPES = {t.type: t for t in (
    ResourceType("AddressStatuses.net.talos.dev", "network", ("address", "addresses"),
                 spec_message=D + "network.AddressStatusSpec"),
    ResourceType("LinkStatuses.net.talos.dev", "network", ("link", "links"),
                 spec_message=D + "network.LinkStatusSpec"),
    ResourceType("RouteStatuses.net.talos.dev", "network", ("route", "routes"),
                 spec_message=D + "network.RouteStatusSpec"),
    ResourceType("HostnameStatuses.net.talos.dev", "network", ("hostname",),
                 spec_message=D + "network.HostnameStatusSpec"),
    ResourceType("ResolverStatuses.net.talos.dev", "network", ("resolvers",),
                 spec_message=D + "network.ResolverStatusSpec"),
    ResourceType("NodeAddresses.net.talos.dev", "network", ("nodeaddress", "nodeaddresses"),
                 spec_message=D + "network.NodeAddressSpec"),
    ResourceType("MachineStatuses.runtime.talos.dev", "runtime", ("machinestatus",),
                 spec_message=D + "runtime.MachineStatusSpec"),
    ResourceType("Versions.runtime.talos.dev", "runtime", ("version", "versions"),
                 spec_message=D + "runtime.VersionSpec"),
    ResourceType("PlatformMetadatas.talos.dev", "runtime", ("platformmetadata",),
                 spec_message=D + "runtime.PlatformMetadataSpec"),
    ResourceType("ExtensionStatuses.runtime.talos.dev", "runtime", ("extension", "extensions")),
    ResourceType("Disks.block.talos.dev", "runtime", ("disk", "disks"),
                 spec_message=D + "block.DiskSpec"),
    ResourceType("SystemDisks.block.talos.dev", "runtime", ("systemdisk",),
                 spec_message=D + "block.SystemDiskSpec"),
    ResourceType("MachineConfigs.config.talos.dev", "config", ("machineconfig", "mc"), sensitive=True),
    ResourceType("MachineTypes.config.talos.dev", "config", ("machinetype",)),
    ResourceType("SystemInformations.hardware.talos.dev", "hardware", ("systeminformation",),
                 spec_message=D + "hardware.SystemInformationSpec"),
    ResourceType("Processors.hardware.talos.dev", "hardware", ("cpu", "cpus", "processor", "processors"),
                 spec_message=D + "hardware.ProcessorSpec"),
    ResourceType("MemoryModules.hardware.talos.dev", "hardware", ("memorymodule", "ram"),
                 spec_message=D + "hardware.MemoryModuleSpec"),
    ResourceType("Members.cluster.talos.dev", "cluster", ("member", "members"),
                 spec_message=D + "cluster.MemberSpec"),
    ResourceType("Identities.cluster.talos.dev", "cluster", ("identity", "identities"),
                 spec_message=D + "cluster.IdentitySpec"),
    ResourceType("EtcdMembers.etcd.talos.dev", "etcd", ("etcdmember",),
                 spec_message=D + "etcd.MemberSpec"),
    ResourceType("OSRootSecrets.secrets.talos.dev", "secrets", ("osrootsecret",), sensitive=True,
                 spec_message=D + "secrets.OSRootSpec"),
    ResourceType("ResourceDefinitions.meta.cosi.dev", "meta", ("rd", "resourcedefinition"),
                 spec_message="cosi.resource.meta.ResourceDefinitionSpec"),
    ResourceType("Namespaces.meta.cosi.dev", "meta", ("ns", "namespace"),
                 spec_message="cosi.resource.meta.NamespaceSpec"),
)}
NAMESPACES = {
    "network": "Networking resources.", "runtime": "Talos runtime resources.", "config": "Talos node configuration.",
    "hardware": "Hardware resources.", "cluster": "Cluster configuration and discovery resources.",
    "etcd": "etcd resources.", "secrets": "Resources with secret material.", "meta": "Metadata namespace.",
}


def _timestamp(seconds):
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_yaml(spec):
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def literal_block(text):
    """`text` as a YAML literal block scalar (how Go's encoder writes multi-line strings)."""
    if any(ch in text for ch in "\r\x00\ufeff") or not text.strip():
        return dump_yaml(text)
    stripped = text.rstrip("\n")
    trailing = len(text) - len(stripped)
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    indent = "2" if stripped[:1] in (" ", "\n") else ""
    body = "".join(("  " + line if line else "") + "\n" for line in stripped.split("\n"))
    return f"|{indent}{chomp}\n{body}" + "\n" * max(trailing - 1, 0)


def render_yaml_spec(data):
    if data.yaml_style == "raw":
        return data.spec
    if data.yaml_style == "string":
        return literal_block(data.spec)
    return dump_yaml(data.spec)


@dataclasses.dataclass
class ResourceSpec:
    """What a node publishes for one resource."""
    spec: object
    proto_spec: bytes = None
    yaml_style: str = "mapping"    # "mapping": dump `spec`; "raw": `spec` is the YAML text; "string": a string scalar
    labels: dict = None
    annotations: dict = None
    owner: str = ""


@dataclasses.dataclass
class StoredResource:
    namespace: str
    type: str
    id: str
    version: int
    created: float
    updated: float
    data: ResourceSpec
    _encoded: object = None

    def to_proto(self):
        if self._encoded is None:
            metadata = resource_pb2.Metadata(
                namespace=self.namespace, type=self.type, id=self.id, version=str(self.version),
                owner=self.data.owner, phase="running",
                created=_timestamp(self.created), updated=_timestamp(self.updated),
                labels=self.data.labels or {}, annotations=self.data.annotations or {},
            )
            yaml_spec = render_yaml_spec(self.data)
            proto_spec = self.data.proto_spec
            definition = RESOURCE_TYPES.get(self.type)
            if proto_spec is None and definition is not None and definition.spec_message:
                proto_spec = proto_specs.encode(definition.spec_message, self.data.spec)
            spec = resource_pb2.Spec(yaml_spec=yaml_spec, proto_spec=proto_spec or b"")
            self._encoded = resource_pb2.Resource(metadata=metadata, spec=spec)
        return self._encoded


def tombstone(namespace, type_, id_):
    return resource_pb2.Resource(metadata=resource_pb2.Metadata(namespace=namespace, type=type_, id=id_,
                                                                phase="running"))


@dataclasses.dataclass
class StoreEvent:
    event_type: int                 # resource_pb2.EventType value
    resource: StoredResource
    old: StoredResource = None


class ResourceStore:
    HISTORY = 100

    def __init__(self):
        self._items = collections.defaultdict(dict)        # (namespace, type) -> {id: StoredResource}
        self._watchers = collections.defaultdict(set)      # (namespace, type) -> {asyncio.Queue}
        self._history = collections.defaultdict(lambda: collections.deque(maxlen=self.HISTORY))

    def get(self, namespace, type_, id_):
        return self._items.get((namespace, type_), {}).get(id_)

    def list(self, namespace, type_):
        return [item for _key, item in sorted(self._items.get((namespace, type_), {}).items())]

    def history(self, namespace, type_):
        return list(self._history.get((namespace, type_), ()))

    def sync(self, namespace, type_, published):
        """Replace the set of resources of one type, emitting CREATED/UPDATED/DESTROYED events."""
        key = (namespace, type_)
        current = self._items[key]
        now = time.time()
        events = []
        for id_, data in published.items():
            old = current.get(id_)
            if old is None:
                stored = StoredResource(namespace, type_, id_, 1, now, now, data)
                events.append(StoreEvent(resource_pb2.CREATED, stored))
            elif old.data == data:
                continue
            else:
                stored = StoredResource(namespace, type_, id_, old.version + 1, old.created, now, data)
                events.append(StoreEvent(resource_pb2.UPDATED, stored, old))
            current[id_] = stored
        for id_ in [i for i in current if i not in published]:
            old = current.pop(id_)
            events.append(StoreEvent(resource_pb2.DESTROYED, old))
        if events:
            self._history[key].extend(events)
            for queue in self._watchers.get(key, ()):
                for event in events:
                    queue.put_nowait(event)

    def subscribe(self, namespace, type_):
        queue = asyncio.Queue()
        self._watchers[(namespace, type_)].add(queue)
        return queue

    def unsubscribe(self, namespace, type_, queue):
        self._watchers[(namespace, type_)].discard(queue)

    def close_watchers(self):
        """End every watch (the node went away): each queue gets a None sentinel."""
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)
