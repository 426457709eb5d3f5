"""talos.linux.talos_etcd through real ansible-playbook runs against the emulator."""

import hashlib
import re
import threading

import pytest
import yaml

from tests.integration.playbook import run_playbook, static_inventory

M = "/machine.MachineService/"
MUTATING = tuple(M + name for name in ("Bootstrap", "EtcdLeaveCluster", "EtcdRemoveMemberByID",
                                       "EtcdForfeitLeadership", "EtcdRecover", "EtcdDefragment", "EtcdAlarmDisarm"))
HEX_ID = re.compile(r"^[0-9a-f]{16}$")


def play(hosts="all", options=None, module="talos.linux.talos_etcd", **args):
    task = {"name": "etcd", module: args, "register": "etcd", **(options or {})}
    return yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [task]}], sort_keys=False)


def mutating_calls(cluster):
    return sum(cluster.calls[(a, rpc)] for a in cluster.addresses for rpc in MUTATING)


def calls(cluster, rpc):
    return sum(cluster.calls[(a, M + rpc)] for a in cluster.addresses)


def inventory_for(tmp_path, cluster, address, role="admin"):
    return cluster.node(address).hostname, static_inventory(tmp_path, cluster, role=role, hosts=[address])


def run_on(tmp_path, cluster, address, *extra, role="admin", **args):
    """Run the task on one node's host; the result of that host."""
    host, inventory = inventory_for(tmp_path, cluster, address, role)
    run = run_playbook(tmp_path, play(**args), inventory, *extra)
    return run, run.result("etcd", host)


def etcd_info(tmp_path, cluster, address):
    """What talos.linux.talos_etcd_info reads through ``address``: to set up and verify, not under test here."""
    run, result = run_on(tmp_path, cluster, address, module="talos.linux.talos_etcd_info")
    assert run.rc == 0, run.output
    return result


def localhost_inventory(tmp_path):
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local "
                         "ansible_python_interpreter={{ ansible_playbook_python }}\n")
    return inventory


def release_after_refusal(cluster, node, rpc, reason):
    """Hold Bootstrap/EtcdRecover on ``node`` until ``rpc`` has been refused once there, then let it through."""
    cluster.hold_bootstrap(node, 600, reason=reason)

    def release():
        while cluster.calls[(node, M + rpc)] < 1 and not done.is_set():
            done.wait(0.02)
        cluster.hold_bootstrap(node, 0, reason=reason)

    done = threading.Event()
    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return done


def leader_of(cluster, tmp_path):
    leader = etcd_info(tmp_path, cluster, cluster.control_planes[0])["leader"]["hostname"]
    return next(a for a in cluster.control_planes if cluster.node(a).hostname == leader)


# --- bootstrapped -----------------------------------------------------------------------------------

def test_bootstrap_once_then_nothing_is_sent(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=1, bootstrapped=False)
    node = cluster.control_planes[0]
    check, result = run_on(tmp_path, cluster, node, "--check", state="bootstrapped")
    assert check.rc == 0 and result["changed"] is True, check.output
    assert mutating_calls(cluster) == 0 and cluster.etcd_members() == {}
    # "no etcd runs here" is the expected answer: asked once through each endpoint, not again after a backoff
    assert cluster.calls[(node, M + "EtcdStatus")] == len(cluster.control_planes)

    run, result = run_on(tmp_path, cluster, node, state="bootstrapped")
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["attempts"] == 1 and HEX_ID.match(result["member_id"])
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert calls(cluster, "Bootstrap") == 1

    again, result = run_on(tmp_path, cluster, node, state="bootstrapped")
    assert again.rc == 0 and result["changed"] is False, again.output
    assert calls(cluster, "Bootstrap") == 1, "a healthy member list means no Bootstrap call at all"


@pytest.mark.parametrize("reason", ["not-ready", "time-sync"])
def test_bootstrap_is_retried_until_the_node_is_ready(tmp_path, emulated_cluster, reason):
    cluster = emulated_cluster(control_planes=1, bootstrapped=False)
    node = cluster.control_planes[0]
    release = release_after_refusal(cluster, node, "Bootstrap", reason)
    run, result = run_on(tmp_path, cluster, node, state="bootstrapped", wait_timeout=30)
    release.set()
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["attempts"] >= 2
    assert calls(cluster, "Bootstrap") == result["attempts"]
    assert list(cluster.etcd_members()) == ["talos-cp-1"]


def test_bootstrap_gives_up_after_wait_timeout_naming_the_reason(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, bootstrapped=False)
    node = cluster.control_planes[0]
    cluster.hold_bootstrap(node, 600, reason="time-sync")
    run, result = run_on(tmp_path, cluster, node, state="bootstrapped", wait_timeout=1.5)
    assert run.rc != 0
    assert "time is not in sync yet" in result["msg"] and "1.5 s" in result["msg"], result["msg"]
    assert cluster.etcd_members() == {}


def test_bootstrap_already_exists_is_no_change(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    node = cluster.control_planes[1]
    cluster.set_etcd_unhealthy(node)  # not a healthy member: the task asks Bootstrap, which says AlreadyExists
    healer = threading.Timer(1.0, cluster.set_etcd_healthy, [node])
    healer.start()
    try:
        run, result = run_on(tmp_path, cluster, node, state="bootstrapped", wait_timeout=30)
    finally:
        healer.cancel()
    assert run.rc == 0, run.output
    assert result["changed"] is False and calls(cluster, "Bootstrap") == 1


@pytest.mark.parametrize("version", ["1.12.4", "1.13.5"])
def test_bootstrap_on_a_worker_is_refused_before_sending(tmp_path, emulated_cluster, version):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=version, bootstrapped=False)
    run, result = run_on(tmp_path, cluster, cluster.workers[0], state="bootstrapped")
    assert run.rc != 0 and "worker" in result["msg"] and "control-plane" in result["msg"], result["msg"]
    assert "Nothing was changed" in result["msg"] and "Nothing was sent" not in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


def test_an_etcd_call_refused_by_a_worker_says_nothing_was_changed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    worker = cluster.workers[0]
    run, result = run_on(tmp_path, cluster, worker, role="operator", state="alarms_disarmed")
    assert run.rc != 0 and "worker node, not a control plane" in result["msg"], result["msg"]
    # the worker answered a read (EtcdAlarmList or EtcdMemberList): something was sent, nothing was changed
    assert cluster.calls[(worker, M + "EtcdAlarmList")] + cluster.calls[(worker, M + "EtcdMemberList")] >= 1
    assert "Nothing was changed" in result["msg"] and "Nothing was sent" not in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


# --- absent -----------------------------------------------------------------------------------------

def test_leave_then_rerun_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    leaving = cluster.control_planes[2]
    check, result = run_on(tmp_path, cluster, leaving, "--check", state="absent")
    assert check.rc == 0 and result["changed"] is True and result["method"] == "leave", check.output
    assert mutating_calls(cluster) == 0

    run, result = run_on(tmp_path, cluster, leaving, state="absent")
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["member"]["hostname"] == "talos-cp-3"
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2"]
    assert cluster.calls[(leaving, M + "EtcdLeaveCluster")] == 1

    again, result = run_on(tmp_path, cluster, leaving, state="absent")
    assert again.rc == 0 and result["changed"] is False and result["member"] is None, again.output
    assert mutating_calls(cluster) == 1


@pytest.mark.parametrize("selector", ["id", "0x-id", "hostname"])
def test_remove_a_dead_member_then_rerun_unchanged(tmp_path, emulated_cluster, selector):
    cluster = emulated_cluster(control_planes=3)
    dead = cluster.control_planes[2]
    member_id = cluster.etcd_members()["talos-cp-3"]
    cluster.take_down(dead)
    args = {"id": {"member_id": member_id}, "0x-id": {"member_id": "0x" + member_id.upper()},
            "hostname": {"member_hostname": "talos-cp-3"}}[selector]
    through = cluster.control_planes[0]
    run, result = run_on(tmp_path, cluster, through, state="absent", **args)
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["method"] == "remove" and result["member"]["id"] == member_id
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2"]
    assert cluster.calls[(through, M + "EtcdRemoveMemberByID")] == 1

    again, result = run_on(tmp_path, cluster, through, state="absent", **args)
    assert again.rc == 0 and result["changed"] is False, again.output
    assert "No etcd member has" in result["msg"] and "talos-cp-1" in result["msg"]
    assert any("nothing was removed" in w and "talos-cp-2" in w for w in result["warnings"]), result
    assert mutating_calls(cluster) == 1


def test_remove_in_check_mode_sends_nothing(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    cluster.take_down(cluster.control_planes[2])
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], "--check", state="absent",
                         member_hostname="talos-cp-3")
    assert run.rc == 0 and result["changed"] is True, run.output
    assert mutating_calls(cluster) == 0 and len(cluster.etcd_members()) == 3


def test_quorum_guard_refuses_removal_and_leave(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    cp1, cp2, cp3 = cluster.control_planes
    cluster.take_down(cp3)
    cluster.set_etcd_unhealthy(cp2)
    run, result = run_on(tmp_path, cluster, cp1, state="absent", member_hostname="talos-cp-3")
    assert run.rc != 0 and "quorum" in result["msg"] and "talos-cp-2" in result["msg"], result["msg"]
    assert "Nothing was sent" in result["msg"]
    leave, result = run_on(tmp_path, cluster, cp1, state="absent")
    assert leave.rc != 0 and "quorum" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0 and len(cluster.etcd_members()) == 3

    forced, result = run_on(tmp_path, cluster, cp1, state="absent", member_hostname="talos-cp-3", force=True)
    assert forced.rc == 0 and result["changed"] is True, forced.output
    assert any("force" in w and "quorum" in w for w in result["warnings"])
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2"]


def test_wrong_node_guard(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    cp1 = cluster.control_planes[0]
    run, result = run_on(tmp_path, cluster, cp1, state="absent", member_hostname="talos-cp-1")
    assert run.rc != 0 and "talks through" in result["msg"] and f"node: {cp1}" in result["msg"], result["msg"]
    run, result = run_on(tmp_path, cluster, cp1, state="absent",
                         member_id=cluster.etcd_members()["talos-cp-2"])
    assert run.rc != 0 and "still healthy" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0 and len(cluster.etcd_members()) == 3


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
def test_a_member_that_matches_nothing_is_no_change_with_a_warning_naming_the_members(tmp_path, emulated_cluster,
                                                                                      check):
    cluster = emulated_cluster(control_planes=3)
    cp1 = cluster.control_planes[0]
    members = cluster.etcd_members()
    current = ", ".join(f"{members[name]} ({name})" for name in sorted(members))
    flags = ["--check"] if check else []
    for option, value, described in (("member_hostname", "talos-cp-9", "hostname 'talos-cp-9'"),
                                     ("member_id", "0x0123456789ABCDEF", "id 0123456789abcdef")):
        run, result = run_on(tmp_path, cluster, cp1, *flags, state="absent", **{option: value})
        assert run.rc == 0 and result["changed"] is False and result["member"] is None, run.output
        assert result["warnings"] == [f"{option}: no etcd member has {described}, so nothing was removed. The "
                                      f"current members are {current}. If it was removed already, this is "
                                      f"expected; otherwise correct {option}."]
    assert mutating_calls(cluster) == 0 and cluster.etcd_members() == members


def test_member_id_input_errors(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    cp1 = cluster.control_planes[0]
    run, result = run_on(tmp_path, cluster, cp1, state="absent", member_id="0123456789abcdef")
    assert run.rc == 0 and result["changed"] is False, run.output
    assert "No etcd member has id 0123456789abcdef" in result["msg"]
    for bad in ("talos-cp-2", "12345", "0x0123456789abcdeg"):
        run, result = run_on(tmp_path, cluster, cp1, state="absent", member_id=bad)
        assert run.rc != 0 and "16 hexadecimal digits" in result["msg"] and bad in result["msg"], result["msg"]
    run, result = run_on(tmp_path, cluster, cp1, state="absent", member_id="0123456789abcdef",
                         member_hostname="talos-cp-2")
    assert run.rc != 0 and "mutually exclusive" in result["msg"], result["msg"]
    run, result = run_on(tmp_path, cluster, cp1, state="defragmented", member_hostname="talos-cp-2")
    assert run.rc != 0 and "member_hostname is not used by state defragmented" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


@pytest.mark.parametrize("state,option,value,words", [
    ("bootstrapped", "wait_timeout", 0, "wait_timeout 0 is not a number of seconds above 0"),
    ("recovered", "wait_timeout", -5, "wait_timeout -5 is not a number of seconds above 0"),
    ("defragmented", "wait_timeout", float("nan"), "wait_timeout nan is not a number of seconds above 0"),
    ("absent", "wait_timeout", float("inf"), "wait_timeout inf is not a number of seconds above 0"),
    ("bootstrapped", "wait_timeout", 1e9, "wait_timeout 1e+09 is not a number of seconds above 0 and at most 86400"),
    ("defragmented", "min_free_ratio", -0.1, "min_free_ratio -0.1 is not a fraction from 0 up to"),
    ("defragmented", "min_free_ratio", 1, "min_free_ratio 1 is not a fraction from 0 up to"),
    ("defragmented", "min_free_ratio", float("nan"), "min_free_ratio nan is not a fraction"),
    ("absent", "member_hostname", "", "member_hostname '' is empty or has blanks"),
    ("absent", "member_hostname", "talos-cp-2 ", "member_hostname 'talos-cp-2 ' is empty or has blanks"),
    ("snapshot", "mode", "0666", "mode '0666' (octal 0666) lets the group write it and gives other users access"),
], ids=lambda v: str(v) if not isinstance(v, str) or len(v) < 20 else None)
def test_a_value_that_cannot_be_right_is_refused_before_anything_is_sent(tmp_path, emulated_cluster, state,
                                                                         option, value, words):
    cluster = emulated_cluster(control_planes=3)
    cp1 = cluster.control_planes[0]
    args = {"state": state, option: value}
    if state == "recovered":
        (tmp_path / "etcd.snapshot").write_bytes(b"\0" * 544)
        args["src"] = str(tmp_path / "etcd.snapshot")
    if state == "snapshot":
        args["dest"] = str(tmp_path / "etcd.snapshot")
    cluster.reset_calls()
    for flags in (["--check"], []):
        run, result = run_on(tmp_path, cluster, cp1, *flags, **args)
        assert run.rc != 0 and result["code"] == "InvalidOption", run.output
        assert result["msg"].startswith(words) and "Nothing was sent" in result["msg"], result["msg"]
    assert sum(cluster.calls.values()) == 0, dict(cluster.calls)


# --- leader_forfeited -------------------------------------------------------------------------------

def test_forfeit_on_the_leader_then_rerun_and_on_a_follower(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    leader = leader_of(cluster, tmp_path)
    check, result = run_on(tmp_path, cluster, leader, "--check", state="leader_forfeited")
    assert check.rc == 0 and result["changed"] is True and mutating_calls(cluster) == 0, check.output

    run, result = run_on(tmp_path, cluster, leader, state="leader_forfeited")
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["leader_before"] == result["member_id"]
    assert result["leader_after"] not in (None, result["member_id"])
    assert leader_of(cluster, tmp_path) != leader

    again, result = run_on(tmp_path, cluster, leader, state="leader_forfeited")
    assert again.rc == 0 and result["changed"] is False, again.output
    follower = next(a for a in cluster.control_planes if a not in (leader, leader_of(cluster, tmp_path)))
    other, result = run_on(tmp_path, cluster, follower, state="leader_forfeited")
    assert other.rc == 0 and result["changed"] is False, other.output
    assert calls(cluster, "EtcdForfeitLeadership") == 1 and mutating_calls(cluster) == 1


# --- recovered --------------------------------------------------------------------------------------

@pytest.mark.parametrize("passphrase", [None, "correct horse battery staple"])
def test_recover_a_lost_cluster_from_a_snapshot(tmp_path, emulated_cluster, passphrase):
    cluster = emulated_cluster(control_planes=3, workers=1)
    cp1 = cluster.control_planes[0]
    cluster.write_etcd("/registry/namespaces/prod", "prod")
    cluster.write_etcd("/registry/secrets/prod/db", "s3cret")
    data = cluster.read_etcd()
    dest = tmp_path / "etcd.snapshot"
    secret = {"passphrase": passphrase} if passphrase else {}
    snap, result = run_on(tmp_path, cluster, cluster.control_planes[1], state="snapshot", dest=str(dest), **secret)
    assert snap.rc == 0 and dest.stat().st_size > 0, snap.output

    cluster.wipe_etcd()
    assert cluster.read_etcd() == {} and cluster.etcd_members() == {}
    probes = {rpc: cluster.calls[(cp1, M + rpc)] for rpc in ("EtcdStatus", "EtcdMemberList")}
    check, result = run_on(tmp_path, cluster, cp1, "--check", state="recovered", src=str(dest), **secret)
    assert check.rc == 0 and result["changed"] is True, check.output
    assert mutating_calls(cluster) == 0
    # no etcd anywhere is the expected answer: each probe goes once through each endpoint, with no second round
    assert {rpc: cluster.calls[(cp1, M + rpc)] - before for rpc, before in probes.items()} == {
        "EtcdStatus": len(cluster.control_planes), "EtcdMemberList": len(cluster.control_planes)}

    release = release_after_refusal(cluster, cp1, "EtcdRecover", "not-ready")  # FailedPrecondition at first
    run, result = run_on(tmp_path, cluster, cp1, state="recovered", src=str(dest), wait_timeout=60, **secret)
    release.set()
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["uploads"] >= 2 and result["snapshot"]["encrypted"] is bool(passphrase)
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert cluster.read_etcd() == data
    assert calls(cluster, "Bootstrap") == 1 and calls(cluster, "EtcdRecover") == result["uploads"]

    info = etcd_info(tmp_path, cluster, cp1)
    assert info["healthy"] is True and len(info["members"]) == 3, info

    # the rerun finds etcd running: refused, and nothing is uploaded again
    sent = mutating_calls(cluster)
    again, result = run_on(tmp_path, cluster, cp1, state="recovered", src=str(dest), **secret)
    assert again.rc != 0 and "etcd is running" in result["msg"] and "Nothing was sent" in result["msg"]
    assert mutating_calls(cluster) == sent
    if passphrase:
        assert passphrase not in again.output and passphrase not in run.output


def test_recover_refuses_a_running_member_without_force(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    dest = tmp_path / "etcd.snapshot"
    snap, _result = run_on(tmp_path, cluster, cluster.control_planes[0], state="snapshot", dest=str(dest))
    assert snap.rc == 0, snap.output
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="recovered", src=str(dest))
    assert run.rc != 0 and "runs etcd member" in result["msg"] and "force" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


@pytest.mark.parametrize("damage", ["not-a-snapshot", "bad-checksum", "missing"])
def test_recover_refuses_a_bad_src_before_uploading(tmp_path, emulated_cluster, damage):
    cluster = emulated_cluster(control_planes=1)
    src = tmp_path / "etcd.snapshot"
    snap, _result = run_on(tmp_path, cluster, cluster.control_planes[0], state="snapshot", dest=str(src))
    assert snap.rc == 0, snap.output
    cluster.wipe_etcd()
    if damage == "not-a-snapshot":
        src.write_text("this is not an etcd snapshot\n")
    elif damage == "bad-checksum":
        data = bytearray(src.read_bytes())
        data[100] ^= 0xFF
        src.write_bytes(bytes(data))
    else:
        src.unlink()
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="recovered", src=str(src))
    assert run.rc != 0 and str(src) in result["msg"], result["msg"]
    assert calls(cluster, "EtcdRecover") == 0 and mutating_calls(cluster) == 0


def test_recover_skip_hash_check_uploads_a_database_without_trailer(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    cluster.write_etcd("key", "value")
    src = tmp_path / "etcd.snapshot"
    snap, _result = run_on(tmp_path, cluster, cluster.control_planes[0], state="snapshot", dest=str(src))
    assert snap.rc == 0, snap.output
    src.write_bytes(src.read_bytes()[:-32])  # as copied out of a member's data directory: no SHA-256 trailer
    cluster.wipe_etcd()
    refused, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="recovered", src=str(src))
    assert refused.rc != 0 and calls(cluster, "EtcdRecover") == 0, refused.output
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="recovered", src=str(src),
                         recover_skip_hash_check=True)
    assert run.rc == 0, run.output
    assert any("recover_skip_hash_check" in w for w in result["warnings"])
    assert cluster.read_etcd() == {"key": "value"}


def test_recovered_needs_src(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="recovered")
    assert run.rc != 0 and "needs src" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


# --- defragmented and alarms_disarmed ---------------------------------------------------------------

def test_defragment_then_rerun_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, snapshot_size=4 << 20)
    node, other = cluster.control_planes[1], cluster.control_planes[2]
    check, result = run_on(tmp_path, cluster, node, "--check", role="operator", state="defragmented")
    assert check.rc == 0 and result["changed"] is True and mutating_calls(cluster) == 0, check.output

    run, result = run_on(tmp_path, cluster, node, role="operator", state="defragmented")
    assert run.rc == 0, run.output
    assert result["changed"] is True and result["free_ratio"] >= 0.1
    assert result["db_size_after"] < result["db_size_before"] == 4 << 20
    assert cluster.calls[(node, M + "EtcdDefragment")] == 1

    again, result = run_on(tmp_path, cluster, node, role="operator", state="defragmented")
    assert again.rc == 0 and result["changed"] is False and result["free_ratio"] < 0.1, again.output
    assert mutating_calls(cluster) == 1
    # each member has its own database: another one still needs it
    _run, result = run_on(tmp_path, cluster, other, "--check", state="defragmented")
    assert result["changed"] is True


def test_defragment_threshold_and_role(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    node = cluster.control_planes[0]
    run, result = run_on(tmp_path, cluster, node, state="defragmented", min_free_ratio=0.5)
    assert run.rc == 0 and result["changed"] is False and result["free_ratio"] == 0.4, run.output
    run, result = run_on(tmp_path, cluster, node, role="reader", state="defragmented")
    assert run.rc != 0 and "os:operator" in result["msg"] and "Nothing was sent" in result["msg"], result["msg"]
    run, result = run_on(tmp_path, cluster, node, state="defragmented", min_free_ratio=1.5)
    assert run.rc != 0 and "min_free_ratio" in result["msg"], result["msg"]
    assert mutating_calls(cluster) == 0


def test_disarm_alarms_then_rerun_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    node = cluster.control_planes[0]
    cluster.raise_alarm(cluster.control_planes[2], "NOSPACE")
    check, result = run_on(tmp_path, cluster, node, "--check", role="operator", state="alarms_disarmed")
    assert check.rc == 0 and result["changed"] is True and mutating_calls(cluster) == 0, check.output

    run, result = run_on(tmp_path, cluster, node, role="operator", state="alarms_disarmed")
    assert run.rc == 0, run.output
    assert result["changed"] is True
    assert result["alarms"] == result["disarmed"] == [
        {"member_id": cluster.etcd_members()["talos-cp-3"], "hostname": "talos-cp-3", "alarm": "NOSPACE"}]

    again, result = run_on(tmp_path, cluster, node, role="operator", state="alarms_disarmed")
    assert again.rc == 0 and result["changed"] is False and result["alarms"] == [], again.output
    assert mutating_calls(cluster) == 1


# --- targets ----------------------------------------------------------------------------------------

def test_a_changing_state_refuses_several_nodes(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    run = run_playbook(tmp_path, play(hosts="localhost", talosconfig=str(cluster.talosconfig_path()),
                                      nodes=cluster.control_planes[:2], state="defragmented"),
                       localhost_inventory(tmp_path))
    msg = run.result("etcd")["msg"]
    assert run.rc != 0 and "one node at a time" in msg and "talos.linux.talos_etcd_info" in msg, msg
    assert mutating_calls(cluster) == 0


def test_the_snapshot_bytes_are_what_the_node_sent(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    dest = tmp_path / "etcd.snapshot"
    run, result = run_on(tmp_path, cluster, cluster.control_planes[0], state="snapshot", dest=str(dest))
    assert run.rc == 0 and result["state"] == "snapshot" and result["changed"] is True, run.output
    data = dest.read_bytes()
    assert result["sha256"] == hashlib.sha256(data).hexdigest() and len(data) % 512 == 32
