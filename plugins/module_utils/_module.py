# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module door: AnsibleModule validation around a core, for tasks that run as a module process.

Private to the talos.linux collection: it may change in any release. Used when the task runs anywhere but
in the controller's own worker (delegate_to another host, async, gather_facts); otherwise the action
plugin of the same name runs the same core in-process (plugin_utils/_action.py).
"""

from __future__ import annotations

import importlib
import traceback

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ._options import CONNECTION_MUTUALLY_EXCLUSIVE, argument_spec
from ._task import run_task

# import name -> the package to install (requirements.txt)
REQUIREMENTS = {"grpclib": "grpclib", "google.protobuf": "protobuf", "yaml": "PyYAML", "cryptography": "cryptography"}


def missing_requirement():
    """(package, traceback) of the first requirement that does not import on this host, or None."""
    for name, package in REQUIREMENTS.items():
        try:
            importlib.import_module(name)
        except ImportError:
            return package, traceback.format_exc()
    return None


def run_module(core, options, mutually_exclusive=(), required_one_of=()):
    """Validate the task's arguments, run ``core`` and exit with its result."""
    # The environment fills only what the task's own arguments leave open (_options.fillable_options);
    # _load_params is how Ansible documents reading them before AnsibleModule does.
    given = basic._load_params()  # pylint: disable=protected-access
    module = AnsibleModule(argument_spec=argument_spec(options, given=given), supports_check_mode=True,
                           mutually_exclusive=list(CONNECTION_MUTUALLY_EXCLUSIVE) + list(mutually_exclusive),
                           required_one_of=list(required_one_of))
    missing = missing_requirement()
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0], reason="to talk to the Talos API"), exception=missing[1])
    result = run_task(core, module.params, check_mode=module.check_mode, diff=module._diff,
                      mask=module.no_log_values.update)
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
