"""Strategic merge patches, one Talos rule per test (pkg/machinery/config/merge, configpatcher, v1alpha1 types)."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import ConfigError, parse_documents, render_config

BASE = """\
version: v1alpha1
machine:
  type: worker
  certSANs: [10.0.0.1]
  sysctls:
    vm.swappiness: "10"
  network:
    interfaces:
      - interface: eth0
        addresses: [10.0.0.2/24]
        vlans:
          - vlanId: 100
            addresses: [192.168.100.2/24]
            mtu: 1500
      - deviceSelector:
          hardwareAddr: "52:54:00:*"
          driver: virtio_net
        mtu: 9000
cluster:
  network:
    podSubnets: [10.244.0.0/16]
    serviceSubnets: [10.96.0.0/12]
  apiServer:
    admissionControl:
      - name: PodSecurity
        configuration:
          defaults: {enforce: baseline}
    auditPolicy:
      apiVersion: audit.k8s.io/v1
      kind: Policy
      rules: [{level: Metadata}]
"""


def v1(documents):
    [document] = [d for d in documents if "kind" not in d]
    return document


def test_maps_merge_key_by_key():
    out = v1(render_config(BASE, ["machine:\n  sysctls:\n    net.core.somaxconn: '65535'\n"]))
    assert out["machine"]["sysctls"] == {"vm.swappiness": "10", "net.core.somaxconn": "65535"}
    assert out["machine"]["type"] == "worker"


def test_scalars_are_replaced():
    out = v1(render_config(BASE, ["machine:\n  sysctls:\n    vm.swappiness: '60'\n"]))
    assert out["machine"]["sysctls"] == {"vm.swappiness": "60"}


def test_lists_are_appended():
    out = v1(render_config(BASE, [{"machine": {"certSANs": ["10.0.0.9"]}}]))
    assert out["machine"]["certSANs"] == ["10.0.0.1", "10.0.0.9"]


def test_empty_list_in_a_patch_appends_nothing():
    out = v1(render_config(BASE, [{"machine": {"certSANs": []}}]))
    assert out["machine"]["certSANs"] == ["10.0.0.1"]


@pytest.mark.parametrize("field, value", [
    ("podSubnets", ["10.32.0.0/12"]),
    ("podSubnets", ["10.32.0.0/12", "fd00:10:32::/64"]),
    ("serviceSubnets", ["10.112.0.0/12"]),
    ("serviceSubnets", []),
])
def test_cluster_subnets_are_replaced_not_appended(field, value):
    out = v1(render_config(BASE, [{"cluster": {"network": {field: value}}}]))
    assert out["cluster"]["network"][field] == value


def test_audit_policy_is_replaced_whole():
    policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None"}]}
    out = v1(render_config(BASE, [{"cluster": {"apiServer": {"auditPolicy": policy}}}]))
    assert out["cluster"]["apiServer"]["auditPolicy"] == policy


def test_audit_policy_replace_drops_keys_the_patch_leaves_out():
    out = v1(render_config(BASE, [{"cluster": {"apiServer": {"auditPolicy": {"rules": []}}}}]))
    assert out["cluster"]["apiServer"]["auditPolicy"] == {"rules": []}


RULE = """\
apiVersion: v1alpha1
kind: NetworkRuleConfig
name: apid
portSelector:
  ports: [50000]
  protocol: tcp
ingress:
  - subnet: 10.0.0.0/8
"""


def test_network_rule_ports_and_ingress_are_replaced():
    patch = ("apiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: apid\nportSelector:\n  ports: [50001, 50002]\n"
             "ingress:\n  - subnet: 192.168.0.0/16\n")
    [rule] = render_config(RULE, [patch])
    assert rule["portSelector"] == {"ports": [50001, 50002], "protocol": "tcp"}
    assert rule["ingress"] == [{"subnet": "192.168.0.0/16"}]


def test_network_rule_replace_is_per_document_name():
    other = "apiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: other\nportSelector:\n  ports: [1]\n"
    documents = render_config([*parse_documents(RULE), *parse_documents(other)],
                              ["apiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: other\nportSelector:\n  ports: [2]\n"])
    assert [d["portSelector"]["ports"] for d in documents] == [[50000], [2]]


def test_network_rule_ingress_can_be_emptied():
    patch = "apiVersion: v1alpha1\nkind: NetworkRuleConfig\nname: apid\ningress: []\n"
    [rule] = render_config(RULE, [patch])
    assert rule["ingress"] == [] and rule["portSelector"]["ports"] == [50000]


KINDS = ["KubeAuditPolicyConfig", "KubeAuthenticationConfig", "KubeCredentialProviderConfig"]


@pytest.mark.parametrize("kind", KINDS)
def test_kubernetes_configuration_documents_are_replaced(kind):
    base = {"apiVersion": "v1alpha1", "kind": kind, "configuration": {"apiVersion": "x/v1", "items": [1, 2]}}
    patch = {"apiVersion": "v1alpha1", "kind": kind, "configuration": {"items": [3]}}
    [out] = render_config(base, [patch])
    assert out["configuration"] == {"items": [3]}


@pytest.mark.parametrize("kind", KINDS)
def test_kubernetes_configuration_lists_inside_are_not_appended(kind):
    base = {"apiVersion": "v1alpha1", "kind": kind, "configuration": {"rules": [{"level": "Metadata"}]}}
    patch = {"apiVersion": "v1alpha1", "kind": kind, "configuration": {"rules": [{"level": "None"}]}}
    [out] = render_config(base, [patch])
    assert out["configuration"]["rules"] == [{"level": "None"}]


def test_replace_applies_only_at_its_path():
    # machine.network has no replace rule: its nameservers append even though cluster subnets replace.
    out = v1(render_config("version: v1alpha1\nmachine:\n  network:\n    nameservers: [1.1.1.1]\n",
                           [{"machine": {"network": {"nameservers": ["8.8.8.8"]}}}]))
    assert out["machine"]["network"]["nameservers"] == ["1.1.1.1", "8.8.8.8"]


def test_interfaces_merge_by_name():
    patch = "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        addresses: [10.0.0.3/24]\n        mtu: 1400\n"
    interfaces = v1(render_config(BASE, [patch]))["machine"]["network"]["interfaces"]
    assert len(interfaces) == 2
    assert interfaces[0]["addresses"] == ["10.0.0.2/24", "10.0.0.3/24"]
    assert interfaces[0]["mtu"] == 1400


def test_a_new_interface_name_is_appended():
    interfaces = v1(render_config(BASE, [{"machine": {"network": {"interfaces": [{"interface": "eth1"}]}}}]))[
        "machine"]["network"]["interfaces"]
    assert [i.get("interface") for i in interfaces] == ["eth0", None, "eth1"]


def test_interfaces_merge_by_device_selector():
    patch = {"machine": {"network": {"interfaces": [
        {"deviceSelector": {"driver": "virtio_net", "hardwareAddr": "52:54:00:*"}, "mtu": 1450, "dhcp": True}]}}}
    interfaces = v1(render_config(BASE, [patch]))["machine"]["network"]["interfaces"]
    assert len(interfaces) == 2
    assert interfaces[1]["mtu"] == 1450 and interfaces[1]["dhcp"] is True


def test_a_different_device_selector_is_a_new_interface():
    patch = {"machine": {"network": {"interfaces": [{"deviceSelector": {"driver": "e1000"}, "mtu": 1450}]}}}
    interfaces = v1(render_config(BASE, [patch]))["machine"]["network"]["interfaces"]
    assert len(interfaces) == 3 and interfaces[2] == {"deviceSelector": {"driver": "e1000"}, "mtu": 1450}


def test_vlans_merge_by_vlan_id():
    patch = ("machine:\n  network:\n    interfaces:\n      - interface: eth0\n        vlans:\n"
             "          - vlanId: 100\n            mtu: 1400\n          - vlanId: 200\n            dhcp: true\n")
    vlans = v1(render_config(BASE, [patch]))["machine"]["network"]["interfaces"][0]["vlans"]
    assert vlans == [{"vlanId": 100, "addresses": ["192.168.100.2/24"], "mtu": 1400},
                     {"vlanId": 200, "dhcp": True}]


def test_admission_plugins_merge_by_name():
    patch = {"cluster": {"apiServer": {"admissionControl": [
        {"name": "PodSecurity", "configuration": {"defaults": {"audit": "restricted"}}},
        {"name": "EventRateLimit", "configuration": {"limits": []}}]}}}
    plugins = v1(render_config(BASE, [patch]))["cluster"]["apiServer"]["admissionControl"]
    assert plugins == [{"name": "PodSecurity", "configuration": {"defaults": {"enforce": "baseline", "audit": "restricted"}}},
                       {"name": "EventRateLimit", "configuration": {"limits": []}}]


def test_extension_config_files_merge_by_mount_path():
    base = {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "nut",
            "configFiles": [{"content": "a", "mountPath": "/etc/a"}], "environment": ["X=1"]}
    patch = {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "nut",
             "configFiles": [{"content": "b", "mountPath": "/etc/a"}, {"content": "c", "mountPath": "/etc/c"}],
             "environment": ["Y=2"]}
    [out] = render_config(base, [patch])
    assert out["configFiles"] == [{"content": "b", "mountPath": "/etc/a"}, {"content": "c", "mountPath": "/etc/c"}]
    assert out["environment"] == ["X=1", "Y=2"]


def test_zero_values_in_a_patch_leave_values_alone_but_false_replaces():
    base = "version: v1alpha1\nmachine:\n  install: {disk: /dev/sda, wipe: true}\n  kubelet: {image: k, nodeIP: null}\n"
    patch = {"machine": {"install": {"disk": "", "wipe": False}, "kubelet": {"image": None}}}
    out = v1(render_config(base, [patch]))
    assert out["machine"]["install"] == {"disk": "/dev/sda", "wipe": False}
    assert out["machine"]["kubelet"]["image"] == "k"


def test_a_zero_value_is_still_set_where_nothing_was():
    out = v1(render_config("version: v1alpha1\nmachine: {}\n", [{"machine": {"network": {"interfaces": []}}}]))
    assert out["machine"]["network"] == {"interfaces": []}


def test_a_mapping_cannot_merge_into_a_list():
    with pytest.raises(ConfigError, match=r"patch 2: cannot merge a mapping into a list at machine\.certSANs "
                                          r"in v1alpha1") as caught:
        render_config(BASE, [{"machine": {"type": "worker"}}, {"machine": {"certSANs": {"a": 1}}}])
    assert (caught.value.patch, caught.value.path) == (2, "machine.certSANs")


def test_a_scalar_cannot_replace_a_mapping():
    with pytest.raises(ConfigError, match="cannot merge a string into a mapping at machine.sysctls"):
        render_config(BASE, [{"machine": {"sysctls": "none"}}])


def test_a_patch_adds_a_new_document():
    documents = render_config(BASE, ["apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-1\nauto: off\n"])
    assert documents[-1] == {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "worker-1", "auto": "off"}
    assert len(documents) == 2


def test_documents_match_by_kind_and_name():
    base = [{"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "a", "environment": ["A=1"]},
            {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "b", "environment": ["B=1"]}]
    patch = {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "b", "environment": ["B=2"]}
    documents = render_config(base, [patch])
    assert [d["environment"] for d in documents] == [["A=1"], ["B=1", "B=2"]]


def test_a_multi_document_patch_touches_each_document():
    base = BASE + "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: old\n"
    patch = ("machine:\n  sysctls:\n    kernel.pid_max: '4194304'\n---\n"
             "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: new\n---\n"
             "apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers: [{address: 1.1.1.1}]\n")
    documents = render_config(base, [patch])
    assert v1(documents)["machine"]["sysctls"]["kernel.pid_max"] == "4194304"
    assert [d.get("kind") for d in documents] == [None, "HostnameConfig", "ResolverConfig"]
    assert documents[1]["hostname"] == "new"


def test_patches_apply_in_order():
    documents = render_config(BASE, [{"machine": {"certSANs": ["a"], "type": "controlplane"}},
                                     {"machine": {"certSANs": ["b"], "type": "init"}}])
    assert v1(documents)["machine"]["certSANs"] == ["10.0.0.1", "a", "b"]
    assert v1(documents)["machine"]["type"] == "init"


def test_patches_only_start_from_the_current_config():
    documents = render_config(None, [{"machine": {"type": "controlplane"}}], current=BASE)
    assert v1(documents)["machine"]["type"] == "controlplane"


def test_nothing_to_start_from_is_an_error():
    with pytest.raises(ConfigError, match="no config to start from"):
        render_config(None, [{"machine": {}}])


def test_a_config_with_two_documents_of_one_kind_and_name_is_refused():
    with pytest.raises(ConfigError, match="duplicate document HostnameConfig"):
        render_config("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: a\n---\n"
                      "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: b\n")


def test_a_patch_document_without_kind_is_refused():
    with pytest.raises(ConfigError, match="patch 1: document 1 has no kind"):
        render_config(BASE, [{"hostname": "x"}])
    with pytest.raises(ConfigError, match=r"patch 1: document 1 \(HostnameConfig\) has no apiVersion"):
        render_config(BASE, [{"kind": "HostnameConfig", "hostname": "x"}])


# Every merge:"replace" field found in the Talos types: the contract of merge.REPLACED.
REPLACED_FIELDS = [
    ("v1alpha1", ("cluster", "network", "podSubnets")),
    ("v1alpha1", ("cluster", "network", "serviceSubnets")),
    ("v1alpha1", ("cluster", "apiServer", "auditPolicy")),
    ("NetworkRuleConfig", ("ingress",)),
    ("NetworkRuleConfig", ("portSelector", "ports")),
    ("NetworkLinkIngressConfig", ("destinationAddresses",)),
    ("BGPInstanceConfig", ("advertise",)),
    ("BGPInstanceConfig", ("importRoutes",)),
    ("BGPInstanceConfig", ("neighbors",)),
    ("CRIBaseRuntimeSpecConfig", ("overrides",)),
    ("KubeAuditPolicyConfig", ("configuration",)),
    ("KubeAuthenticationConfig", ("configuration",)),
    ("KubeCredentialProviderConfig", ("configuration",)),
]


def _document(kind, path, value):
    document = {"version": "v1alpha1"} if kind == "v1alpha1" else {"apiVersion": "v1alpha1", "kind": kind, "name": "n"}
    node = document
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return document


def _at(document, path):
    for key in path:
        document = document[key]
    return document


@pytest.mark.parametrize("kind, path", REPLACED_FIELDS)
@pytest.mark.parametrize("old, new", [
    (["a", "b"], ["c"]),
    ({"rules": [{"level": "Metadata"}], "kind": "Policy"}, {"rules": [{"level": "None"}]}),
])
def test_every_replace_field_is_replaced(kind, path, old, new):
    [out] = render_config(_document(kind, path, old), [_document(kind, path, new)])
    assert _at(out, path) == new
