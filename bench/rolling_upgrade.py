"""The rolling_upgrade role on 3 control planes and 6 workers, with a 2 s emulated reboot and worker batches of 3.

The unavoidable part is the reboots in the role's order: 3 control planes one at a time plus 2 batches of 3
workers, 5 reboots of 2 s. The role's whole play (version reads, etcd gates, pulls, installs, waits, health
checks) is measured against that sum. Goal: <= 1.25x.
"""

import yaml

from bench._harness import ROOT, emulated_cluster, publish
from bench._playbooks import run

REBOOT_SECONDS = 2.0
CONTROL_PLANES, WORKERS, BATCH = 3, 6, 3
IMAGE = "ghcr.io/siderolabs/installer:v1.13.6"


def main():
    work = ROOT / "bench" / "results" / "rolling_upgrade"
    work.mkdir(parents=True, exist_ok=True)
    with emulated_cluster(CONTROL_PLANES, WORKERS, "1.13.5", "--reboot-seconds", str(REBOOT_SECONDS)) as state:
        inventory = work / "cluster.talos.yml"
        inventory.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig",
                                             "talosconfig": str(state / "talosconfig")}))
        plays = [{"name": "rolling upgrade", "hosts": "localhost", "gather_facts": False,
                  "roles": [{"role": "talos.linux.rolling_upgrade", "talos_upgrade_image": IMAGE,
                             "talos_upgrade_worker_batch": BATCH}]}]
        (work / "localhost").write_text("localhost ansible_connection=local "
                                        "ansible_python_interpreter={{ ansible_playbook_python }}\n")
        times = run(plays, [inventory, work / "localhost"], work)
    reboots = CONTROL_PLANES + -(-WORKERS // BATCH)
    floor = reboots * REBOOT_SECONDS
    measured = times["play: rolling upgrade"]
    ratio = measured / floor
    rows = [{"name": f"rolling_upgrade, {CONTROL_PLANES}+{WORKERS} nodes, batches of {BATCH}, {REBOOT_SECONDS:g} s "
                     f"reboots: the role's play vs the sum of its {reboots} reboots",
             "measured": f"{measured:.2f} s", "baseline": f"{floor:.2f} s", "ratio": f"{ratio:.2f}x",
             "goal": "<= 1.25x", "met": ratio <= 1.25}]
    publish("rolling_upgrade", "make bench", rows)
    return rows
