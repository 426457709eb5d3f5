"""ansible-lint with the production profile (.ansible-lint) on the examples, the roles and the molecule scenarios.

Run as `make lint` runs it: offline, talos.linux from .collections, Ansible's files in a temporary home. A
copy of an example broken the way a linter exists to catch fails it, naming the rule.
"""

import os
import re
import subprocess

import pytest

from tests.emulator._import_path import ensure_collection_importable
from tests.integration.playbook import BIN, ROOT

LINTED = ("examples", "roles", "extensions/molecule")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ansible_lint(tmp_path, *args, cwd=ROOT):
    ensure_collection_importable()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_", "TALOS"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
                "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "NO_COLOR": "1"})
    proc = subprocess.run([str(BIN / "ansible-lint"), "--nocolor", "--format=pep8", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, ANSI.sub("", proc.stdout + proc.stderr)


@pytest.mark.timeout(600)
def test_examples_roles_and_molecule_scenarios_pass_the_production_profile(tmp_path):
    rc, output = ansible_lint(tmp_path, *LINTED)
    assert rc == 0, output[-6000:]
    assert "Profile 'production' was required, and it passed." in output, output[-3000:]
    assert re.search(r"Passed: 0 failure\(s\), 0 warning\(s\) in [1-9][0-9]* files processed", output), output[-3000:]


def without_a_task_name(text):
    return text.replace("    - name: One line per node\n      ansible.builtin.set_fact:",
                        "    - ansible.builtin.set_fact:")


def with_a_short_module_name(text):
    return text.replace("ansible.builtin.debug:", "debug:")


@pytest.mark.parametrize("break_it, rule", [(without_a_task_name, "name[missing]"),
                                            (with_a_short_module_name, "fqcn[action-core]")])
def test_a_broken_playbook_fails_naming_the_rule(tmp_path, break_it, rule):
    example = (ROOT / "examples" / "facts.yml").read_text()
    broken = break_it(example)
    assert broken != example, "the example changed: update the test's edit"
    playbook = tmp_path / "playbooks" / "facts.yml"
    playbook.parent.mkdir()
    playbook.write_text(broken)
    (tmp_path / "playbooks" / "intact.yml").write_text(example)

    # the copies form a project of their own, linted with the collection's configuration
    rc, output = ansible_lint(tmp_path, "-c", str(ROOT / ".ansible-lint"), "--project-dir", str(tmp_path), "playbooks",
                              cwd=tmp_path)
    assert rc != 0, output[-3000:]
    violations = re.findall(r"^(\S+?):\d+(?::\d+)?: (\S+?)(?:\[/\])?: ", output, re.MULTILINE)
    assert violations == [("playbooks/facts.yml", rule)], output[-3000:]
    assert "in 2 files processed" in output, output[-3000:]  # the intact copy was linted too, and passed
