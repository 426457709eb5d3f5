# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The multi-node rule of the read-only modules (doc fragment talos.linux._connection, notes).

Private to the talos.linux collection: it may change in any release. No Ansible import here.
A read over several nodes fails when every node failed (or any node, with ``strict``); otherwise the nodes
that failed are named in ``failed_nodes`` with a warning. An etcd read over the talosconfig context's
nodes (none named by the task) reads the control planes among them only.
"""

from __future__ import annotations

from ._errors import TalosError

CONTROL_PLANE_TYPES = ("controlplane", "init")


def failed_entries(results) -> dict:
    """{node: {msg, code, ...}} of the fan-out results that failed."""
    return {r.node: {"msg": str(r.error), **r.error.to_dict()} for r in results if not r.ok}


def read_verdict(done: dict, failed: dict, *, could_not: str, strict: bool) -> dict:
    """The result keys a read over ``len(done) + len(failed)`` nodes adds: a failure or a warning.

    ``could_not`` starts the sentence, e.g. "Could not gather facts from".
    """
    if not failed:
        return {}
    total = len(done) + len(failed)
    if strict or not done:
        return {"failed": True, "msg": f"{could_not} {len(failed)} of {total} nodes: "
                                       + "; ".join(entry["msg"] for entry in failed.values())}
    return {"warnings": [f"{could_not} {', '.join(sorted(failed))}; see failed_nodes."]}


async def control_planes_among(client, nodes: list) -> tuple:
    """(control planes, {node: failure}) of ``nodes``, from each node's MachineType; a node whose type
    cannot be read is a failure of its own, reported rather than guessed."""
    from ._upgrade import machine_type

    results = await client.fan_out(nodes, lambda node: machine_type(client, node))
    return [r.node for r in results if r.ok and r.value in CONTROL_PLANE_TYPES], failed_entries(results)


def no_control_plane(settings) -> TalosError:
    return TalosError(
        f"None of the nodes of the talosconfig context {settings.context!r} ({', '.join(settings.nodes)}) is a "
        "control plane, and etcd runs on control planes only.", code="FailedPrecondition",
        hint="Set node or nodes to a control-plane node. Nothing was changed.")
