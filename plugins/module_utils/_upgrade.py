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
from ._version import TalosVersion, supports

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
}
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


async def talos_upgrade(params, client, *, check_mode, diff, mask):  # pylint: disable=unused-argument
    """The core behind talos.linux.talos_upgrade: one node, or several (control planes one at a time)."""
    target = image_version(params["image"])
    if "os:admin" not in client.roles:
        raise TalosError(f"talos_upgrade needs the os:admin role; the client certificate has "
                         f"{', '.join(client.roles) or 'no role'}.", code="PermissionDenied",
                         rpc="MachineService/Upgrade", hint="Use a talosconfig whose certificate carries os:admin.")
    nodes = client.settings.nodes or [None]
    if len(nodes) == 1:
        return await upgrade_node(params, client, nodes[0], target, check_mode)

    types = {r.node: r.value for r in await client.fan_out(nodes, lambda node: machine_type(client, node)) if r.ok}
    control_planes = [node for node in nodes if types.get(node) in CONTROL_PLANE_TYPES]
    results, failed = {}, {}
    for node in control_planes:  # one at a time: never more than one control plane down
        try:
            results[node] = await upgrade_node(params, client, node, target, check_mode, kind=types[node])
        except TalosError as exc:
            failed[node] = {"msg": str(exc), **exc.to_dict()}
            break
    if not failed:
        others = [n for n in nodes if n not in control_planes]
        batch = await client.fan_out(
            others, lambda node: upgrade_node(params, client, node, target, check_mode, kind=types.get(node)))
        for result in batch:
            if result.ok:
                results[result.node] = result.value
            else:
                failed[result.node] = {"msg": str(result.error), **result.error.to_dict()}
    outcome = {"changed": any(r["changed"] for r in results.values()), "nodes": results, "failed_nodes": failed,
               "warnings": sorted({w for r in results.values() for w in r.pop("warnings", [])})}
    if failed:
        outcome.update(failed=True, msg=f"The upgrade failed on {len(failed)} of {len(nodes)} nodes: "
                                        + "; ".join(v["msg"] for v in failed.values()))
    return outcome


async def machine_type(client, node):
    from ._cosi import get_resource, yaml_spec

    return yaml_spec(await get_resource(client, node, "config", "MachineTypes.config.talos.dev", "machine-type"))


async def upgrade_node(params, client, node, target, check_mode, kind=None):
    from . import _etcd_gate, _wait

    started = time.monotonic()
    info = await client.version(node)
    previous = TalosVersion.parse(info.version.tag)
    result = {"changed": False, "node": node, "previous_version": str(previous), "current_version": str(previous),
              "target_version": str(target), "path": "none", "warnings": []}
    if previous == target and not await schematic_differs(client, node, params["image"]):
        return result

    kind = kind or await machine_type(client, node)
    control_plane = kind in CONTROL_PLANE_TYPES
    rollback = params["rollback"]
    path = "rollback" if rollback else ("lifecycle" if supports(previous, "lifecycle_upgrade") else "legacy")
    result.update(changed=True, path=path, machine_type=kind)
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
    try:
        if control_plane and not params["force"]:
            result["leader_forfeited"] = await _etcd_gate.forfeit_leadership_if_leader(client, node)
        if path == "rollback":
            await client.call("Rollback", node=node)
        elif path == "lifecycle":
            await pull_image(client, node, params, progress)
            await lifecycle_upgrade(client, node, params, progress)
            await client.call("Reboot", {"mode": 1 if params["reboot_mode"] == "powercycle" else 0}, node=node)
        else:
            await legacy_upgrade(client, node, params)
    except BaseException:
        if watch is not None:
            await watch.close()
        raise
    result["progress"] = progress[-PROGRESS_KEPT:]

    if watch is not None:
        waited = await watch.wait(timeout=params["wait_timeout"], target_version=str(target))
        result.update(boot_id_before=waited.get("boot_id_before"), boot_id_after=waited.get("boot_id_after"),
                      current_version=str(target))
        if control_plane:
            await _etcd_gate.wait_for_etcd_member_healthy(client, node, timeout=params["wait_timeout"])
    if params["health_check"]:
        result["health"] = await cluster_health(client, params["health_timeout"])
    result["duration"] = round(time.monotonic() - started, 3)
    return result


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
