# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action door: run a module's core in the controller's worker process, without a module process.

Private to the talos.linux collection: it may change in any release.

Every talos.linux task passes through here. Missing connection options are filled from the host variables
the inventory plugin sets. When the task runs on the controller (a local or talos.linux.controller
connection, or delegated to localhost) and not async, the core runs in-process, a few milliseconds instead
of a ~0.2 s module start; anywhere else the module itself runs, with the same arguments.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.talos.linux.plugins.module_utils._options import (
    CONNECTION_MUTUALLY_EXCLUSIVE, HOST_VAR_OPTIONS, argument_spec, with_host_variables)

CONTROLLER_CONNECTIONS = frozenset({
    "local", "ansible.builtin.local", "ansible.legacy.local", "talos.linux.controller"})


class TalosAction(ActionBase):
    """Subclasses set ``module`` (the FQCN), ``options`` (the module's own argument spec) and ``core``."""

    module = None
    options = {}
    mutually_exclusive = ()
    required_one_of = ()
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    @staticmethod
    def core(params, client, *, check_mode, diff, mask):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._with_host_defaults(dict(self._task.args), task_vars)
        if not self._runs_in_process():
            result.update(self._execute_module(module_name=self.module, module_args=args, task_vars=task_vars,
                                               wrap_async=self._task.async_val))
            return result

        validator = ArgumentSpecValidator(
            argument_spec(self.options, given=args),
            mutually_exclusive=list(CONNECTION_MUTUALLY_EXCLUSIVE) + list(self.mutually_exclusive),
            required_one_of=list(self.required_one_of))
        validation = validator.validate(args)
        if validation.error_messages:
            result.update(failed=True, msg=f"Invalid arguments for {self.module}: "
                                           + "; ".join(validation.error_messages))
            return result

        from ansible_collections.talos.linux.plugins.module_utils._task import run_task

        secrets = set(validation._no_log_values)
        outcome = run_task(type(self).core, validation.validated_parameters, check_mode=self._task.check_mode,
                           diff=self._task.diff, mask=secrets.update)
        result.update(remove_values(outcome, secrets))
        return result

    def _runs_in_process(self):
        if self._task.async_val:
            return False
        connection = getattr(self._connection, "ansible_name", None) or self._connection.transport
        return connection in CONTROLLER_CONNECTIONS

    def _with_host_defaults(self, args, task_vars):
        """Fill the connection options the task leaves unset from the host's talos_* variables, by the
        precedence of _options.fillable_options (the module door applies the same rule to the environment)."""
        host_values = {option: self._templar.template(task_vars[var])
                       for var, option in HOST_VAR_OPTIONS.items() if task_vars.get(var) is not None}
        return with_host_variables(args, host_values)
