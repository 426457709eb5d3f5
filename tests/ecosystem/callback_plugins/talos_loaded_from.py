# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: where each talos.linux Python module of the run came from, into a JSON file.

The controller process imports the inventory plugin with its module_utils, and the action plugin of every
task (the strategy loads each task's action class), so their files show which copy of the collection the
playbook really used. Enabled by tests/ecosystem/collection.py; writes to $TALOS_LOADED_FROM.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: talos_loaded_from
type: aggregate
short_description: Record the files of the talos.linux modules a run imported
description: Writes the file of every imported ansible_collections.talos.linux module to E(TALOS_LOADED_FROM).
"""

import json
import os
import sys

from ansible.plugins.callback import CallbackBase

PREFIX = "ansible_collections.talos.linux"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "talos_loaded_from"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("TALOS_LOADED_FROM")
        if not path:
            return
        files = {}
        for name, module in list(sys.modules.items()):
            if module is not None and (name == PREFIX or name.startswith(PREFIX + ".")):
                # a package of the collection loader may have no __file__; its __path__ says where it is
                files[name] = getattr(module, "__file__", None) or list(getattr(module, "__path__", []))
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(files, handle, indent=1, sort_keys=True)
