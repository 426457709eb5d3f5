# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: the wall time of every task across all its hosts, into $TALOS_BENCH_TIMES."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_timer
type: aggregate
short_description: Time each task for the talos.linux benchmarks
description: Writes each task's and each play's name and wall time (first host start to last host end) as JSON.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.times, self.current, self.started, self.failures, self.play = [], None, 0.0, 0, ""
        self.play_started = 0.0

    def _close(self):
        if self.current is not None:
            self.times.append([self.current, time.perf_counter() - self.started])
            self.current = None

    def _close_play(self):
        if self.play:
            self.times.append([f"play: {self.play}", time.perf_counter() - self.play_started])

    def v2_playbook_on_play_start(self, play):
        self._close()
        self._close_play()
        self.play, self.play_started = play.get_name(), time.perf_counter()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        name = task.get_name()
        # every play's fact gathering has the same task name: tell them apart by their play
        self.current = f"{name} ({self.play})" if name == "Gathering Facts" else name
        self.started = time.perf_counter()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self.failures += 1

    def v2_playbook_on_stats(self, stats):
        self._close()
        self._close_play()
        with open(os.environ["TALOS_BENCH_TIMES"], "w", encoding="utf-8") as handle:
            json.dump({"tasks": self.times, "failures": self.failures}, handle)
