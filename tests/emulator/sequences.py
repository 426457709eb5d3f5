"""Multi-step machine sequences: power off, boot, reboot, upgrade, shutdown, reset.

Each sequence publishes the events machined would (SequenceEvent/PhaseEvent tagged with the actor,
MachineStatusEvent stage changes) and moves the node between serving and gone.
"""
import asyncio
import uuid

from . import node_resources
from .api import machine_pb2

_SEQ = machine_pb2.SequenceEvent
_STAGE = machine_pb2.MachineStatusEvent.MachineStage
# Time between answering a Reboot/Upgrade and dropping off the network: lets the reply leave first.
GOING_DOWN_DELAY = 0.05


def new_actor_id():
    return str(uuid.uuid4())


def _machine_status(node):
    status = machine_pb2.MachineStatusEvent(stage=node.machine_stage())
    status.status.ready = node.ready
    if not node.ready:
        status.status.unmet_conditions.add(name="nodeReady", reason="node is not ready")
    return status


def set_stage(node, stage, ready):
    node.stage, node.ready = stage, ready
    if node.up:
        node.events.publish(_machine_status(node))
        node_resources.publish(node)


def sequence_event(node, sequence, action, actor_id="", error=None):
    event = _SEQ(sequence=sequence, action=action)
    if error:
        event.error.message = error
    node.events.publish(event, actor_id)


def phase(node, name, actor_id):
    node.events.publish(machine_pb2.PhaseEvent(phase=name, action=machine_pb2.PhaseEvent.START), actor_id)
    node.events.publish(machine_pb2.PhaseEvent(phase=name, action=machine_pb2.PhaseEvent.STOP), actor_id)


async def power_off(node, stage="rebooting"):
    """The node drops off the network: listener and connections closed, streams end."""
    if not node.up:
        return
    cluster = node.cluster
    node.stage, node.ready = stage, False
    node.up = False
    node.generation += 1
    if node.try_rollback is not None:
        node.try_rollback.cancel()
        node.try_rollback = None
    node.events.wake()
    node.resources.close_watchers()
    await node.listener.stop()
    cluster.note_down(node)


async def power_on(node, downtime=0.0):
    """Boot: pick up a staged version and config, serve again, run the boot sequence."""
    cluster = node.cluster
    if downtime:
        await asyncio.sleep(downtime)
    if node.up:
        return
    if node.pending_version is not None:
        node.previous_version, node.version = node.version, node.pending_version
        node.pending_version = None
    if node.persistent_config is not None:
        node.config = node.persistent_config
    node.applying = False
    node.lifecycle_busy = False
    node.mark_booted()
    node.stage, node.ready = "booting", False
    node.start_services()
    await cluster.start_listener(node)
    node.events.publish(_machine_status(node))
    sequence_event(node, "boot", _SEQ.START)
    node_resources.publish(node)
    cluster.note_up(node)
    if cluster.boot_seconds:
        await asyncio.sleep(cluster.boot_seconds)
        if not node.up:
            return
    for service in node.services.values():
        node.events.publish(machine_pb2.ServiceStateEvent(
            service=service.id, action=machine_pb2.ServiceStateEvent.RUNNING, message=service.last_message,
            health=machine_pb2.ServiceHealth(healthy=service.healthy, unknown=service.health_unknown)))
    sequence_event(node, "boot", _SEQ.STOP)
    set_stage(node, "maintenance" if node.maintenance else "running", not node.maintenance)
    cluster.after_boot(node)


def run_in_background(node, coroutine):
    task = asyncio.ensure_future(coroutine)
    node.tasks.add(task)
    task.add_done_callback(node.tasks.discard)
    return task


async def boot_after_reboot(node, downtime):
    """Power on after a reboot, unless a boot failure was injected: the node stays off, or the bootloader
    falls back to the previous installation (Talos's A/B boot: an upgrade that does not boot is rolled back)."""
    failure = node.cluster.faults.take_boot_failure(node.address)
    if failure == "stay_down":
        return
    if failure == "roll_back":
        node.pending_version = None
    await power_on(node, downtime)


async def reboot(node, actor_id="", sequence="reboot", downtime=None, stage="rebooting"):
    cluster = node.cluster
    downtime = cluster.reboot_seconds if downtime is None else downtime
    sequence_event(node, sequence, _SEQ.START, actor_id)
    set_stage(node, stage, False)
    phase(node, "cleanup", actor_id)
    await asyncio.sleep(GOING_DOWN_DELAY)
    await power_off(node, stage)
    await boot_after_reboot(node, downtime)


async def upgrade_and_reboot(node, version, actor_id):
    """Legacy MachineService.Upgrade: install the new version, then reboot into it."""
    sequence_event(node, "upgrade", _SEQ.START, actor_id)
    set_stage(node, "upgrading", False)
    for name in ("cordon", "leave", "upgrade", "stopEverything"):
        phase(node, name, actor_id)
    if version is not None:
        node.pending_version = version
    await asyncio.sleep(GOING_DOWN_DELAY)
    await power_off(node, "rebooting")
    await boot_after_reboot(node, node.cluster.reboot_seconds)


async def shutdown(node, actor_id):
    sequence_event(node, "shutdown", _SEQ.START, actor_id)
    set_stage(node, "shutting_down", False)
    phase(node, "stopEverything", actor_id)
    await asyncio.sleep(GOING_DOWN_DELAY)
    await power_off(node, "shutting_down")


async def reset(node, actor_id, reboot_after, wipe_state):
    cluster = node.cluster
    sequence_event(node, "reset", _SEQ.START, actor_id)
    set_stage(node, "resetting", False)
    phase(node, "resetSystemDisk", actor_id)
    await asyncio.sleep(GOING_DOWN_DELAY)
    await power_off(node, "resetting")
    if wipe_state:
        cluster.forget_node(node)
        node.config = node.persistent_config = None
        node.maintenance = True
    if reboot_after:
        await power_on(node, cluster.reboot_seconds)
