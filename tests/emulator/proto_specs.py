"""COSI `proto_spec`: a resource's spec as upstream's typed protobuf message, built from its YAML spec.

Talos encodes each spec with protoenc into the message of `api/resource/definitions/*` (COSI's own
`meta` types for ResourceDefinitions and Namespaces), so `proto_spec` and `yaml_spec` say the same thing.
Here the YAML spec (camelCase keys) is converted field by field through the message descriptor: keys
match fields by their JSON names, IP addresses become `common.NetIP`/`NetIPPrefix`, enum words match
the enum's value names ("inet4" -> FAMILY_INET4), MAC addresses become bytes. A key without a field
is an error, so a spec the emulator publishes cannot drift from upstream's message.
"""
import base64
import binascii
import importlib
import ipaddress
import re

from google.protobuf import descriptor, message_factory, symbol_database

_API = "ansible_collections.talos.linux.plugins.module_utils._api."
# Imported for their side effect: each registers its messages in the default descriptor pool.
_MODULES = tuple(importlib.import_module(_API + name) for name in (
    "cosi.v1alpha1.meta_pb2", *(f"resource.definitions.{p}.{p}_pb2" for p in (
        "block", "cluster", "etcd", "hardware", "network", "runtime", "secrets"))))

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$")
# Linux net_device flags (IFF_*), which LinkStatus prints by name; upstream has no enum for them.
_LINK_FLAGS = {"UP": 0x1, "BROADCAST": 0x2, "DEBUG": 0x4, "LOOPBACK": 0x8, "POINTTOPOINT": 0x10,
               "NOTRAILERS": 0x20, "RUNNING": 0x40, "NOARP": 0x80, "PROMISC": 0x100, "ALLMULTI": 0x200,
               "MASTER": 0x400, "SLAVE": 0x800, "MULTICAST": 0x1000, "PORTSEL": 0x2000, "AUTOMEDIA": 0x4000,
               "DYNAMIC": 0x8000, "LOWER_UP": 0x10000, "DORMANT": 0x20000, "ECHO": 0x40000}
# uint32 bit masks printed as comma-joined flag names: (message, field) -> enum of the flag names
_NET, _ENUMS = "talos.resource.definitions.network.", "talos.resource.definitions.enums."
_FLAG_ENUMS = {
    (_NET + "AddressStatusSpec", "flags"): _ENUMS + "NethelpersAddressFlag",
    (_NET + "RouteStatusSpec", "flags"): _ENUMS + "NethelpersRouteFlag",
}
_FD = descriptor.FieldDescriptor
# YAML keys that are not their field's name (the spec structs' yaml tags): (message, key) -> field
YAML_KEYS = {("talos.resource.definitions.network.RouteStatusSpec", "dst"): "destination",
             ("talos.resource.definitions.network.RouteStatusSpec", "src"): "source",
             ("talos.resource.definitions.hardware.ProcessorSpec", "maxSpeedMhz"): "max_speed",
             ("talos.resource.definitions.hardware.ProcessorSpec", "bootSpeedMhz"): "boot_speed"}
# Where upstream's printed word is not its constant's name (nethelpers' String() vs the Go identifier)
_ENUM_WORDS = {("talos.resource.definitions.enums.NethelpersLinkType", "loopback"): "LINK_LOOPBCK"}


def message_class(full_name: str) -> type:
    return message_factory.GetMessageClass(symbol_database.Default().pool.FindMessageTypeByName(full_name))


def encode(full_name: str, spec) -> bytes:
    """The wire bytes of message `full_name` holding the YAML-shaped `spec`."""
    message = message_class(full_name)()
    _fill(message, spec)
    return message.SerializeToString()


def _words(name):
    return name.lower().replace("-", "").replace("_", "")


def enum_value(enum, word):
    """The value whose name ends with `word` in whole underscore-separated parts ("controlplane" ->
    TYPE_CONTROL_PLANE, "inet4" -> FAMILY_INET4)."""
    named = _ENUM_WORDS.get((enum.full_name, word))
    if named is not None:
        return enum.values_by_name[named].number
    wanted = _words(str(word))
    for value in enum.values:
        parts = value.name.lower().split("_")
        if any("".join(parts[i:]) == wanted for i in range(len(parts))):
            return value.number
    raise ValueError(f"{word!r} is no value of {enum.full_name}")


def _flags(message, field, text):
    enum_name = _FLAG_ENUMS.get((message.DESCRIPTOR.full_name, field.name))
    total = 0
    for word in filter(None, (part.strip() for part in str(text).split(","))):
        if enum_name is None:
            total |= _LINK_FLAGS[word.upper()]
        else:
            total |= enum_value(symbol_database.Default().pool.FindEnumTypeByName(enum_name), word)
    return total


def _bytes(text):
    if isinstance(text, bytes):
        return text
    if _MAC.match(text):
        return bytes.fromhex(text.replace(":", ""))
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode()


def _scalar(message, field, value):
    if field.type == _FD.TYPE_ENUM:
        return value if isinstance(value, int) else enum_value(field.enum_type, value)
    if field.type == _FD.TYPE_BYTES:
        return _bytes(value)
    if field.type == _FD.TYPE_UINT32 and isinstance(value, str):
        return _flags(message, field, value)
    return value


def _set_message(target, value):
    name = target.DESCRIPTOR.full_name
    if name == "common.NetIP":
        target.ip = ipaddress.ip_address(value).packed
    elif name == "common.NetIPPrefix":
        network = ipaddress.ip_interface(value)
        target.ip, target.prefix_length = network.ip.packed, network.network.prefixlen
    else:
        _fill(target, value)


def _fill(message, spec):
    fields = {_words(f.name): f for f in message.DESCRIPTOR.fields}
    for key, value in spec.items():
        field = fields.get(_words(YAML_KEYS.get((message.DESCRIPTOR.full_name, key), key)))
        if field is None:
            raise KeyError(f"{message.DESCRIPTOR.full_name} has no field for the YAML key {key!r}")
        if value is None or value == "" and field.type != _FD.TYPE_STRING:
            continue   # Go's zero value: nothing on the wire
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name).update(value)
        elif _repeated(field):
            items = getattr(message, field.name)
            for item in value:
                if field.message_type is not None:
                    _set_message(items.add(), item)
                else:
                    items.append(_scalar(message, field, item))
        elif field.message_type is not None:
            _set_message(getattr(message, field.name), value)
        else:
            setattr(message, field.name, _scalar(message, field, value))


def _repeated(field):
    # protobuf 7 dropped FieldDescriptor.label for is_repeated; 5.29 has only label
    repeated = getattr(field, "is_repeated", None)
    return repeated if repeated is not None else field.label == _FD.LABEL_REPEATED
