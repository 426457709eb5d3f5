"""talos_facts over 50 emulated nodes with forks 10, timed task by task inside one ansible-playbook run.

1. talos_facts through the action door (gather_subset min, and all) per host, against ansible.builtin.debug
   per host: the floor of any Ansible task. Goal <= 2.0x for min.
2. talos_facts through the action door against the same facts through the module door (gather_facts,
   which runs the module as a process per host). Goal >= 5x faster.
3. One fan-out task (run_once, nodes: all 50) against the per-host task, with 10 ms of latency injected per
   call in both. Goal >= 5x faster; also reported against the module door.

Tasks alternate inside one run (debug, action, module, ...) and each figure is the median over rounds; the
emulated cluster runs in its own process.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

import yaml

from bench._harness import ROOT, emulated_cluster, inject_fault, publish

NODES = 50
FORKS = 10
ROUNDS = 3


def inventory_file(state, work):
    """The talosconfig inventory of the emulated cluster, without discovery (the context lists every node)."""
    path = work / "cluster.talos.yml"
    path.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig", "talosconfig": str(state / "talosconfig"),
                                    "discover": False}))
    return path


def play(name, hosts, tasks, gather=False, defaults=None):
    return {"name": name, "hosts": hosts, "gather_facts": gather, "tasks": tasks,
            **({"module_defaults": defaults} if defaults else {})}


def per_host_plays(subset):
    facts = {"talos.linux.talos_facts": {"gather_subset": subset}}
    return [
        play("debug", "all", [{"name": "debug", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}]),
        play("action", "all", [{"name": f"action {subset[0]}", **facts}]),
        play(f"module {subset[0]}", "all", [], gather=True,
             defaults={"talos.linux.talos_facts": {"gather_subset": subset}}),
    ]


def fan_out_play():
    nodes = "{{ groups['all'] | map('extract', hostvars, 'talos_node') | list }}"
    return play("fan-out", "all", [{"name": "fan-out", "run_once": True,
                                    "talos.linux.talos_facts": {"nodes": nodes, "gather_subset": ["min"]}}])


def run(plays, inventory, work):
    """One ansible-playbook run; the wall time of each task by name (gather_facts counts as its play's name)."""
    playbook = work / "bench.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    times = work / "times.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="task_timer", TALOS_BENCH_TIMES=str(times),
               ANSIBLE_LOCAL_TEMP=str(work / "tmp"), ANSIBLE_HOME=str(work / "home"))
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                           "--forks", str(FORKS), str(playbook)], env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    data = json.loads(times.read_text()) if times.exists() else {"tasks": [], "failures": -1}
    if proc.returncode or data["failures"]:
        raise RuntimeError(f"benchmark playbook failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    by_name = {}
    for name, seconds in data["tasks"]:
        by_name.setdefault(name, []).append(seconds)
    return by_name


def median(times, name):
    return statistics.median(times[name])


def row(name, measured, baseline, goal, met_when, faster=False):
    ratio = baseline / measured if faster else measured / baseline
    return {"name": name, "measured": f"{measured:.2f} s", "baseline": f"{baseline:.2f} s",
            "ratio": f"{ratio:.1f}x faster" if faster else f"{ratio:.2f}x", "goal": goal, "met": met_when(ratio)}


def main():
    work = ROOT / "bench" / "results" / "facts"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with emulated_cluster(control_planes=1, workers=NODES - 1) as state:
        inventory = inventory_file(state, work)
        plays = []
        for _round in range(ROUNDS):
            plays += per_host_plays(["min"]) + per_host_plays(["all"])
        times = run(plays, inventory, work)
        debug, action_min, action_all = median(times, "debug"), median(times, "action min"), median(times, "action all")
        module_min = median(times, "Gathering Facts")
        rows.append(row(f"talos_facts min, {NODES} hosts, action door vs debug", action_min, debug, "<= 2.0x",
                        lambda r: r <= 2.0))
        rows.append(row(f"talos_facts all, {NODES} hosts, action door vs debug", action_all, debug, "(reported)",
                        lambda r: True))
        rows.append(row(f"talos_facts min, {NODES} hosts, action door vs module door", action_min, module_min,
                        ">= 5x faster", lambda r: r >= 5, faster=True))

        inject_fault(state, "latency", "--seconds", "0.01")
        plays = []
        for _round in range(ROUNDS):
            plays += [per_host_plays(["min"])[1], fan_out_play(), per_host_plays(["min"])[2]]
        times = run(plays, inventory, work)
        fan_out, per_host, module_door = median(times, "fan-out"), median(times, "action min"), median(
            times, "Gathering Facts")
        rows.append(row(f"one fan-out task vs {NODES} per-host tasks (action door), 10 ms latency", fan_out, per_host,
                        ">= 5x faster", lambda r: r >= 5, faster=True))
        rows.append(row(f"one fan-out task vs {NODES} per-host tasks (module door), 10 ms latency", fan_out,
                        module_door, "(reported)", lambda r: True, faster=True))
    publish("facts", "make bench", rows, notes=(
        f"{NODES} emulated nodes, forks {FORKS}, the talosconfig inventory without discovery; each figure is the "
        f"median task wall time over {ROUNDS} rounds in one ansible-playbook run. The module door is "
        "gather_facts (talos_facts as a module process per host)."))
    return rows
