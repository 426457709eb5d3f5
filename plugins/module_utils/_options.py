# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection options every talos.linux module takes, defined once (doc fragment: talos.linux._connection).

Private to the talos.linux collection: it may change in any release.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

CONNECTION_OPTIONS = {
    "talosconfig": {"type": "path", "fallback": (env_fallback, ["TALOSCONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["TALOS_CONTEXT"])},
    "endpoints": {"type": "list", "elements": "str", "fallback": (env_fallback, ["TALOS_ENDPOINTS"])},
    "node": {"type": "str", "fallback": (env_fallback, ["TALOS_NODE"])},
    "nodes": {"type": "list", "elements": "str"},
    "ca": {"type": "str", "no_log": True},
    "crt": {"type": "str", "no_log": True},
    "key": {"type": "str", "no_log": True},
    "server_name": {"type": "str"},
    "insecure": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 30.0},
}
CONNECTION_MUTUALLY_EXCLUSIVE = [("node", "nodes")]

# Host variables the talos.linux.talosconfig inventory sets, and the option each one fills when a task
# leaves it unset (both doors, and the talos.linux.controller connection for gather_facts).
HOST_VAR_OPTIONS = {
    "talos_node": "node",
    "talos_endpoints": "endpoints",
    "talos_context": "context",
    "talos_config_path": "talosconfig",
}
# ... and the environment variables that carry them into a module process (see CONNECTION_OPTIONS).
OPTION_ENVIRONMENT = {"node": "TALOS_NODE", "endpoints": "TALOS_ENDPOINTS", "context": "TALOS_CONTEXT",
                      "talosconfig": "TALOSCONFIG"}


def argument_spec(module_options):
    """A module's full argument spec: its own options plus the connection options."""
    return {**CONNECTION_OPTIONS, **module_options}
