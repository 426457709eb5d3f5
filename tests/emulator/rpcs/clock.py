"""time.TimeService: Time asks the first configured NTP server (or time.cloudflare.com), TimeCheck a given one."""
import time

from google.protobuf import timestamp_pb2
from grpclib.const import Status

from .. import machine_config
from ..api import time_pb2
from .base import fail, rpc

T = "time.TimeService"
DEFAULT_NTP_SERVER = "time.cloudflare.com"
UNRESOLVABLE_SUFFIXES = (".invalid", ".example")


def _configured_server(node):
    if node.config is None:
        return DEFAULT_NTP_SERVER
    document = machine_config.v1alpha1_document(machine_config.parse_config(node.config)) or {}
    servers = ((document.get("machine") or {}).get("time") or {}).get("servers") or []
    return servers[0] if servers else DEFAULT_NTP_SERVER


def _stamp(seconds):
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _query(node, server):
    if not server:
        fail(Status.INVALID_ARGUMENT, "ntp server is required")
    if server.endswith(UNRESOLVABLE_SUFFIXES):
        fail(Status.UNKNOWN, f'error querying NTP server "{server}": lookup {server}: no such host')
    now = time.time()
    offset = 0.0004 * (node.index + 1)           # each node a fraction of a millisecond off
    return time_pb2.TimeResponse(messages=[time_pb2.Time(server=server, localtime=_stamp(now),
                                                         remotetime=_stamp(now + offset))])


@rpc(T, "Time")
async def time_now(call, request):
    return _query(call.node, _configured_server(call.node))


@rpc(T, "TimeCheck")
async def time_check(call, request):
    return _query(call.node, request.server)
