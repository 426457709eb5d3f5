"""What Talos does to a config when it loads or encodes it: inline manifests trimmed, empty fields written
(the form a JSON6902 patch sees), and patches that name one document twice, merged in turn."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import (
    ConfigError, normalise_config, render_config)
from ansible_collections.talos.linux.plugins.module_utils._config.talos_encoding import (
    ENCODED_EMPTY, as_talos_loads, fill_encoded_empty, strip_encoded_empty)

NO_SANS = "version: v1alpha1\nmachine:\n  type: worker\n  token: t\ncluster:\n  clusterName: c1\n"
MANIFEST = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"


def manifests(contents):
    return [{"version": "v1alpha1", "machine": {"type": "worker"},
             "cluster": {"inlineManifests": [{"name": "ns", "contents": contents}]}}]


def test_inline_manifests_compare_as_talos_loads_them():
    # Talos trims tabs, newlines, vertical tabs, form feeds and carriage returns, not spaces.
    assert normalise_config(manifests("\n\t\r\v\f" + MANIFEST)) == normalise_config(manifests(MANIFEST))
    assert normalise_config(manifests("  " + MANIFEST)) != normalise_config(manifests(MANIFEST))


def test_rendered_inline_manifests_are_what_talos_stores():
    [document] = render_config(manifests("\n\n" + MANIFEST))
    assert document["cluster"]["inlineManifests"][0]["contents"] == MANIFEST
    [document] = render_config(manifests(" " + MANIFEST))
    assert document["cluster"]["inlineManifests"][0]["contents"] == " " + MANIFEST


def test_trimming_leaves_its_input_alone_and_shares_what_needs_no_change():
    given = manifests("\n" + MANIFEST)
    [trimmed] = as_talos_loads(given)
    assert given[0]["cluster"]["inlineManifests"][0]["contents"] == "\n" + MANIFEST
    assert trimmed["cluster"]["inlineManifests"][0]["contents"] == MANIFEST
    untouched = manifests(MANIFEST)
    assert as_talos_loads(untouched)[0] is untouched[0]


def test_json6902_add_to_a_list_talos_always_writes():
    [document] = render_config(NO_SANS, [[{"op": "add", "path": "/machine/certSANs/-", "value": "10.5.0.2"}]])
    assert document["machine"]["certSANs"] == ["10.5.0.2"]


def test_json6902_after_a_strategic_patch_sees_the_encoded_form_too():
    [document] = render_config(NO_SANS, [{"machine": {"network": {"extraHostEntries": [{"ip": "10.0.0.9"}]}}},
                                         [{"op": "add", "path": "/machine/network/extraHostEntries/0/aliases/-",
                                           "value": "registry"}]])
    assert document["machine"]["network"]["extraHostEntries"] == [{"ip": "10.0.0.9", "aliases": ["registry"]}]


def test_json6902_on_the_node_config_adds_nothing_it_did_not_ask_for():
    # The empty fields exist only while the operations run: a patch that changes nothing compares equal.
    [document] = render_config(None, [[{"op": "test", "path": "/machine/certSANs", "value": []},
                                       {"op": "replace", "path": "/machine/token", "value": "t"}]], current=NO_SANS)
    assert normalise_config([document]) == normalise_config(NO_SANS)


def test_a_missing_parent_still_fails_as_in_talos():
    with pytest.raises(ConfigError, match="does not apply"):
        render_config(NO_SANS, [[{"op": "add", "path": "/machine/kubelet/extraArgs/x", "value": "y"}]])


def test_fill_and_strip_restore_a_null_field():
    document = {"version": "v1alpha1", "machine": {"type": "worker", "certSANs": None}}
    added = fill_encoded_empty(document)
    assert document["machine"]["certSANs"] == [] and document["machine"]["token"] == ""
    strip_encoded_empty(added)
    assert document == {"version": "v1alpha1", "machine": {"type": "worker", "certSANs": None}}


def test_encoded_empty_fields_fan_out_over_list_items_and_mapping_values():
    document = {"machine": {"registries": {"mirrors": {"docker.io": {}, "ghcr.io": {"endpoints": ["x"]}}},
                            "network": {"interfaces": [{"interface": "eth0", "vlans": [{"vlanId": 5}]}]}}}
    fill_encoded_empty(document)
    assert document["machine"]["registries"]["mirrors"] == {"docker.io": {"endpoints": []},
                                                            "ghcr.io": {"endpoints": ["x"]}}
    assert document["machine"]["network"]["interfaces"][0]["vlans"][0] == {"vlanId": 5, "routes": []}


def test_parents_come_before_their_children():
    paths = list(ENCODED_EMPTY)
    for index, path in enumerate(paths):
        assert not any(paths[later] == path[:len(paths[later])] for later in range(index + 1, len(paths))), path


def test_one_patch_may_name_a_document_twice_merged_in_turn():
    base = "version: v1alpha1\nmachine:\n  type: worker\n"
    patch = ("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: a\nauto: stable\n---\n"
             "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: b\n")
    documents = render_config(base, [patch])
    assert documents[1] == {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "b", "auto": "stable"}
    v1_twice = render_config(base, ["machine:\n  certSANs: [x]\n---\nmachine:\n  certSANs: [y]\n"])
    assert v1_twice[0]["machine"]["certSANs"] == ["x", "y"]


def test_a_patch_may_delete_a_document_then_give_it_anew():
    base = ("version: v1alpha1\nmachine:\n  type: worker\n---\n"
            "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: old\nauto: stable\n")
    patch = ("apiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n---\n"
             "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: new\n")
    documents = render_config(base, [patch])
    assert documents[1] == {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "new"}


def test_a_manifest_appended_again_with_a_leading_newline_is_present_on_the_node_config():
    current = manifests(MANIFEST)
    [document] = render_config(None, [{"cluster": {"inlineManifests": [{"name": "ns", "contents": "\n" + MANIFEST}]}}],
                               current=current)
    assert document["cluster"]["inlineManifests"] == [{"name": "ns", "contents": MANIFEST}]
