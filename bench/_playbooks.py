"""Timing tasks inside one ansible-playbook run against an emulated cluster (used by several benchmarks)."""

import json
import os
import pathlib
import statistics
import subprocess
import sys

import yaml

from bench._harness import ROOT

FORKS = 10


def inventory_file(state, work):
    """The talosconfig inventory of the emulated cluster, without discovery (the context lists every node)."""
    path = work / "cluster.talos.yml"
    path.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig", "talosconfig": str(state / "talosconfig"),
                                    "discover": False}))
    return path


def play(name, hosts, tasks, gather=False, defaults=None):
    return {"name": name, "hosts": hosts, "gather_facts": gather, "tasks": tasks,
            **({"module_defaults": defaults} if defaults else {})}


def debug_play():
    return play("debug", "all", [{"name": "debug", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}])


def run(plays, inventory, work):
    """One ansible-playbook run; the wall times of each task by name (gather_facts counts as 'Gathering Facts')."""
    playbook = work / "bench.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    times = work / "times.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="task_timer", TALOS_BENCH_TIMES=str(times),
               ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_HOME=str(work / "home"))
    sources = [arg for path in (inventory if isinstance(inventory, list) else [inventory]) for arg in ("-i", str(path))]
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), *sources,
                           "--forks", str(FORKS), str(playbook)], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    data = json.loads(times.read_text()) if times.exists() else {"tasks": [], "failures": -1}
    if proc.returncode or data["failures"]:
        raise RuntimeError(f"benchmark playbook failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    by_name = {}
    for name, seconds in data["tasks"]:
        by_name.setdefault(name, []).append(seconds)
    return {name: statistics.median(values) for name, values in by_name.items()}


def row(name, measured, baseline, goal, met_when, faster=False):
    ratio = baseline / measured if faster else measured / baseline
    return {"name": name, "measured": f"{measured:.2f} s", "baseline": f"{baseline:.2f} s",
            "ratio": f"{ratio:.1f}x faster" if faster else f"{ratio:.2f}x", "goal": goal, "met": met_when(ratio)}
