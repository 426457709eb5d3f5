"""Error wording: the node, the RPC, the code, and what to do."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._errors import (
    allowed_roles, certificate_refusal_hint, explain_status, short_rpc)


def test_short_names():
    assert short_rpc("/machine.MachineService/Version") == "MachineService/Version"
    assert short_rpc("cosi.resource.State/Get") == "State/Get"
    assert short_rpc("EtcdSnapshot") == "MachineService/EtcdSnapshot"


def test_roles_table_matches_the_spec():
    assert allowed_roles("MachineService/ApplyConfiguration") == ("os:admin",)
    assert "os:reader" in allowed_roles("State/List")
    assert "os:etcd:backup" in allowed_roles("MachineService/EtcdSnapshot")
    assert "os:reader" not in allowed_roles("MachineService/EtcdSnapshot")
    assert "os:operator" in allowed_roles("MachineService/Reboot")
    assert allowed_roles("MachineService/SomethingNew") == ("os:admin",)


def test_permission_denied_names_needed_and_held_roles():
    err = explain_status("PermissionDenied", "not authorized", rpc="/machine.MachineService/Bootstrap",
                         node="10.0.0.3", endpoint="10.0.0.2:50000", roles=("os:reader",))
    text = str(err)
    assert "Bootstrap on node 10.0.0.3 via endpoint 10.0.0.2:50000" in text
    assert "needs one of the roles os:admin" in text and "has os:reader" in text
    assert err.to_dict() == {"code": "PermissionDenied", "node": "10.0.0.3", "endpoint": "10.0.0.2:50000",
                             "rpc": "MachineService/Bootstrap", "detail": "not authorized"}


def test_unimplemented_names_the_version():
    err = explain_status("Unimplemented", "unknown service machine.LifecycleService",
                         rpc="/machine.LifecycleService/Upgrade", node="10.0.0.3", endpoint="10.0.0.2:50000",
                         version="v1.12.4")
    assert "Talos v1.12.4 on node 10.0.0.3 does not support LifecycleService/Upgrade" in str(err)


@pytest.mark.parametrize("reason, words", [
    ("TLSV1_ALERT_UNKNOWN_CA", "does not trust the CA"),
    ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "considers the certificate expired"),
    ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "No client certificate was offered"),
    ("SSLV3_ALERT_HANDSHAKE_FAILURE", "No client certificate was offered, or none"),
    ("SSLV3_ALERT_BAD_CERTIFICATE", "exactly clientAuth, and it must be valid"),
    ("SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "does not allow client authentication"),
    (None, "not issued by this cluster's CA, has expired"),
    ("the connection was closed after the TLS handshake, before the node answered", "not issued by this"),
])
def test_certificate_refusal_hint_names_the_alert_cause(reason, words):
    assert words in certificate_refusal_hint(reason)
