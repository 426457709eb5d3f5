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
        hint = (f"The endpoint {endpoint} cannot forward calls to other nodes (it is a worker): list "
                "control-plane nodes as endpoints, or target this node directly.")
    elif code == "Unimplemented":
        running = f"Talos {version}" if version else "the Talos version"
        hint = f"{running} on node {node or endpoint} does not support {short_rpc(rpc)}."
    elif code == "Unavailable":
        hint = (f"Node {node or endpoint} could not be reached; check that it is up and that the endpoint can "
                "reach it on port 50000.")
    return TalosError(f"{where} failed: {code}: {detail}", code=code, node=node, endpoint=endpoint, rpc=rpc,
                      detail=detail, hint=hint)


# What the node's TLS alert says about the client certificate (Go's crypto/tls on the node, as OpenSSL names
# the alerts here). Without an alert (the connection dropped once the handshake was done: under TLS 1.3 the
# node checks the certificate after the client's side of the handshake is over, and a TCP reset can overtake
# the alert) the cause cannot be told apart, and the hint lists the possibilities.
_CERTIFICATE_ALERT_HINTS = (
    ("UNKNOWN_CA", "The node does not trust the CA that issued the certificate: the crt and key belong to another "
                   "cluster. Use a talosconfig of this cluster."),
    ("CERTIFICATE_EXPIRED", "The node considers the certificate expired (or not yet valid): check the clocks of "
                            "this host and the node, or generate a new talosconfig."),
    ("CERTIFICATE_REQUIRED", "No client certificate was offered: set crt and key in the talosconfig."),
    ("HANDSHAKE_FAILURE", "No client certificate was offered, or none the node accepts: check crt and key in the "
                          "talosconfig."),
    ("BAD_CERTIFICATE", "The node refused the certificate itself: Talos requires its extended key usage to be "
                        "exactly clientAuth, and it must be valid at the node's time (check the clocks). Generate "
                        "the talosconfig with talosctl or from the cluster secrets."),
    ("UNSUPPORTED_CERTIFICATE", "The certificate's extended key usage does not allow client authentication: "
                                "Talos requires exactly clientAuth."),
)
CERTIFICATE_REFUSED_HINT = ("The certificate was not issued by this cluster's CA, has expired, or its extended key "
                            "usage is not exactly clientAuth.")


def certificate_refusal_hint(alert_reason: str | None) -> str:
    """The hint for a refused client certificate, from the TLS alert OpenSSL reports (e.g. 'TLSV1_ALERT_UNKNOWN_CA')."""
    reason = (alert_reason or "").upper()
    for name, hint in _CERTIFICATE_ALERT_HINTS:
        if "ALERT" in reason and reason.endswith(name):
            return hint
    return CERTIFICATE_REFUSED_HINT
