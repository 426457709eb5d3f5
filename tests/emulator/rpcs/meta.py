"""MetaWrite and MetaDelete on the node's META partition (node.meta, which survives reboots)."""
from grpclib.const import Status

from ..api import machine_pb2
from .base import fail, rpc

M = "machine.MachineService"
# The talos ADV's data area: 256 KiB minus the header and checksums; each tag costs its value plus 5 bytes.
META_CAPACITY = 256 * 1024 - 64
TAG_OVERHEAD = 5


def _key(request):
    if not 0 <= request.key <= 255:
        fail(Status.INVALID_ARGUMENT, "key must be a uint8")
    return request.key


@rpc(M, "MetaWrite")
async def meta_write(call, request):
    key, meta = _key(request), call.node.meta
    used = sum(len(v) + TAG_OVERHEAD for k, v in meta.items() if k != key)
    if used + len(request.value) + TAG_OVERHEAD > META_CAPACITY:
        fail(Status.RESOURCE_EXHAUSTED, "meta write failed")
    meta[key] = bytes(request.value)
    return machine_pb2.MetaWriteResponse(messages=[machine_pb2.MetaWrite()])


@rpc(M, "MetaDelete")
async def meta_delete(call, request):
    key = _key(request)
    if call.node.meta.pop(key, None) is None:
        fail(Status.NOT_FOUND, "meta key not found")
    return machine_pb2.MetaDeleteResponse(messages=[machine_pb2.MetaDelete()])
