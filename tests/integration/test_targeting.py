"""Which nodes, endpoints and context a task uses, through real ansible-playbook runs against the emulator.

Issue 10, points 1-4, 11 and 12 (timeout): no task acts on nodes it did not name, host variables never add
what the task did not write, the read-only modules share one multi-node rule, and impossible connection
values are refused before anything is sent.
"""

import json

import pytest
import yaml

from tests.integration.playbook import run_playbook, static_inventory

SPACE = "        "
MUTATING = ("ApplyConfiguration", "Upgrade", "Reboot", "EtcdDefragment", "EtcdRemoveMemberByID",
            "EtcdLeaveCluster", "EtcdForfeitLeadership", "Bootstrap")
# A task for each module that would act if it got as far as a node.
MODULE_ARGS = {
    "talos_facts": {"gather_subset": ["min"]},
    "talos_etcd_info": {},
    "talos_config": {"patches": [{"machine": {"sysctls": {"net.core.somaxconn": "1024"}}}]},
    "talos_upgrade": {"image": "ghcr.io/siderolabs/installer:v1.13.6"},
    "talos_etcd": {"state": "defragmented"},
}


def task(name, module, args, extra=""):
    lines = "".join(f"{SPACE}{key}: {json.dumps(value)}\n" for key, value in args.items()) or f"{SPACE}{{}}\n"
    return f"    - name: {name}\n      talos.linux.{module}:\n{lines}{extra}"


def play(hosts, *tasks):
    return f"- hosts: {hosts}\n  gather_facts: false\n  tasks:\n" + "".join(tasks)


def localhost(tmp_path):
    path = tmp_path / "localhost"
    path.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    return path


def failed(run, name):
    return run.task(name)[0]["status"] == "failed"


def sent(cluster, *methods):
    """How many calls of ``methods`` (all calls without) the emulated nodes served."""
    return sum(count for (_address, path), count in cluster.calls.items()
               if not methods or path.rsplit("/", 1)[-1] in methods)


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=1, workers=2)


# --- point 1: an empty node is an error, never the context's nodes ---------------------------------------

@pytest.mark.parametrize("targets,expected", [
    ({"node": ""}, "node is empty ('')"),
    ({"node": "   "}, "node is empty ('   ')"),
    ({"nodes": []}, "nodes is empty ([])"),
    ({"nodes": ["127.0.0.1", ""]}, "nodes is empty at item 1 ('')"),
])
def test_an_empty_node_is_an_error_for_every_module_and_nothing_is_sent(tmp_path, cluster, targets, expected):
    common = {"talosconfig": str(cluster.talosconfig_path()), **targets}
    tasks = [task(module, module, {**common, **args}, "      ignore_errors: true\n")
             for module, args in MODULE_ARGS.items()]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path))
    assert run.rc == 0, run.output
    for module in MODULE_ARGS:
        result = run.result(module)
        assert failed(run, module), (module, result)
        assert expected in result["msg"] and "Nothing was sent" in result["msg"], (module, result["msg"])
        assert "nodes_from_context" not in result
    assert sent(cluster) == 0, cluster.calls_json()


def test_an_empty_templated_node_on_an_inventory_host_is_an_error_too(tmp_path, cluster):
    """talos_node rendered empty fills node with '': the same error, in both doors."""
    worker = cluster.workers[0]
    inventory = static_inventory(tmp_path, cluster, hosts=[worker], talos_node="{{ empty_var }}", empty_var="")
    tasks = [task("in-process", "talos_config", MODULE_ARGS["talos_config"], "      ignore_errors: true\n"),
             task("module process", "talos_config", MODULE_ARGS["talos_config"],
                  "      async: 60\n      poll: 1\n      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("all", *tasks), inventory)
    for name in ("in-process", "module process"):
        assert "node is empty ('')" in run.result(name)["msg"], run.result(name)
    assert sent(cluster) == 0, cluster.calls_json()


def test_the_context_nodes_are_used_only_when_no_node_is_given_and_a_change_says_so(tmp_path, cluster):
    config = str(cluster.talosconfig_path())
    tasks = [task("config", "talos_config", {"talosconfig": config, **MODULE_ARGS["talos_config"]}),
             task("facts", "talos_facts", {"talosconfig": config, **MODULE_ARGS["talos_facts"]})]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path), "--check")
    assert run.rc == 0, run.output
    config_result = run.result("config")
    assert config_result["nodes_from_context"] == cluster.addresses
    assert sorted(config_result["nodes"]) == sorted(cluster.addresses)
    assert any("talosconfig context" in w and all(a in w for a in cluster.addresses)
               for w in config_result["warnings"]), config_result.get("warnings")
    # a read-only module reads the context's nodes without a word
    facts = run.result("facts")
    assert "nodes_from_context" not in facts and sorted(facts["nodes"]) == sorted(cluster.addresses)
    assert sent(cluster, *MUTATING) == 0

    named = run_playbook(tmp_path, play("localhost", task("config", "talos_config", {
        "talosconfig": config, "node": cluster.workers[0], **MODULE_ARGS["talos_config"]})),
        localhost(tmp_path), "--check")
    assert named.rc == 0, named.output
    assert "nodes_from_context" not in named.result("config")
    assert not any("talosconfig context" in w for w in named.result("config").get("warnings", []))


# --- point 2: host variables never create a conflict the user did not write ------------------------------

def test_nodes_on_an_inventory_host_is_not_in_conflict_with_its_talos_node(tmp_path, cluster):
    inventory = static_inventory(tmp_path, cluster, hosts=[cluster.control_planes[0]])
    nodes = {"nodes": cluster.workers, "gather_subset": ["min"]}
    tasks = [task("in-process", "talos_facts", nodes),
             task("module process", "talos_facts", nodes, "      async: 60\n      poll: 1\n"),
             task("empty", "talos_facts", {"nodes": []}, "      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("all", *tasks), inventory)
    for name in ("in-process", "module process"):
        result = run.result(name)
        assert "mutually exclusive" not in result.get("msg", ""), result
        assert sorted(result["nodes"]) == sorted(cluster.workers), result
    empty = run.result("empty")["msg"]
    assert "nodes is empty ([])" in empty and "mutually exclusive" not in empty


def test_the_talos_node_environment_variable_is_not_in_conflict_with_nodes(tmp_path, cluster):
    args = {"talosconfig": str(cluster.talosconfig_path()), "nodes": cluster.workers, "gather_subset": ["min"]}
    tasks = [task("in-process", "talos_facts", args),
             task("module process", "talos_facts", args, "      async: 60\n      poll: 1\n")]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path),
                       env={"TALOS_NODE": cluster.control_planes[0]})
    assert run.rc == 0, run.output
    for name in ("in-process", "module process"):
        assert sorted(run.result(name)["nodes"]) == sorted(cluster.workers)


# --- point 3: a task's own talosconfig or context is used whole ------------------------------------------

def two_context_talosconfig(cluster, tmp_path):
    """The emulated cluster's talosconfig with a second context, 'good', that reaches it too."""
    data = yaml.safe_load(cluster.talosconfig_path().read_text())
    data["contexts"]["good"] = dict(data["contexts"][data["context"]])
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(data))
    return path


def inventory_of_another_talosconfig(tmp_path, cluster, hosts):
    """Host variables as the inventory sets them from another talosconfig: its context and endpoints."""
    other = tmp_path / "other-talosconfig"
    other.write_text(yaml.safe_dump({"context": "elsewhere", "contexts": {"elsewhere": {
        "endpoints": ["127.0.0.250"], "nodes": []}}}))
    return static_inventory(tmp_path, cluster, hosts=hosts, talos_config_path=str(other),
                            talos_context="elsewhere", talos_endpoints=["127.0.0.250:50000"])


@pytest.mark.parametrize("door", ["in-process", "module process"])
def test_a_task_talosconfig_is_not_mixed_with_the_inventory_context_and_endpoints(tmp_path, cluster, door):
    worker = cluster.workers[0]
    inventory = inventory_of_another_talosconfig(tmp_path, cluster, [worker])
    extra = "      async: 60\n      poll: 1\n" if door == "module process" else ""
    args = {"gather_subset": ["min"], "timeout": 3}
    tasks = [task("own talosconfig", "talos_facts", {"talosconfig": str(cluster.talosconfig_path()), **args},
                  extra + "      ignore_errors: true\n"),
             task("own context", "talos_facts", {"talosconfig": str(two_context_talosconfig(cluster, tmp_path)),
                                                 "context": "good", **args}, extra + "      ignore_errors: true\n"),
             task("bad talosconfig", "talos_facts", {"talosconfig": str(tmp_path / "absent"), **args},
                  extra + "      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("all", *tasks), inventory)
    for name in ("own talosconfig", "own context"):
        result = run.result(name)
        assert not failed(run, name), (name, result)
        assert result["ansible_facts"]["talos_hostname"] == cluster.node(worker).hostname
    # the task's file is the one that is read, and reported: the inventory's never stands in for it
    bad = run.result("bad talosconfig")
    assert failed(run, "bad talosconfig") and str(tmp_path / "absent") in bad["msg"] and "does not exist" in bad["msg"], bad


def test_a_task_context_uses_its_own_endpoints_not_the_inventory_ones(tmp_path, cluster):
    worker = cluster.workers[0]
    two = two_context_talosconfig(cluster, tmp_path)
    inventory = static_inventory(tmp_path, cluster, hosts=[worker], talos_config_path=str(two),
                                 talos_endpoints=["127.0.0.250:50000"])
    run = run_playbook(tmp_path, play("all", task("facts", "talos_facts", {
        "context": "good", "gather_subset": ["min"], "timeout": 3})), inventory)
    assert run.rc == 0, run.output
    assert run.result("facts")["ansible_facts"]["talos_hostname"] == cluster.node(worker).hostname


def test_gather_facts_uses_module_defaults_talosconfig_whole(tmp_path, cluster):
    """gather_facts runs talos_facts as a module process with the host variables in its environment."""
    worker = cluster.workers[0]
    inventory = inventory_of_another_talosconfig(tmp_path, cluster, [worker])
    text = f"""
- hosts: all
  gather_facts: true
  module_defaults:
    talos.linux.talos_facts:
      talosconfig: {cluster.talosconfig_path()}
      gather_subset: [min]
      timeout: 3
  tasks:
    - name: show
      ansible.builtin.debug:
        msg: "{{{{ ansible_facts.talos_hostname }}}}"
"""
    run = run_playbook(tmp_path, text, inventory)
    assert run.rc == 0, run.output
    assert run.result("show")["msg"] == cluster.node(worker).hostname


# --- point 4: one multi-node rule for the read-only modules ----------------------------------------------

@pytest.mark.parametrize("module", ["talos_facts", "talos_etcd_info"])
def test_a_read_where_every_node_failed_fails(tmp_path, cluster, module):
    for address in cluster.addresses:
        cluster.take_down(address)
    config = str(cluster.talosconfig_path())
    tasks = [task("context nodes", module, {"talosconfig": config, "timeout": 2, **MODULE_ARGS[module]},
                  "      ignore_errors: true\n"),
             task("named nodes", module, {"talosconfig": config, "timeout": 2, "nodes": cluster.control_planes
                                          + cluster.workers[:1], **MODULE_ARGS[module]},
                  "      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path))
    assert "Traceback" not in run.output
    for name in ("context nodes", "named nodes"):
        result = run.result(name)
        assert failed(run, name), (name, result)
        assert result.get("nodes", {}) == {} and result["failed_nodes"], (name, result)
        assert f"{len(result['failed_nodes'])} of {len(result['failed_nodes'])} nodes" in result["msg"]


def test_an_etcd_read_over_the_context_nodes_reads_the_control_planes_only(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=2)
    run = run_playbook(tmp_path, play("localhost", task("etcd", "talos_etcd_info", {
        "talosconfig": str(cluster.talosconfig_path())})), localhost(tmp_path))
    assert run.rc == 0, run.output
    result = run.result("etcd")
    assert sorted(result["nodes"]) == sorted(cluster.control_planes) and result["failed_nodes"] == {}
    assert all(r["healthy"] is True for r in result["nodes"].values())
    assert result["warnings"] == []
    for worker in cluster.workers:
        assert not [path for (address, path), count in cluster.calls.items()
                    if address == worker and "Etcd" in path and count], cluster.calls_json()[worker]


def test_an_etcd_read_over_the_context_nodes_reports_a_control_plane_that_is_down(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=1)
    down = cluster.control_planes[2]
    cluster.take_down(down)
    config = str(cluster.talosconfig_path())
    tasks = [task("lenient", "talos_etcd_info", {"talosconfig": config, "timeout": 2}),
             task("strict", "talos_etcd_info", {"talosconfig": config, "timeout": 2, "strict": True},
                  "      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path))
    lenient = run.result("lenient")
    assert not failed(run, "lenient"), lenient
    assert sorted(lenient["nodes"]) == sorted(cluster.control_planes[:2]) and list(lenient["failed_nodes"]) == [down]
    assert any(down in w and "failed_nodes" in w for w in lenient["warnings"])
    strict = run.result("strict")
    assert failed(run, "strict") and "etcd could not be read on 1 of 3 nodes" in strict["msg"], strict


# --- point 11 and 12: endpoints and timeout that cannot be right -----------------------------------------

def test_an_endpoint_that_is_not_a_url_names_the_option_and_the_value(tmp_path, cluster):
    bad_context = tmp_path / "bad-endpoint"
    data = yaml.safe_load(cluster.talosconfig_path().read_text())
    data["contexts"][data["context"]]["endpoints"] = ["https://[fd00::1"]
    bad_context.write_text(yaml.safe_dump(data))
    tasks = [task("option", "talos_facts", {"talosconfig": str(cluster.talosconfig_path()),
                                            "endpoints": ["http://[bad"]}, "      ignore_errors: true\n"),
             task("context", "talos_facts", {"talosconfig": str(bad_context)}, "      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path))
    option = run.result("option")["msg"]
    assert "'http://[bad'" in option and "endpoints option" in option and "Invalid IPv6 URL" in option, option
    context = run.result("context")["msg"]
    assert "'https://[fd00::1'" in context and f"context {data['context']!r} of {bad_context}" in context, context
    assert "Traceback" not in run.output and sent(cluster) == 0


@pytest.mark.parametrize("timeout", [0, -5, "nan", "inf"])
def test_a_timeout_that_cannot_be_right_is_refused_before_sending(tmp_path, cluster, timeout):
    args = {"talosconfig": str(cluster.talosconfig_path()), "node": cluster.workers[0], "timeout": timeout}
    tasks = [task("facts", "talos_facts", {**args, "gather_subset": ["min"]}, "      ignore_errors: true\n"),
             task("config", "talos_config", {**args, **MODULE_ARGS["talos_config"]},
                  "      async: 60\n      poll: 1\n      ignore_errors: true\n")]
    run = run_playbook(tmp_path, play("localhost", *tasks), localhost(tmp_path))
    for name in ("facts", "config"):
        msg = run.result(name)["msg"]
        assert msg.startswith("timeout: ") and "is refused" in msg and "greater than 0" in msg, msg
        assert repr(float(timeout)) in msg, msg
    assert sent(cluster) == 0
