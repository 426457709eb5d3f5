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

from bench._harness import ROOT, emulated_cluster, inject_fault, publish
from bench._playbooks import FORKS, debug_play, inventory_file, play, row, run

NODES = 50
ROUNDS = 3


def per_host_plays(subset):
    facts = {"talos.linux.talos_facts": {"gather_subset": subset}}
    return [
        debug_play(),
        play("action", "all", [{"name": f"action {subset[0]}", **facts}]),
        play(f"module {subset[0]}", "all", [], gather=True,
             defaults={"talos.linux.talos_facts": {"gather_subset": subset}}),
    ]


def fan_out_play():
    nodes = "{{ groups['all'] | map('extract', hostvars, 'talos_node') | list }}"
    return play("fan-out", "all", [{"name": "fan-out", "run_once": True,
                                    "talos.linux.talos_facts": {"nodes": nodes, "gather_subset": ["min"]}}])


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
        debug, action_min, action_all = times["debug"], times["action min"], times["action all"]
        module_min = times["Gathering Facts (module min)"]
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
        fan_out, per_host, module_door = times["fan-out"], times["action min"], times["Gathering Facts (module min)"]
        rows.append(row(f"one fan-out task vs {NODES} per-host tasks (action door), 10 ms latency", fan_out, per_host,
                        ">= 5x faster", lambda r: r >= 5, faster=True))
        rows.append(row(f"one fan-out task vs {NODES} per-host tasks (module door), 10 ms latency", fan_out,
                        module_door, "(reported)", lambda r: True, faster=True))
    publish("facts", "make bench", rows, notes=(
        f"{NODES} emulated nodes, forks {FORKS}, the talosconfig inventory without discovery; each figure is the "
        f"median task wall time over {ROUNDS} rounds in one ansible-playbook run. The module door is "
        "gather_facts (talos_facts as a module process per host)."))
    return rows
