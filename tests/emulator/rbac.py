"""Role-based access control as machined enforces it (talos-api.md §1).

Roles are plain sets (no hierarchy): a method is allowed when the caller holds one of its roles.
Methods missing from the table need os:admin. COSI has a second filter, in rpcs/cosi.py.
"""
from grpclib.const import Status
from grpclib.exceptions import GRPCError

ADMIN = "os:admin"
OPERATOR = "os:operator"
READER = "os:reader"
ETCD_BACKUP = "os:etcd:backup"
IMPERSONATOR = "os:impersonator"
META_WRITER = "os:meta:writer"          # v1.13+
IMAGE_VERIFIER = "os:image:verifier"    # v1.13+

NOT_AUTHORIZED = "not authorized"

_R_O_A = frozenset({READER, OPERATOR, ADMIN})
_E_R_O_A = frozenset({ETCD_BACKUP, READER, OPERATOR, ADMIN})
_E_O_A = frozenset({ETCD_BACKUP, OPERATOR, ADMIN})
_O_A = frozenset({OPERATOR, ADMIN})
_A = frozenset({ADMIN})

_M = "/machine.MachineService/"
_RULES = {
    **{_M + name: _R_O_A for name in (
        "Version", "Hostname", "Memory", "CPUInfo", "SystemStat", "Mounts", "ServiceList", "DiskStats",
        "LoadAvg", "Events", "Logs", "Dmesg", "Processes", "Netstat")},
    "/storage.StorageService/Disks": _R_O_A,
    "/cluster.ClusterService/HealthCheck": _R_O_A,
    "/cosi.resource.State/Get": _R_O_A,
    "/cosi.resource.State/List": _R_O_A,
    "/cosi.resource.State/Watch": _R_O_A,
    _M + "EtcdMemberList": _E_R_O_A,
    _M + "EtcdStatus": _E_R_O_A,
    _M + "EtcdAlarmList": _E_R_O_A,
    _M + "EtcdSnapshot": _E_O_A,
    **{_M + name: _O_A for name in (
        "Reboot", "Shutdown", "ServiceStart", "ServiceStop", "ServiceRestart", "EtcdAlarmDisarm", "EtcdDefragment")},
    "/machine.ImageService/Pull": _O_A,
    # Not in the spec's list; upstream lets readers list images like the legacy ImageList (an assumption).
    "/machine.ImageService/List": _R_O_A,
    # talos-api-day2.md Appendix A; absent rows (Read, Copy, Kubeconfig, GenerateClientConfiguration,
    # MetaWrite/MetaDelete before v1.13, ImageService Import/Remove, BlockDeviceWipe before v1.13) need os:admin.
    **{_M + name: _R_O_A for name in (
        "LogsContainers", "Containers", "Stats", "CPUFreqStats", "NetworkDeviceStats", "DiskUsage", "List",
        "ImageList")},
    **{_M + name: _O_A for name in ("Restart", "PacketCapture", "ImagePull")},
    "/machine.ImageService/Verify": frozenset({IMAGE_VERIFIER, READER, OPERATOR, ADMIN}),
    "/inspect.InspectService/ControllerRuntimeDependencies": _R_O_A,
    "/time.TimeService/Time": _R_O_A,
    "/time.TimeService/TimeCheck": _R_O_A,
}
# v1.13 rules: META gets its own role; BlockDeviceWipe admits readers, which the handler allows in maintenance only.
_RULES_SINCE_13 = {
    _M + "MetaWrite": frozenset({META_WRITER, ADMIN}),
    _M + "MetaDelete": frozenset({META_WRITER, ADMIN}),
    "/storage.StorageService/BlockDeviceWipe": frozenset({READER, ADMIN}),
}


def allowed_roles(path, version):
    """The roles the authorizer admits for `path` on a node running `version`."""
    if path in (_M + "EtcdStatus", _M + "EtcdAlarmList") and not version.etcd_status_open_to_readers:
        return _O_A
    if path == _M + "ApplyConfiguration" and version.apply_rule_admits_reader:
        # The table admits readers from v1.13; the handler then refuses non-admins outside maintenance.
        return frozenset({READER, ADMIN})
    if path in _RULES_SINCE_13 and version.at_least(13):
        return _RULES_SINCE_13[path]
    return _RULES.get(path, _A)


def effective_roles(certificate_roles, metadata):
    """os:impersonator may replace its roles with the `talos-role` metadata values (apid forwarding)."""
    if IMPERSONATOR in certificate_roles and metadata is not None:
        requested = [value for value in metadata.getall("talos-role", []) if value]
        if requested:
            return frozenset(requested)
    return certificate_roles


def authorize(path, roles, version):
    if not roles & allowed_roles(path, version):
        raise GRPCError(Status.PERMISSION_DENIED, NOT_AUTHORIZED)


def require_admin(roles):
    if ADMIN not in roles:
        raise GRPCError(Status.PERMISSION_DENIED, NOT_AUTHORIZED)
