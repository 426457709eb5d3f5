"""Reboots, events, legacy and Lifecycle upgrades, images, rollback, shutdown and reset (§4.3, §4.6)."""
import asyncio
import time

import pytest
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from tests.emulator.api import common_pb2, image_pb2, lifecycle_pb2, machine_pb2
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient

BOOT_ID = machine_pb2.ReadRequest(path="/proc/sys/kernel/random/boot_id")
SYSTEM = common_pb2.ContainerdInstance(driver=common_pb2.CRI, namespace=common_pb2.NS_SYSTEM)


def _boot_id(admin, node):
    return b"".join(d.bytes for d in admin("Read", BOOT_ID, node=node)).decode().strip()


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_reboot_changes_boot_id_and_node_is_unreachable_meanwhile(cluster, admin):
    target = cluster.control_planes[1]
    before = _boot_id(admin, target)
    assert before == cluster.node(target).boot_id
    actor = admin("Reboot", machine_pb2.RebootRequest(), node=target).messages[0].actor_id
    assert actor
    _wait(lambda: not cluster.node(target).up)
    assert admin.error("Version", node=target).status == Status.UNAVAILABLE
    with pytest.raises(OSError):
        admin("Version", endpoint=target)                  # listener closed: connection refused
    cluster.wait_until_up(target)
    after = _boot_id(admin, target)
    assert after != before and after == cluster.node(target).boot_id
    assert cluster.max_control_planes_down == 1


def test_events_hello_then_reboot_sequence_with_actor(cluster, admin):
    target = cluster.workers[0]
    context = admin.context

    async def run():
        client = TalosTestClient(cluster.control_planes[0], context)
        events, seen = [], {}
        try:
            async with client.channel.request(
                    "/machine.MachineService/Events", Cardinality.UNARY_STREAM,
                    machine_pb2.EventsRequest, machine_pb2.Event, metadata=[("node", target)], timeout=10) as stream:
                await stream.send_message(machine_pb2.EventsRequest(tail_events=0), end=True)
                seen["hello"] = await stream.recv_message()
                reboot = await client.call("Reboot", machine_pb2.RebootRequest(), node=target)
                seen["actor"] = reboot.messages[0].actor_id
                async for event in stream:
                    events.append(event)
        except GRPCError as error:      # the target went away: the stream ends with Unavailable
            events.append(error)
        finally:
            client.close()
        return seen["hello"], seen["actor"], events
    hello, actor, events = asyncio.run(run())
    # upstream's hello: an empty Any as data, a fresh id, no actor (none was asked for)
    assert hello.HasField("data") and hello.data.type_url == "" and len(hello.id) == 20 and not hello.actor_id
    typed = [e for e in events if isinstance(e, machine_pb2.Event)]
    assert typed and all(e.data.type_url.startswith("talos/runtime/machine.") for e in typed)
    sequence = machine_pb2.SequenceEvent.FromString(typed[0].data.value)
    assert typed[0].data.type_url == "talos/runtime/machine.SequenceEvent"
    assert (sequence.sequence, sequence.action, typed[0].actor_id) == ("reboot", machine_pb2.SequenceEvent.START, actor)
    statuses = [machine_pb2.MachineStatusEvent.FromString(e.data.value) for e in typed
                if e.data.type_url.endswith("MachineStatusEvent")]
    assert statuses[-1].stage == machine_pb2.MachineStatusEvent.REBOOTING
    assert getattr(events[-1], "status", None) == Status.UNAVAILABLE
    cluster.wait_until_up(target)
    # After the boot, the new buffer holds the boot sequence ending RUNNING and ready.
    replies = []

    async def tail():
        client = TalosTestClient(cluster.control_planes[0], context)
        try:
            async with client.channel.request(
                    "/machine.MachineService/Events", Cardinality.UNARY_STREAM,
                    machine_pb2.EventsRequest, machine_pb2.Event, metadata=[("node", target)], timeout=10) as stream:
                await stream.send_message(machine_pb2.EventsRequest(tail_events=-1), end=True)
                await stream.recv_message()
                while True:
                    event = await asyncio.wait_for(stream.recv_message(), 0.3)
                    replies.append(event)
        except asyncio.TimeoutError:
            pass
        finally:
            client.close()
    asyncio.run(tail())
    last_status = [machine_pb2.MachineStatusEvent.FromString(e.data.value) for e in replies
                   if e.data.type_url.endswith("MachineStatusEvent")][-1]
    assert last_status.stage == machine_pb2.MachineStatusEvent.RUNNING and last_status.status.ready


def test_legacy_upgrade_reboots_into_new_version(cluster, admin):
    target = cluster.control_planes[0]
    before = cluster.node(target).boot_id
    reply = admin("Upgrade", machine_pb2.UpgradeRequest(image="ghcr.io/siderolabs/installer:v1.13.6"), node=target)
    assert reply.messages[0].ack and reply.messages[0].actor_id
    _wait(lambda: cluster.node(target).boot_id != before and cluster.node(target).ready)
    assert admin("Version", node=target).messages[0].version.tag == "v1.13.6"
    # Rollback returns to the previous version.
    admin("Rollback", machine_pb2.RollbackRequest(), node=target)
    _wait(lambda: cluster.node(target).version == "1.13.5" and cluster.node(target).ready)


def test_legacy_upgrade_refused_while_another_control_plane_is_down(cluster, admin):
    cluster.take_down(cluster.control_planes[2])
    error = admin.error("Upgrade", machine_pb2.UpgradeRequest(image="ghcr.io/siderolabs/installer:v1.13.6"))
    assert error.status == Status.UNKNOWN and "is not started" in error.message
    assert cluster.max_control_planes_down == 1
    cluster.fail_image_pull("ghcr.io/siderolabs/installer:v9.9.9")
    error = admin.error("Upgrade", machine_pb2.UpgradeRequest(image="ghcr.io/siderolabs/installer:v9.9.9",
                                                              force=True))
    assert error.status == Status.UNKNOWN and "pulling" in error.message


def test_lifecycle_and_image_services_are_unimplemented_before_1_13(emulated_cluster):
    admin = Caller(emulated_cluster(control_planes=1, talos_version="1.12.4"))
    error = admin.error("LifecycleService/Upgrade", lifecycle_pb2.LifecycleServiceUpgradeRequest())
    assert (error.status, error.message) == (Status.UNIMPLEMENTED, "unknown service machine.LifecycleService")
    assert admin.error("ImageService/Pull", image_pb2.ImageServicePullRequest()).status == Status.UNIMPLEMENTED


def test_lifecycle_upgrade_needs_pulled_image_and_does_not_reboot(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.1)
    admin = Caller(cluster)
    target = cluster.workers[0]
    image = "ghcr.io/siderolabs/installer:v1.13.6"
    upgrade = lifecycle_pb2.LifecycleServiceUpgradeRequest(
        containerd=SYSTEM, source=machine_pb2.InstallArtifactsSource(image_name=image))
    error = admin.error("LifecycleService/Upgrade", upgrade, node=target)
    assert "not found in containerd store" in error.message
    pulled = admin("ImageService/Pull", image_pb2.ImageServicePullRequest(containerd=SYSTEM, image_ref=image),
                   node=target)
    assert pulled[-1].name == image and pulled[0].HasField("pull_progress")
    names = [r.name for r in admin("ImageService/List", image_pb2.ImageServiceListRequest(containerd=SYSTEM),
                                   node=target)]
    assert image in names
    boot_id = cluster.node(target).boot_id
    progress = [r.progress for r in admin("LifecycleService/Upgrade", upgrade, node=target)]
    assert progress[-1].WhichOneof("response") == "exit_code" and progress[-1].exit_code == 0
    assert any(p.message for p in progress[:-1])
    assert cluster.node(target).boot_id == boot_id and cluster.node(target).version == "1.13.5"
    admin("Reboot", machine_pb2.RebootRequest(), node=target)
    _wait(lambda: cluster.node(target).boot_id != boot_id and cluster.node(target).ready)
    assert admin("Version", node=target).messages[0].version.tag == "v1.13.6"


def test_lifecycle_upgrade_failures(emulated_cluster):
    cluster = emulated_cluster(control_planes=1)
    admin = Caller(cluster)
    bad, broken = "ghcr.io/siderolabs/installer:v1.13.7", "ghcr.io/siderolabs/installer:v1.13.8"
    cluster.fail_upgrade(bad, exit_code=3)
    cluster.fail_image_pull(broken)
    admin("ImageService/Pull", image_pb2.ImageServicePullRequest(containerd=SYSTEM, image_ref=bad))
    progress = [r.progress for r in admin("LifecycleService/Upgrade", lifecycle_pb2.LifecycleServiceUpgradeRequest(
        containerd=SYSTEM, source=machine_pb2.InstallArtifactsSource(image_name=bad)))]
    assert progress[-1].exit_code == 3
    assert cluster.node(cluster.control_planes[0]).raw.pending_version is None
    error = admin.error("ImageService/Pull", image_pb2.ImageServicePullRequest(containerd=SYSTEM, image_ref=broken))
    assert broken in error.message


def test_shutdown_then_bring_up(cluster, admin):
    target = cluster.workers[1]
    before = cluster.node(target).boot_id
    assert admin("Shutdown", machine_pb2.ShutdownRequest(), node=target).messages[0].actor_id
    _wait(lambda: not cluster.node(target).up)
    time.sleep(0.3)
    assert not cluster.node(target).up                     # stays off
    cluster.bring_up(target)
    assert cluster.node(target).up and cluster.node(target).boot_id != before


def test_reset_wipes_into_maintenance(cluster, admin):
    target = cluster.control_planes[2]
    admin("Reset", machine_pb2.ResetRequest(graceful=True, reboot=True), node=target)
    _wait(lambda: cluster.node(target).maintenance and cluster.node(target).up)
    members = admin("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).messages[0].members
    assert "talos-cp-3" not in [m.hostname for m in members]
