"""Following a node through a reboot (_wait) and the etcd quorum gate (_etcd_gate), through real gRPC against the
emulator."""

import time

import pytest
from grpclib.const import Status

from ansible_collections.talos.linux.plugins.module_utils._client import RetryPolicy, TalosClient
from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError
from ansible_collections.talos.linux.plugins.module_utils._etcd_gate import (
    etcd_quorum_gate, forfeit_leadership_if_leader, wait_for_etcd_member_healthy)
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings
from ansible_collections.talos.linux.plugins.module_utils import _wait
from ansible_collections.talos.linux.plugins.module_utils._wait import RebootWatch, read_boot_id

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)
EVENTS = "/machine.MachineService/Events"
VERSION = "/machine.MachineService/Version"
MUTATING = ("/machine.MachineService/EtcdForfeitLeadership", "/machine.MachineService/Upgrade",
            "/machine.MachineService/Reboot", "/machine.LifecycleService/Upgrade")


def client_for(cluster, role="admin", endpoints=None, timeout=5):
    options = {"endpoints": endpoints} if endpoints else {}
    client = TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path(role)), **options), timeout=timeout,
                         retry=FAST_RETRY)
    client._endpoints = list(client.settings.endpoints)  # the order given, not shuffled: the test decides who is first
    return client


async def send_reboot(client, node):
    await client.call("Reboot", node=node)


def on_cluster(operation):
    """An action done by the emulator itself (the node reboots or dies without an RPC)."""
    async def action(client, node):  # pylint: disable=unused-argument
        operation()
    return action


def reboot_and_wait(client, node, *, timeout=10, target_version=None, action=send_reboot):
    """RebootWatch.start, the action (the Reboot RPC by default), then wait: the result and the watch."""
    async def operation(c):
        watch = await RebootWatch.start(c, node)
        try:
            await action(c, node)
        except BaseException:
            await watch.close()
            raise
        return await watch.wait(timeout=timeout, target_version=target_version), watch
    return client.run(operation)


def mutating_calls(cluster):
    return sum(count for (_address, path), count in cluster.calls.items() if path in MUTATING)


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=3, workers=2, reboot_seconds=0.5)


# --- waiting for a reboot ----------------------------------------------------------------------------------------

def test_a_worker_is_followed_through_its_reboot(cluster):
    worker = cluster.workers[0]
    before = cluster.node(worker).boot_id
    result, watch = reboot_and_wait(client_for(cluster), worker, target_version="1.13.5")
    assert result["boot_id_before"] == before
    assert result["boot_id_after"] == cluster.node(worker).boot_id != before
    assert (result["stage"], result["ready"], result["version"]) == ("running", True, "v1.13.5")
    assert result["events_seen"] > 0 and not watch.polling
    assert 0.5 <= result["duration"] < 5
    assert cluster.calls[(worker, "/machine.MachineService/Reboot")] == 1


@pytest.mark.parametrize("only_endpoint", [False, True], ids=["first-of-three-endpoints", "only-endpoint"])
def test_a_control_plane_endpoint_is_followed_through_its_own_reboot(cluster, only_endpoint):
    node = cluster.control_planes[0]
    client = client_for(cluster, endpoints=[node] if only_endpoint else cluster.control_planes)
    before = cluster.node(node).boot_id
    result, _watch = reboot_and_wait(client, node)
    assert result["boot_id_after"] == cluster.node(node).boot_id != before
    assert (result["stage"], result["ready"]) == ("running", True)
    # the rebooting node is the endpoint tried last from now on
    assert client._endpoints[-1].host == node


def test_a_node_that_never_comes_back_times_out_naming_its_last_stage(cluster):
    worker = cluster.workers[0]
    started = time.monotonic()
    with pytest.raises(TalosError) as err:
        reboot_and_wait(client_for(cluster), worker, timeout=1.5, action=on_cluster(lambda: cluster.take_down(worker)))
    assert time.monotonic() - started < 4
    text = str(err.value)
    assert err.value.code == "DeadlineExceeded" and err.value.node == worker
    assert f"Node {worker} was not back within 1.5 s" in text and "last known stage running (before the action)" in text


def test_a_reboot_longer_than_the_timeout_names_the_rebooting_stage(cluster):
    worker = cluster.workers[1]
    with pytest.raises(TalosError) as err:
        reboot_and_wait(client_for(cluster), worker, timeout=1.5,
                        action=on_cluster(lambda: cluster.reboot(worker, seconds=30)))
    assert err.value.code == "DeadlineExceeded"
    assert "last known stage rebooting, not ready" in str(err.value)


def test_an_unavailable_burst_on_events_during_the_wait_is_survived(cluster):
    worker = cluster.workers[0]

    def reboot_into_a_burst():
        cluster.fail("Events", code=Status.UNAVAILABLE, count=3, node=worker)
        cluster.reboot(worker)

    before = cluster.node(worker).boot_id
    result, _watch = reboot_and_wait(client_for(cluster), worker, action=on_cluster(reboot_into_a_burst))
    assert result["boot_id_after"] != before and result["ready"]
    # Whether the refusals are met depends on timing: a reopen while the worker is down is refused by the
    # endpoint instead, and the watch may see the node back through its machine-status read first. Either
    # way the wait must end with the node back, which is what this asserts.
    assert cluster.calls[(worker, EVENTS)] >= 1


def test_an_unavailable_burst_on_events_before_the_action_is_survived(cluster):
    worker = cluster.workers[1]
    # as many failures as the client's own attempts: the first open fails whole, the watch tries again
    cluster.fail("Events", code=Status.UNAVAILABLE, count=FAST_RETRY.attempts, node=worker)
    before = cluster.node(worker).boot_id
    result, _watch = reboot_and_wait(client_for(cluster, endpoints=cluster.control_planes[:1]), worker)
    assert result["boot_id_after"] == cluster.node(worker).boot_id != before
    # every refusal and then the stream that opened; after the reboot the node may be confirmed through its
    # machine status without another Events call, so no more is counted on
    assert cluster.calls[(worker, EVENTS)] >= FAST_RETRY.attempts + 1


def test_events_hanging_after_the_reboot_cost_one_short_deadline_each(cluster, monkeypatch):
    """Events never answers once the node is back: the short per-attempt deadline and a COSI read in between
    still see it back, long before the wait's own timeout."""
    monkeypatch.setattr(_wait, "CALL_TIMEOUT", 1.0)
    worker = cluster.workers[0]

    def reboot_into_hanging_events():
        cluster.add_latency(60, rpc="Events", node=worker)  # new streams only: the watch's own is open already
        cluster.reboot(worker)

    before = cluster.node(worker).boot_id
    result, _watch = reboot_and_wait(client_for(cluster), worker, timeout=20,
                                     action=on_cluster(reboot_into_hanging_events))
    assert result["boot_id_after"] == cluster.node(worker).boot_id != before
    assert result["duration"] < 5


def test_a_target_version_the_node_does_not_reach_keeps_waiting_until_the_timeout(cluster):
    worker = cluster.workers[0]
    started = time.monotonic()
    with pytest.raises(TalosError) as err:
        reboot_and_wait(client_for(cluster), worker, timeout=3, target_version="v1.14.0")
    elapsed = time.monotonic() - started
    assert 3 <= elapsed < 5
    text = str(err.value)
    assert err.value.code == "DeadlineExceeded" and "on version v1.14.0" in text
    assert "version v1.13.5" in text and "it runs v1.13.5, not the target version v1.14.0" in text
    assert cluster.node(worker).ready
    assert 1 <= cluster.calls[(worker, VERSION)] <= 5, "asked about once a second, not in a busy loop"


def test_read_boot_id_needs_admin_and_is_none_for_a_reader(cluster):
    node = cluster.workers[0]
    assert TalosClient.run(client_for(cluster), lambda c: read_boot_id(c, node)) == cluster.node(node).boot_id
    assert TalosClient.run(client_for(cluster, role="reader"), lambda c: read_boot_id(c, node)) is None


def test_a_reader_waits_on_seeing_the_node_go_down(cluster):
    worker = cluster.workers[0]
    before = cluster.node(worker).boot_id
    result, _watch = reboot_and_wait(client_for(cluster, role="reader"), worker,
                                     action=on_cluster(lambda: cluster.reboot(worker)))
    assert result["boot_id_before"] is None and result["boot_id_after"] is None
    assert (result["stage"], result["ready"]) == ("running", True)
    assert cluster.node(worker).boot_id != before


@pytest.mark.parametrize("role, reason", [
    ("admin", "its boot id has not changed: it has not rebooted yet"),
    ("reader", "it has not been seen going down yet"),
])
def test_a_replay_of_the_old_boot_is_not_taken_for_a_return(cluster, role, reason):
    """A stream broken before the node went down is reopened with the whole buffer: its "running, ready" is old."""
    worker = cluster.workers[0]
    cluster.interrupt_stream("Events", after_messages=1, node=worker)  # the watch's stream, after its hello

    async def no_reboot_but_an_event(client, node):  # pylint: disable=unused-argument
        async with client_for(cluster) as admin:  # a reader may not restart services
            await admin.call("ServiceRestart", {"id": "kubelet"}, node=node)

    with pytest.raises(TalosError) as err:
        reboot_and_wait(client_for(cluster, role=role), worker, timeout=1.5, action=no_reboot_but_an_event)
    assert err.value.code == "DeadlineExceeded" and reason in str(err.value)
    assert "last known stage running, ready" in str(err.value)


def test_polling_when_events_cannot_be_read(cluster):
    worker = cluster.workers[1]
    cluster.fail("Events", code=Status.PERMISSION_DENIED, count=-1, node=worker, message="not authorized")
    before = cluster.node(worker).boot_id
    result, watch = reboot_and_wait(client_for(cluster), worker)
    assert watch.polling and result["events_seen"] == 0
    assert result["boot_id_after"] == cluster.node(worker).boot_id != before
    assert cluster.calls[(worker, "/cosi.resource.State/Get")] >= 2


# --- the etcd quorum gate ----------------------------------------------------------------------------------------

def gate(cluster, node, timeout=3):
    return client_for(cluster).run(lambda c: etcd_quorum_gate(c, node, timeout=timeout))


def test_a_healthy_three_member_cluster_passes_the_gate(cluster):
    report = gate(cluster, cluster.control_planes[0])
    members = report["members"]
    assert report["healthy"] is True and report["alarms"] == []
    assert sorted(m["node"] for m in members) == sorted(cluster.control_planes)
    assert all(m["healthy"] and not m["errors"] for m in members)
    leaders = [m for m in members if m["leader"]]
    assert len(leaders) == 1 and report["leader"] == leaders[0]["id"]
    assert all(len(m["id"]) == 16 and int(m["id"], 16) for m in members)
    for member in members:
        assert member["hostname"] == cluster.node(member["node"]).hostname
    assert mutating_calls(cluster) == 0


def refused(cluster, node, *needles):
    with pytest.raises(TalosError) as err:
        gate(cluster, node)
    assert err.value.code == "FailedPrecondition", err.value
    for needle in needles:
        assert needle in str(err.value)
    assert mutating_calls(cluster) == 0
    return err.value


def test_the_gate_refuses_when_another_member_is_unhealthy(cluster):
    sick = cluster.control_planes[1]
    cluster.set_etcd_unhealthy(sick, error="etcdserver: request timed out")
    error = refused(cluster, cluster.control_planes[0], cluster.node(sick).hostname, sick,
                    "unhealthy: etcdserver: request timed out")
    by_node = {m["node"]: m for m in error.report["members"]}
    assert not by_node[sick]["healthy"] and by_node[sick]["errors"] == ["etcdserver: request timed out"]
    assert all(m["healthy"] for n, m in by_node.items() if n != sick)


def test_the_gate_refuses_when_an_alarm_is_raised(cluster):
    cluster.raise_alarm(cluster.control_planes[2], "NOSPACE")
    error = refused(cluster, cluster.control_planes[0], "alarm NOSPACE is raised",
                    cluster.node(cluster.control_planes[2]).hostname)
    assert [a["alarm"] for a in error.report["alarms"]] == ["NOSPACE"]


def test_the_gate_refuses_a_two_member_cluster(emulated_cluster):
    small = emulated_cluster(control_planes=2, workers=1)
    refused(small, small.control_planes[0], "exactly two etcd members")


def test_the_gate_refuses_when_another_control_plane_is_down(cluster):
    down = cluster.control_planes[2]
    cluster.take_down(down)
    started = time.monotonic()
    refused(cluster, cluster.control_planes[0], f"control plane {down} is not reachable",
            f"({cluster.node(down).hostname}) on {down}: its status cannot be read")
    assert time.monotonic() - started < 5


# --- leadership and rejoining ------------------------------------------------------------------------------------

def leader_node(cluster):
    report = gate(cluster, cluster.control_planes[0])
    return next(m["node"] for m in report["members"] if m["leader"]), report["leader"]


def test_forfeit_on_the_leader_moves_leadership(cluster):
    leader, leader_id = leader_node(cluster)
    other = next(n for n in cluster.control_planes if n != leader)

    async def forfeit_then_ask_another(c):
        moved = await forfeit_leadership_if_leader(c, leader)
        status = await c.call("EtcdStatus", node=other)
        return moved, f"{status.messages[0].member_status.leader:016x}"

    moved, new_leader = client_for(cluster).run(forfeit_then_ask_another)
    assert moved is True and new_leader != leader_id
    assert cluster.calls[(leader, "/machine.MachineService/EtcdForfeitLeadership")] == 1


def test_forfeit_on_a_follower_sends_nothing(cluster):
    leader, _leader_id = leader_node(cluster)
    follower = next(n for n in cluster.control_planes if n != leader)
    assert client_for(cluster).run(lambda c: forfeit_leadership_if_leader(c, follower)) is False
    assert mutating_calls(cluster) == 0
    assert leader_node(cluster)[0] == leader


def test_waiting_for_the_etcd_member_to_rejoin_after_a_reboot(cluster):
    node = cluster.control_planes[1]
    member_id = next(m["id"] for m in gate(cluster, node)["members"] if m["node"] == node)
    cluster.reboot(node)  # returns once the node is unreachable: the wait starts while it is down
    result = client_for(cluster).run(lambda c: wait_for_etcd_member_healthy(c, node, timeout=5))
    assert result["member_id"] == member_id and result["node"] == node and result["leader"]
    assert cluster.node(node).ready, "it returned only once the node was back"


def test_waiting_for_an_etcd_member_that_stays_unhealthy_times_out(cluster):
    node = cluster.control_planes[1]
    cluster.set_etcd_unhealthy(node, error="etcdserver: request timed out")
    started = time.monotonic()
    with pytest.raises(TalosError) as err:
        client_for(cluster).run(lambda c: wait_for_etcd_member_healthy(c, node, timeout=1.5))
    assert 1.5 <= time.monotonic() - started < 3
    assert err.value.code == "DeadlineExceeded"
    assert f"The etcd member on node {node} was not healthy within 1.5 s" in str(err.value)
    assert "reports errors: etcdserver: request timed out" in str(err.value)
