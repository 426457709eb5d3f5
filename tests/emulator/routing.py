"""apid's director: where a call goes, decided from its metadata (talos-api.md §3).

In upstream's order (`internal/app/apid/pkg/director/director.go`): `proxyfrom` means already forwarded
(local), and a node in maintenance mode serves every call itself; `node` must be single-valued; `nodes`
wins over `node`. Each `nodes` value is one target, as grpc-go delivers it (a comma-joined "a,b" is not
split). A node that cannot forward (a worker) serves `node=<itself>` and `nodes=[<itself>]` locally and
unwrapped; anything else it refuses with PermissionDenied "no request forwarding", after the one-to-many
method check. Target validation (`invalid target "<target>"`) belongs to the remote backend, so it only
runs on a node that forwards.
"""
import dataclasses

from grpclib.const import Status
from grpclib.exceptions import GRPCError

LOCAL = "local"
FORWARD = "forward"
FAN_OUT = "fan-out"

# v1.13+: the only services apid fans out to with `nodes`.
FAN_OUT_SERVICES = ("machine.MachineService", "cluster.ClusterService", "inspect.InspectService",
                    "storage.StorageService", "time.TimeService")


@dataclasses.dataclass(frozen=True)
class Route:
    kind: str
    targets: tuple = ()


def _contains_port(value):
    """siderolabs/net AddressContainsPort: host:port or [v6]:port; a bare IPv6 address has no port."""
    if value.startswith("["):
        return "]:" in value
    return value.count(":") == 1


def _check_target(target):
    """apid's NewAPID: an empty target or one with a port is refused before dialing."""
    if not target or _contains_port(target):
        raise GRPCError(Status.INTERNAL, f"invalid target {_go_quote(target)}")


def _go_quote(text):
    """Go's %q for the printable ASCII targets the director sees."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_fan_out_method(path, version):
    service = path.lstrip("/").split("/", 1)[0]
    if version.at_least(13):
        if service not in FAN_OUT_SERVICES:
            raise GRPCError(Status.INVALID_ARGUMENT, f"one-2-many proxying is not supported for method {path}")
    elif path.startswith("/cosi."):
        raise GRPCError(Status.INVALID_ARGUMENT, "one-2-many proxying is not supported for COSI methods")


def route(metadata, entry, path):
    if "proxyfrom" in metadata or entry.maintenance:
        # maintenance: v1.13+ apid runs with NodeRoutingDisabled (the director's skipRouting serves every call
        # locally, whatever node/nodes say); the <= v1.12 maintenance server had no director at all
        return Route(LOCAL)
    node_values = metadata.getall("node", [])
    nodes_values = metadata.getall("nodes", [])
    if node_values and len(node_values) != 1:
        raise GRPCError(Status.INVALID_ARGUMENT, "node metadata must be single-valued")
    if not entry.can_forward:
        # the director's special case when forwarding is disabled: one local target is served directly
        if node_values and entry.owns_target(node_values[0]):
            node_values = []
        if len(nodes_values) == 1 and entry.owns_target(nodes_values[0]):
            nodes_values = []
    if nodes_values:
        _check_fan_out_method(path, entry.version)
        if not entry.can_forward:
            raise GRPCError(Status.PERMISSION_DENIED, "no request forwarding")
        for target in nodes_values:
            _check_target(target)
        return Route(FAN_OUT, tuple(nodes_values))
    if node_values:
        if not entry.can_forward:
            raise GRPCError(Status.PERMISSION_DENIED, "no request forwarding")
        target = node_values[0]
        _check_target(target)
        # apid dials itself for its own address; the answer is the same as serving it here
        return Route(LOCAL) if entry.owns_target(target) else Route(FORWARD, (target,))
    return Route(LOCAL)
