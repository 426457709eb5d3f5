"""The talosconfig inventory: `ansible-inventory --list` with discovery of 50 emulated nodes.

Each figure is the median wall time of a whole `ansible-inventory --list` process (Python start-up, Ansible,
the plugin, the output), measured in alternating rounds against the same inventory without discovery
(`discover: false`, the 50 nodes listed in the talosconfig). Goal: discovery stays under 2 s of wall time.
"""

import asyncio
import json
import os
import pathlib
import sys
import tempfile

from bench._harness import ROOT, alternate, emulated_cluster, publish

NODES = 50
ROUNDS = 7
GOAL_SECONDS = 2.0
BIN = pathlib.Path(sys.executable).parent


def _environment(home, talosconfig):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALOS")}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_HOME": str(home / "ansible-home"),
                "ANSIBLE_LOCAL_TEMP": str(home / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_INVENTORY_ENABLED": "talos.linux.talosconfig", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
                "ANSIBLE_INVENTORY_CACHE_CONNECTION": str(home / "cache"), "TALOSCONFIG": str(talosconfig)})
    return env


async def _inventory(config, env):
    """One `ansible-inventory --list` run; its host names (the run must succeed)."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "ansible-inventory"), "-i", str(config), "--list", env=env, cwd=str(config.parent),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    if process.returncode != 0 or b"[WARNING]" in stderr:
        raise RuntimeError(f"ansible-inventory -i {config.name} failed or warned:\n{stderr.decode()}")
    return sorted(json.loads(stdout)["_meta"]["hostvars"])


def _write(directory, name, text):
    path = directory / f"{name}.talos.yml"
    path.write_text("plugin: talos.linux.talosconfig\n" + text)
    return path


def measure():
    with emulated_cluster(control_planes=1, workers=NODES - 1) as state, \
            tempfile.TemporaryDirectory(prefix="talos-bench-inventory-") as tmp:
        home = pathlib.Path(tmp)
        env = _environment(home, state / "talosconfig")
        discovered = _write(home, "discovered", "")
        listed = _write(home, "listed", "discover: false\n")
        cached = _write(home, "cached", "cache: true\ncache_plugin: ansible.builtin.jsonfile\n")

        async def run():
            hosts = await _inventory(discovered, env)
            expected = ["talos-cp-1", *(f"talos-w-{n}" for n in range(1, NODES))]
            if hosts != sorted(expected):
                raise RuntimeError(f"discovery found {len(hosts)} hosts, not the {NODES} members: {hosts}")
            if len(await _inventory(listed, env)) != NODES or await _inventory(cached, env) != hosts:
                raise RuntimeError("the inventories without discovery or from the cache differ")
            return await alternate(ROUNDS, discovered=lambda: _inventory(discovered, env),
                                   listed=lambda: _inventory(listed, env), cached=lambda: _inventory(cached, env))

        return asyncio.run(run())


def main():
    times = measure()
    ratio = times["discovered"] / times["listed"]
    cached_ratio = times["cached"] / times["listed"]
    rows = [
        {"name": f"ansible-inventory --list, {NODES} nodes: discovery vs the talosconfig's nodes",
         "measured": f"{times['discovered']:.3f} s", "baseline": f"{times['listed']:.3f} s",
         "ratio": f"{ratio:.2f}x", "goal": f"discovery < {GOAL_SECONDS:g} s",
         "met": times["discovered"] < GOAL_SECONDS},
        {"name": f"ansible-inventory --list, {NODES} nodes: members from the inventory cache vs the talosconfig's nodes",
         "measured": f"{times['cached']:.3f} s", "baseline": f"{times['listed']:.3f} s",
         "ratio": f"{cached_ratio:.2f}x", "goal": f"< {GOAL_SECONDS:g} s",
         "met": times["cached"] < GOAL_SECONDS},
    ]
    publish("inventory", "make bench", rows,
            notes=f"Whole `ansible-inventory` processes, median of {ROUNDS} alternating rounds; the emulated cluster "
                  "runs in its own process.")
    return rows
