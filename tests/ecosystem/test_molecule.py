"""The molecule scenarios of extensions/molecule/, run by molecule itself as `make test-molecule` does.

Every scenario starts its own emulated cluster, converges it, converges it again (molecule's idempotence step
fails on any changed task), verifies it and stops it. The checks are also shown to fail: a converge that leaves
out the configuration patch fails verify, and a task that changes on every run fails idempotence.
"""

import os
import re
import shutil
import subprocess

import pytest

from tests.emulator._import_path import ensure_collection_importable
from tests.integration.playbook import BIN, ROOT

SCENARIOS = ("default", "upgrade")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STOPPED = r"TASK \[Stop the emulator\][ *]*\s*changed: \[localhost\]"

# The default scenario's converge with the configuration patch left out, and a task that changes every time.
BROKEN_CONVERGE = """\
---
- name: Facts of every node
  ansible.builtin.import_playbook: ../../../examples/facts.yml

- name: A rolling upgrade of the cluster
  ansible.builtin.import_playbook: ../../../examples/rolling_upgrade.yml

- name: Something that is not idempotent
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Make a change on every run
      ansible.builtin.command: "true"
      changed_when: true
"""


def molecule(project, tmp_path, *args, timeout=600):
    """``molecule ARGS`` in ``project`` with the venv's tools first on PATH and Ansible's files in tmp_path."""
    ensure_collection_importable()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MOLECULE_", "TALOS")) and k not in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG")}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
                "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1"})
    proc = subprocess.run([str(BIN / "molecule"), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return proc.returncode, ANSI.sub("", proc.stdout + proc.stderr)


def step(output, scenario, action):
    """How molecule reports one action of a scenario: 'Successful', 'Failed', ... or None if it did not run."""
    # "[default > verify] Executed: Failed" without a terminal, "default ➜ verify: Executed: Failed" with one
    found = re.findall(rf"(?:\[{scenario} > {action}\]|{scenario} ➜ {action}:) Executed: (\w+)", output)
    return found[-1] if found else None


@pytest.mark.timeout(900)
def test_every_scenario_creates_converges_idempotently_verifies_and_destroys(tmp_path):
    rc, output = molecule(ROOT, tmp_path, "test", "--all")
    assert rc == 0, output[-6000:]
    for scenario in SCENARIOS:
        for action in ("create", "converge", "idempotence", "verify", "destroy"):
            assert step(output, scenario, action) == "Successful", f"{scenario} {action}:\n{output[-6000:]}"
        recap = rf"^{scenario}\s+: actions=7\s+successful=7 .* failed=0$"
        assert re.search(recap, output, re.MULTILINE), output[-3000:]
    assert "Molecule executed 2 scenarios (2 successful)" in output
    # each scenario's last destroy stopped a running cluster (the first one found none)
    assert len(re.findall(STOPPED, output)) == len(SCENARIOS), output[-6000:]


@pytest.fixture
def broken_project(tmp_path):
    """A project with the default scenario only, whose converge is BROKEN_CONVERGE; the rest is this checkout."""
    project = tmp_path / "project"
    (project / "extensions").mkdir(parents=True)
    shutil.copytree(ROOT / "extensions" / "molecule", project / "extensions" / "molecule",
                    ignore=shutil.ignore_patterns("upgrade"))
    (project / "extensions" / "molecule" / "default" / "converge.yml").write_text(BROKEN_CONVERGE)
    shutil.copy(ROOT / "galaxy.yml", project / "galaxy.yml")
    for name in (".collections", "tests", "examples"):
        (project / name).symlink_to(ROOT / name)
    return project


@pytest.mark.timeout(600)
def test_idempotence_and_verify_fail_when_the_converge_is_broken(broken_project, tmp_path):
    try:
        for action in ("create", "converge"):
            rc, output = molecule(broken_project, tmp_path, action)
            assert rc == 0, f"{action}:\n{output[-4000:]}"

        rc, output = molecule(broken_project, tmp_path, "idempotence")
        assert rc != 0, output[-4000:]
        assert "Idempotence test failed because of the following tasks:" in output, output[-4000:]
        culprits = set(re.findall(r"^\*\s*(?:\[[^\]]*\])?\s*=> (.+)$", output, re.MULTILINE))
        assert culprits == {"Make a change on every run"}, output[-4000:]  # the examples themselves are idempotent

        rc, output = molecule(broken_project, tmp_path, "verify")
        assert rc != 0, output[-4000:]
        assert step(output, "default", "verify") == "Failed", output[-4000:]
        for host in ("talos-cp-1", "talos-w-1"):
            assert f"{host} does not carry the patch of examples/config.yml" in output, output[-4000:]
        assert "not 1.13.6" not in output, "the rolling upgrade did run: only the patch check may fail"
    finally:
        rc, output = molecule(broken_project, tmp_path, "destroy")
    assert rc == 0, output[-4000:]
    assert re.search(STOPPED, output), output[-4000:]
