# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module door: AnsibleModule validation around a core, for tasks that run as a module process.

Private to the talos.linux collection: it may change in any release. Used when the task runs anywhere but
in the controller's own worker (delegate_to another host, async, gather_facts); otherwise the action
plugin of the same name runs the same core in-process (plugin_utils/_action.py).
"""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ._options import CONNECTION_MUTUALLY_EXCLUSIVE, argument_spec

try:
    from ._task import run_task
    from ._client import GRPCLIB_IMPORT_ERROR
    import yaml  # noqa: F401 - talosconfig parsing
    import google.protobuf  # noqa: F401 - the generated messages
except ImportError as exc:
    IMPORT_ERROR, IMPORT_TRACEBACK = exc, traceback.format_exc()
else:
    IMPORT_ERROR, IMPORT_TRACEBACK = GRPCLIB_IMPORT_ERROR, None


def run_module(core, options, mutually_exclusive=(), required_one_of=()):
    """Validate the task's arguments, run ``core`` and exit with its result."""
    module = AnsibleModule(argument_spec=argument_spec(options), supports_check_mode=True,
                           mutually_exclusive=list(CONNECTION_MUTUALLY_EXCLUSIVE) + list(mutually_exclusive),
                           required_one_of=list(required_one_of))
    if IMPORT_ERROR is not None:
        name = getattr(IMPORT_ERROR, "name", None) or "grpclib"
        module.fail_json(msg=missing_required_lib(name, reason="to talk to the Talos API"),
                         exception=IMPORT_TRACEBACK)
    result = run_task(core, module.params, check_mode=module.check_mode, diff=module._diff,
                      mask=module.no_log_values.update)
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)
