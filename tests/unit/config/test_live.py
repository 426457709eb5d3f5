"""What a Talos 1.13 node applies live and what needs a reboot (CanApplyImmediate, issue 10.14)."""

import copy

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import fields_needing_reboot

CURRENT = [{"version": "v1alpha1", "debug": False, "persist": True,
            "machine": {"type": "worker", "token": "t", "sysctls": {"a": "1"}, "env": {"A": "1"},
                        "features": {"rbac": True, "kubePrism": {"enabled": True}}},
            "cluster": {"clusterName": "c"}},
           {"apiVersion": "v1alpha1", "kind": "ResolverConfig", "nameservers": [{"address": "1.1.1.1"}]}]


def changed(*edits):
    documents = copy.deepcopy(CURRENT)
    for path, value in edits:
        target = documents
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return documents


@pytest.mark.parametrize("edit", [
    ((0, "debug"), True), ((0, "cluster", "clusterName"), "d"), ((0, "machine", "sysctls"), {"b": "2"}),
    ((0, "machine", "network"), {"hostname": "h"}), ((0, "machine", "features", "kubePrism"), {"enabled": False}),
    ((1, "nameservers"), []),
], ids=str)
def test_live_changes_need_no_reboot(edit):
    assert fields_needing_reboot(CURRENT, changed(edit)) == []


@pytest.mark.parametrize("edit,fields", [
    (((0, "machine", "env"), {"A": "2"}), ["machine.env"]),
    (((0, "machine", "files"), [{"path": "/var/x", "content": "x"}]), ["machine.files"]),
    (((0, "machine", "token"), "u"), ["machine.token"]),
    (((0, "machine", "features", "rbac"), False), ["machine.features.rbac"]),
    (((0, "persist"), False), ["persist"]),
], ids=str)
def test_other_changes_of_the_v1alpha1_document_need_a_reboot(edit, fields):
    assert fields_needing_reboot(CURRENT, changed(edit)) == fields


def test_several_are_all_named_in_order():
    edits = (((0, "machine", "env"), {}), ((0, "machine", "udev"), {"rules": ["x"]}), ((0, "debug"), True))
    assert fields_needing_reboot(CURRENT, changed(*edits)) == ["machine.env", "machine.udev"]


def test_a_config_without_v1alpha1_cannot_apply_live():
    assert fields_needing_reboot(CURRENT, CURRENT[1:]) == ["v1alpha1"]
