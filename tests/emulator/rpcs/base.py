"""What every RPC implementation shares: the call context, the registry and common refusals.

Implementations are `async def f(call, request)` returning the response (unary), async generators
yielding responses (server streams), or taking an async iterator of requests (client streams). They
raise GRPCError for gRPC errors. The dispatcher (dispatch.py) does routing, faults and RBAC first.
"""
import dataclasses

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from ..api import METHODS

HANDLERS = {}          # path -> implementation
_SINCE = {}            # path -> minimum Talos minor version


def rpc(service, name, *, since_minor=None):
    path = f"/{service}/{name}"
    if path not in METHODS:
        raise KeyError(f"{path} is not declared in protos/")

    def register(func):
        HANDLERS[path] = func
        if since_minor is not None:
            _SINCE[path] = since_minor
        return func
    return register


def available_since(path):
    return _SINCE.get(path)


@dataclasses.dataclass
class Call:
    method: object          # api.RpcMethod
    node: object            # the node.Node serving the call
    roles: frozenset
    metadata: object
    generation: int         # node.generation when the call started

    @property
    def cluster(self):
        return self.node.cluster


def fail(status, message):
    raise GRPCError(status, message)


def require_control_plane(call, api):
    """machinehelper.CheckControlplane: etcd, health and kubeconfig APIs are control-plane only."""
    if not call.node.is_control_plane:
        raise GRPCError(Status.UNIMPLEMENTED, f"{api} is only available on control plane nodes")


def go_duration(seconds):
    """Format like Go's time.Duration.String(): 1m0s, 30s, 1.5s, 1h0m0s."""
    if seconds == 0:
        return "0s"
    whole = int(seconds)
    fraction = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs + fraction:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    if whole == 0 and fraction < 1:
        millis = fraction * 1000
        return f"{millis:.6f}".rstrip("0").rstrip(".") + "ms"
    return sec_text
