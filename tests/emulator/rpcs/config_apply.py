"""ApplyConfiguration: parse, validate, resolve the mode by version, dry-run diff, apply (§4.1)."""
import asyncio

from grpclib.const import Status

from .. import machine_config, node_resources, rbac, sequences
from ..api import machine_pb2
from .base import fail, go_duration, rpc

Mode = machine_pb2.ApplyConfigurationRequest.Mode
DEFAULT_TRY_TIMEOUT = 60.0          # constants.ConfigTryTimeout
MAINTENANCE_DRY_RUN = "Node is running in maintenance mode and does not have a config yet."

_DETAILS = {
    Mode.REBOOT: "Applied configuration with a reboot",
    Mode.NO_REBOOT: "Applied configuration without a reboot",
    Mode.STAGED: "Staged configuration to be applied after the next reboot",
}


def _mode_name(mode):
    return Mode.Name(mode)


def _try_timeout(request):
    if request.HasField("try_mode_timeout"):
        seconds = request.try_mode_timeout.ToNanoseconds() / 1e9
        if seconds > 0:
            return seconds
    return DEFAULT_TRY_TIMEOUT


def _details(mode, request):
    if mode == Mode.TRY:
        return f"Applied configuration in a try mode, it will be rolled back in {go_duration(_try_timeout(request))}"
    return _DETAILS[mode]


def _resolve_mode(node, request, data):
    """The mode that will actually be used, or a gRPC error, per version and maintenance state."""
    version, mode = node.version, request.mode
    if node.maintenance:
        if version.at_least(13):
            return Mode.NO_REBOOT if mode in (Mode.REBOOT, Mode.AUTO) else mode
        if mode in (Mode.NO_REBOOT, Mode.STAGED):
            fail(Status.UNIMPLEMENTED, f"apply configuration in {_mode_name(mode)} mode is not supported "
                                       "in maintenance mode")
        return Mode.REBOOT if mode == Mode.AUTO else mode
    if version.apply_without_reboot_modes:
        if mode == Mode.REBOOT:
            fail(Status.UNIMPLEMENTED, "the REBOOT mode is not supported anymore, use AUTO, NO_REBOOT, STAGED "
                                       "or TRY modes and reboot the node explicitly if needed")
        return Mode.NO_REBOOT if mode == Mode.AUTO else mode
    needs_reboot = machine_config.fields_needing_reboot(node.config, data)
    if mode == Mode.AUTO:
        return Mode.REBOOT if needs_reboot else Mode.NO_REBOOT
    if mode in (Mode.NO_REBOOT, Mode.TRY) and needs_reboot:
        # CanApplyImmediate's refusal, with the diff of what cannot apply live
        fail(Status.INVALID_ARGUMENT, "this config change can't be applied in immediate mode\ndiff:\n"
                                      + machine_config.config_diff(node.config, data))
    return mode


def _validate(node, data):
    version = node.version
    require_v1alpha1 = version.refuses_config_without_v1alpha1 and not (node.maintenance and version.at_least(13))
    try:
        documents = machine_config.parse_config(data)
        machine_config.validate(documents, require_v1alpha1=require_v1alpha1,
                                current_machine_type=None if node.maintenance else node.machine_type)
    except machine_config.ConfigError as error:
        # ≤ v1.12 maintenance mode reported parse errors as plain errors (Unknown).
        maintenance_plain = node.maintenance and not version.at_least(13)
        fail(Status.UNKNOWN if maintenance_plain else Status.INVALID_ARGUMENT, str(error))


@rpc("machine.MachineService", "ApplyConfiguration")
async def apply_configuration(call, request):
    node = call.node
    if not node.maintenance and rbac.ADMIN not in call.roles:
        fail(Status.PERMISSION_DENIED, rbac.NOT_AUTHORIZED)
    if node.applying and node.version.apply_without_reboot_modes:
        fail(Status.FAILED_PRECONDITION, "another apply configuration is already in progress")
    node.applying = True
    try:
        if call.cluster.apply_delay:
            await asyncio.sleep(call.cluster.apply_delay)
        return machine_pb2.ApplyConfigurationResponse(messages=[_apply(call, request)])
    finally:
        node.applying = False


def _apply(call, request):
    node, data = call.node, bytes(request.data)
    _validate(node, data)
    mode = _resolve_mode(node, request, data)
    details = _details(mode, request)
    if request.dry_run:
        if node.maintenance and not node.version.at_least(13):
            return machine_pb2.ApplyConfiguration(mode=mode, mode_details=MAINTENANCE_DRY_RUN)
        diff = machine_config.config_diff(node.config or b"", data)
        return machine_pb2.ApplyConfiguration(
            mode=mode, mode_details=f"Dry run summary:\n{details} (skipped in dry-run).\nConfig diff:\n\n{diff}")
    if mode != Mode.TRY and node.try_rollback is not None:
        node.try_rollback.cancel()
        node.try_rollback = None
    if node.maintenance:
        _leave_maintenance(node, data, mode)
    elif mode == Mode.NO_REBOOT:
        node.config = node.persistent_config = data
    elif mode == Mode.REBOOT:
        node.persistent_config = data
        sequences.run_in_background(node, sequences.reboot(node, sequences.new_actor_id()))
    elif mode == Mode.STAGED:
        node.persistent_config = data
    elif mode == Mode.TRY:
        node.config = data
        _schedule_try_rollback(node, _try_timeout(request))
    node_resources.publish(node)
    return machine_pb2.ApplyConfiguration(mode=mode, mode_details=details)


def _schedule_try_rollback(node, timeout):
    """TRY: roll back to the persisted config unless another apply comes first."""
    if node.try_rollback is not None:
        node.try_rollback.cancel()

    def rollback():
        node.try_rollback = None
        if node.up and node.persistent_config is not None:
            node.config = node.persistent_config
            node_resources.publish(node)

    node.try_rollback = asyncio.get_running_loop().call_later(timeout, rollback)


def _leave_maintenance(node, data, mode):
    """A first config: v1.13+ switches apid to normal mode live; older versions install and reboot."""
    node.persistent_config = data
    if mode == Mode.STAGED:
        return
    node.config = data
    node.maintenance = False
    if node.version.at_least(13):
        async def switch():
            await asyncio.sleep(sequences.GOING_DOWN_DELAY)
            await node.cluster.restart_listener(node)
            node.start_services()
            sequences.set_stage(node, "running", True)
            node.cluster.after_boot(node)
        sequences.run_in_background(node, switch())
    else:
        sequences.run_in_background(node, sequences.reboot(node, sequences.new_actor_id(), sequence="install"))
