# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One task, whichever door it came through: validated options -> settings -> client -> core -> result.

Private to the talos.linux collection: it may change in any release. No Ansible import here: the module
door (_module.py) and the action door (plugin_utils/_action.py) both call ``run_task``.

A core is ``async def core(params, client, *, check_mode, diff, mask) -> dict``: the result of one task
(``changed``, module-specific keys, ``warnings``), raising TalosError for what should fail the task. It hands
``mask`` every secret it meets (machine-config secrets), which the door then hides from all output.

Two attributes of a core tell the task layer more, in one place each:

- ``core.read_only = True``: the module changes nothing. A core without it is state-changing, and when it
  acts on the talosconfig context's nodes (no ``node``/``nodes`` given) its result says so.
- ``core.value_checks = {option: check}``: values of the module's own options that cannot be right, refused
  before anything is sent, like ``CONNECTION_VALUE_CHECKS`` (see ``refuse_impossible_values``).
"""

from __future__ import annotations

import math

from ._errors import ConfigError, TalosError
from ._talosconfig import load_settings


def connection_settings(params):
    return load_settings(
        talosconfig=params.get("talosconfig"), context=params.get("context"), endpoints=params.get("endpoints"),
        nodes=target_nodes(params), ca=params.get("ca"), crt=params.get("crt"), key=params.get("key"),
        insecure=params.get("insecure", False), server_name=params.get("server_name"))


UNSET_HINT = ("Nothing was sent. To act on the talosconfig context's nodes, leave node and nodes unset "
              "(with default(omit, true) for a variable that may be empty).")


def target_nodes(params: dict) -> list | None:
    """The nodes a task addresses: ``nodes``, else ``node``, else None (the talosconfig context's nodes).

    An option that is given must name nodes: an empty ``node``, ``nodes: []`` or an empty item in
    ``nodes`` (an empty templated variable) is an error, never a silent fall back to the context's nodes.
    """
    if params.get("nodes") is not None:
        nodes = [str(n).strip() for n in params["nodes"]]
        if not nodes:
            raise ConfigError("nodes is empty ([]): list the nodes to act on.", hint=UNSET_HINT)
        for index, node in enumerate(nodes):
            if not node:
                raise ConfigError(f"nodes is empty at item {index} ({params['nodes'][index]!r}): every item must "
                                  "be a node address.", hint=UNSET_HINT)
        return nodes
    if params.get("node") is not None:
        node = str(params["node"]).strip()
        if not node:
            raise ConfigError(f"node is empty ({params['node']!r}): give the address of the node to act on.",
                              hint=UNSET_HINT)
        return [node]
    return None


def positive_seconds(value) -> str | None:
    """A duration: a finite number of seconds greater than 0."""
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        return "it must be a finite number of seconds greater than 0"
    return None


# The connection options' impossible values; a core may add its own options' (``core.value_checks``).
CONNECTION_VALUE_CHECKS = {"timeout": positive_seconds}


def refuse_impossible_values(params: dict, checks: dict) -> None:
    """Raise ConfigError for the first option whose value cannot be right, before anything is sent.

    ``checks`` maps an option to ``check(value) -> None`` (fine) or the sentence that says what the value
    must be; the error names the option and the value.
    """
    for option, check in checks.items():
        problem = check(params.get(option))
        if problem:
            raise ConfigError(f"{option}: {params.get(option)!r} is refused: {problem}.",
                              hint=f"Set {option} to a value that can be right. Nothing was sent.")


def nodes_from_context_report(settings, result: dict) -> dict:
    """A state-changing task that acted on the context's nodes says which and why, in its result."""
    if not settings.nodes_from_context:
        return result
    warning = (f"node and nodes are unset, so this task addressed the nodes of the talosconfig context "
               f"{settings.context!r}: {', '.join(settings.nodes)}. Set node or nodes to choose.")
    return {**result, "nodes_from_context": list(settings.nodes), "warnings": [*result.get("warnings", []), warning]}


def run_task(core, params, *, check_mode, diff, mask):
    """Run ``core`` for one task and return its result; a TalosError becomes a failed result.

    ``mask(values)`` receives the decoded key material before anything can print it, so the door can hide
    it (Ansible's no_log values).
    """
    from ._client import TalosClient

    settings = None
    try:
        refuse_impossible_values(params, {**CONNECTION_VALUE_CHECKS, **getattr(core, "value_checks", {})})
        settings = connection_settings(params)
        mask(settings.secrets())
        client = TalosClient(settings, timeout=params.get("timeout") or 30.0)
        result = client.run(lambda c: core(params, c, check_mode=check_mode, diff=diff, mask=mask))
    except TalosError as exc:
        result = {"failed": True, "changed": False, "msg": str(exc), **exc.to_dict()}
    if settings is not None and not getattr(core, "read_only", False):
        result = nodes_from_context_report(settings, result)
    return result


def preload_for_workers():
    """Import now what every talos.linux task imports, so Ansible's forked workers inherit it ready.

    Called by the inventory plugin in the controller's main process. Each worker would otherwise pay for
    these imports again (asyncio, ssl, grpclib, protobuf messages, cryptography, PyYAML: tens of ms),
    which is most of an in-process task's cost. Nothing is opened: no loop, socket or thread.
    """
    import yaml  # noqa: F401 pylint: disable=unused-import
    from cryptography import x509  # noqa: F401 pylint: disable=unused-import

    from . import _apply_config, _client, _config, _facts  # noqa: F401 pylint: disable=unused-import
    from ._api.resource.config import config_pb2  # noqa: F401 pylint: disable=unused-import

    _client.rpc_method("Version")  # loads every generated message module
