# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: every task result, as the default callback would show it, into a JSON file.

Enabled by tests/integration/playbook.py; writes to $TALOS_TEST_RESULTS.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: talos_test_results
type: aggregate
short_description: Write task results to a JSON file for the talos.linux tests
description: Writes every task result to the file named by E(TALOS_TEST_RESULTS).
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "talos_test_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = []

    def _record(self, result, status):
        # _dump_results applies no_log and strips internals, exactly like what a user sees
        shown = json.loads(self._dump_results(result._result, keep_invocation=True))
        # warnings are shown apart from the result, so _dump_results leaves them out
        shown["warnings"] = [getattr(w, "msg", None) or str(w) for w in result._result.get("warnings") or []]
        self.results.append({"host": result._host.get_name(), "task": result._task.get_name(),
                             "action": result._task.action, "status": status, "result": shown})

    def v2_runner_on_ok(self, result):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("TALOS_TEST_RESULTS")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"results": self.results,
                           "stats": {host: stats.summarize(host) for host in sorted(stats.processed)}}, handle)
