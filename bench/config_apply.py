"""talos_config with an unchanged configuration on 50 emulated nodes (forks 10), against debug per host.

The patch is applied once first; every timed run then reads each node's configuration, renders and compares,
and sends nothing. Goal <= 2.5x the ansible.builtin.debug floor. Tasks alternate inside one ansible-playbook
run and each figure is the median over rounds; the emulated cluster runs in its own process.
"""

from bench._harness import ROOT, emulated_cluster, publish
from bench._playbooks import FORKS, debug_play, inventory_file, play, row, run

NODES = 50
ROUNDS = 3
PATCH = {"machine": {"sysctls": {"net.core.somaxconn": "65535"}, "nodeLabels": {"example.com/bench": "yes"}}}


def config_play(name):
    return play(name, "all", [{"name": name, "talos.linux.talos_config": {"patches": [PATCH]}}])


def main():
    work = ROOT / "bench" / "results" / "config"
    work.mkdir(parents=True, exist_ok=True)
    with emulated_cluster(control_planes=1, workers=NODES - 1) as state:
        plays = [config_play("apply once")]
        for _round in range(ROUNDS):
            plays += [debug_play(), config_play("unchanged")]
        times = run(plays, inventory_file(state, work), work)
    rows = [row(f"talos_config unchanged, {NODES} hosts, action door vs debug", times["unchanged"], times["debug"],
                "<= 2.5x", lambda r: r <= 2.5)]
    publish("config_apply", "make bench", rows, notes=(
        f"{NODES} emulated nodes, forks {FORKS}; each timed talos_config task reads the node's configuration over "
        "COSI, renders the patch, compares normalised documents and sends no ApplyConfiguration. The "
        "normalise-and-compare step alone is measured by bench/config_normalise.py (previous table)."))
    return rows
