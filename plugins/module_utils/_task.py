# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One task, whichever door it came through: validated options -> settings -> client -> core -> result.

Private to the talos.linux collection: it may change in any release. No Ansible import here: the module
door (_module.py) and the action door (plugin_utils/_action.py) both call ``run_task``.

A core is ``async def core(params, client, *, check_mode, diff, mask) -> dict``: the result of one task
(``changed``, module-specific keys, ``warnings``), raising TalosError for what should fail the task. It hands
``mask`` every secret it meets (machine-config secrets), which the door then hides from all output.
"""

from __future__ import annotations

from ._errors import TalosError
from ._talosconfig import load_settings


def connection_settings(params):
    return load_settings(
        talosconfig=params.get("talosconfig"), context=params.get("context"), endpoints=params.get("endpoints"),
        nodes=target_nodes(params), ca=params.get("ca"), crt=params.get("crt"), key=params.get("key"),
        insecure=params.get("insecure", False), server_name=params.get("server_name"))


def target_nodes(params):
    """The nodes a task addresses: ``nodes``, else ``node``, else None (the talosconfig context's nodes)."""
    if params.get("nodes"):
        return [str(n) for n in params["nodes"]]
    if params.get("node"):
        return [str(params["node"])]
    return None


def run_task(core, params, *, check_mode, diff, mask):
    """Run ``core`` for one task and return its result; a TalosError becomes a failed result.

    ``mask(values)`` receives the decoded key material before anything can print it, so the door can hide
    it (Ansible's no_log values).
    """
    from ._client import TalosClient

    try:
        settings = connection_settings(params)
        mask(settings.secrets())
        client = TalosClient(settings, timeout=params.get("timeout") or 30.0)
        return client.run(lambda c: core(params, c, check_mode=check_mode, diff=diff, mask=mask))
    except TalosError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), **exc.to_dict()}


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
