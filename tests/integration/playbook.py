"""Run ansible-playbook and ansible-inventory against the collection in this checkout, as a user would.

The collection is found through ``.collections/ansible_collections/talos/linux`` (a link to the checkout);
every task result comes back through the test callback, exactly as the default callback would show it.
"""

import json
import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass

from tests.emulator._import_path import ensure_collection_importable

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
CALLBACKS = pathlib.Path(__file__).resolve().parent / "callback_plugins"


def ansible_env(tmp_path, **extra):
    ensure_collection_importable()
    env = dict(os.environ)
    for name in ("TALOSCONFIG", "TALOS_NODE", "TALOS_ENDPOINTS", "TALOS_CONTEXT", "TALOS_HOME"):
        env.pop(name, None)  # the tests choose every input themselves
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": "talos_test_results",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "1",
        "TALOS_TEST_RESULTS": str(tmp_path / "results.json"),
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list
    stats: dict

    def task(self, name, host=None):
        """The results of the task called ``name`` (one per host), or only ``host``'s."""
        found = [r for r in self.results if r["task"] == name and (host is None or r["host"] == host)]
        assert found, f"no result for task {name!r}{' on ' + host if host else ''}:\n{self.stdout[-3000:]}"
        return found

    def result(self, name, host=None):
        return self.task(name, host)[0]["result"]

    @property
    def output(self):
        return self.stdout + self.stderr


def run_playbook(tmp_path, playbook, inventory, *args, env=None, timeout=300):
    """``ansible-playbook -i INVENTORY PLAYBOOK ARGS``; ``playbook`` is a path or the YAML text itself."""
    if not isinstance(playbook, pathlib.Path):
        path = tmp_path / f"playbook-{len(list(tmp_path.glob('playbook-*.yml')))}.yml"
        path.write_text(playbook)
        playbook = path
    results = tmp_path / "results.json"
    if results.exists():
        results.unlink()
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
                          cwd=tmp_path, env=ansible_env(tmp_path, **(env or {})), capture_output=True, text=True,
                          timeout=timeout, check=False)
    data = json.loads(results.read_text()) if results.exists() else {"results": [], "stats": {}}
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, data["results"], data["stats"])


def run_inventory(tmp_path, inventory, *args, env=None, timeout=120):
    """``ansible-inventory -i INVENTORY --list`` parsed, plus the completed process."""
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(inventory), "--list", *args],
                          cwd=tmp_path, env=ansible_env(tmp_path, **(env or {})), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return (json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None), proc


def static_inventory(tmp_path, cluster, role="admin", hosts=None, **host_vars):
    """A YAML inventory of the cluster's nodes with the host variables the talosconfig inventory sets."""
    import yaml

    hosts = hosts if hosts is not None else cluster.addresses
    inventory = {"talos": {"hosts": {
        cluster.node(address).hostname: {
            "ansible_host": address, "talos_node": address, "ansible_connection": "talos.linux.controller",
            "ansible_python_interpreter": sys.executable, "ansible_facts_modules": ["talos.linux.talos_facts"],
            "talos_config_path": str(cluster.talosconfig_path(role)), **host_vars,
        } for address in hosts}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path
