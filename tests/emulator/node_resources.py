"""What a node publishes as COSI resources, derived from its state (talos-api.md §4.5 table)."""
import base64

from . import hardware
from .api import config_pb2
from .etcd import format_member_id
from .resources import NAMESPACES, RESOURCE_TYPES, ResourceSpec

MACHINE_CONFIG = "MachineConfigs.config.talos.dev"
YAML_SPEC_ANNOTATION = "talos.dev/yaml-spec"


def _display_type(type_name):
    plural = type_name.split(".")[0]
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("uses", "us"), ("s", "")):
        if plural.endswith(suffix):
            return plural[: -len(suffix)] + replacement
    return plural


def machine_config_resource(node, config):
    """MachineConfig: proto_spec = MachineConfigSpec{yaml_marshalled}; yaml_spec by version (§4.2)."""
    proto_spec = config_pb2.MachineConfigSpec(yaml_marshalled=config).SerializeToString()
    text = config.decode(errors="replace")
    if node.version.machine_config_yaml_spec_is_string:
        return ResourceSpec(text, proto_spec=proto_spec, yaml_style="string", annotations={YAML_SPEC_ANNOTATION: "1"})
    return ResourceSpec(text, proto_spec=proto_spec, yaml_style="raw")


def _members(cluster):
    members = {}
    for other in cluster.nodes:
        if other.config is None:
            continue
        spec = {
            "nodeId": other.node_id,
            "addresses": list(other.addresses),
            "hostname": other.hostname,
            "machineType": other.machine_type,
            "operatingSystem": f"Talos ({other.version.tag})",
        }
        if other.is_control_plane:
            spec["controlPlane"] = {"apiServerPort": 6443}
        members[other.hostname] = ResourceSpec(spec, owner="cluster.MemberController")
    return members


def publish(node, members=None):
    """Sync every resource type of `node` with its current state."""
    store = node.resources
    prefix = node.address.rsplit(".", 1)[0]
    cidr = f"{node.address}/24"

    store.sync("network", "AddressStatuses.net.talos.dev", {
        f"eth0/{cidr}": ResourceSpec({
            "address": cidr, "local": node.address, "broadcast": f"{prefix}.255", "anycast": "", "multicast": "",
            "linkIndex": 2, "linkName": "eth0", "family": "inet4", "scope": "global", "flags": "permanent",
            "priority": 1024}, owner="network.AddressStatusController"),
        "lo/127.0.0.1/8": ResourceSpec({
            "address": "127.0.0.1/8", "local": "127.0.0.1", "broadcast": "", "anycast": "", "multicast": "",
            "linkIndex": 1, "linkName": "lo", "family": "inet4", "scope": "host", "flags": "permanent",
            "priority": 0}, owner="network.AddressStatusController"),
    })
    link_common = {"queueDisc": "pfifo_fast", "operationalState": "up", "kind": "", "slaveKind": "",
                   "linkState": True, "port": "Other", "duplex": "Unknown"}
    store.sync("network", "LinkStatuses.net.talos.dev", {
        "eth0": ResourceSpec({"index": 2, "type": "ether", "linkIndex": 0, "flags": "UP,BROADCAST,RUNNING,MULTICAST",
                              "hardwareAddr": node.mac, "permanentAddr": node.mac,
                              "broadcastAddr": "ff:ff:ff:ff:ff:ff", "mtu": 1500, "driver": "virtio_net",
                              "busPath": "0000:00:03.0", **link_common}, owner="network.LinkStatusController"),
        "lo": ResourceSpec({"index": 1, "type": "loopback", "linkIndex": 0, "flags": "UP,LOOPBACK,RUNNING",
                            "hardwareAddr": "00:00:00:00:00:00", "permanentAddr": "", "broadcastAddr":
                            "00:00:00:00:00:00", "mtu": 65536, "driver": "", "busPath": "", **link_common},
                           owner="network.LinkStatusController"),
    })
    gateway = f"{prefix}.1"
    store.sync("network", "RouteStatuses.net.talos.dev", {
        f"inet4/{gateway}//1024": ResourceSpec({
            "family": "inet4", "dst": "", "src": "", "gateway": gateway, "outLinkIndex": 2, "outLinkName": "eth0",
            "table": "main", "priority": 1024, "scope": "global", "type": "unicast", "flags": "",
            "protocol": "dhcp", "mtu": 0}, owner="network.RouteStatusController"),
        f"inet4//{cidr}/1024": ResourceSpec({
            "family": "inet4", "dst": f"{prefix}.0/24", "src": node.address, "gateway": "", "outLinkIndex": 2,
            "outLinkName": "eth0", "table": "main", "priority": 1024, "scope": "link", "type": "unicast",
            "flags": "", "protocol": "kernel", "mtu": 0}, owner="network.RouteStatusController"),
    })
    store.sync("network", "HostnameStatuses.net.talos.dev", {
        "hostname": ResourceSpec({"hostname": node.hostname, "domainname": ""}, owner="network.HostnameStatusController"),
    })
    store.sync("network", "ResolverStatuses.net.talos.dev", {
        "resolvers": ResourceSpec({"dnsServers": ["1.1.1.1", "8.8.8.8"], "searchDomains": []},
                                  owner="network.ResolverStatusController"),
    })
    store.sync("network", "NodeAddresses.net.talos.dev", {
        kind: ResourceSpec({"addresses": [cidr], "sortAlgorithm": "v1"}, owner="network.NodeAddressController")
        for kind in ("default", "current", "routed", "accumulative")
    })

    store.sync("runtime", "MachineStatuses.runtime.talos.dev", {
        "machine": ResourceSpec({"stage": node.stage, "status": {
            "ready": node.ready,
            "unmetConditions": [] if node.ready else [{"name": "nodeReady", "reason": "node is not ready"}],
        }}, owner="runtime.MachineStatusController"),
    })
    store.sync("runtime", "Versions.runtime.talos.dev",
               {"version": ResourceSpec({"version": node.version.tag}, owner="runtime.VersionController")}
               if node.version.has_persistent_machine_config else {})
    store.sync("runtime", "PlatformMetadatas.talos.dev", {
        "platformmetadata": ResourceSpec({"platform": "metal", "hostname": node.hostname},
                                         owner="runtime.PlatformMetadataController"),
    })
    store.sync("runtime", "ExtensionStatuses.runtime.talos.dev", {})
    disks = hardware.disks(node.index)
    store.sync("runtime", "Disks.block.talos.dev", {
        disk.name: ResourceSpec({
            # upstream's yaml tags for DiskSpec are snake_case
            "dev_path": f"/dev/{disk.name}", "size": disk.size, "pretty_size": f"{disk.size / 1e9:.0f} GB",
            "io_size": 512, "sector_size": 512, "readonly": False, "cdrom": False, "model": disk.model,
            "serial": disk.serial, "wwid": disk.wwid, "bus_path": disk.bus_path, "sub_system": "/sys/class/block",
            "transport": disk.transport, "rotational": disk.rotational,
            "symlinks": [f"/dev/disk/by-id/scsi-{disk.wwid}", f"/dev/disk/by-path/virtio-pci-{disk.name}"],
        }, owner="block.DisksController") for disk in disks
    })
    store.sync("runtime", "SystemDisks.block.talos.dev", {
        "system-disk": ResourceSpec({"diskID": "sda", "devPath": "/dev/sda"}, owner="block.SystemDiskController"),
    } if not node.maintenance else {})

    configs = {}
    if node.config is not None:
        configs["v1alpha1"] = machine_config_resource(node, node.config)
    if node.persistent_config is not None and node.version.has_persistent_machine_config:
        configs["persistent"] = machine_config_resource(node, node.persistent_config)
    store.sync("config", MACHINE_CONFIG, configs)
    machine_type_values = {"controlplane": 2, "worker": 3, "init": 1}
    store.sync("config", "MachineTypes.config.talos.dev", {
        "machine-type": ResourceSpec(
            node.machine_type,
            proto_spec=config_pb2.MachineTypeSpec(
                machine_type=machine_type_values.get(node.machine_type, 0)).SerializeToString()),
    })

    store.sync("hardware", "SystemInformations.hardware.talos.dev", {
        "systeminformation": ResourceSpec({
            "manufacturer": "QEMU", "productName": "Standard PC (Q35 + ICH9, 2009)", "version": "pc-q35-8.2",
            "serialnumber": f"EMU{node.index:08d}", "uuid": f"00000000-0000-4000-8000-{node.index:012d}",
            "wakeUpType": "Power Switch", "skuNumber": ""}),
    })
    store.sync("hardware", "Processors.hardware.talos.dev", {
        "Processor-0": ResourceSpec({"socket": "CPU 0", "manufacturer": "AMD", "productName": hardware.CPU_MODEL,
                                     "maxSpeedMhz": 2000, "bootSpeedMhz": 2000, "status": 65,
                                     "coreCount": hardware.CPU_COUNT, "coreEnabled": hardware.CPU_COUNT,
                                     "threadCount": hardware.CPU_COUNT}),
    })
    store.sync("hardware", "MemoryModules.hardware.talos.dev", {
        "DIMM-0": ResourceSpec({"size": 8192, "deviceLocator": "DIMM 0", "bankLocator": "", "speed": 0,
                                "manufacturer": "QEMU", "serialNumber": "", "assetTag": "", "productName": ""}),
    })

    store.sync("cluster", "Members.cluster.talos.dev", members if members is not None else _members(node.cluster))
    store.sync("cluster", "Identities.cluster.talos.dev", {"local": ResourceSpec({"nodeId": node.node_id})})
    member = node.cluster.etcd.member_at(node.address) if node.is_control_plane else None
    store.sync("etcd", "EtcdMembers.etcd.talos.dev",
               {"local": ResourceSpec({"memberID": format_member_id(member.id)})} if member else {})
    store.sync("secrets", "OSRootSecrets.secrets.talos.dev", {
        "os": ResourceSpec({"issuingCA": {"crt": base64.b64encode(node.cluster.pki_ca.cert_pem).decode(),
                                          "key": "" if not node.is_control_plane else "(redacted by the emulator)"},
                            "certSANIPs": list(node.addresses), "certSANDNSNames": [node.hostname]}),
    })

    store.sync("meta", "ResourceDefinitions.meta.cosi.dev", _RESOURCE_DEFINITIONS)
    store.sync("meta", "Namespaces.meta.cosi.dev", _NAMESPACE_RESOURCES)


def publish_members(cluster):
    members = _members(cluster)
    for node in cluster.nodes:
        node.resources.sync("cluster", "Members.cluster.talos.dev", members)


_RESOURCE_DEFINITIONS = {
    t.type.lower(): ResourceSpec({
        "resourceType": t.type, "displayType": _display_type(t.type), "defaultNamespace": t.namespace,
        "aliases": list(t.aliases), "allAliases": list(t.aliases), "printColumns": [],
        "sensitivity": "sensitive" if t.sensitive else "non-sensitive",
    }) for t in RESOURCE_TYPES.values()
}
_NAMESPACE_RESOURCES = {name: ResourceSpec({"description": text}) for name, text in NAMESPACES.items()}
