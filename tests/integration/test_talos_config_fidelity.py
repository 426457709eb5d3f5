"""talos_config renders and compares what Talos itself would: through ansible-playbook against the emulator."""

import yaml

from tests.integration.playbook import run_playbook, static_inventory

APPLY = "/machine.MachineService/ApplyConfiguration"
MANIFEST = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fidelity\n"


def play(**args):
    task = {"name": "config", "talos.linux.talos_config": args}
    return yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [task]}], sort_keys=False)


def v1alpha1_only(config):
    document = next(d for d in yaml.safe_load_all(config) if d and d.get("version") == "v1alpha1")
    return document


def test_inline_manifest_the_node_holds_trimmed_is_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, talos_version="1.12.4")
    address = cluster.control_planes[0]
    host = cluster.node(address).hostname
    inventory = static_inventory(tmp_path, cluster, hosts=[address])

    def with_manifest(contents):
        documents = [d for d in yaml.safe_load_all(cluster.node(address).config) if d]
        v1alpha1 = next(d for d in documents if d.get("version") == "v1alpha1")
        v1alpha1["cluster"]["inlineManifests"] = [{"name": "fidelity", "contents": contents}]
        return yaml.safe_dump_all(documents)

    stored = run_playbook(tmp_path, play(config=with_manifest(MANIFEST)), inventory)
    assert stored.rc == 0, stored.output
    assert cluster.calls[(address, APPLY)] == 1
    # The same manifest as a template often writes it: a leading newline, which Talos trims when it loads.
    again = run_playbook(tmp_path, play(config=with_manifest("\n\n" + MANIFEST)), inventory)
    assert again.rc == 0, again.output
    assert again.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 1, "no ApplyConfiguration for a manifest Talos holds the same"


def test_json6902_adds_to_a_list_the_config_does_not_spell(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, talos_version="1.11.6")
    address = cluster.control_planes[0]
    host = cluster.node(address).hostname
    inventory = static_inventory(tmp_path, cluster, hosts=[address])
    config = v1alpha1_only(cluster.node(address).config)
    del config["machine"]["certSANs"]
    args = {"config": yaml.safe_dump(config), "mode": "auto",
            "patches": [[{"op": "add", "path": "/machine/certSANs/-", "value": "api.example.com"}]]}

    first = run_playbook(tmp_path, play(**args), inventory)
    assert first.rc == 0, first.output
    assert v1alpha1_only(cluster.node(address).config)["machine"]["certSANs"] == ["api.example.com"]
    applied = cluster.calls[(address, APPLY)]
    second = run_playbook(tmp_path, play(**args), inventory)
    assert second.rc == 0, second.output
    assert second.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == applied
