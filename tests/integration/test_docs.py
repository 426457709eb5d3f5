"""Every plugin's documentation renders with ansible-doc, and every module is in the talos action group."""

import json
import subprocess

import pytest
import yaml

from tests.integration.playbook import BIN, ROOT, ansible_env

MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("talos_*.py"))
PLUGINS = [("module", f"talos.linux.{name}") for name in MODULES] + [
    ("inventory", "talos.linux.talosconfig"), ("connection", "talos.linux.controller")]
CONNECTION_OPTIONS = {"talosconfig", "context", "endpoints", "node", "nodes", "ca", "crt", "key", "server_name",
                      "insecure", "timeout"}


def ansible_doc(tmp_path, *args):
    return subprocess.run([str(BIN / "ansible-doc"), *args], env=ansible_env(tmp_path), capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("plugin_type,name", PLUGINS)
def test_documentation_renders(tmp_path, plugin_type, name):
    text = ansible_doc(tmp_path, "-t", plugin_type, name)
    assert text.returncode == 0 and name in text.stdout, text.stderr
    data = json.loads(ansible_doc(tmp_path, "-t", plugin_type, "--json", name).stdout)[name]
    assert data["doc"]["description"] and data["examples" if plugin_type != "connection" else "doc"]
    if plugin_type == "module":
        assert CONNECTION_OPTIONS <= set(data["doc"]["options"]), "the shared connection options"
        assert data["return"], "RETURN is documented"
        assert data["doc"]["attributes"]["action_group"]["membership"] == ["talos.linux.talos"]


def test_every_module_is_in_the_action_group():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    assert sorted(runtime["action_groups"]["talos"]) == MODULES
    for module in MODULES:
        assert (ROOT / "plugins" / "action" / f"{module}.py").exists(), f"{module} has its in-process door"
