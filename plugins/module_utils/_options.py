# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection options every talos.linux module takes, defined once (doc fragment: talos.linux._connection).

Private to the talos.linux collection: it may change in any release.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

CONNECTION_OPTIONS = {
    "talosconfig": {"type": "path"},
    "context": {"type": "str"},
    "endpoints": {"type": "list", "elements": "str"},
    "node": {"type": "str"},
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
# ... and the environment variables that fill them after the host variables (and carry the host variables
# into a module process, see plugins/connection/controller.py).
OPTION_ENVIRONMENT = {"node": "TALOS_NODE", "endpoints": "TALOS_ENDPOINTS", "context": "TALOS_CONTEXT",
                      "talosconfig": "TALOSCONFIG"}


def fillable_options(given: dict) -> set:
    """The options a lower source may still fill when ``given`` (option -> value) is already set.

    Sources, highest first: the task (module_defaults included), the host's talos_* variables, the
    environment variables. A lower source never fills an option a higher one set, and never creates what
    the user did not write: no ``node`` next to ``nodes``; no ``endpoints`` or ``context`` from another
    talosconfig than the one set higher up (a named ``talosconfig`` takes its own context and endpoints,
    a named ``context`` its own endpoints).
    """
    named = {option for option, value in given.items() if value is not None}
    fillable = set(OPTION_ENVIRONMENT) - named
    if "nodes" in named:
        fillable.discard("node")
    if "talosconfig" in named:
        fillable -= {"endpoints", "context"}
    if "context" in named:
        fillable.discard("endpoints")
    return fillable


def with_host_variables(args: dict, host_values: dict) -> dict:
    """``args`` plus the host-variable values (option -> value) that ``fillable_options`` lets in."""
    fillable = fillable_options(args)
    return {**args, **{option: value for option, value in host_values.items()
                       if option in fillable and value is not None}}


def argument_spec(module_options, given=None):
    """A module's full argument spec: its own options plus the connection options.

    ``given`` is what the task (and host variables) set: the environment variables fill only the options
    ``fillable_options(given)`` leaves open, so they follow the same precedence as host variables.
    """
    fillable = fillable_options(given or {})
    connection = {name: ({**spec, "fallback": (env_fallback, [OPTION_ENVIRONMENT[name]])} if name in fillable
                         else spec) for name, spec in CONNECTION_OPTIONS.items()}
    return {**connection, **module_options}
