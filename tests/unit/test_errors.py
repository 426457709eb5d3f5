"""Error wording: the node, the RPC, the code, and what to do."""

from ansible_collections.talos.linux.plugins.module_utils._errors import allowed_roles, explain_status, short_rpc


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
