"""COSI proto_spec (issue 11, point 9): every served resource carries its spec as upstream's typed message,
and it says what yaml_spec says."""
import ipaddress

import yaml
from google.protobuf import json_format

from tests.emulator.api import state_pb2
from tests.emulator.proto_specs import message_class
from tests.emulator.resources import RESOURCE_TYPES


def _resources(admin, node, definition):
    request = state_pb2.ListRequest(namespace=definition.namespace, type=definition.type)
    return [reply.resource for reply in admin("List", request, node=node)]


def _agrees(yaml_value, proto_value):
    """A YAML value and the same field read back from the message (json_format's rendering)."""
    if isinstance(yaml_value, dict) and isinstance(proto_value, dict) and "ip" not in proto_value:
        return all(_agrees(v, proto_value.get(k)) for k, v in yaml_value.items() if v not in ("", None, [], {}))
    if isinstance(yaml_value, list):
        return len(yaml_value) == len(proto_value or []) and all(map(_agrees, yaml_value, proto_value))
    if isinstance(proto_value, dict) and "ip" in proto_value:   # common.NetIP / NetIPPrefix: base64 bytes
        interface = ipaddress.ip_interface(yaml_value)
        prefix = proto_value.get("prefixLength")
        return (json_format.MessageToDict(_net_ip(interface.ip.packed)) == {"ip": proto_value["ip"]}
                and (prefix is None or prefix == interface.network.prefixlen))
    if isinstance(yaml_value, bool):
        return yaml_value == bool(proto_value)
    if isinstance(yaml_value, int):
        return yaml_value == int(proto_value or 0)   # JSON writes 64-bit integers as strings
    if isinstance(proto_value, str) and proto_value.isupper():   # an enum value name
        word = {"loopback": "loopbck"}.get(yaml_value, yaml_value)   # nethelpers prints LinkLoopbck so
        return proto_value.lower().replace("_", "").endswith(word.lower().replace("-", "").replace("_", ""))
    return proto_value is not None


def _net_ip(packed):
    return message_class("common.NetIP")(ip=packed)


def test_every_served_resource_has_a_typed_proto_spec(cluster, admin):
    seen = set()
    for node in (cluster.control_planes[0], cluster.workers[0]):
        for definition in RESOURCE_TYPES.values():
            for resource in _resources(admin, node, definition):
                seen.add(definition.type)
                assert resource.spec.proto_spec, (definition.type, resource.metadata.id)
                if definition.spec_message is None:
                    continue    # MachineConfig and MachineType bring theirs (checked in their own tests)
                decoded = message_class(definition.spec_message).FromString(resource.spec.proto_spec)
                assert decoded.SerializeToString() == resource.spec.proto_spec   # no unknown fields
                as_dict = json_format.MessageToDict(decoded)
                for key, value in yaml.safe_load(resource.spec.yaml_spec).items():
                    if value in ("", None, [], {}, 0, False):
                        continue   # a zero value: nothing on the wire
                    # the yaml tags that are not their field's name (RouteStatus, Processor)
                    name = {"dst": "destination", "src": "source", "maxSpeedMhz": "max_speed",
                            "bootSpeedMhz": "boot_speed"}.get(key, key)
                    field = next(f for f in decoded.DESCRIPTOR.fields
                                 if f.name.replace("_", "") == name.lower().replace("_", ""))
                    if field.json_name not in as_dict:   # on the wire as the zero value: an enum's first value
                        assert field.enum_type is not None, (definition.type, key, value)
                        assert _agrees(value, field.enum_type.values_by_number[0].name), (definition.type, key)
                        continue
                    if field.type == field.TYPE_BYTES:   # MAC addresses print as aa:bb:...
                        assert getattr(decoded, field.name).hex(":") == value.lower(), (definition.type, key)
                        continue
                    shown = as_dict[field.json_name]
                    assert _agrees(value, shown), (definition.type, key, value, shown)
    served = {t for t, d in RESOURCE_TYPES.items() if t != "ExtensionStatuses.runtime.talos.dev"}
    assert seen == served


def test_proto_spec_fields_as_upstream_encodes_them(cluster, admin):
    node = cluster.control_planes[0]
    address = _resources(admin, node, RESOURCE_TYPES["AddressStatuses.net.talos.dev"])
    spec = message_class("talos.resource.definitions.network.AddressStatusSpec").FromString(
        next(r for r in address if r.metadata.id.startswith("eth0")).spec.proto_spec)
    assert (spec.address.ip, spec.address.prefix_length) == (ipaddress.ip_address(node).packed, 24)
    assert (spec.family, spec.scope, spec.flags, spec.link_name) == (2, 0, 0x80, "eth0")   # inet4, global, permanent
    link = message_class("talos.resource.definitions.network.LinkStatusSpec").FromString(
        next(r for r in _resources(admin, node, RESOURCE_TYPES["LinkStatuses.net.talos.dev"])
             if r.metadata.id == "eth0").spec.proto_spec)
    assert link.hardware_addr == bytes.fromhex(cluster.node(node).raw.mac.replace(":", ""))
    assert (link.type, link.operational_state, link.flags) == (1, 6, 0x1 | 0x2 | 0x40 | 0x1000)
    status = message_class("talos.resource.definitions.runtime.MachineStatusSpec").FromString(
        _resources(admin, node, RESOURCE_TYPES["MachineStatuses.runtime.talos.dev"])[0].spec.proto_spec)
    assert status.stage == 4 and status.status.ready is True     # MACHINE_STAGE_RUNNING
    member = message_class("talos.resource.definitions.cluster.MemberSpec").FromString(
        next(r for r in _resources(admin, node, RESOURCE_TYPES["Members.cluster.talos.dev"])
             if r.metadata.id == "talos-w-1").spec.proto_spec)
    assert member.machine_type == 3 and member.addresses[0].ip == ipaddress.ip_address(cluster.workers[0]).packed
