"""`$patch: delete` in strategic merge patches (Talos configloader/internal/decoder/delete.go, selector.go)."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import ConfigError, render_config

BASE = """\
version: v1alpha1
machine:
  type: worker
  nodeLabels:
    rack: r1
    node.kubernetes.io/exclude-from-external-load-balancers: ""
  network:
    hostname: node-a
    interfaces:
      - interface: eth0
        dhcp: true
      - interface: eth1
        addresses: [10.9.0.4/32]
cluster:
  apiServer:
    admissionControl:
      - name: PodSecurity
        configuration: {kind: PodSecurityConfiguration}
      - name: EventRateLimit
        configuration: {kind: Configuration}
---
apiVersion: v1alpha1
kind: SideroLinkConfig
apiUrl: https://omni.example.com?jointoken=abc
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: tailscale
configFiles:
  - content: one
    mountPath: /etc/one
  - content: two
    mountPath: /etc/two
"""


def v1(documents):
    return next(d for d in documents if "kind" not in d)


def test_delete_a_key_and_its_subtree():
    out = v1(render_config(BASE, ["machine:\n  network:\n    hostname:\n      $patch: delete\n"]))
    assert "hostname" not in out["machine"]["network"]
    assert len(out["machine"]["network"]["interfaces"]) == 2


def test_delete_a_map_entry():
    patch = "machine:\n  nodeLabels:\n    node.kubernetes.io/exclude-from-external-load-balancers:\n      $patch: delete\n"
    assert v1(render_config(BASE, [patch]))["machine"]["nodeLabels"] == {"rack": "r1"}


def test_delete_a_whole_subtree():
    out = v1(render_config(BASE, [{"machine": {"network": {"$patch": "delete"}}}]))
    assert "network" not in out["machine"] and out["machine"]["type"] == "worker"


def test_a_delete_only_patch_adds_nothing():
    # The patch's emptied parents must not be merged in as empty mappings.
    out = v1(render_config("version: v1alpha1\nmachine:\n  type: worker\n",
                           ["machine:\n  network:\n    hostname:\n      $patch: delete\n"]))
    assert out == {"version": "v1alpha1", "machine": {"type": "worker"}}


def test_delete_a_list_item_by_its_key():
    patch = "cluster:\n  apiServer:\n    admissionControl:\n      - name: PodSecurity\n        $patch: delete\n"
    plugins = v1(render_config(BASE, [patch]))["cluster"]["apiServer"]["admissionControl"]
    assert [p["name"] for p in plugins] == ["EventRateLimit"]


def test_delete_an_interface_then_add_it_anew_in_the_same_patch():
    patch = ("machine:\n  network:\n    interfaces:\n      - interface: eth0\n        $patch: delete\n"
             "      - interface: eth1\n        addresses: [10.9.0.5/32]\n      - interface: eth0\n        dummy: true\n")
    interfaces = v1(render_config(BASE, [patch]))["machine"]["network"]["interfaces"]
    assert interfaces == [{"interface": "eth1", "addresses": ["10.9.0.4/32", "10.9.0.5/32"]},
                          {"interface": "eth0", "dummy": True}]


def test_delete_an_item_of_another_document():
    patch = ("apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: tailscale\nconfigFiles:\n"
             "  - mountPath: /etc/one\n    $patch: delete\n")
    service = render_config(BASE, [patch])[-1]
    assert service["configFiles"] == [{"content": "two", "mountPath": "/etc/two"}]


def test_delete_a_whole_document():
    documents = render_config(BASE, ["apiVersion: v1alpha1\nkind: SideroLinkConfig\n$patch: delete\n"])
    assert [d.get("kind") for d in documents] == [None, "ExtensionServiceConfig"]


def test_delete_a_named_document_only():
    base = BASE + "---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: nut\nenvironment: [A=1]\n"
    documents = render_config(base, [{"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "nut",
                                      "$patch": "delete"}])
    assert [d.get("name") for d in documents if d.get("kind") == "ExtensionServiceConfig"] == ["tailscale"]


def test_replace_a_document_by_deleting_it_first():
    patch = [{"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "tailscale", "$patch": "delete"},
             {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "tailscale",
              "configFiles": [{"content": "new", "mountPath": "/etc/new"}]}]
    service = render_config(BASE, [patch])[-1]
    assert service["configFiles"] == [{"content": "new", "mountPath": "/etc/new"}]


def test_deleting_what_is_absent_changes_nothing():
    # A patch is applied again on every run; the second run must neither fail nor change anything.
    patch = ("machine:\n  network:\n    hostname:\n      $patch: delete\n    interfaces:\n"
             "      - interface: eth7\n        $patch: delete\n---\n"
             "apiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n")
    once = render_config(BASE, [patch])
    assert render_config(once, [patch]) == once


def test_the_v1alpha1_document_cannot_be_deleted():
    with pytest.raises(ConfigError, match="the v1alpha1 document cannot be deleted"):
        render_config(BASE, ["version: v1alpha1\n$patch: delete\n"])


def test_nothing_inside_a_list_item_can_be_deleted():
    patch = "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        dhcp:\n          $patch: delete\n"
    with pytest.raises(ConfigError, match=r"patch 1: cannot delete inside a list item \(machine\.network\."
                                          r"interfaces\.\[0\]\.dhcp\)") as caught:
        render_config(BASE, [patch])
    assert caught.value.path == "machine.network.interfaces.[0].dhcp"


def test_a_list_item_to_delete_must_say_which():
    with pytest.raises(ConfigError, match="has no field to find it by"):
        render_config(BASE, [{"machine": {"network": {"interfaces": [{"$patch": "delete"}]}}}])


def test_only_delete_is_a_patch_directive():
    with pytest.raises(ConfigError, match=r"\$patch: replace at machine\.network is not supported"):
        render_config(BASE, [{"machine": {"network": {"$patch": "replace", "hostname": "x"}}}])


def test_deleting_through_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match=r"cannot delete machine\.type\.x in v1alpha1: machine\.type is not a "
                                          r"mapping"):
        render_config(BASE, [{"machine": {"type": {"x": {"$patch": "delete"}}}}])


def test_a_list_item_delete_removes_the_first_match_only():
    base = {"version": "v1alpha1", "cluster": {"apiServer": {"extraVolumes": [
        {"hostPath": "/var/lib/a", "mountPath": "/a"}, {"hostPath": "/var/lib/b", "mountPath": "/b"},
        {"hostPath": "/var/lib/a", "mountPath": "/c"}]}}}
    patch = {"cluster": {"apiServer": {"extraVolumes": [{"hostPath": "/var/lib/a", "$patch": "delete"}]}}}
    [out] = render_config(base, [patch])
    assert out["cluster"]["apiServer"]["extraVolumes"] == [{"hostPath": "/var/lib/b", "mountPath": "/b"},
                                                           {"hostPath": "/var/lib/a", "mountPath": "/c"}]
