"""The talos.linux.talosconfig inventory plugin: real `ansible-inventory --list` runs against the emulator.

Golden files: every case writes its normalised output next to its configuration in tests/integration/inventory_golden/
(node addresses become NODE1..., the talosconfig path TALOSCONFIG). `TALOS_GOLDEN_WRITE=1` rewrites them.
"""

import difflib
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings
from tests.integration.playbook import ansible_env, run_inventory, run_playbook

HERE = pathlib.Path(__file__).resolve().parent
CASES = HERE / "inventory_golden"
WRITE_GOLDEN = os.environ.get("TALOS_GOLDEN_WRITE") == "1"
LIST_MEMBERS = "/cosi.resource.State/List"
# Only this plugin, and an unparsable source is an error: the failure is ours, said once, with rc != 0.
ONLY_THIS_PLUGIN = {"ANSIBLE_INVENTORY_ENABLED": "talos.linux.talosconfig", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1"}


# --- helpers ----------------------------------------------------------------------------------------------

def write_talosconfig(path, cluster, role="admin", **changes):
    """The cluster's talosconfig with its context's fields changed (None removes a field)."""
    data = yaml.safe_load(cluster.talosconfig_path(role).read_text())
    context = data["contexts"][data["context"]]
    for key, value in changes.items():
        if value is None:
            context.pop(key, None)
        else:
            context[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def merge_talosconfigs(path, *clusters):
    """One talosconfig holding every cluster's context; the first cluster's is the current one."""
    merged = {"context": None, "contexts": {}}
    for cluster in clusters:
        data = yaml.safe_load(cluster.talosconfig_path().read_text())
        merged["context"] = merged["context"] or data["context"]
        merged["contexts"].update(data["contexts"])
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


def write_config(tmp_path, name, **options):
    path = tmp_path / f"{name}.talos.yml"
    path.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig", **options}, sort_keys=False))
    return path


def inventory(tmp_path, source, talosconfig=None, env=None, args=()):
    """`ansible-inventory --list`, which must succeed; (data, process)."""
    extra = dict(env or {})
    if talosconfig is not None:
        extra["TALOSCONFIG"] = str(talosconfig)
    data, proc = run_inventory(tmp_path, source, *args, env=extra)
    assert proc.returncode == 0 and data is not None, proc.stderr
    return data, proc


def failed_inventory(tmp_path, source, talosconfig=None):
    """`ansible-inventory --list` that must fail; the whole output, whitespace collapsed."""
    env = dict(ONLY_THIS_PLUGIN)
    if talosconfig is not None:
        env["TALOSCONFIG"] = str(talosconfig)
    data, proc = run_inventory(tmp_path, source, env=env)
    assert proc.returncode != 0, proc.stdout
    assert data is None
    return " ".join((proc.stdout + proc.stderr).split())


def warnings_of(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("[WARNING]")]


def hosts(data, group="talos"):
    return sorted(data.get(group, {}).get("hosts", []))


def hostvar(data, host, name):
    """A host variable as plain data (ansible-core 2.19 marks untrusted strings with __ansible_unsafe)."""
    return _plain(data["_meta"]["hostvars"][host][name])


def _plain(value):
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def normalise(data, clusters, talosconfig):
    """Plain values; node addresses -> NODE1.. (clusters in order, control planes first); talosconfig path ->
    TALOSCONFIG; host and group lists sorted."""
    text = json.dumps(_plain(data), sort_keys=True)
    text = text.replace(json.dumps(str(talosconfig))[1:-1], "TALOSCONFIG")
    addresses = [address for cluster in clusters for address in cluster.addresses]
    for number, address in enumerate(addresses, 1):
        text = re.sub(r"(?<![\d.])" + re.escape(address) + r"(?![\d])", f"NODE{number}", text)
    result = json.loads(text)
    for group in result.values():
        for key in ("hosts", "children"):
            if key in group:
                group[key] = sorted(group[key])
    return result


def assert_golden(case, data, clusters, talosconfig):
    """Compare with tests/integration/inventory_golden/<case>.json (TALOS_GOLDEN_WRITE=1 writes it instead)."""
    got = normalise(data, clusters, talosconfig)
    path = CASES / f"{case}.json"
    if WRITE_GOLDEN:
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert path.exists(), f"{path} is missing; run with TALOS_GOLDEN_WRITE=1 to create it"
    want = json.loads(path.read_text())
    diff = difflib.unified_diff(json.dumps(want, indent=2, sort_keys=True).splitlines(),
                                json.dumps(got, indent=2, sort_keys=True).splitlines(), path.name, "output", lineterm="")
    assert got == want, (f"ansible-inventory output differs from {path.name} (TALOS_GOLDEN_WRITE=1 rewrites it):\n"
                         + "\n".join(diff))


def list_calls(cluster):
    return sum(count for (_node, path), count in cluster.calls.items() if path == LIST_MEMBERS)


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=1, workers=2)


# --- golden files -----------------------------------------------------------------------------------------

def test_single_context_discovered(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    data, proc = inventory(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert_golden("discovered", data, [cluster], talosconfig)
    assert hosts(data) == ["talos-cp-1", "talos-w-1", "talos-w-2"]
    assert hosts(data, "controlplane") == ["talos-cp-1"] and hosts(data, "worker") == ["talos-w-1", "talos-w-2"]
    worker = cluster.workers[0]
    assert hostvar(data, "talos-w-1", "talos_node") == worker == hostvar(data, "talos-w-1", "ansible_host")
    assert hostvar(data, "talos-w-1", "talos_version") == cluster.node(worker).version
    assert not warnings_of(proc)
    assert list_calls(cluster) == 1, "one State/List, answered by the endpoint itself"


def test_single_context_listed_without_discovery(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=cluster.workers)
    data, proc = inventory(tmp_path, CASES / "listed.talos.yml", talosconfig)
    assert_golden("listed", data, [cluster], talosconfig)
    assert hosts(data) == sorted(cluster.workers)
    assert "controlplane" not in data and "worker" not in data
    assert not warnings_of(proc)
    assert not cluster.calls, "nothing is sent to the cluster without discovery"


def test_listed_falls_back_to_endpoints_without_nodes(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    data, _proc = inventory(tmp_path, CASES / "listed.talos.yml", talosconfig)
    assert_golden("listed_endpoints", data, [cluster], talosconfig)
    assert hosts(data) == cluster.control_planes


def test_every_context_of_two_clusters(emulated_cluster, tmp_path):
    alpha = emulated_cluster(control_planes=1, workers=1, name="alpha")
    beta = emulated_cluster(control_planes=1, workers=1, name="beta")
    talosconfig = merge_talosconfigs(tmp_path / "talosconfig", alpha, beta)
    data, proc = inventory(tmp_path, CASES / "all_contexts.talos.yml", talosconfig)
    assert_golden("all_contexts", data, [alpha, beta], talosconfig)
    # both clusters name their nodes talos-cp-1 and talos-w-1: the current context keeps the plain names
    assert hosts(data, "talos_alpha") == ["talos-cp-1", "talos-w-1"]
    assert hosts(data, "talos_beta") == ["talos-cp-1@beta", "talos-w-1@beta"]
    assert hostvar(data, "talos-cp-1@beta", "talos_node") == beta.control_planes[0]
    assert hostvar(data, "talos-cp-1@beta", "talos_context") == "beta"
    assert hostvar(data, "talos-cp-1@beta", "talos_endpoints") == [f"{beta.control_planes[0]}:50000"]
    renamed = [w for w in warnings_of(proc) if "taken by other hosts" in w]
    assert len(renamed) == 1 and "'beta'" in renamed[0], proc.stderr


def test_a_list_of_contexts_selects_them(emulated_cluster, tmp_path):
    alpha = emulated_cluster(control_planes=1, workers=1, name="alpha")
    beta = emulated_cluster(control_planes=1, workers=1, name="beta-cluster")
    talosconfig = merge_talosconfigs(tmp_path / "talosconfig", alpha, beta)
    config = write_config(tmp_path, "beta", context=["beta-cluster"])
    data, proc = inventory(tmp_path, config, talosconfig)
    assert hosts(data) == ["talos-cp-1", "talos-w-1"], "only beta's hosts, under their plain names"
    assert hosts(data, "talos_beta_cluster") == ["talos-cp-1", "talos-w-1"]
    assert "talos_alpha" not in data and not list_calls(alpha)
    assert not warnings_of(proc)


def test_discovery_through_a_worker_endpoint(cluster, tmp_path):
    """A worker answers COSI List for itself, so discovery works; tasks through it could not, hence a warning."""
    worker = cluster.workers[0]
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, endpoints=[worker], nodes=None)
    data, proc = inventory(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert_golden("worker_endpoint", data, [cluster], talosconfig)
    assert hosts(data) == ["talos-cp-1", "talos-w-1", "talos-w-2"]
    assert cluster.calls[(worker, LIST_MEMBERS)] == 1
    warnings = warnings_of(proc)
    assert len(warnings) == 1 and "are worker nodes" in warnings[0] and "no request forwarding" in warnings[0]


def test_compose_groups_and_keyed_groups(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    data, _proc = inventory(tmp_path, CASES / "constructed.talos.yml", talosconfig)
    assert_golden("constructed", data, [cluster], talosconfig)
    assert hosts(data, "machine_controlplane") == ["talos-cp-1"]
    assert hosts(data, "talos_v1_13_5") == ["talos-cp-1", "talos-w-1", "talos-w-2"]
    assert hosts(data, "etcd") == ["talos-cp-1"]
    assert hostvar(data, "talos-w-2", "talos_api") == f"{cluster.workers[1]}:50000"


def test_strict_turns_a_template_error_into_an_error(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster)
    lenient = write_config(tmp_path, "lenient", compose={"broken": "no_such_variable + 1"})
    data, _proc = inventory(tmp_path, lenient, talosconfig)
    assert "broken" not in data["_meta"]["hostvars"]["talos-cp-1"]
    strict = write_config(tmp_path, "strict", strict=True, compose={"broken": "no_such_variable + 1"})
    output = failed_inventory(tmp_path, strict, talosconfig)
    assert "Could not set broken for host" in output and "no_such_variable" in output


def test_cache_hit_sends_nothing_and_flush_discovers_again(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    env = {"ANSIBLE_INVENTORY_CACHE_CONNECTION": str(tmp_path / "cache")}
    first, _proc = inventory(tmp_path, CASES / "cached.talos.yml", talosconfig, env=env)
    assert list_calls(cluster) == 1
    second, _proc = inventory(tmp_path, CASES / "cached.talos.yml", talosconfig, env=env)
    assert list_calls(cluster) == 1, "the second run was served from the cache"
    assert second == first
    assert_golden("cached", second, [cluster], talosconfig)
    inventory(tmp_path, CASES / "cached.talos.yml", talosconfig, env=env, args=["--flush-cache"])
    assert list_calls(cluster) == 2, "--flush-cache discovers again"


def test_a_failed_discovery_is_not_cached(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    env = {"ANSIBLE_INVENTORY_CACHE_CONNECTION": str(tmp_path / "cache")}
    cluster.fail("State/List", code="UNAVAILABLE", count=100, message="apid is restarting")
    data, proc = inventory(tmp_path, CASES / "cached.talos.yml", talosconfig, env=env)
    assert hosts(data) == cluster.control_planes and "apid is restarting" in proc.stderr
    cluster.clear_faults()
    data, proc = inventory(tmp_path, CASES / "cached.talos.yml", talosconfig, env=env)
    assert hosts(data) == ["talos-cp-1", "talos-w-1", "talos-w-2"] and not warnings_of(proc)


def test_unreachable_endpoints_fall_back_with_one_warning(cluster, tmp_path):
    cluster.take_down(cluster.control_planes[0])
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=cluster.workers)
    data, proc = inventory(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert_golden("fallback", data, [cluster], talosconfig)
    assert hosts(data) == sorted(cluster.workers)
    warnings = warnings_of(proc)
    assert len(warnings) == 1, proc.stderr
    assert "context 'emulated'" in warnings[0] and f"{cluster.control_planes[0]}:50000" in warnings[0]
    assert "Listing the nodes of the talosconfig context instead" in warnings[0]


def test_unreachable_endpoints_with_strict_fail(cluster, tmp_path):
    cluster.take_down(cluster.control_planes[0])
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster)
    output = failed_inventory(tmp_path, write_config(tmp_path, "strict", strict=True), talosconfig)
    assert "Discovery of the members of context 'emulated'" in output
    assert f"{cluster.control_planes[0]}:50000" in output and "Listing the nodes" not in output


def test_discovery_timeout_falls_back(cluster, tmp_path):
    cluster.add_latency(5, rpc="State/List")
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster)
    started = time.monotonic()
    data, proc = inventory(tmp_path, write_config(tmp_path, "quick", timeout=1), talosconfig)
    assert time.monotonic() - started < 4.5, "the discovery deadline bounds the whole run"
    assert hosts(data) == sorted(cluster.addresses)
    assert "deadline of 1 s" in proc.stderr and len(warnings_of(proc)) == 1


def test_reader_role_discovers(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, role="reader", nodes=None)
    data, proc = inventory(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert_golden("discovered", data, [cluster], talosconfig)
    assert not warnings_of(proc)


def test_a_role_without_cosi_access_falls_back_naming_the_role(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, role="etcd-backup", nodes=cluster.workers)
    data, proc = inventory(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert hosts(data) == sorted(cluster.workers)
    warning = " ".join(warnings_of(proc))
    assert "PermissionDenied" in warning and "os:reader" in warning and "os:etcd:backup" in warning


def test_relative_talosconfig_is_relative_to_the_inventory_file(cluster, tmp_path):
    (tmp_path / "clusters").mkdir()
    (tmp_path / "inventories").mkdir()
    talosconfig = write_talosconfig(tmp_path / "clusters" / "talosconfig", cluster)
    config = write_config(tmp_path / "inventories", "cluster", talosconfig="../clusters/talosconfig", discover=False)
    data, _proc = inventory(tmp_path, config)  # run from tmp_path, where ../clusters does not exist
    assert hosts(data) == sorted(cluster.addresses)
    assert hostvar(data, cluster.addresses[0], "talos_config_path") == str(talosconfig)


def test_talosconfig_from_talos_home(cluster, tmp_path):
    (tmp_path / "home").mkdir()
    write_talosconfig(tmp_path / "home" / "config", cluster)
    data, _proc = inventory(tmp_path, CASES / "listed.talos.yml", env={"TALOS_HOME": tmp_path / "home"})
    assert hosts(data) == sorted(cluster.addresses)


def test_a_file_not_named_talos_yml_is_not_read(cluster, tmp_path):
    config = tmp_path / "cluster.yml"
    config.write_text("plugin: talos.linux.talosconfig\n")
    data, proc = run_inventory(tmp_path, config, env={"TALOSCONFIG": str(cluster.talosconfig_path()),
                                                      **ONLY_THIS_PLUGIN})
    assert proc.returncode != 0 and data is None
    assert not cluster.calls


# --- bad input --------------------------------------------------------------------------------------------

def test_missing_talosconfig(tmp_path):
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster"), tmp_path / "nowhere")
    assert f"The talosconfig {tmp_path / 'nowhere'} does not exist" in output
    assert not (tmp_path / "nowhere").exists(), "a missing talosconfig is never created"


def test_talosconfig_not_yaml(tmp_path):
    path = tmp_path / "talosconfig"
    path.write_text("context: a\ncontexts: {a: [\n")
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster"), path)
    assert f"The talosconfig {path} is not valid YAML at line" in output


def test_missing_context(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster)
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster", context="prod"), talosconfig)
    assert "has no context 'prod'" in output and "Known contexts: emulated" in output


def test_context_without_endpoints(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, endpoints=None)
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster", discover=False), talosconfig)
    assert "No endpoints are set in context 'emulated'" in output


@pytest.mark.parametrize("field, value, message", [
    pytest.param("crt", "not base64 at all!", "The crt in context 'emulated'", id="crt-not-base64"),
    pytest.param("key", "aGVsbG8gd29ybGQ=", "The key in context 'emulated'", id="key-base64-without-pem"),
    pytest.param("crt", "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmdhcmJhZ2UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=",
                 "The client certificate (crt) is not a valid PEM certificate", id="crt-pem-garbage"),
])
@pytest.mark.parametrize("discover", [True, False], ids=["discover", "listed"])
def test_bad_base64_or_pem(cluster, tmp_path, field, value, message, discover):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, **{field: value})
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster", discover=discover), talosconfig)
    assert message in output
    assert not cluster.calls


def test_bad_ca_pem_fails_discovery(cluster, tmp_path):
    garbage = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmdhcmJhZ2UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, ca=garbage)
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster"), talosconfig)
    assert "The CA certificate (ca) of context 'emulated' is not valid PEM" in output
    assert not cluster.calls


def test_expired_certificate_fails_discovery(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, role="expired")
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster"), talosconfig)
    assert "The client certificate of context 'emulated'" in output and "expired on" in output
    assert "Discovery needs a valid certificate" in output
    assert not cluster.calls, "refused before dialing"


def test_expired_certificate_without_discovery_only_warns(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, role="expired")
    data, proc = inventory(tmp_path, write_config(tmp_path, "cluster", discover=False), talosconfig)
    assert hosts(data) == sorted(cluster.addresses)
    warnings = warnings_of(proc)
    assert len(warnings) == 1 and "expired on" in warnings[0] and "Tasks on its nodes will fail" in warnings[0]


def test_all_cannot_be_combined_with_names(cluster, tmp_path):
    output = failed_inventory(tmp_path, write_config(tmp_path, "cluster", context=["all", "emulated"]),
                              cluster.talosconfig_path())
    assert "context: 'all' cannot be combined with context names" in output


# --- secrets ----------------------------------------------------------------------------------------------

def test_no_key_material_anywhere_in_the_output_or_the_cache(emulated_cluster, tmp_path):
    alpha = emulated_cluster(control_planes=1, workers=1, name="alpha")
    beta = emulated_cluster(control_planes=1, workers=1, name="beta")
    talosconfig = merge_talosconfigs(tmp_path / "talosconfig", alpha, beta)
    secrets = [secret for context in ("alpha", "beta")
               for secret in load_settings(talosconfig=str(talosconfig), context=context).secrets()]
    assert len(secrets) > 10
    env = {"ANSIBLE_INVENTORY_CACHE_CONNECTION": str(tmp_path / "cache")}
    outputs = []
    for config, args in ((CASES / "all_contexts.talos.yml", []), (CASES / "listed.talos.yml", []),
                         (CASES / "cached.talos.yml", []), (CASES / "constructed.talos.yml", ["--export"])):
        _data, proc = run_inventory(tmp_path, config, *args, env={"TALOSCONFIG": str(talosconfig), **env})
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)
    outputs.extend(path.read_text() for path in (tmp_path / "cache").iterdir())
    assert len(outputs) > 4, "the cache was written"
    everything = "\n".join(outputs)
    assert "talos-cp-1" in everything
    for secret in secrets:
        assert secret not in everything
    for marker in ("BEGIN", "PRIVATE KEY", "CERTIFICATE"):
        assert marker not in everything


# --- fork safety and the hosts in a playbook --------------------------------------------------------------

IN_PROCESS = """
import json, os, sys, threading
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader

init_plugin_loader()
manager = InventoryManager(loader=DataLoader(), sources=[sys.argv[1]])
sockets = 0
for fd in os.listdir("/proc/self/fd"):
    try:
        sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except FileNotFoundError:  # the directory listing's own descriptor, closed by now
        pass
print(json.dumps({"hosts": sorted(h.name for h in manager.get_hosts()),
                  "threads": [t.name for t in threading.enumerate()], "sockets": sockets,
                  "client_imported": all(name in sys.modules for name in (
                      "grpclib", "google.protobuf", "cryptography.x509", "yaml",
                      "ansible_collections.talos.linux.plugins.module_utils._facts"))}))
"""


def load_in_process(tmp_path, config, talosconfig):
    """Parse the inventory in a fresh Python, as ansible-playbook's main process does; what it left behind."""
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, str(config)], cwd=tmp_path,
                          env=ansible_env(tmp_path, TALOSCONFIG=talosconfig), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_discovery_leaves_no_thread_loop_or_socket_behind(cluster, tmp_path):
    """What a forked worker would inherit from the main process after discovery: nothing of it."""
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    state = load_in_process(tmp_path, CASES / "discovered.talos.yml", talosconfig)
    assert state["hosts"] == ["talos-cp-1", "talos-w-1", "talos-w-2"]
    assert list_calls(cluster) == 1
    assert state["threads"] == ["MainThread"] and state["sockets"] == 0


def test_the_task_stack_is_imported_before_workers_fork(cluster, tmp_path):
    """Forked workers inherit the client stack ready (performance-notes: imports after fork cost every task)."""
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster)
    for case in ("listed.talos.yml", "discovered.talos.yml"):
        state = load_in_process(tmp_path, CASES / case, talosconfig)
        assert state["client_imported"], case
        assert state["threads"] == ["MainThread"] and state["sockets"] == 0, case


def test_hosts_run_tasks_on_the_controller_with_its_python(cluster, tmp_path):
    """ansible_python_interpreter is a trusted template: a module runs with ansible-playbook's own Python."""
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    run = run_playbook(tmp_path, """
- hosts: talos
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
    - name: Interpreter
      ansible.builtin.debug:
        msg: "{{ ansible_python_interpreter }}"
""", CASES / "discovered.talos.yml", env={"TALOSCONFIG": talosconfig})
    assert run.rc == 0, run.output
    assert sorted(r["host"] for r in run.task("Ping") if r["status"] == "ok") == ["talos-cp-1", "talos-w-1", "talos-w-2"]
    interpreters = {r["result"]["msg"] for r in run.task("Interpreter")}
    assert len(interpreters) == 1 and os.path.samefile(interpreters.pop(), sys.executable)


def test_gather_facts_runs_talos_facts_on_each_discovered_node(cluster, tmp_path):
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, role="reader", nodes=None)
    run = run_playbook(tmp_path, """
- hosts: talos
  gather_facts: true
  module_defaults:
    talos.linux.talos_facts:
      gather_subset: [min]
  tasks:
    - name: Hostname
      ansible.builtin.debug:
        msg: "{{ ansible_facts.talos_hostname }} {{ ansible_facts.talos_machine_type }}"
""", CASES / "discovered.talos.yml", env={"TALOSCONFIG": talosconfig})
    assert run.rc == 0, run.output
    got = {r["host"]: r["result"]["msg"] for r in run.task("Hostname")}
    assert got == {"talos-cp-1": "talos-cp-1 controlplane", "talos-w-1": "talos-w-1 worker",
                   "talos-w-2": "talos-w-2 worker"}


def test_fifty_discovered_nodes_with_ten_forks(emulated_cluster, tmp_path):
    """Discovery in the main process, then 10 forked workers each run talos_facts: none may hang."""
    cluster = emulated_cluster(control_planes=1, workers=49)
    talosconfig = write_talosconfig(tmp_path / "talosconfig", cluster, nodes=None)
    run = run_playbook(tmp_path, """
- hosts: all
  gather_facts: false
  tasks:
    - name: Talos facts
      talos.linux.talos_facts:
        gather_subset: [min]
""", CASES / "discovered.talos.yml", "--forks", "10", env={"TALOSCONFIG": talosconfig}, timeout=240)
    assert run.rc == 0, run.output[-3000:]
    results = run.task("Talos facts")
    assert len(results) == 50 and all(r["status"] == "ok" for r in results)
    assert all(r["result"]["ansible_facts"]["talos_hostname"] == r["host"] for r in results)
    assert list_calls(cluster) == 1
