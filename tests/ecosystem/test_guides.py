"""Docs cannot rot: every YAML snippet of every guide runs, playbooks against an emulated Talos cluster.

A guide's fenced ``yaml`` blocks are snippets of exactly these kinds, told apart by their content:

- a playbook (a list of plays with ``hosts``): run with ansible-playbook, in the guide's order, and must succeed;
- an inventory source (``plugin: talos.linux.talosconfig``): listed with ansible-inventory, must yield hosts;
- a YAML inventory (groups of ``hosts``, ``children``, ``vars``): facts are gathered through it from every host;
- a task file: named by a first-line comment (``# hooks/drain.yml``) and used by one of the guide's playbooks;
  a list of tasks without a name runs in a play on localhost;
- a fragment (YAML that does not parse alone): must parse as the continuation of the guide's previous block;
- any other YAML (a requirements file, variables): must parse; when named, it is written where it says.

A block of any language whose first line is a comment naming a path (``# templates/node.yaml.j2``) is written to
that path, relative to the directory the guide's playbooks run in, before anything runs. Console and ini blocks
are not run. A guide with a YAML block that fits none of the kinds fails, so nothing is skipped unseen.

The guides use the addresses ``talosctl cluster create`` gives its nodes (10.5.0.2 and up, control planes
first); they are mapped to the emulated nodes'. What a guide says comes from elsewhere is made from the emulated
cluster: the talosconfig (at ``talosconfig``, ``secrets/talosconfig`` and ``~/.talos/config``) and the output of
``talosctl gen config`` (``configs/controlplane.yaml``, ``configs/worker.yaml``). kubernetes.core is a stand-in
collection whose ``k8s_drain`` takes the real module's options and records every call; awx.awx likewise has a
``credential_type`` that checks what it is given.
"""

import json
import pathlib
import re
import subprocess
import textwrap
from dataclasses import dataclass

import pytest
import yaml

from tests.integration.playbook import BIN, ROOT, ansible_env, run_playbook

GUIDES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "roles" / "rolling_upgrade" / "README.md"]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
NAMED = re.compile(r"^#\s*(?P<path>[\w./-]+\.(?:ya?ml|j2|json|cfg|txt))\b")
GUIDE_ADDRESS = re.compile(r"\b10\.5\.0\.(\d+)\b")
CONTEXT = "prod"

# The emulated cluster of each guide: 3 control planes and 2 workers on Talos 1.13.5 unless a guide needs more.
CLUSTER = {"control_planes": 3, "workers": 2, "talos_version": "1.13.5", "reboot_seconds": 0.2, "name": CONTEXT}
CLUSTER_BY_GUIDE = {
    "configuration.md": {"maintenance_nodes": (4,)},   # 10.5.0.6 waits in maintenance mode for its first config
}
# Files a guide links to and its snippets read, copied next to its playbooks.
FILES_BY_GUIDE = {
    "awx.md": {name: f"docs/awx/{name}" for name in ("credential_type_inputs.yml", "credential_type_injectors.yml")},
}

# The real kubernetes.core.k8s_drain's options (auth options trimmed to those a hook would use), recording calls.
K8S_DRAIN = '''\
#!/usr/bin/python
from __future__ import annotations

DOCUMENTATION = """
module: k8s_drain
short_description: Test stand-in for kubernetes.core.k8s_drain that records its calls
description: Takes the options of kubernetes.core.k8s_drain and appends each call to a file.
author: talos.linux tests
options: {{}}
"""

import json

from ansible.module_utils.basic import AnsibleModule

DELETE_OPTIONS = dict(
    terminate_grace_period=dict(type="int"), force=dict(type="bool", default=False),
    ignore_daemonsets=dict(type="bool", default=False), delete_emptydir_data=dict(type="bool", default=False),
    disable_eviction=dict(type="bool", default=False), wait_timeout=dict(type="int"),
    wait_sleep=dict(type="int", default=5))


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="drain", choices=["cordon", "drain", "uncordon"]),
        delete_options=dict(type="dict", options=DELETE_OPTIONS),
        pod_selectors=dict(type="list", elements="str", aliases=["label_selectors"]),
        kubeconfig=dict(type="raw"), context=dict(type="str"), host=dict(type="str"),
        api_key=dict(type="str", no_log=True), validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ), supports_check_mode=True)
    with open({log!r}, "a") as calls:
        calls.write(json.dumps({{"name": module.params["name"], "state": module.params["state"],
                                 "delete_options": module.params["delete_options"]}}) + "\\n")
    module.exit_json(changed=True, result="node %s: %s" % (module.params["name"], module.params["state"]))


if __name__ == "__main__":
    main()
'''


# awx.awx.credential_type as far as a guide uses it: the inputs and injectors must be what AWX takes.
CREDENTIAL_TYPE = '''\
#!/usr/bin/python
from __future__ import annotations

DOCUMENTATION = """
module: credential_type
short_description: Test stand-in for awx.awx.credential_type that checks its inputs and injectors
description: Takes the options of awx.awx.credential_type and checks the shape AWX requires.
author: talos.linux tests
options: {}
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True), new_name=dict(type="str"), description=dict(type="str"),
        kind=dict(type="str", choices=["ssh", "vault", "net", "scm", "cloud", "insights"]),
        inputs=dict(type="dict"), injectors=dict(type="dict"),
        state=dict(type="str", default="present", choices=["present", "absent", "exists"]),
    ), supports_check_mode=True)
    fields = (module.params["inputs"] or {}).get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, dict) and {"id", "label"} <= set(f) for f in fields):
        module.fail_json(msg="inputs.fields must be a list of fields with id and label")
    unknown = set(module.params["injectors"] or {}) - {"file", "env", "extra_vars"}
    if unknown:
        module.fail_json(msg="unknown injector kinds: %s" % ", ".join(sorted(unknown)))
    module.exit_json(changed=True, name=module.params["name"])


if __name__ == "__main__":
    main()
'''


@dataclass
class Snippet:
    guide: str
    line: int
    lang: str
    text: str

    @property
    def name(self):
        match = NAMED.match(self.text)
        return match.group("path") if match else None

    @property
    def data(self):
        return yaml.safe_load(self.text)

    @property
    def kind(self):
        if self.lang != "yaml":
            return "file" if self.name else None
        try:
            data = self.data
        except yaml.YAMLError:
            return "fragment"
        if isinstance(data, list) and data and all(isinstance(p, dict) and "hosts" in p for p in data):
            return "playbook"
        if isinstance(data, dict) and data.get("plugin") == "talos.linux.talosconfig":
            return "inventory"
        if isinstance(data, dict) and data and all(isinstance(g, dict) and set(g) <= {"hosts", "children", "vars"}
                                                   for g in data.values()):
            return "static-inventory"
        if isinstance(data, list) and data and all(isinstance(t, dict) and "name" in t for t in data):
            return "tasks"
        return "data"

    @property
    def play_name(self):
        return self.data[0].get("name")

    def __str__(self):
        return f"{self.guide}:{self.line} ({self.kind}{', ' + self.name if self.name else ''})"


def snippets(path):
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        body = textwrap.dedent(match.group("body"))
        line = text.count("\n", 0, match.start()) + 1
        found.append(Snippet(str(path.relative_to(ROOT)), line, match.group("lang"), body))
    return [s for s in found if s.lang == "yaml" or s.name]


def previous_yaml(guide_snippets, snippet):
    earlier = [s for s in guide_snippets if s.lang == "yaml" and s.line < snippet.line]
    return earlier[-1] if earlier else None


def guides_with_snippets():
    return [path for path in GUIDES if path.exists() and snippets(path)]


# --- what the guides expect to exist ------------------------------------------------------------------------

def guide_talosconfig(cluster):
    """The emulated cluster's admin talosconfig as `talosctl gen config` writes it: endpoints, no node list."""
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    config["contexts"][CONTEXT].pop("nodes", None)
    return yaml.safe_dump(config, sort_keys=False)


def generated_configs(cluster):
    """configs/<type>.yaml: what `talosctl gen config` gives, the emulated nodes' configuration less the hostname."""
    configs = {}
    for address in cluster.addresses:
        node = cluster.node(address)
        if node.maintenance or node.machine_type in configs:
            continue
        documents = [d for d in yaml.safe_load_all(node.config.decode()) if d]
        documents[0]["machine"].get("network", {}).pop("hostname", None)
        configs[node.machine_type] = yaml.safe_dump_all(documents, sort_keys=False)
    return configs


def lay_out(workdir, home, cluster, guide_snippets, drain_log):
    talosconfig = guide_talosconfig(cluster)
    files = {"talosconfig": talosconfig, "secrets/talosconfig": talosconfig,
             "cluster.talos.yml": "plugin: talos.linux.talosconfig\ntalosconfig: talosconfig\n"}
    files.update({f"configs/{kind}.yaml": text for kind, text in generated_configs(cluster).items()})
    for snippet in guide_snippets:
        if snippet.name:
            files[snippet.name] = on_emulator(snippet.text, cluster)
    for name, text in files.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    (home / ".talos").mkdir(parents=True)
    (home / ".talos" / "config").write_text(talosconfig)
    for name, source in FILES_BY_GUIDE.get(pathlib.Path(guide_snippets[0].guide).name, {}).items():
        (workdir / name).write_text((ROOT / source).read_text())
    stubs = home / "stub-collections" / "ansible_collections"
    for collection, module, code in (("kubernetes/core", "k8s_drain", K8S_DRAIN.format(log=str(drain_log))),
                                     ("awx/awx", "credential_type", CREDENTIAL_TYPE)):
        (stubs / collection / "plugins" / "modules").mkdir(parents=True)
        (stubs / collection / "plugins" / "modules" / f"{module}.py").write_text(code)
    return stubs.parent


def on_emulator(text, cluster):
    """10.5.0.2, 10.5.0.3, ... (the guides' addresses) -> the emulated nodes' addresses, in the same order."""
    def address(match):
        index = int(match.group(1)) - 2
        return cluster.addresses[index] if 0 <= index < len(cluster.addresses) else match.group(0)
    return GUIDE_ADDRESS.sub(address, text)


# A YAML inventory is proved by gathering facts through it, with the variables it gives its hosts alone.
FACTS_THROUGH_INVENTORY = """
- name: Facts through the inventory of the guide
  hosts: all
  gather_facts: true
  tasks:
    - name: Every host answered as the node it names
      ansible.builtin.assert:
        that: ansible_facts.talos_ready and ansible_facts.talos_hostname == inventory_hostname
"""


# --- what some snippets need around them ----------------------------------------------------------------------
# Keyed by (guide, the first play's name): what the situation a snippet is written for needs (BEFORE), and what
# proves the snippet did its job beyond succeeding (AFTER). Every key must find its snippet.
ETCD_CHECK_KEY, ETCD_CHECK_VALUE = "/registry/guides/etcd", "written before the backup"


def drained_then_uncordoned(cluster, run, tmp_path):
    """The drain hooks ran for every upgraded node, drain before uncordon, with the documented delete options."""
    log = tmp_path / "k8s_drain.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert calls, f"the drain hooks never ran:\n{run.stdout[-3000:]}"
    for host in (cluster.node(a).hostname for a in cluster.addresses):
        states = [c["state"] for c in calls if c["name"] == host]
        assert states == ["drain", "uncordon"], f"{host}: {states}"
    assert all(c["delete_options"]["ignore_daemonsets"] for c in calls if c["state"] == "drain")


def restored_from_the_backup(cluster, run, tmp_path):
    assert cluster.read_etcd().get(ETCD_CHECK_KEY) == ETCD_CHECK_VALUE, "etcd holds what the snapshot held"


def alarm_disarmed(cluster, run, tmp_path):
    assert run.result("Disarm them")["changed"] is True


BEFORE = {
    ("docs/etcd.md", "Back up etcd"): lambda cluster: cluster.write_etcd(ETCD_CHECK_KEY, ETCD_CHECK_VALUE),
    ("docs/etcd.md", "Clear etcd alarms once their cause is fixed"):
        lambda cluster: cluster.raise_alarm(cluster.control_planes[0], "NOSPACE"),
    ("docs/etcd.md", "Remove the etcd member of a dead control plane"):
        lambda cluster: cluster.take_down(cluster.control_planes[1]),
    ("docs/etcd.md", "Restore etcd from the newest snapshot"): lambda cluster: cluster.wipe_etcd(),
}
AFTER = {
    ("docs/upgrades.md", "Rolling upgrade with drains"): drained_then_uncordoned,
    ("docs/etcd.md", "Clear etcd alarms once their cause is fixed"): alarm_disarmed,
    ("docs/etcd.md", "Restore etcd from the newest snapshot"): restored_from_the_backup,
}


# --- the tests -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("guide", guides_with_snippets(), ids=lambda p: str(p.relative_to(ROOT)))
def test_guide_snippets_run(tmp_path, emulated_cluster, guide):
    guide_snippets = snippets(guide)
    unknown = [s for s in guide_snippets if s.kind is None]
    assert not unknown, f"snippets that are neither playbook, inventory, task file nor data: {unknown}"
    cluster = emulated_cluster(**{**CLUSTER, **CLUSTER_BY_GUIDE.get(guide.name, {})})
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    drain_log = tmp_path / "k8s_drain.jsonl"
    stubs = lay_out(workdir, home, cluster, guide_snippets, drain_log)
    env = {"HOME": home, "ANSIBLE_COLLECTIONS_PATH": f"{stubs}:{ROOT / '.collections'}"}

    playbooks = [s for s in guide_snippets if s.kind == "playbook"]
    for snippet in guide_snippets:
        if snippet.kind in ("tasks", "file") and snippet.name:
            assert any(snippet.name in p.text for p in playbooks), f"{snippet}: no playbook of the guide uses it"
        elif snippet.kind == "tasks":
            play = [{"name": f"Tasks of {snippet}", "hosts": "localhost", "gather_facts": False,
                     "tasks": yaml.safe_load(on_emulator(snippet.text, cluster))}]
            path = workdir / f"snippet-{snippet.line}.yml"
            path.write_text(yaml.safe_dump(play, sort_keys=False))
            run = run_playbook(workdir, path, workdir / "cluster.talos.yml", env=env)
            assert run.rc == 0, f"{snippet} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        elif snippet.kind == "fragment":
            before = previous_yaml(guide_snippets, snippet)
            assert before, f"{snippet} does not parse and continues no earlier block"
            yaml.safe_load(before.text + snippet.text)
        elif snippet.kind == "inventory":
            source = workdir / (snippet.name or f"snippet-{snippet.line}.talos.yml")
            source.write_text(on_emulator(snippet.text, cluster))
            listed = run_inventory(workdir, source, env)
            assert listed["talos"]["hosts"], f"{snippet}: no hosts"
        elif snippet.kind == "static-inventory":
            assert snippet.name, f"{snippet}: an inventory needs a first-line comment naming its file"
            run = run_playbook(workdir, FACTS_THROUGH_INVENTORY, workdir / snippet.name, env=env)
            assert run.rc == 0 and run.results, f"{snippet}: facts through it failed:\n{run.stdout[-4000:]}"
        elif snippet.kind == "playbook":
            path = workdir / (snippet.name or f"snippet-{snippet.line}.yml")
            path.write_text(on_emulator(snippet.text, cluster))
            if (snippet.guide, snippet.play_name) in BEFORE:
                BEFORE[snippet.guide, snippet.play_name](cluster)
            run = run_playbook(workdir, path, workdir / "cluster.talos.yml", env=env, timeout=600)
            assert run.rc == 0, f"{snippet} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
            if (snippet.guide, snippet.play_name) in AFTER:
                AFTER[snippet.guide, snippet.play_name](cluster, run, tmp_path)
            if CONFIG_MODULE in snippet.text:
                unchanged_on_its_second_run(cluster, snippet, path, workdir, env)
        else:
            assert snippet.data is not None or snippet.lang != "yaml", f"{snippet}: empty"


CONFIG_MODULE = "talos.linux.talos_config"
APPLY = "/machine.MachineService/ApplyConfiguration"


def applies(cluster):
    return sum(count for (_address, rpc), count in cluster.calls.items() if rpc == APPLY)


def unchanged_on_its_second_run(cluster, snippet, path, workdir, env):
    """A configuration example run again reports changed=false for every talos_config task and applies nothing."""
    sent = applies(cluster)
    again = run_playbook(workdir, path, workdir / "cluster.talos.yml", env=env, timeout=600)
    assert again.rc == 0, f"{snippet} failed on its second run:\n{again.stdout[-6000:]}"
    configs = [r for r in again.results if r["action"] == CONFIG_MODULE]
    assert configs, f"{snippet}: no talos_config task ran on the second run"
    changed = [(r["host"], r["task"]) for r in configs if r["result"].get("changed")]
    assert not changed, f"{snippet}: changed again on its second run: {changed}"
    assert applies(cluster) == sent, f"{snippet}: ApplyConfiguration sent on its second run"


def run_inventory(workdir, source, env):
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list"], cwd=workdir,
                          env=ansible_env(workdir, **env), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "[WARNING]" not in proc.stderr, f"{source.name}:\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_every_before_and_after_has_its_snippet():
    found = {(s.guide, s.play_name) for path in GUIDES if path.exists() for s in snippets(path) if s.kind == "playbook"}
    assert set(BEFORE) | set(AFTER) <= found, f"set-ups and checks whose snippet is gone: {(set(BEFORE) | set(AFTER)) - found}"


def test_snippet_kinds_are_recognised():
    """The classifier itself, on the shapes the guides use."""
    def kind(text, lang="yaml"):
        return Snippet("guide.md", 1, lang, text).kind

    assert kind("- name: p\n  hosts: talos\n  tasks: []\n") == "playbook"
    assert kind("plugin: talos.linux.talosconfig\n") == "inventory"
    assert kind("# hooks/drain.yml\n- name: Drain\n  ansible.builtin.debug:\n") == "tasks"
    assert kind("collections:\n  - name: talos.linux\n") == "data"
    assert kind("talos:\n  vars: {}\n  children:\n    worker:\n      hosts: {}\n") == "static-inventory"
    assert kind("# templates/node.yaml.j2\nmachine: {}\n", lang="jinja") == "file"
    assert kind("machine: {}\n", lang="jinja") is None
