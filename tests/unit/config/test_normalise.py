"""The canonical text: equal for configs that say the same thing, different for any real change, and fast."""

import hashlib

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import (
    ConfigError, config_sha256, normalise_config, parse_documents)

BLOCK = """\
# machine config, block style
version: v1alpha1
machine:
  type: worker   # a worker
  certSANs:
    - 10.0.0.1
    - 10.0.0.2
  sysctls:
    vm.swappiness: "10"
  kubelet: {}
  network:
    interfaces: []
cluster:
  controlPlane:
    endpoint: https://10.0.0.10:6443
---
apiVersion: v1alpha1
kind: HostnameConfig
hostname: w1
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: nut
environment: [A=1]
"""

# The same configuration: other comments, key order, document order, and flow style.
FLOW = """\
apiVersion: v1alpha1
kind: ExtensionServiceConfig
environment: ["A=1"]
name: nut
---
kind: HostnameConfig
hostname: 'w1'
apiVersion: v1alpha1
---
cluster: {controlPlane: {endpoint: "https://10.0.0.10:6443"}}
machine: {network: {interfaces: []}, kubelet: {}, sysctls: {vm.swappiness: '10'},
          certSANs: [10.0.0.1, 10.0.0.2], type: worker}
version: v1alpha1
"""


def test_comments_key_order_document_order_and_style_do_not_count():
    assert normalise_config(parse_documents(BLOCK)) == normalise_config(parse_documents(FLOW))
    assert config_sha256(parse_documents(BLOCK)) == config_sha256(parse_documents(FLOW))


def test_text_is_accepted_as_well_as_documents():
    assert normalise_config(BLOCK) == normalise_config(parse_documents(FLOW))


@pytest.mark.parametrize("change", [
    ("type: worker   # a worker", "type: controlplane"),
    ("vm.swappiness: \"10\"", "vm.swappiness: 10"),  # the string became a number
    ("    - 10.0.0.2\n", ""),  # a list item less
    ("- 10.0.0.1\n    - 10.0.0.2", "- 10.0.0.2\n    - 10.0.0.1"),  # list order counts
    ("  kubelet: {}\n", ""),  # an empty mapping is kept, so dropping it is a change
    ("hostname: w1", "hostname: w2"),
    ("name: nut\n", "name: ups\n"),
])
def test_a_real_change_is_seen(change):
    old, new = change
    assert old in BLOCK
    assert normalise_config(parse_documents(BLOCK)) != normalise_config(parse_documents(BLOCK.replace(old, new)))


def test_the_v1alpha1_document_comes_first_then_kind_and_name():
    lines = normalise_config(parse_documents(FLOW)).splitlines()
    assert [line[:40] for line in lines] == [
        '{"cluster":{"controlPlane":{"endpoint":"',
        '{"apiVersion":"v1alpha1","environment":[',
        '{"apiVersion":"v1alpha1","hostname":"w1"',
    ]


def test_a_duplicate_document_is_refused():
    with pytest.raises(ConfigError, match=r"duplicate document ExtensionServiceConfig nut \(documents 3 and 4\)"):
        normalise_config(parse_documents(BLOCK + "---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: nut\n"))
    with pytest.raises(ConfigError, match="duplicate document v1alpha1"):
        normalise_config([{"version": "v1alpha1"}, {"machine": {}}])


def test_odd_values_still_normalise_deterministically():
    documents = [{"version": "v1alpha1", "machine": {"sysctls": {1: "a", "b": float("inf")}, "blob": b"\x00\x01"}}]
    assert normalise_config(documents) == normalise_config([{"version": "v1alpha1",
                                                             "machine": {"blob": b"\x00\x01",
                                                                         "sysctls": {"b": float("inf"), 1: "a"}}}])
    assert "!!binary" in normalise_config(documents)


def test_sha256_is_the_hash_of_the_canonical_text():
    documents = parse_documents(BLOCK)
    expected = hashlib.sha256(normalise_config(documents).encode()).hexdigest()
    assert config_sha256(documents) == expected and len(expected) == 64
    assert config_sha256(documents) == config_sha256(parse_documents(BLOCK))
    assert config_sha256(documents) != config_sha256(parse_documents(BLOCK.replace("w1", "w2")))
