"""talos.linux.talos_facts through real ansible-playbook runs against the emulator."""

import base64
import json

import pytest
import yaml
from grpclib.const import Status

from tests.integration.playbook import run_playbook, static_inventory

FACTS_TASK = """
- hosts: {hosts}
  gather_facts: false
  tasks:
    - name: facts
      talos.linux.talos_facts:
{args}
      register: gathered
"""


def facts_play(hosts="all", **args):
    lines = "".join(f"        {k}: {json.dumps(v)}\n" for k, v in args.items())
    return FACTS_TASK.format(hosts=hosts, args=lines or "        {}\n")


def rpc_calls(cluster, address, *names):
    return {name: cluster.calls[(address, name)] for name in names}


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=1, workers=1)


def test_facts_of_control_planes_and_workers(tmp_path, cluster):
    run = run_playbook(tmp_path, facts_play(), static_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    cp, worker = cluster.control_planes[0], cluster.workers[0]
    for address in (cp, worker):
        node = cluster.node(address)
        result = run.result("facts", node.hostname)
        facts = result["ansible_facts"]
        assert result["changed"] is False
        assert facts["talos_node"] == address and facts["talos_hostname"] == node.hostname
        assert facts["talos_version"] == "1.13.5" and facts["talos_version_info"]["tag"] == "v1.13.5"
        assert facts["talos_machine_type"] == node.machine_type
        assert facts["talos_stage"] == "running" and facts["talos_ready"] is True
        assert facts["talos_client_certificate"]["roles"] == ["os:admin"]
        assert facts["talos_boot_id"] == node.boot_id
        assert facts["talos_addresses"] == [address]
        assert {"address": f"{address}/24", "link": "eth0", "family": "inet4", "scope": "global"} in \
            facts["talos_interface_addresses"]
        assert {link["name"] for link in facts["talos_links"]} >= {"eth0", "lo"}
        assert facts["talos_disks"] and facts["talos_memory"]["total_bytes"] > 0
        assert any(s["id"] == "machined" and s["healthy"] for s in facts["talos_services"])
        assert facts["talos_extensions"] == []
        assert set(result["gathered_subsets"]) == {"min", "boot", "network", "hardware", "services", "extensions",
                                                   "etcd"}
    cp_etcd = run.result("facts", cluster.node(cp).hostname)["ansible_facts"]["talos_etcd"]
    assert len(cp_etcd["member_id"]) == 16 and cp_etcd["is_leader"] is True and cp_etcd["errors"] == []
    assert run.result("facts", cluster.node(worker).hostname)["ansible_facts"]["talos_etcd"] is None
    assert "[WARNING]" not in run.output


SUBSET_KEYS = {
    "boot": {"talos_boot_id"},
    "network": {"talos_addresses", "talos_links", "talos_routes", "talos_resolvers", "talos_interface_addresses"},
    "hardware": {"talos_disks", "talos_memory", "talos_processor"},
    "services": {"talos_services"},
    "extensions": {"talos_extensions"},
    "etcd": {"talos_etcd"},
}
SUBSET_RPCS = {
    "boot": ["/machine.MachineService/Read"],
    "hardware": ["/storage.StorageService/Disks", "/machine.MachineService/Memory", "/machine.MachineService/CPUInfo"],
    "services": ["/machine.MachineService/ServiceList"],
    "etcd": ["/machine.MachineService/EtcdStatus", "/machine.MachineService/EtcdMemberList"],
}


@pytest.mark.parametrize("subset,expected", [
    (["min"], set()),
    (["!all"], set()),
    (["all"], set(SUBSET_KEYS)),
    (["network"], {"network"}),
    (["hardware", "services"], {"hardware", "services"}),
    (["!network"], set(SUBSET_KEYS) - {"network"}),
    (["all", "!hardware", "!boot"], set(SUBSET_KEYS) - {"hardware", "boot"}),
    (["boot"], {"boot"}),
    (["extensions"], {"extensions"}),
    (["etcd"], {"etcd"}),
])
def test_gather_subset_reads_what_it_names_and_nothing_else(tmp_path, cluster, subset, expected):
    cp = cluster.control_planes[0]
    hostname = cluster.node(cp).hostname
    run = run_playbook(tmp_path, facts_play(hosts=hostname, gather_subset=subset), static_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    facts = run.result("facts", hostname)["ansible_facts"]
    for name, keys in SUBSET_KEYS.items():
        if name in expected:
            assert keys <= set(facts), (name, sorted(facts))
        else:
            assert not keys & set(facts), (name, sorted(facts))
    for name, rpcs in SUBSET_RPCS.items():
        counts = rpc_calls(cluster, cp, *rpcs)
        assert all(counts.values()) if name in expected else not any(counts.values()), (name, counts)
    assert "talos_version" in facts and "talos_hostname" in facts


def test_unknown_subset_is_refused_by_name(tmp_path, cluster):
    run = run_playbook(tmp_path, facts_play(gather_subset=["min", "netwrok"]), static_inventory(tmp_path, cluster))
    assert run.rc != 0
    msg = run.result("facts", cluster.node(cluster.workers[0]).hostname)["msg"]
    assert "gather_subset" in msg and "'netwrok'" in msg and "network" in msg
    assert sum(cluster.calls.values()) == 0, "nothing is sent for bad input"


def test_reader_certificate_skips_admin_facts_with_one_warning(tmp_path, cluster):
    run = run_playbook(tmp_path, facts_play(), static_inventory(tmp_path, cluster, role="reader"))
    assert run.rc == 0, run.output
    for address in cluster.addresses:
        result = run.result("facts", cluster.node(address).hostname)
        assert "talos_boot_id" not in result["ansible_facts"]
        assert result["ansible_facts"]["talos_services"]
        assert len(result["warnings"]) == 1 and "os:admin" in result["warnings"][0]
    assert not any(cluster.calls[(a, "/machine.MachineService/Read")] for a in cluster.addresses)


def test_gather_facts_through_the_inventory_host_vars(tmp_path, cluster):
    play = """
- hosts: all
  gather_facts: true
  tasks:
    - name: show
      ansible.builtin.debug:
        msg: "{{ ansible_facts.talos_hostname }} {{ ansible_facts.talos_machine_type }}"
"""
    run = run_playbook(tmp_path, play, static_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    for address in cluster.addresses:
        node = cluster.node(address)
        assert run.result("show", node.hostname)["msg"] == f"{node.hostname} {node.machine_type}"


def test_fan_out_over_many_nodes_with_one_down(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=3)
    down = cluster.workers[1]
    cluster.take_down(down)
    inventory = tmp_path / "localhost.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    args = {"talosconfig": str(cluster.talosconfig_path()), "nodes": cluster.addresses, "gather_subset": ["min"],
            "timeout": 3}
    run = run_playbook(tmp_path, facts_play(hosts="localhost", **args), inventory)
    assert run.rc == 0, run.output
    result = run.result("facts")
    assert sorted(result["nodes"]) == sorted(a for a in cluster.addresses if a != down)
    assert list(result["failed_nodes"]) == [down]
    assert result["failed_nodes"][down]["code"] == "Unavailable" and down in result["failed_nodes"][down]["msg"]
    assert any(down in w for w in result["warnings"])
    assert all(f["talos_ready"] for f in result["nodes"].values())

    strict = run_playbook(tmp_path, facts_play(hosts="localhost", strict=True, **args), inventory)
    assert strict.rc != 0 and "Could not gather facts from 1 of 4 nodes" in strict.result("facts")["msg"]


def test_module_door_returns_what_the_action_door_returns(tmp_path, cluster):
    play = """
- hosts: all
  gather_facts: false
  tasks:
    - name: in-process
      talos.linux.talos_facts: {gather_subset: [min, services]}
      register: action_door
    - name: module process
      talos.linux.talos_facts: {gather_subset: [min, services]}
      async: 60
      poll: 1
      register: module_door
    - name: compare
      ansible.builtin.assert:
        that:
          - action_door.ansible_facts == module_door.ansible_facts
          - action_door.gathered_subsets == module_door.gathered_subsets
"""
    run = run_playbook(tmp_path, play, static_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    # an async job id: the module ran as its own process (the action door never runs async)
    assert "ansible_job_id" in run.result("module process", cluster.node(cluster.workers[0]).hostname)


def test_check_mode_is_fully_supported(tmp_path, cluster):
    run = run_playbook(tmp_path, facts_play(gather_subset=["min"]), static_inventory(tmp_path, cluster), "--check")
    assert run.rc == 0, run.output
    assert all(r["result"]["changed"] is False and r["result"]["ansible_facts"] for r in run.task("facts"))


def test_module_defaults_group_sets_the_connection_once(tmp_path, cluster):
    play = f"""
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/talos.linux.talos:
      talosconfig: {cluster.talosconfig_path()}
      node: {cluster.workers[0]}
  tasks:
    - name: facts
      talos.linux.talos_facts: {{gather_subset: [min]}}
"""
    inventory = tmp_path / "hosts"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    run = run_playbook(tmp_path, play, inventory)
    assert run.rc == 0, run.output
    assert run.result("facts")["ansible_facts"]["talos_hostname"] == cluster.node(cluster.workers[0]).hostname


def test_a_node_that_is_not_in_the_cluster(tmp_path, cluster):
    run = run_playbook(tmp_path, facts_play(hosts="localhost", talosconfig=str(cluster.talosconfig_path()),
                                            node="127.0.0.250", gather_subset=["min"], timeout=3),
                       _localhost(tmp_path))
    assert run.rc != 0
    result = run.result("facts")
    assert "127.0.0.250" in result["msg"] and result["code"] == "Unavailable"


def _localhost(tmp_path):
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    return inventory


def _broken_config(cluster, tmp_path, mutate):
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    mutate(config, config["contexts"][config["context"]])
    path = tmp_path / "broken-talosconfig"
    path.write_text(yaml.safe_dump(config) if isinstance(config, dict) else config)
    return path


@pytest.mark.parametrize("case,expected", [
    ("missing", "does not exist"),
    ("not-yaml", "is not valid YAML at line"),
    ("missing-context", "has no context 'nope'"),
    ("no-endpoints", "No endpoints are set in context"),
    ("bad-base64", "neither base64-encoded PEM"),
    ("bad-pem", "holds no PEM block"),
    ("expired", "expired on"),
    ("unreachable", "failed after"),
])
def test_bad_connection_input_is_a_clear_error(tmp_path, cluster, case, expected):
    args = {"gather_subset": ["min"], "timeout": 2}
    if case == "missing":
        args["talosconfig"] = str(tmp_path / "nope" / "config")
    elif case == "not-yaml":
        path = tmp_path / "not-yaml"
        path.write_text("context: [oops\n")
        args["talosconfig"] = str(path)
    elif case == "missing-context":
        args.update(talosconfig=str(cluster.talosconfig_path()), context="nope")
    elif case == "no-endpoints":
        args["talosconfig"] = str(_broken_config(cluster, tmp_path, lambda c, ctx: ctx.pop("endpoints")))
    elif case == "bad-base64":
        args["talosconfig"] = str(_broken_config(cluster, tmp_path, lambda c, ctx: ctx.update(key="!!not base64!!")))
    elif case == "bad-pem":
        args["talosconfig"] = str(_broken_config(
            cluster, tmp_path, lambda c, ctx: ctx.update(crt=base64.b64encode(b"just text").decode())))
    elif case == "expired":
        args["talosconfig"] = str(cluster.talosconfig_path("expired"))
    elif case == "unreachable":
        args.update(talosconfig=str(cluster.talosconfig_path()), endpoints=["127.0.0.251"], node=cluster.workers[0])
    run = run_playbook(tmp_path, facts_play(hosts="localhost", **args), _localhost(tmp_path))
    assert run.rc != 0
    assert expected in run.result("facts")["msg"], run.result("facts")["msg"]
    assert "Traceback" not in run.output


def test_key_material_never_shows_even_at_vvvv(tmp_path, cluster):
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    ctx = config["contexts"][config["context"]]
    pems = {name: base64.b64decode(ctx[name]).decode() for name in ("ca", "crt", "key")}
    play = f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: inline credentials, module process
      talos.linux.talos_facts:
        endpoints: {json.dumps([cluster.control_planes[0]])}
        ca: {json.dumps(pems["ca"])}
        crt: {json.dumps(pems["crt"])}
        key: {json.dumps(pems["key"])}
        gather_subset: [min]
      async: 60
      poll: 1
    - name: base64 credentials, in-process
      talos.linux.talos_facts:
        endpoints: {json.dumps([cluster.control_planes[0]])}
        ca: {ctx["ca"]}
        crt: {ctx["crt"]}
        key: {ctx["key"]}
        gather_subset: [min]
    - name: failing with credentials, in-process
      talos.linux.talos_facts:
        endpoints: ["127.0.0.252"]
        key: {ctx["key"]}
        crt: {ctx["crt"]}
        ca: {ctx["ca"]}
        timeout: 1
      ignore_errors: true
"""
    run = run_playbook(tmp_path, play, static_inventory(tmp_path, cluster), "-vvvv")
    assert run.rc == 0, run.output
    secrets = [ctx["key"], ctx["crt"]] + [line for name in ("key", "crt") for line in pems[name].splitlines()
                                          if "-----" not in line and len(line) > 16]
    output = run.output + json.dumps(run.results)
    for secret in secrets:
        assert secret not in output


def test_unavailable_burst_is_retried(tmp_path, cluster):
    worker = cluster.workers[0]
    cluster.fail("Hostname", code=Status.UNAVAILABLE, count=2, node=worker, message="restarting")
    run = run_playbook(tmp_path, facts_play(hosts=cluster.node(worker).hostname, gather_subset=["min"]),
                       static_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    assert cluster.calls[(worker, "/machine.MachineService/Hostname")] == 3
