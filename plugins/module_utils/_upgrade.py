# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The talos_upgrade core: move a node to the installer image's Talos version, safely and idempotently.

Private to the talos.linux collection: it may change in any release. No Ansible import here.

Talos 1.13 and newer upgrade in three calls (ImageService.Pull, LifecycleService.Upgrade, Reboot) and check
nothing about etcd on the way; older nodes take the legacy MachineService.Upgrade (talos-api.md §4.3). Either
way, a control plane is only touched after the etcd quorum gate passes, and a rebooted node counts as done
only when it runs the target version and, for a control plane, its etcd member is healthy again.
"""

from __future__ import annotations

import re
import time

from ._errors import TalosError
from ._task import positive_seconds
from ._version import TalosVersion, direction, supports, upgrade_path_problem

OPTIONS = {
    "image": {"type": "str", "required": True},
    "reboot_mode": {"type": "str", "choices": ["default", "powercycle"], "default": "default"},
    "stage": {"type": "bool", "default": False},
    "preserve": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "float", "default": 1800.0},
    "health_check": {"type": "bool", "default": False},
    "health_timeout": {"type": "float", "default": 600.0},
    "rollback": {"type": "bool", "default": False},
    "allow_downgrade": {"type": "bool", "default": False},
    "allow_unsupported_path": {"type": "bool", "default": False},
}
POSITIVE_SECONDS = ("wait_timeout", "health_timeout")
# Failures of a call that changes the node after which it may have acted anyway: the answer was lost.
ANSWER_LOST_CODES = frozenset({"Unavailable", "DeadlineExceeded", "Canceled", "Cancelled", "Aborted"})
CONTROL_PLANE_TYPES = ("controlplane", "init")
SYSTEM_CONTAINERD = {"driver": 1, "namespace": 1}      # common.ContainerdInstance{CRI, NS_SYSTEM}
SCHEMATIC = re.compile(r"/([0-9a-f]{64})(?::|@|$)")      # Image Factory installers name their schematic
PROGRESS_KEPT = 20


def image_version(image):
    """The Talos version an installer image reference names by its tag."""
    reference = image.split("@", 1)[0]
    name, _colon, tag = reference.rpartition(":")
    if not name or "/" in tag:
        raise TalosError(f"The image {image!r} names no version tag.", code="InvalidOption",
                         hint="Give an installer image with a tag, such as ghcr.io/siderolabs/installer:v1.13.6.")
    try:
        return TalosVersion.parse(tag)
    except ValueError:
        raise TalosError(f"The tag of image {image!r} is not a Talos version.", code="InvalidOption") from None


class ChangedThenFailed(TalosError):
    """A failure after a call that changes the node was sent and may have landed: the task reports changed."""

    def __init__(self, known, cause, result):
        super().__init__(f"{known}: {cause}", code=cause.code, node=cause.node, endpoint=cause.endpoint,
                         rpc=cause.rpc, detail=cause.detail)
        self.result = result


def check_options(params):
    """Refuse option values that cannot be right, before anything is sent."""
    for name in POSITIVE_SECONDS:
        value = params.get(name)
        if positive_seconds(value):
            raise TalosError(f"{name} is {value!r}; it must be a positive number of seconds, such as "
                             f"{OPTIONS[name]['default']:g}.", code="InvalidOption")


async def talos_upgrade(params, client, *, check_mode, diff, mask):  # pylint: disable=unused-argument
    """The core behind talos.linux.talos_upgrade: one node, or several (control planes one at a time)."""
    check_options(params)
    target = image_version(params["image"])
    if "os:admin" not in client.roles:
        raise TalosError(f"talos_upgrade needs the os:admin role; the client certificate has "
                         f"{', '.join(client.roles) or 'no role'}.", code="PermissionDenied",
                         rpc="MachineService/Upgrade", hint="Use a talosconfig whose certificate carries os:admin.")
    nodes = client.settings.nodes or [None]
    if len(nodes) == 1:
        try:
            return await upgrade_node(params, client, nodes[0], target, check_mode)
        except ChangedThenFailed as exc:
            return {**exc.result, "failed": True, "msg": str(exc), **exc.to_dict()}

    # every node's version is checked before anything is sent to any of them
    versions = {r.node: r.value for r in await client.fan_out(nodes, lambda node: node_version(client, node))
                if r.ok}
    refused = [path_refusal(params, node, version, target) for node, version in versions.items()]
    refused = [msg for msg in refused if msg]
    if refused:
        raise TalosError("Not upgrading: " + "; ".join(refused) + ".", code="InvalidOption",
                         hint="Nothing was sent to any node.")
    types = {r.node: r.value for r in await client.fan_out(nodes, lambda node: machine_type(client, node)) if r.ok}
    control_planes = [node for node in nodes if types.get(node) in CONTROL_PLANE_TYPES]
    results, failed = {}, {}

    def note_failure(node, exc):
        failed[node] = {"msg": str(exc), "changed": isinstance(exc, ChangedThenFailed), **exc.to_dict()}
        if isinstance(exc, ChangedThenFailed):
            failed[node]["current_version"] = exc.result.get("current_version")

    for node in control_planes:  # one at a time: never more than one control plane down
        try:
            results[node] = await upgrade_node(params, client, node, target, check_mode, kind=types[node])
        except TalosError as exc:
            note_failure(node, exc)
            break
    if not failed:
        others = [n for n in nodes if n not in control_planes]
        batch = await client.fan_out(
            others, lambda node: upgrade_node(params, client, node, target, check_mode, kind=types.get(node)))
        for result in batch:
            if result.ok:
                results[result.node] = result.value
            else:
                note_failure(result.node, result.error)
    outcome = {"changed": any(r["changed"] for r in (*results.values(), *failed.values())), "nodes": results,
               "failed_nodes": failed,
               "warnings": sorted({w for r in results.values() for w in r.pop("warnings", [])})}
    if failed:
        outcome.update(failed=True, msg=f"The upgrade failed on {len(failed)} of {len(nodes)} nodes: "
                                        + "; ".join(v["msg"] for v in failed.values()))
    return outcome


async def node_version(client, node):
    return TalosVersion.parse((await client.version(node)).version.tag)


def path_refusal(params, node, current, target):
    """Why the move from ``current`` to ``target`` is refused (before anything is sent), or None."""
    if params["rollback"] or params["allow_unsupported_path"]:
        return None
    if target < current and not params["allow_downgrade"]:
        return None  # not a refusal: the node is left alone with a warning
    problem = upgrade_path_problem(current, target)
    if problem is None:
        return None
    return (f"node {node or 'of the context'} runs {current}: {problem} (set allow_unsupported_path: true to go "
            f"ahead anyway)")


async def machine_type(client, node):
    from ._cosi import get_resource, yaml_spec

    return yaml_spec(await get_resource(client, node, "config", "MachineTypes.config.talos.dev", "machine-type"))


async def upgrade_node(params, client, node, target, check_mode, kind=None):
    from . import _etcd_gate, _wait

    started = time.monotonic()
    previous = await node_version(client, node)
    moving = direction(previous, target)
    result = {"changed": False, "node": node, "previous_version": str(previous), "current_version": str(previous),
              "target_version": str(target), "path": "none", "direction": "none", "warnings": []}
    if moving == "same" and not await schematic_differs(client, node, params["image"]):
        return result
    if params["rollback"]:
        moving = "rollback"  # to the previous installation, whatever its version: nothing to allow
    elif moving == "downgrade" and not params["allow_downgrade"]:
        result.update(direction="downgrade", newer_than_target=True)
        result["warnings"].append(
            f"Node {node or 'of the context'} runs {previous}, newer than the target {target}: left alone, "
            f"not downgraded (set allow_downgrade: true to downgrade it).")
        return result
    refusal = path_refusal(params, node, previous, target)
    if refusal:
        raise TalosError(f"Not upgrading: {refusal}.", code="InvalidOption", node=node,
                         hint="Nothing was sent to the node.")

    kind = kind or await machine_type(client, node)
    control_plane = kind in CONTROL_PLANE_TYPES
    path = "rollback" if moving == "rollback" else (
        "lifecycle" if supports(previous, "lifecycle_upgrade") else "legacy")
    result.update(changed=True, path=path, machine_type=kind,
                  direction="reinstall" if moving == "same" else moving)
    if control_plane and params["force"]:
        result["warnings"].append(f"force: the etcd safety gates were skipped for control plane {node}.")
    elif control_plane:
        # read-only, so it runs in check mode too: a check run says whether the real one would be refused
        result["gates"] = await _etcd_gate.etcd_quorum_gate(client, node)
    if check_mode:
        return result

    # the watch opens the node's event stream before the action, so nothing of the reboot is missed
    watch = await _wait.RebootWatch.start(client, node) if params["wait"] else None
    progress = []
    step = Steps(node, moving, target, result)
    try:
        if control_plane and not params["force"]:
            result["leader_forfeited"] = await _etcd_gate.forfeit_leadership_if_leader(client, node)
            step.leader_moved = result["leader_forfeited"]
        if path == "rollback":
            await step.send("Rollback", client.call("Rollback", node=node))
        elif path == "lifecycle":
            await pull_image(client, node, params, progress)
            await step.send("the installer (LifecycleService.Upgrade)",
                            lifecycle_upgrade(client, node, params, progress))
            step.installed = True
            await step.send("Reboot", client.call(
                "Reboot", {"mode": 1 if params["reboot_mode"] == "powercycle" else 0}, node=node))
        else:
            await step.send("Upgrade", legacy_upgrade(client, node, params))
    except BaseException as exc:
        if watch is not None:
            await watch.close()
        result["progress"] = progress[-PROGRESS_KEPT:]
        if isinstance(exc, TalosError):
            step.failed(exc)
        raise
    result["progress"] = progress[-PROGRESS_KEPT:]

    if watch is not None:
        try:
            waited = await watch.wait(timeout=params["wait_timeout"], target_version=str(target))
        except TalosError as exc:
            result.update(boot_id_before=watch.boot_id_before, boot_id_after=watch.boot_id_after,
                          current_version=watch.version or result["current_version"])
            raise ChangedThenFailed(step.not_back(watch, params["wait_timeout"]), exc, result) from None
        result.update(boot_id_before=waited.get("boot_id_before"), boot_id_after=waited.get("boot_id_after"),
                      current_version=str(target))
        if control_plane:
            try:
                await _etcd_gate.wait_for_etcd_member_healthy(client, node, timeout=params["wait_timeout"])
            except TalosError as exc:
                raise ChangedThenFailed(f"{step.back()}; its etcd member did not become healthy again", exc,
                                        result) from None
    if params["health_check"]:
        try:
            result["health"] = await cluster_health(client, params["health_timeout"])
        except TalosError as exc:
            raise ChangedThenFailed(f"{step.back()}; the health check after it failed", exc, result) from None
    result["duration"] = round(time.monotonic() - started, 3)
    return result


class Steps:
    """What has been done to one node so far, to say what is known when a later step fails."""

    def __init__(self, node, moving, target, result):
        self.node, self.target, self.result = node, target, result
        self.noun = {"rollback": "rollback", "downgrade": "downgrade"}.get(moving, "upgrade")
        self.leader_moved = False
        self.installed = False   # the installer finished: the target is on disk, booted at the next reboot
        self.sent = None         # the call that changes the node whose answer did not come back

    async def send(self, name, call):
        """Await ``call``, which changes the node; remember it when its answer is lost (it may have acted)."""
        try:
            return await call
        except TalosError as exc:
            if exc.code in ANSWER_LOST_CODES:
                self.sent = name
            raise

    def failed(self, exc):
        """Turn a failure of the sending phase into ChangedThenFailed when the node may have changed."""
        node, target = self.node, self.target
        if self.installed:
            known = (f"The {self.noun} of node {node} to {target} was installed, but the Reboot call failed"
                     + (" (its answer was lost: the node may be rebooting into it)" if self.sent else
                        "; the node boots the new version at its next reboot (rerun the task to reboot it)"))
        elif self.sent:
            known = (f"The {self.noun} of node {node} to {target}: {self.sent} was sent and its answer was lost, "
                     f"so the node may have acted on it (rerun the task: it compares the node's version first)")
        elif self.leader_moved:
            known = (f"The {self.noun} of node {node} to {target} failed after etcd leadership was handed to another "
                     f"member; the node still runs its old version")
        else:
            return
        raise ChangedThenFailed(known, exc, self.result) from None

    def not_back(self, watch, timeout):
        if watch.went_down and watch.version and watch.version.lstrip("v") != str(self.target).lstrip("v"):
            return (f"The {self.noun} of node {self.node} to {self.target} was sent and the node rebooted, but it "
                    f"came back on {watch.version} (a new version that fails to boot is rolled back by the "
                    f"bootloader)")
        if watch.went_down:
            return (f"The {self.noun} of node {self.node} to {self.target} was sent and the node went down to "
                    f"reboot; it did not come back within {timeout:g} s")
        return (f"The {self.noun} of node {self.node} to {self.target} was sent, but the node did not reboot "
                f"within {timeout:g} s")

    def back(self):
        return f"The {self.noun} of node {self.node} was installed and the node rebooted onto {self.target}"


async def schematic_differs(client, node, image):
    """For an Image Factory installer: whether the node runs another schematic (its 'schematic' extension)."""
    from ._cosi import list_resources, yaml_spec

    match = SCHEMATIC.search(image)
    if not match:
        return False
    for resource in await list_resources(client, node, "runtime", "ExtensionStatuses.runtime.talos.dev"):
        metadata = (yaml_spec(resource) or {}).get("metadata") or {}
        if metadata.get("name") == "schematic":
            return metadata.get("version") != match.group(1)
    return False  # a node that does not report its schematic is judged by its version alone


async def pull_image(client, node, params, progress):
    request = {"containerd": SYSTEM_CONTAINERD, "image_ref": params["image"]}
    async for reply in client.stream("ImageService/Pull", request, node=node, timeout=params["wait_timeout"]):
        if reply.name:
            progress.append(f"pulled {reply.name}")


async def lifecycle_upgrade(client, node, params, progress):
    """LifecycleService.Upgrade ends OK even when the installer failed: the exit code decides."""
    request = {"containerd": SYSTEM_CONTAINERD, "source": {"image_name": params["image"]}}
    exit_code = None
    async for reply in client.stream("LifecycleService/Upgrade", request, node=node, timeout=params["wait_timeout"]):
        which = reply.progress.WhichOneof("response")
        if which == "message":
            progress.append(reply.progress.message)
        elif which == "exit_code":
            exit_code = reply.progress.exit_code
    if exit_code != 0:
        last = "; ".join(progress[-5:]) or "no progress messages"
        how = "ended without an exit code" if exit_code is None else f"failed with exit code {exit_code}"
        raise TalosError(f"The installer on node {node} {how}: {last}",
                         code="Internal", node=node, rpc="LifecycleService/Upgrade",
                         hint="The node was not rebooted and still runs its old version.")


async def legacy_upgrade(client, node, params):
    request = {"image": params["image"], "preserve": params["preserve"], "stage": params["stage"],
               "force": params["force"], "reboot_mode": 1 if params["reboot_mode"] == "powercycle" else 0}
    try:
        await client.call("Upgrade", request, node=node, timeout=params["wait_timeout"])
    except TalosError as exc:
        if exc.code == "Unknown" and "etcd" in (exc.detail or ""):
            # legacy-path etcd refusals are plain errors (code Unknown), talos-api.md §4.3
            raise TalosError(f"Node {node} refused the upgrade: {exc.detail}", code="FailedPrecondition", node=node,
                             rpc=exc.rpc, detail=exc.detail) from None
        raise


async def cluster_health(client, timeout):
    """ClusterService.HealthCheck through a control-plane endpoint, with the cluster's members named."""
    from ._cosi import list_resources, yaml_spec

    members = [yaml_spec(r) or {} for r in await list_resources(client, None, "cluster", "Members.cluster.talos.dev")]
    info = {"control_plane_nodes": [], "worker_nodes": []}
    for member in members:
        addresses = member.get("addresses") or []
        if addresses:
            key = "control_plane_nodes" if member.get("machineType") in CONTROL_PLANE_TYPES else "worker_nodes"
            info[key].append(addresses[0])
    request = {"wait_timeout": {"seconds": int(timeout)}, "cluster_info": info}
    messages = [reply.message async for reply in client.stream("ClusterService/HealthCheck", request,
                                                               timeout=timeout + 30)]
    return {"healthy": True, "messages": messages[-PROGRESS_KEPT:]}
