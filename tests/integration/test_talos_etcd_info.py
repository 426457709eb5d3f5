"""talos.linux.talos_etcd_info through real ansible-playbook runs against the emulator."""

import re

import pytest
import yaml

from tests.integration.playbook import run_playbook, static_inventory

M = "/machine.MachineService/"
# Every RPC that changes etcd or a node's state: an info module never sends one.
MUTATING = tuple(M + name for name in ("Bootstrap", "EtcdLeaveCluster", "EtcdRemoveMemberByID",
                                       "EtcdForfeitLeadership", "EtcdRecover", "EtcdDefragment", "EtcdAlarmDisarm",
                                       "ApplyConfiguration", "Upgrade", "Reboot", "Reset", "Shutdown"))
HEX_ID = re.compile(r"^[0-9a-f]{16}$")


def play(hosts="all", options=None, **args):
    task = {"name": "etcd", "talos.linux.talos_etcd_info": args, "register": "etcd", **(options or {})}
    return yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [task]}], sort_keys=False)


def mutating_calls(cluster):
    return sum(cluster.calls[(a, rpc)] for a in cluster.addresses for rpc in MUTATING)


def run_on(tmp_path, cluster, address, *extra, role="admin", **args):
    """Run the task on one node's host; the result of that host."""
    host = cluster.node(address).hostname
    inventory = static_inventory(tmp_path, cluster, role=role, hosts=[address])
    run = run_playbook(tmp_path, play(**args), inventory, *extra)
    return run, run.result("etcd", host)


def run_on_localhost(tmp_path, cluster, nodes, role="admin", **args):
    """One task on localhost that reads etcd through several nodes at once."""
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local "
                         "ansible_python_interpreter={{ ansible_playbook_python }}\n")
    run = run_playbook(tmp_path, play(hosts="localhost", talosconfig=str(cluster.talosconfig_path(role)),
                                      nodes=nodes, **args), inventory)
    return run, run.result("etcd")


@pytest.mark.parametrize("role", ["admin", "operator", "reader", "etcd-backup"])
def test_each_role_reads_members_status_alarms_and_quorum(tmp_path, emulated_cluster, role):
    cluster = emulated_cluster(control_planes=3, workers=1)
    through = cluster.control_planes[1]
    run, result = run_on(tmp_path, cluster, through, role=role)
    assert run.rc == 0, run.output
    assert result["changed"] is False and result["node"] == through and "state" not in result
    assert result["healthy"] is True and result["problems"] == []
    members = result["members"]
    assert [m["hostname"] for m in members] == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert all(HEX_ID.match(m["id"]) and m["learner"] is False and m["healthy"] for m in members)
    assert {m["node"] for m in members} == set(cluster.control_planes)
    assert [m["peer_urls"] for m in members] == [[f"https://{a}:2380"] for a in cluster.control_planes]
    assert sum(m["status"]["leader"] for m in members) == 1
    assert all(m["status"]["db_size"] >= m["status"]["db_size_in_use"] > 0 and m["status"]["raft_term"] > 0
               for m in members)
    assert result["leader"]["id"] in {m["id"] for m in members}
    assert result["alarms"] == [] and result["notes"] == []
    assert result["quorum"] == {"members": 3, "voting": 3, "needed": 2, "healthy_voting": 3, "ok": True,
                                "failure_tolerance": 1}
    assert set(cluster.etcd_members().values()) == {m["id"] for m in members}
    assert mutating_calls(cluster) == 0


@pytest.mark.parametrize("role", ["reader", "etcd-backup"])
def test_before_1_11_readers_get_unknown_status_with_notes(tmp_path, emulated_cluster, role):
    cluster = emulated_cluster(control_planes=3, talos_version="1.10.7")
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], role=role)
    assert run.rc == 0, run.output
    assert len(result["members"]) == 3 and all(m["status"] is None and m["healthy"] is None
                                               for m in result["members"])
    assert result["healthy"] is None and result["alarms"] is None and result["quorum"]["ok"] is None
    notes = " ".join(result["notes"])
    assert "EtcdStatus" in notes and "EtcdAlarmList" in notes and "1.11" in notes


def test_an_unhealthy_member_and_an_alarm_are_reported(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    sick = cluster.control_planes[2]
    cluster.set_etcd_unhealthy(sick, error="etcdserver: request timed out")
    cluster.raise_alarm(sick, "NOSPACE")
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0])
    assert run.rc == 0, run.output
    assert result["healthy"] is False
    assert [m["healthy"] for m in result["members"]] == [True, True, False]
    assert result["members"][2]["status"]["errors"] == ["etcdserver: request timed out"]
    assert result["alarms"] == [{"member_id": cluster.etcd_members()["talos-cp-3"], "hostname": "talos-cp-3",
                                 "alarm": "NOSPACE"}]
    assert any("request timed out" in p for p in result["problems"]) and any("NOSPACE" in p for p in result["problems"])
    assert result["quorum"]["healthy_voting"] == 2 and result["quorum"]["ok"] is True
    assert result["quorum"]["failure_tolerance"] == 0
    assert mutating_calls(cluster) == 0


def test_a_member_whose_node_is_down_is_unhealthy_with_the_reason(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    cluster.take_down(cluster.control_planes[1])
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0])
    assert run.rc == 0, run.output
    assert result["healthy"] is False
    down = next(m for m in result["members"] if m["hostname"] == "talos-cp-2")
    assert down["healthy"] is False and down["status"] is None and down["node"] == cluster.control_planes[1]
    assert any(p.startswith(f"member {down['id']} (talos-cp-2): its status cannot be read")
               for p in result["problems"]), result["problems"]
    assert result["quorum"]["healthy_voting"] == 2 and result["quorum"]["failure_tolerance"] == 0


def test_several_nodes_at_once_and_a_worker_is_named(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=1)
    run, result = run_on_localhost(tmp_path, cluster, cluster.control_planes + cluster.workers, role="reader")
    assert run.rc == 0, run.output  # the multi-node rule: some nodes read is a warning, unless strict
    assert any(cluster.workers[0] in w and "failed_nodes" in w for w in result["warnings"])
    assert sorted(result["nodes"]) == sorted(cluster.control_planes)
    assert all(r["healthy"] is True and r["node"] == node for node, r in result["nodes"].items())
    assert len({r["leader"]["id"] for r in result["nodes"].values()}) == 1
    assert list(result["failed_nodes"]) == cluster.workers
    failure = result["failed_nodes"][cluster.workers[0]]
    assert "not a control plane" in failure["msg"] and failure["code"] == "FailedPrecondition"
    strict, result = run_on_localhost(tmp_path, cluster, cluster.control_planes + cluster.workers, role="reader",
                                      strict=True)
    assert strict.rc != 0 and "1 of 4 nodes" in result["msg"]
    assert mutating_calls(cluster) == 0


def test_several_control_planes_succeed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=1)
    run, result = run_on_localhost(tmp_path, cluster, cluster.control_planes)
    assert run.rc == 0, run.output
    assert sorted(result["nodes"]) == sorted(cluster.control_planes) and result["failed_nodes"] == {}
    assert result["changed"] is False and "members" not in result


def test_a_worker_alone_is_refused_saying_etcd_runs_on_control_planes(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    run, result = run_on(tmp_path, cluster, cluster.workers[0])
    assert run.rc != 0
    assert "worker node, not a control plane" in result["msg"] and "Target a control-plane node" in result["msg"]
    assert "Nothing was sent" not in result["msg"], "EtcdMemberList was sent: the refusal must not deny it"


def test_check_mode_reads_the_same(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], "--check")
    assert run.rc == 0, run.output
    assert result["changed"] is False and result["healthy"] is True and len(result["members"]) == 3
    assert mutating_calls(cluster) == 0


def test_through_the_module_process(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    address = cluster.control_planes[0]
    run, result = run_on(tmp_path, cluster, address, options={"async": 60, "poll": 1})
    assert run.rc == 0, run.output
    assert result["ansible_job_id"] and result["healthy"] is True and len(result["members"]) == 1
    assert result["node"] == address
