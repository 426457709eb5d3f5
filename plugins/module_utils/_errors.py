# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One exception type for everything the Talos client can fail with, and the words that explain it.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
"""

from __future__ import annotations

ADMIN = ("os:admin",)
OPERATOR = ("os:admin", "os:operator")
READER = ("os:admin", "os:operator", "os:reader")
ETCD_READ = ("os:admin", "os:operator", "os:reader", "os:etcd:backup")
ETCD_BACKUP = ("os:admin", "os:operator", "os:etcd:backup")

# Roles that may call each RPC (Talos authorization table, talos-api.md §1). An RPC not listed needs os:admin.
ALLOWED_ROLES = {
    **{f"MachineService/{m}": READER for m in (
        "Version", "Hostname", "Memory", "CPUInfo", "SystemStat", "Mounts", "ServiceList", "DiskStats",
        "LoadAvg", "Events", "Logs", "Dmesg", "Processes", "Netstat")},
    **{m: READER for m in (
        "StorageService/Disks", "ClusterService/HealthCheck", "State/Get", "State/List", "State/Watch")},
    **{f"MachineService/{m}": ETCD_READ for m in ("EtcdMemberList", "EtcdStatus", "EtcdAlarmList")},
    "MachineService/EtcdSnapshot": ETCD_BACKUP,
    **{f"MachineService/{m}": OPERATOR for m in (
        "Reboot", "Shutdown", "ServiceStart", "ServiceStop", "ServiceRestart", "EtcdAlarmDisarm",
        "EtcdDefragment")},
    "ImageService/Pull": OPERATOR,
}


def short_rpc(rpc):
    """'/machine.MachineService/Version' -> 'MachineService/Version'; a bare method is a MachineService one."""
    service, _slash, method = rpc.strip("/").rpartition("/")
    if not service:
        return f"MachineService/{method}"
    return f"{service.rsplit('.', 1)[-1]}/{method}"


def allowed_roles(rpc):
    return ALLOWED_ROLES.get(short_rpc(rpc), ADMIN)


class TalosError(Exception):
    """A failed Talos API operation.

    ``code`` is the gRPC status name (``"Unavailable"``, ``"PermissionDenied"``, ...) or a client-side
    reason (``"ConfigError"``, ``"TLSError"``, ``"ConnectError"``, ``"DeadlineExceeded"``). ``message``
    is the whole human sentence; ``detail`` is the node's own text, unchanged.
    """

    def __init__(self, message, *, code="Unknown", node=None, endpoint=None, rpc=None, detail=None, hint=None):
        self.code = code
        self.node = node
        self.endpoint = endpoint
        self.rpc = short_rpc(rpc) if rpc else None
        self.detail = detail
        self.hint = hint
        self.message = message if not hint else f"{message} {hint}"
        super().__init__(self.message)

    def to_dict(self):
        """The structured fields a module result carries next to ``msg``."""
        return {k: v for k, v in (("code", self.code), ("node", self.node), ("endpoint", self.endpoint),
                                  ("rpc", self.rpc), ("detail", self.detail)) if v is not None}


class ConfigError(TalosError):
    """The talosconfig or the connection options cannot be used; nothing was sent."""

    def __init__(self, message, hint=None):
        super().__init__(message, code="ConfigError", hint=hint)


def _where(rpc, node, endpoint):
    target = f" on node {node}" if node else ""
    via = f" via endpoint {endpoint}" if endpoint and endpoint.split(":")[0].strip("[]") != node else ""
    return f"{short_rpc(rpc)}{target}{via}"


def explain_status(code, detail, *, rpc, node, endpoint, roles=None, version=None):
    """Turn a gRPC status the node returned into a TalosError that says what to do."""
    where = _where(rpc, node, endpoint)
    hint = None
    if code == "PermissionDenied" and "not authorized" in detail:
        need = allowed_roles(rpc)
        have = ", ".join(roles) if roles else "no role"
        hint = (f"{short_rpc(rpc)} needs one of the roles {', '.join(need)}; the client certificate has {have}. "
                "Use a talosconfig whose certificate carries one of them.")
    elif code == "PermissionDenied" and "no request forwarding" in detail:
        hint = (f"The endpoint {endpoint} cannot forward calls to other nodes (a worker, or a node in maintenance "
                "mode): list control-plane nodes as endpoints, or target this node directly.")
    elif code == "Unimplemented":
        running = f"Talos {version}" if version else "the Talos version"
        hint = f"{running} on node {node or endpoint} does not support {short_rpc(rpc)}."
    elif code == "Unavailable":
        hint = (f"Node {node or endpoint} could not be reached; check that it is up and that the endpoint can "
                "reach it on port 50000.")
    return TalosError(f"{where} failed: {code}: {detail}", code=code, node=node, endpoint=endpoint, rpc=rpc,
                      detail=detail, hint=hint)
