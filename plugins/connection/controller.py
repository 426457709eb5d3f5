# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: controller
short_description: Run tasks for a Talos node on the Ansible controller
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Talos nodes have no shell, no SSH and no Python; every talos.linux module runs on the controller and
    talks to the node over the Talos API. This connection runs tasks on the controller exactly like
    P(ansible.builtin.local#connection) does, and also tells module processes which Talos node the host is.
  - The P(talos.linux.talosconfig#inventory) inventory sets it for every host, so that C(gather_facts) (which runs
    M(talos.linux.talos_facts) as a module process) reaches the right node without any task arguments.
  - Module options given in the task or in C(module_defaults) always win over these host variables.
  - A task that names C(talosconfig) does not take C(talos_context) and C(talos_endpoints) from here (they belong to
    the inventory's talosconfig), one that names C(context) does not take C(talos_endpoints), and one that sets
    C(nodes) does not take C(talos_node); the environment variables they travel in follow the same rule.
extends_documentation_fragment: []
options:
  talos_node:
    description: The address of the node the host is, sent as C(node) metadata with every call.
    type: str
    vars:
      - name: talos_node
  talos_endpoints:
    description: The endpoints (control-plane API addresses) to reach the node through.
    type: list
    elements: str
    vars:
      - name: talos_endpoints
  talos_context:
    description: The talosconfig context.
    type: str
    vars:
      - name: talos_context
  talos_config_path:
    description: The talosconfig file.
    type: path
    vars:
      - name: talos_config_path
"""

import os

from ansible.plugins.connection.local import Connection as LocalConnection

from ansible_collections.talos.linux.plugins.module_utils._options import (
    HOST_VAR_OPTIONS, OPTION_ENVIRONMENT, fillable_options)


class Connection(LocalConnection):
    """ansible.builtin.local, plus the host's talos_* variables in the environment of module processes."""

    transport = "talos.linux.controller"

    def exec_command(self, cmd, in_data=None, sudoable=True):
        # The worker process runs one task for one host, so its environment is this host's alone.
        host_values = {option: self.get_option(var) for var, option in HOST_VAR_OPTIONS.items()}
        host_values = {option: value for option, value in host_values.items() if value is not None}
        for option, value in host_values.items():
            os.environ[OPTION_ENVIRONMENT[option]] = ",".join(value) if isinstance(value, list) else str(value)
        # a variable of the environment below the host's own must not mix into them (another talosconfig's)
        for option in set(OPTION_ENVIRONMENT) - set(host_values) - fillable_options(host_values):
            os.environ.pop(OPTION_ENVIRONMENT[option], None)
        return super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
