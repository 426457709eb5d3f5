"""storage.StorageService/BlockDeviceWipe: validate every device first, then wipe them all (storaged)."""
from grpclib.const import Status

from .. import hardware, rbac
from ..api import storage_pb2
from .base import fail, rpc

# The system disk's partitions and the volume each holds (VolumeStatus ids sort EFI < EPHEMERAL < META < STATE).
SYSTEM_PARTITIONS = {"1": "EFI", "2": None, "3": None, "4": "STATE", "5": "META", "6": "EPHEMERAL"}


def _devices(node):
    """Block devices by name: disk or partition, its parent, and the volume located on it."""
    devices = {}
    for disk in hardware.disks(node.index):
        devices[disk.name] = ("disk", "", None)
        if disk.system_disk and not node.maintenance:
            for number, volume in SYSTEM_PARTITIONS.items():
                devices[disk.name + number] = ("partition", disk.name, volume)
    return devices


def _validate(descriptor, devices):
    name = descriptor.device
    if name not in devices:
        fail(Status.NOT_FOUND, f'blockdevice "{name}" not found')
    kind, parent, volume = devices[name]
    if descriptor.skip_volume_check:
        return
    if volume is not None:
        fail(Status.FAILED_PRECONDITION, f'blockdevice "{name}" is in use by volume "{volume}"')
    if kind == "disk":
        in_use = sorted(v for n, (_k, p, v) in devices.items() if p == name and v)
        if in_use:    # a volume's ParentLocation is this disk
            fail(Status.FAILED_PRECONDITION, f'blockdevice "{name}" is in use by volume "{in_use[0]}"')


@rpc("storage.StorageService", "BlockDeviceWipe", since_minor=9)
async def block_device_wipe(call, request):
    node = call.node
    if not node.maintenance:
        rbac.require_admin(call.roles)        # the rule admits readers (v1.13+) for maintenance only
    devices = _devices(node)
    for descriptor in request.devices:
        _validate(descriptor, devices)
    for descriptor in request.devices:
        method = storage_pb2.BlockDeviceWipeDescriptor.Method.Name(descriptor.method)
        node.wiped_devices.append((descriptor.device, method))
    return storage_pb2.BlockDeviceWipeResponse(messages=[storage_pb2.BlockDeviceWipe()])
