# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The talos_config core: render the desired machine configuration, compare it with the node's, apply it.

Private to the talos.linux collection: it may change in any release. No Ansible import here.

The node's configuration is read with COSI (the exact bytes it was given) and both sides are normalised
before comparing, so an equal configuration sends no ApplyConfiguration at all. Check mode decides and
diffs locally: a dry-run apply would cancel a pending try rollback on the node (talos-api.md §4.1).
"""

from __future__ import annotations

import datetime

from ._errors import TalosError
from ._task import positive_seconds
from ._version import supports

OPTIONS = {
    # Not no_log: Ansible would then mask every value in them (even "1" and "true") in all output. The
    # configuration's secrets themselves are found and handed to the door's mask instead (_secrets below).
    "config": {"type": "raw"},
    # raw, not list: Ansible's list type splits a string at commas before anything can tell it was a string
    "patches": {"type": "raw", "default": []},
    "mode": {"type": "str", "choices": ["auto", "no_reboot", "reboot", "staged", "try"]},
    "try_timeout": {"type": "float", "default": 60.0},
    "confirm_try": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "float", "default": 600.0},
}
REQUIRED_ONE_OF = [("config", "patches")]

MACHINE_CONFIG = ("config", "MachineConfigs.config.talos.dev")
ACTIVE, PERSISTENT = "v1alpha1", "persistent"
MODES = {"reboot": 0, "auto": 1, "no_reboot": 2, "staged": 3, "try": 4}  # ApplyConfigurationRequest.Mode
MODE_NAMES = {number: name for name, number in MODES.items()}
NEEDS_REBOOT = "can't be applied in immediate mode"  # CanApplyImmediate's refusal (Talos 1.13 and older)
# Answers that prove the node refused an ApplyConfiguration (nothing applied); anything else may have landed.
REFUSALS = frozenset(("InvalidArgument", "PermissionDenied", "Unimplemented", "FailedPrecondition",
                      "Unauthenticated", "NotFound", "AlreadyExists", "OutOfRange", "ResourceExhausted", "TLSError",
                      "ConfigError", "InvalidOption"))


async def talos_config(params, client, *, check_mode, diff, mask):
    """The core behind talos.linux.talos_config, for each node the task addresses."""
    from . import _config

    check_options(params)
    if not params.get("config") and not params.get("patches"):
        raise TalosError("Nothing to apply: give config, patches, or both.", code="InvalidOption")
    # Parse what the task gives before talking to any node: bad input changes nothing anywhere.
    config = _config.parse_documents(params["config"], "config") if params.get("config") else None
    if config is not None:
        mask(_secrets(config))
    nodes = client.settings.nodes or [None]

    async def one(node):
        if client.settings.insecure:
            return await apply_in_maintenance(params, client, node, config, check_mode, diff, mask)
        return await apply_to_node(params, client, node, config, check_mode=check_mode, diff=diff, mask=mask)

    if len(nodes) == 1:
        return await one(nodes[0])
    results = await client.fan_out(nodes, one)
    failed = {r.node: {"msg": str(r.error), **r.error.to_dict()} for r in results if not r.ok}
    # a node whose apply failed after the request may have reached it: failed, and changed
    failed.update({r.node: r.value for r in results if r.ok and r.value.get("failed")})
    outcome = {"changed": any(r.value["changed"] for r in results if r.ok),
               "nodes": {r.node: r.value for r in results if r.ok and not r.value.get("failed")},
               "failed_nodes": failed,
               "warnings": [w for r in results if r.ok for w in r.value.pop("warnings", [])]}
    if failed:
        outcome.update(failed=True, msg=f"Applying the configuration failed on {len(failed)} of {len(nodes)} "
                                        "nodes: " + "; ".join(v["msg"] for v in failed.values()))
    return outcome


async def apply_in_maintenance(params, client, node, config, check_mode, diff, mask):
    """insecure: the node is expected in maintenance mode. One that asks for a client certificate is
    configured already; with credentials in the task or talosconfig it is compared like any other node."""
    from ._client import TalosClient
    from ._task import connection_settings

    try:
        await client.talos_version(node)
    except TalosError as exc:
        if exc.code != "TLSError":
            raise
        try:
            settings = connection_settings(dict(params, insecure=False))
        except TalosError:
            raise TalosError(f"Node {node} is not in maintenance mode (it asks for a client certificate): it is "
                             "configured already.", code="TLSError", node=node,
                             hint="Give a talosconfig (or ca, crt and key) so the node's configuration can be "
                                  "compared, or leave insecure unset.") from None
        mask(settings.secrets())
        async with TalosClient(settings, timeout=client.timeout) as configured:
            return await apply_to_node(params, configured, node, config, check_mode=check_mode, diff=diff,
                                       mask=mask)
    return await apply_to_node(params, client, node, config, check_mode=check_mode, diff=diff, mask=mask)


async def apply_to_node(params, client, node, config, *, check_mode, diff, mask):
    from . import _config

    insecure = client.settings.insecure
    if not insecure and "os:admin" not in client.roles:
        raise TalosError(
            f"talos_config needs the os:admin role to read and apply machine configuration on node {node}; "
            f"the client certificate has {', '.join(client.roles) or 'no role'}.", code="PermissionDenied",
            node=node, rpc="MachineService/ApplyConfiguration",
            hint="Use a talosconfig whose certificate carries os:admin.")
    version = await client.talos_version(node)
    mode = params.get("mode") or ("auto" if insecure else "no_reboot")
    check_mode_supported(mode, version, insecure, node)

    compare_to = PERSISTENT if mode == "staged" and supports(version, "machine_config_persistent") else ACTIVE
    current = None if insecure else await read_machine_config(client, node, compare_to)
    if config is None and current is None:
        raise TalosError(f"Node {node} has no configuration to patch (maintenance mode): give config as well.",
                         code="InvalidOption", node=node)
    desired = _config.render_config(config, params.get("patches") or [], current=current)
    mask(_secrets(desired) + (_secrets(current) if current else []))
    if current is not None and not params.get("force"):
        have, want = _config.machine_type_of(current), _config.machine_type_of(desired)
        if have and want and have != want:
            raise TalosError(
                f"The configuration is for a {want} node, but node {node} is a {have}; nothing was sent.",
                code="InvalidOption", node=node, hint="Check the target node, or set force: true to apply anyway.")

    changed = current is None or _config.normalise_config(current) != _config.normalise_config(desired)
    confirming = False
    if not changed and params.get("confirm_try") and mode != "try":
        # The node rolls back a tried configuration unless it is applied again in another mode.
        persistent = await read_machine_config(client, node, PERSISTENT) if compare_to == ACTIVE and \
            supports(version, "machine_config_persistent") else current
        confirming = persistent is None or _config.normalise_config(persistent) != _config.normalise_config(desired)
    result = {
        "changed": changed or confirming,
        "node": node,
        "mode": mode,
        "version": str(version),
        "config_sha256": _config.config_sha256(desired),
        "reboot_required": False,
        "warnings": [],
    }
    if diff:
        result["diff"] = {
            "before": _config.dump_documents(_config.redact_secrets(current)) if current is not None else "",
            "after": _config.dump_documents(_config.redact_secrets(desired)),
            "before_header": f"{node or 'node'} ({compare_to})", "after_header": f"{node or 'node'} (desired)",
        }
    if not result["changed"]:
        return result
    # What the node will do (or refuse), by its own rule: check mode predicts the real run's outcome, and the
    # real run refuses before sending what the node would refuse.
    try:
        planned = planned_mode(mode, version, insecure, current, desired, node, _redactor(desired)) if changed \
            else mode
    except TalosError as exc:  # refused before sending: the result still shows what was asked for (diff)
        return {**result, **exc.to_dict(), "failed": True, "changed": False, "msg": str(exc)}
    if check_mode:
        result.update(mode=planned, reboot_required=reboot_required(planned, version), rebooted=planned == "reboot")
        return result

    # Talos 1.13 and older may reboot to apply: the watch opens before the apply so no part of it is missed
    watch = None
    if params.get("wait", True) and may_reboot(mode, version, insecure):
        from ._wait import RebootWatch
        watch = await RebootWatch.start(client, node)
    try:
        return await send_and_follow(params, client, node, desired, mode, version, watch, result, confirming)
    except TalosError as exc:
        if not may_have_landed(exc):
            raise
        # once the request may have reached the node, the task never says nothing changed
        redact = _redactor(desired)
        failure = {key: redact(value) if key == "detail" else value for key, value in exc.to_dict().items()}
        return {**result, **failure, "failed": True, "changed": True,
                "msg": f"The node may have applied the configuration; rerun to compare. {redact(exc.message)}"}
    finally:
        if watch is not None:
            await watch.close()


async def send_and_follow(params, client, node, desired, mode, version, watch, result, confirming):
    """Send the configuration and follow what the node does with it (a reboot, a try rollback deadline)."""
    reply = await send_configuration(client, node, desired, mode, params)
    applied = MODE_NAMES.get(reply.mode, mode)
    redact = _redactor(desired)
    result.update(mode=applied, mode_details=redact(reply.mode_details), confirmed_try=confirming,
                  warnings=[redact(w) for w in reply.warnings])
    result["reboot_required"] = reboot_required(applied, version)
    result["rebooted"] = applied == "reboot"
    if applied == "try":
        deadline = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=params["try_timeout"])
        result["try_rollback_at"] = deadline.isoformat(timespec="seconds")
    if watch is not None and applied == "reboot":
        try:
            waited = await watch.wait(timeout=params.get("wait_timeout", 600.0))
        except TalosError as exc:
            return {**result, **exc.to_dict(), "failed": True, "changed": True,
                    "msg": f"The configuration was applied and node {node} rebooted to use it, but it did not come "
                           f"back as expected: {redact(exc.message)}"}
        result.update(boot_id_before=waited["boot_id_before"], boot_id_after=waited["boot_id_after"])
    return result


def check_options(params) -> None:
    """Refuse, before anything is sent, values of the task's own options that cannot be right."""
    patches = params.get("patches")
    if patches is not None and not isinstance(patches, (list, tuple)):
        shown = "a string" if isinstance(patches, (str, bytes)) else f"a {type(patches).__name__}"
        raise TalosError(f"patches must be a list of patches, not {shown}.", code="InvalidOption",
                         hint="Give a list, one item per patch: patches: [\"{{ my_patch }}\"] or a YAML list "
                              "under patches:.")
    for option in ("try_timeout", "wait_timeout"):
        value = params.get(option)
        if positive_seconds(value):
            raise TalosError(f"{option} must be a number of seconds greater than 0, not {value!r}.",
                             code="InvalidOption", hint=f"Set {option} to a positive number, or leave it out.")


def planned_mode(mode, version, insecure, current, desired, node, redact):
    """The mode the node will use for this change, or the TalosError it would refuse it with (talos-api.md §4.1).

    Talos 1.13 and older check what can apply live (_config.live); 1.14 and newer apply everything live.
    """
    from . import _config

    if insecure or current is None or _config.machine_type_of(current) != _config.machine_type_of(desired):
        return mode  # a forced change of machine type: the node's validation refuses it first
    if supports(version, "apply_auto_never_reboots"):
        return "no_reboot" if mode == "auto" else mode
    if mode not in ("auto", "no_reboot", "try"):
        return mode
    needing = _config.fields_needing_reboot(current, desired)
    if not needing:
        return "no_reboot" if mode == "auto" else mode
    if mode == "auto":
        return "reboot"
    fields = redact(", ".join(needing))
    raise TalosError(f"Node {node} cannot apply this configuration without a reboot (Talos {version} applies a "
                     f"change of {fields} only at boot); nothing was sent.", code="InvalidArgument", node=node,
                     rpc="MachineService/ApplyConfiguration",
                     hint="Use mode auto (the node reboots) or staged (applied at the next reboot).")


def may_have_landed(exc) -> bool:
    """Whether an ApplyConfiguration that failed with ``exc`` may still have been applied by the node.

    A refusal the node answered with proves nothing was applied; so does a call that never connected (the
    client retries a changing call only when it cannot have been sent, and says so when all tries fail).
    A lost connection, a deadline or an unknown error after sending may hide a configuration applied.
    """
    if exc.code in REFUSALS:
        return False
    return not (exc.code == "Unavailable" and ("cannot connect to endpoint" in exc.message
                                               or " attempts over the endpoints " in exc.message))


def check_mode_supported(mode, version, insecure, node):
    """Refuse before sending what this Talos version would refuse (talos-api.md §4.1)."""
    if mode == "reboot" and supports(version, "apply_auto_never_reboots") and not insecure:
        raise TalosError(
            f"Talos {version} on node {node} no longer applies configuration with a reboot (mode reboot).",
            code="Unimplemented", node=node, rpc="MachineService/ApplyConfiguration",
            hint="Use mode no_reboot (what cannot apply live waits for the next reboot) or staged, then reboot "
                 "the node.")
    if insecure and mode in ("no_reboot", "staged") and not supports(version, "image_service"):
        raise TalosError(f"Talos {version} in maintenance mode accepts only the auto, reboot and try modes.",
                         code="InvalidOption", node=node, hint="Use mode auto for a node in maintenance mode.")


def may_reboot(mode, version, insecure):
    """Whether applying in ``mode`` can reboot the node (and the task can follow it back up).

    A node in maintenance mode installs and comes back asking for a client certificate, which an insecure
    task does not have, so it is not followed.
    """
    return mode in ("reboot", "auto") and not insecure and not supports(version, "apply_auto_never_reboots")


def reboot_required(applied, version):
    """Whether the change waits for a reboot: staged always; on 1.14+ the node no longer says (None)."""
    if applied == "staged":
        return True
    if applied in ("no_reboot", "auto") and supports(version, "apply_auto_never_reboots"):
        return None
    return False


async def read_machine_config(client, node, resource_id):
    """The node's configuration documents (the exact bytes it was given), or None when it has none."""
    from . import _config
    from ._api.resource.config import config_pb2
    from ._cosi import get_resource

    try:
        resource = await get_resource(client, node, *MACHINE_CONFIG, resource_id)
    except TalosError as exc:
        if exc.code == "NotFound":
            return None
        raise
    spec = config_pb2.MachineConfigSpec.FromString(resource.spec.proto_spec)
    return _config.parse_documents(spec.yaml_marshalled.decode(), f"the configuration of node {node}")


async def send_configuration(client, node, documents, mode, params):
    from . import _config

    request = {"data": _config.dump_documents(documents).encode(), "mode": MODES[mode]}
    if mode == "try":
        request["try_mode_timeout"] = {"seconds": int(params["try_timeout"]),
                                       "nanos": int(params["try_timeout"] % 1 * 1e9)}
    try:
        return (await client.call("ApplyConfiguration", request, node=node)).messages[0]
    except TalosError as exc:
        redact = _redactor(documents)
        if exc.code == "InvalidArgument" and NEEDS_REBOOT in (exc.detail or ""):
            # only the node's first line: the diff after it holds configuration content, secrets included
            said = redact((exc.detail or "").splitlines()[0])
            raise TalosError(f"Node {node} cannot apply this configuration without a reboot: {said}",
                             code=exc.code, node=node, rpc=exc.rpc, detail=said,
                             hint="Use mode auto (the node reboots) or staged (applied at the next reboot).") from None
        if exc.code == "InvalidArgument":
            raise TalosError(f"Node {node} rejected the configuration: {redact(exc.detail)}", code=exc.code,
                             node=node, rpc=exc.rpc, detail=redact(exc.detail)) from None
        raise


def _secrets(documents):
    """The secret strings of a configuration worth masking: short values ("1", "true") would mask everything."""
    from . import _config

    return [s for s in _config.secret_values(documents) if len(s) >= 8]


def _redactor(documents):
    """Replace every secret of ``documents`` in a text the node sent back (warnings, errors)."""
    secrets = sorted(_secrets(documents), key=len, reverse=True)

    def redact(text):
        for secret in secrets:
            text = text.replace(secret, "<redacted>")
        return text

    return redact
