"""etcd RPCs and Bootstrap (talos-api.md §4.4). All are control-plane only."""
from grpclib.const import Status

from .. import node_resources
from ..api import common_pb2, machine_pb2
from ..etcd import ETCD_CLUSTER_VERSION, ETCD_VERSION, SnapshotVerifier, format_member_id
from .base import fail, require_control_plane, rpc

M = "machine.MachineService"
_ALARM = machine_pb2.EtcdMemberAlarm.AlarmType


def _etcd(call, api):
    require_control_plane(call, api)
    etcd = call.cluster.etcd
    if not etcd.bootstrapped:
        fail(Status.UNAVAILABLE, "etcd is not running: the cluster has not been bootstrapped")
    return etcd


def publish_etcd_members(cluster):
    """Each node's EtcdMembers.etcd.talos.dev/local follows the member list."""
    for node in cluster.nodes:
        if node.up and node.is_control_plane:
            node_resources.publish(node)


def _local_member(call, etcd):
    member = etcd.member_at(call.node.address)
    if member is None or not call.node.etcd_running:
        fail(Status.UNAVAILABLE, "failed to create etcd client: etcd member is not running on this node")
    return member


@rpc(M, "EtcdMemberList")
async def member_list(call, request):
    etcd = _etcd(call, "member list")
    if request.query_local:  # asks this node's own etcd; otherwise any control plane's answers
        _local_member(call, etcd)
    members = [machine_pb2.EtcdMember(id=m.id, hostname=m.hostname, peer_urls=m.peer_urls,
                                      client_urls=m.client_urls, is_learner=m.is_learner)
               for m in sorted(etcd.members.values(), key=lambda m: m.hostname)]
    return machine_pb2.EtcdMemberListResponse(messages=[machine_pb2.EtcdMembers(
        members=members, legacy_members=[m.hostname for m in members])])


@rpc(M, "EtcdStatus")
async def status(call, request):
    etcd = _etcd(call, "etcd status")
    member = _local_member(call, etcd)
    leader = etcd.elect_leader()
    member_status = machine_pb2.EtcdMemberStatus(
        member_id=member.id, protocol_version=ETCD_VERSION, db_size=member.db_size,
        db_size_in_use=member.db_size_in_use,
        leader=leader.id if leader else 0, raft_index=etcd.raft_index, raft_term=etcd.raft_term,
        raft_applied_index=etcd.raft_index, errors=list(member.errors), is_learner=member.is_learner)
    if call.node.version.at_least(11):
        member_status.storage_version = ETCD_CLUSTER_VERSION
    return machine_pb2.EtcdStatusResponse(messages=[machine_pb2.EtcdStatus(member_status=member_status)])


@rpc(M, "EtcdLeaveCluster")
async def leave_cluster(call, request):
    """Sent to the departing node; a member already gone counts as success. Stops etcd and wipes it."""
    etcd = _etcd(call, "etcd leave")
    member = etcd.member_at(call.node.address)
    if member is not None:
        etcd.remove_member(member.id)
    service = call.node.services.get("etcd")
    if service is not None:
        service.transition("Finished", "Service finished successfully", healthy=False)
    publish_etcd_members(call.cluster)
    return machine_pb2.EtcdLeaveClusterResponse(messages=[machine_pb2.EtcdLeaveCluster()])


@rpc(M, "EtcdRemoveMemberByID")
async def remove_member(call, request):
    etcd = _etcd(call, "etcd remove member")
    if request.member_id not in etcd.members:
        fail(Status.NOT_FOUND, f"etcdserver: member not found: {format_member_id(request.member_id)}")
    etcd.remove_member(request.member_id)
    publish_etcd_members(call.cluster)
    return machine_pb2.EtcdRemoveMemberByIDResponse(messages=[machine_pb2.EtcdRemoveMemberByID()])


@rpc(M, "EtcdForfeitLeadership")
async def forfeit_leadership(call, request):
    etcd = _etcd(call, "etcd forfeit leadership")
    member = _local_member(call, etcd)
    if etcd.leader_id == member.id:
        etcd.elect_leader(exclude=member.id)
    leader = etcd.leader
    return machine_pb2.EtcdForfeitLeadershipResponse(messages=[machine_pb2.EtcdForfeitLeadership(
        member=leader.hostname if leader else "")])


@rpc(M, "EtcdSnapshot")
async def snapshot(call, request):
    etcd = _etcd(call, "etcd snapshot")
    member = _local_member(call, etcd)
    for chunk in etcd.snapshot_chunks(member):
        yield common_pb2.Data(bytes=chunk)


@rpc(M, "EtcdRecover")
async def recover(call, requests):
    """Client stream of common.Data: the snapshot Bootstrap{recover_etcd} restores from.

    The recovery directory is checked before the control-plane check: until the boot reaches the point
    where etcd waits, the answer is FailedPrecondition, on any node.
    """
    node = call.node
    if node.stage not in ("running", "booting") or call.cluster.etcd.not_ready(node.address):
        fail(Status.FAILED_PRECONDITION, "etcd service is not ready for recovery yet")
    require_control_plane(call, "etcd recover")
    if "etcd" not in node.services:
        fail(Status.FAILED_PRECONDITION, "etcd service is not ready for recovery yet")
    verifier = SnapshotVerifier()
    async for message in requests:
        verifier.update(message.bytes)
    call.cluster.etcd.recovery_snapshots[node.address] = verifier
    return machine_pb2.EtcdRecoverResponse(messages=[machine_pb2.EtcdRecover()])


@rpc(M, "EtcdDefragment")
async def defragment(call, request):
    etcd = _etcd(call, "etcd defragment")
    etcd.defragment(_local_member(call, etcd))
    return machine_pb2.EtcdDefragmentResponse(messages=[machine_pb2.EtcdDefragment()])


@rpc(M, "EtcdAlarmList")
async def alarm_list(call, request):
    etcd = _etcd(call, "etcd alarm list")
    alarms = [machine_pb2.EtcdMemberAlarm(member_id=mid, alarm=_ALARM.Value(alarm)) for mid, alarm in etcd.alarm_list()]
    return machine_pb2.EtcdAlarmListResponse(messages=[machine_pb2.EtcdAlarm(member_alarms=alarms)])


@rpc(M, "EtcdAlarmDisarm")
async def alarm_disarm(call, request):
    etcd = _etcd(call, "etcd alarm disarm")
    alarms = [machine_pb2.EtcdMemberAlarm(member_id=mid, alarm=_ALARM.Value(alarm)) for mid, alarm in etcd.disarm_all()]
    return machine_pb2.EtcdAlarmDisarmResponse(messages=[machine_pb2.EtcdAlarmDisarm(member_alarms=alarms)])


def _minor(version_text):
    parts = version_text.lstrip("v").split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        fail(Status.INVALID_ARGUMENT, f"invalid version {version_text!r}")
    return int(parts[0]), int(parts[1])


def _check_target(version_text):
    current = _minor(ETCD_CLUSTER_VERSION)
    if _minor(version_text) != (current[0], current[1] - 1):
        fail(Status.FAILED_PRECONDITION, "etcdserver: invalid downgrade target version")


def _cluster_downgrade(etcd):
    return machine_pb2.EtcdClusterDowngrade(cluster_version=etcd.downgrade_target or ETCD_CLUSTER_VERSION[:3])


@rpc(M, "EtcdDowngradeValidate", since_minor=11)
async def downgrade_validate(call, request):
    etcd = _etcd(call, "etcd downgrade validate")
    _check_target(request.version)
    return machine_pb2.EtcdDowngradeValidateResponse(messages=[machine_pb2.EtcdDowngradeValidate(
        cluster_downgrade=_cluster_downgrade(etcd))])


@rpc(M, "EtcdDowngradeEnable", since_minor=11)
async def downgrade_enable(call, request):
    etcd = _etcd(call, "etcd downgrade enable")
    _check_target(request.version)
    etcd.downgrade_target = ".".join(request.version.lstrip("v").split(".")[:2])
    return machine_pb2.EtcdDowngradeEnableResponse(messages=[machine_pb2.EtcdDowngradeEnable(
        cluster_downgrade=_cluster_downgrade(etcd))])


@rpc(M, "EtcdDowngradeCancel", since_minor=11)
async def downgrade_cancel(call, request):
    etcd = _etcd(call, "etcd downgrade cancel")
    if etcd.downgrade_target is None:
        fail(Status.FAILED_PRECONDITION, "etcdserver: no inflight downgrade job")
    etcd.downgrade_target = None
    return machine_pb2.EtcdDowngradeCancelResponse(messages=[machine_pb2.EtcdDowngradeCancel(
        cluster_downgrade=_cluster_downgrade(etcd))])


@rpc(M, "Bootstrap")
async def bootstrap(call, request):
    """Refusals in the order machined checks: role of the node, readiness, time sync, then the data directory."""
    node, etcd = call.node, call.cluster.etcd
    if not node.is_control_plane and node.version.bootstrap_on_worker_unimplemented:
        fail(Status.UNIMPLEMENTED, "bootstrap is only available on control plane nodes")
    if node.stage != "running" or etcd.not_ready(node.address):
        fail(Status.FAILED_PRECONDITION, "bootstrap is not available yet")
    if not node.is_control_plane:
        fail(Status.FAILED_PRECONDITION, "bootstrap can only be performed on a control plane node")
    if etcd.time_unsynced(node.address):
        fail(Status.FAILED_PRECONDITION, "time is not in sync yet")
    if etcd.bootstrapped:
        fail(Status.ALREADY_EXISTS, "etcd data directory is not empty")
    if request.recover_etcd:
        uploaded = etcd.recovery_snapshots.pop(node.address, None)
        if uploaded is None:
            fail(Status.UNKNOWN, "failed to recover etcd: open /var/lib/etcd.snapshot: no such file or directory")
        if not request.recover_skip_hash_check and not uploaded.valid:
            fail(Status.UNKNOWN, "failed to recover etcd: snapshot file hash mismatch")
        problem = etcd.restore(uploaded, node.address, node.hostname)
        if problem is not None:
            fail(Status.UNKNOWN, f"failed to recover etcd: {problem}")
    else:
        etcd.revision = 1
    etcd.bootstrapped = True
    for other in call.cluster.nodes:
        if other.is_control_plane and other.up:
            service = other.services.get("etcd")
            if service is not None:
                service.transition("Running", "Health check successful", healthy=True)
            if etcd.member_at(other.address) is None:
                etcd.add_member(other.address, other.hostname)
    etcd.leader_id = etcd.member_at(node.address).id
    etcd.elect_leader()
    publish_etcd_members(call.cluster)
    return machine_pb2.BootstrapResponse(messages=[machine_pb2.Bootstrap()])
