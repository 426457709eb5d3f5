"""apid's director: where a call goes, decided from its metadata (talos-api.md §3).

`proxyfrom` means already forwarded (local). `node` (single-valued) proxies one-to-one, `nodes`
fans out. A node that cannot forward (worker, maintenance) serves targets naming itself and refuses
the rest with PermissionDenied "no request forwarding".
"""
import dataclasses
import ipaddress

from grpclib.const import Status
from grpclib.exceptions import GRPCError

LOCAL = "local"
FORWARD = "forward"
FAN_OUT = "fan-out"


@dataclasses.dataclass(frozen=True)
class Route:
    kind: str
    targets: tuple = ()


def _valid_target(value):
    """A bare address or host name; anything with a port (or empty) is an invalid target."""
    if not value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return ":" not in value and "/" not in value


def _split(values):
    return [part.strip() for value in values for part in value.split(",")]


def route(metadata, entry):
    if "proxyfrom" in metadata:
        return Route(LOCAL)
    node_values = metadata.getall("node", [])
    if node_values:
        if len(node_values) != 1:
            raise GRPCError(Status.INVALID_ARGUMENT, "node metadata must be single-valued")
        target = node_values[0].strip()
        if not _valid_target(target):
            raise GRPCError(Status.INTERNAL, "invalid target")
        if entry.owns_target(target):
            return Route(LOCAL)
        if not entry.can_forward:
            raise GRPCError(Status.PERMISSION_DENIED, "no request forwarding")
        return Route(FORWARD, (target,))
    nodes_values = metadata.getall("nodes", [])
    if nodes_values:
        targets = tuple(_split(nodes_values))
        if not all(_valid_target(target) for target in targets):
            raise GRPCError(Status.INTERNAL, "invalid target")
        if not entry.can_forward and not all(entry.owns_target(target) for target in targets):
            raise GRPCError(Status.PERMISSION_DENIED, "no request forwarding")
        return Route(FAN_OUT, targets)
    return Route(LOCAL)
