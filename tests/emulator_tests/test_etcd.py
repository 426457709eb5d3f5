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
