"""etcd RPCs (§4.4): members, status, snapshots, alarms, leave/remove, recovery and bootstrap."""
import asyncio
import hashlib

from grpclib.const import Cardinality, Status
from grpclib.exceptions import StreamTerminatedError

from tests.emulator.api import common_pb2, machine_pb2
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient


def _snapshot_bytes(replies):
    return b"".join(reply.bytes for reply in replies)


def test_member_list_and_status(cluster, admin):
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest(query_local=True)).messages[0].members
    assert sorted(m.hostname for m in members) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    by_host = {m.hostname: m for m in members}
    cp1 = cluster.control_planes[0]
    assert list(by_host["talos-cp-1"].peer_urls) == [f"https://{cp1}:2380"]
    assert list(by_host["talos-cp-1"].client_urls) == [f"https://{cp1}:2379"]
    leaders = set()
    for address in cluster.control_planes:
        status = admin("EtcdStatus", node=address).messages[0].member_status
        assert status.member_id in {m.id for m in members}
        assert status.db_size > 0 and status.raft_term > 0 and status.raft_index > 0
        assert list(status.errors) == []
        leaders.add(status.leader)
    assert len(leaders) == 1 and leaders.pop() in {m.id for m in members}


def test_etcd_on_worker_is_unimplemented(cluster, admin):
    error = admin.error("EtcdMemberList", machine_pb2.EtcdMemberListRequest(), node=cluster.workers[0])
    assert error.status == Status.UNIMPLEMENTED
    assert error.message.endswith("is only available on control plane nodes")


def test_snapshot_has_valid_sha256_trailer(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, snapshot_size=3 << 20)
    data = _snapshot_bytes(Caller(cluster, "etcd-backup")("EtcdSnapshot", timeout=30))
    assert len(data) % 512 == 32
    assert len(data) >= 3 << 20
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_snapshot_can_break_mid_stream(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, snapshot_size=5 << 20)
    admin = Caller(cluster)
    cluster.interrupt_stream("EtcdSnapshot", after_messages=2)

    async def count_messages():
        client = TalosTestClient(cluster.control_planes[0], admin.context)
        received = 0
        try:
            async with client.channel.request("/machine.MachineService/EtcdSnapshot", Cardinality.UNARY_STREAM,
                                              machine_pb2.EtcdSnapshotRequest, common_pb2.Data, timeout=10) as stream:
                await stream.send_message(machine_pb2.EtcdSnapshotRequest(), end=True)
                async for _message in stream:
                    received += 1
        except StreamTerminatedError:
            return received, "reset"
        finally:
            client.close()
        return received, "completed"
    assert asyncio.run(count_messages()) == (2, "reset")
    assert len(_snapshot_bytes(admin("EtcdSnapshot"))) % 512 == 32     # one-shot: the retry works
    cluster.interrupt_stream("EtcdSnapshot", after_messages=0, code="UNAVAILABLE")
    assert admin.error("EtcdSnapshot").status == Status.UNAVAILABLE


def test_remove_unknown_member_is_not_found_and_leave_is_idempotent(cluster, admin):
    error = admin.error("EtcdRemoveMemberByID", machine_pb2.EtcdRemoveMemberByIDRequest(member_id=12345))
    assert error.status == Status.NOT_FOUND
    leaving = cluster.control_planes[2]
    admin("EtcdLeaveCluster", machine_pb2.EtcdLeaveClusterRequest(), node=leaving)
    admin("EtcdLeaveCluster", machine_pb2.EtcdLeaveClusterRequest(), node=leaving)
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).messages[0].members
    assert sorted(m.hostname for m in members) == ["talos-cp-1", "talos-cp-2"]
    victim = [m for m in members if m.hostname == "talos-cp-2"][0]
    admin("EtcdRemoveMemberByID", machine_pb2.EtcdRemoveMemberByIDRequest(member_id=victim.id))
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).messages[0].members
    assert [m.hostname for m in members] == ["talos-cp-1"]


def test_forfeit_leadership_moves_the_leader(cluster, admin):
    status = admin("EtcdStatus").messages[0].member_status
    leader_address = [a for a in cluster.control_planes
                      if admin("EtcdStatus", node=a).messages[0].member_status.member_id == status.leader][0]
    reply = admin("EtcdForfeitLeadership", machine_pb2.EtcdForfeitLeadershipRequest(), node=leader_address)
    assert reply.messages[0].member and reply.messages[0].member != cluster.node(leader_address).hostname
    assert admin("EtcdStatus").messages[0].member_status.leader != status.leader


def test_unhealthy_member_and_alarms(cluster, admin):
    cp2 = cluster.control_planes[1]
    cluster.set_etcd_unhealthy(cp2, "etcdserver: request timed out")
    assert list(admin("EtcdStatus", node=cp2).messages[0].member_status.errors) == ["etcdserver: request timed out"]
    error = admin.error("Upgrade", machine_pb2.UpgradeRequest(image="ghcr.io/siderolabs/installer:v1.13.6"))
    assert error.status == Status.UNKNOWN and error.message.startswith("error validating etcd for upgrade: ")
    cluster.raise_alarm(cp2, "NOSPACE")
    alarms = admin("EtcdAlarmList").messages[0].member_alarms
    assert [(a.alarm) for a in alarms] == [machine_pb2.EtcdMemberAlarm.NOSPACE]
    disarmed = Caller(cluster, "operator")("EtcdAlarmDisarm").messages[0].member_alarms
    assert len(disarmed) == 1
    assert admin("EtcdAlarmList").messages[0].member_alarms == []
    cluster.clear_faults()
    assert list(admin("EtcdStatus", node=cp2).messages[0].member_status.errors) == []


def test_downgrade_rpcs_exist_from_1_11(emulated_cluster):
    old = Caller(emulated_cluster(control_planes=1, talos_version="1.10.7"))
    error = old.error("EtcdDowngradeValidate", machine_pb2.EtcdDowngradeValidateRequest(version="3.5"))
    assert error.status == Status.UNIMPLEMENTED
    new = Caller(emulated_cluster(control_planes=1, talos_version="1.11.6"))
    reply = new("EtcdDowngradeEnable", machine_pb2.EtcdDowngradeEnableRequest(version="3.5"))
    assert reply.messages[0].cluster_downgrade.cluster_version == "3.5"
    new("EtcdDowngradeCancel")
    assert new.error("EtcdDowngradeCancel").status == Status.FAILED_PRECONDITION


def test_bootstrap_already_done_and_on_worker(cluster, admin):
    error = admin.error("Bootstrap", machine_pb2.BootstrapRequest())
    assert (error.status, error.message) == (Status.ALREADY_EXISTS, "etcd data directory is not empty")
    assert admin.error("Bootstrap", machine_pb2.BootstrapRequest(), node=cluster.workers[0]).status == \
        Status.UNIMPLEMENTED


def test_recover_then_bootstrap(emulated_cluster):
    source = emulated_cluster(control_planes=1, snapshot_size=1 << 20)
    snapshot = _snapshot_bytes(Caller(source)("EtcdSnapshot"))
    cluster = emulated_cluster(control_planes=2, bootstrapped=False)
    admin = Caller(cluster)
    assert admin.error("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).status == Status.UNAVAILABLE
    chunks = [common_pb2.Data(bytes=snapshot[i:i + 4096]) for i in range(0, len(snapshot), 4096)]
    admin("EtcdRecover", requests=chunks)
    admin("Bootstrap", machine_pb2.BootstrapRequest(recover_etcd=True))
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).messages[0].members
    assert sorted(m.hostname for m in members) == ["talos-cp-1", "talos-cp-2"]
    assert admin.error("Bootstrap", machine_pb2.BootstrapRequest()).status == Status.ALREADY_EXISTS


def test_recover_refuses_corrupt_snapshot(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, bootstrapped=False)
    admin = Caller(cluster)
    admin("EtcdRecover", requests=[common_pb2.Data(bytes=b"x" * 1056)])
    error = admin.error("Bootstrap", machine_pb2.BootstrapRequest(recover_etcd=True))
    assert "hash" in error.message


def test_bootstrap_waits_for_readiness_and_time_sync(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, bootstrapped=False)
    admin = Caller(cluster)
    node = cluster.control_planes[0]
    cluster.hold_bootstrap(node, 60, reason="not-ready")
    error = admin.error("Bootstrap", machine_pb2.BootstrapRequest())
    assert (error.status, error.message) == (Status.FAILED_PRECONDITION, "bootstrap is not available yet")
    error = admin.error("EtcdRecover", requests=[common_pb2.Data(bytes=b"x")])
    assert (error.status, error.message) == (Status.FAILED_PRECONDITION, "etcd service is not ready for recovery yet")
    cluster.clear_faults()
    cluster.hold_bootstrap(node, 60, reason="time-sync")
    error = admin.error("Bootstrap", machine_pb2.BootstrapRequest())
    assert (error.status, error.message) == (Status.FAILED_PRECONDITION, "time is not in sync yet")
    cluster.hold_bootstrap(node, 0, reason="time-sync")
    admin("Bootstrap", machine_pb2.BootstrapRequest())
    assert list(cluster.etcd_members()) == ["talos-cp-1"]
    assert admin.error("Bootstrap", machine_pb2.BootstrapRequest()).status == Status.ALREADY_EXISTS
    # a worker in its running stage has the recovery directory, then fails the control-plane check
    assert admin.error("EtcdRecover", requests=[common_pb2.Data(bytes=b"x")], node=cluster.workers[0]).status == \
        Status.UNIMPLEMENTED


def test_bootstrap_on_an_old_worker_is_a_failed_precondition(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.12.4")
    error = Caller(cluster).error("Bootstrap", machine_pb2.BootstrapRequest(), node=cluster.workers[0])
    assert error.status == Status.FAILED_PRECONDITION and "control plane" in error.message


def test_data_comes_back_from_a_snapshot_after_etcd_is_lost(emulated_cluster):
    cluster = emulated_cluster(control_planes=3)
    admin = Caller(cluster)
    cluster.write_etcd("/registry/namespaces/prod", "prod")
    cluster.write_etcd("/registry/configmaps/prod/settings", "colour=blue")
    snapshot = _snapshot_bytes(admin("EtcdSnapshot", node=cluster.control_planes[1]))
    cluster.write_etcd("/registry/configmaps/prod/later", "after the snapshot")

    cluster.wipe_etcd()
    assert cluster.read_etcd() == {} and cluster.etcd_members() == {}
    assert admin.error("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).status == Status.UNAVAILABLE
    assert cluster.node(cluster.control_planes[0]).raw.services["etcd"].state == "Preparing"

    target = cluster.control_planes[2]
    admin("EtcdRecover", requests=[common_pb2.Data(bytes=snapshot[i:i + 4096])
                                   for i in range(0, len(snapshot), 4096)], node=target)
    admin("Bootstrap", machine_pb2.BootstrapRequest(recover_etcd=True), node=target)
    assert sorted(cluster.etcd_members()) == ["talos-cp-1", "talos-cp-2", "talos-cp-3"]
    assert cluster.read_etcd() == {"/registry/namespaces/prod": "prod",
                                   "/registry/configmaps/prod/settings": "colour=blue"}
    status = admin("EtcdStatus", node=target).messages[0].member_status
    assert status.leader == status.member_id and status.db_size == len(snapshot) - 32


def test_recover_refuses_bytes_that_are_not_an_etcd_database(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, bootstrapped=False)
    admin = Caller(cluster)
    body = b"\0" * 1024
    admin("EtcdRecover", requests=[common_pb2.Data(bytes=body + hashlib.sha256(body).digest())])
    error = admin.error("Bootstrap", machine_pb2.BootstrapRequest(recover_etcd=True))
    assert error.status == Status.UNKNOWN and "not an etcd database" in error.message
    assert cluster.etcd_members() == {}


def test_a_snapshot_grows_to_hold_its_data(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, snapshot_size=512)
    cluster.write_etcd("big", "x" * 5000)
    data = _snapshot_bytes(Caller(cluster)("EtcdSnapshot"))
    assert len(data) % 512 == 32 and len(data) > 5000
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_defragment_shrinks_only_that_member(cluster, admin):
    cp1, cp2 = cluster.control_planes[:2]
    before = admin("EtcdStatus", node=cp1).messages[0].member_status
    assert before.db_size > before.db_size_in_use
    error = Caller(cluster, "reader").error("EtcdDefragment", node=cp1)
    assert error.status == Status.PERMISSION_DENIED
    Caller(cluster, "operator")("EtcdDefragment", node=cp1)
    after = admin("EtcdStatus", node=cp1).messages[0].member_status
    assert after.db_size < before.db_size and after.db_size - after.db_size_in_use < 512
    assert admin("EtcdStatus", node=cp2).messages[0].member_status.db_size == before.db_size
    assert len(_snapshot_bytes(admin("EtcdSnapshot", node=cp1))) == after.db_size + 32


def test_member_list_query_local_needs_the_local_member(cluster, admin):
    leaving = cluster.control_planes[2]
    admin("EtcdLeaveCluster", node=leaving)
    assert cluster.node(leaving).raw.services["etcd"].state == "Finished"
    error = admin.error("EtcdMemberList", machine_pb2.EtcdMemberListRequest(query_local=True), node=leaving)
    assert error.status == Status.UNAVAILABLE
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest(query_local=False), node=leaving)
    assert sorted(m.hostname for m in members.messages[0].members) == ["talos-cp-1", "talos-cp-2"]
