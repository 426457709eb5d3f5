"""JSON6902 patches: applied with jsonpatch, only to a single v1alpha1 document, failures located."""

import sys

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import ConfigError, render_config

SINGLE = "version: v1alpha1\nmachine:\n  type: worker\n  kubelet: {}\n  certSANs: [a, b]\ncluster:\n  clusterName: c1\n"


def test_add():
    [doc] = render_config(SINGLE, [[{"op": "add", "path": "/machine/kubelet/extraArgs",
                                     "value": {"cloud-provider": "external"}}]])
    assert doc["machine"]["kubelet"] == {"extraArgs": {"cloud-provider": "external"}}


def test_replace_and_remove():
    [doc] = render_config(SINGLE, [[{"op": "replace", "path": "/machine/type", "value": "controlplane"},
                                    {"op": "remove", "path": "/machine/certSANs/0"}]])
    assert doc["machine"]["type"] == "controlplane" and doc["machine"]["certSANs"] == ["b"]


def test_test_operation_guards_the_rest():
    [doc] = render_config(SINGLE, [[{"op": "test", "path": "/cluster/clusterName", "value": "c1"},
                                    {"op": "replace", "path": "/cluster/clusterName", "value": "c2"}]])
    assert doc["cluster"]["clusterName"] == "c2"
    with pytest.raises(ConfigError, match=r"patch 1, operation 1 \(test /cluster/clusterName\): the test failed") as caught:
        render_config(SINGLE, [[{"op": "test", "path": "/cluster/clusterName", "value": "other"}]])
    assert caught.value.path == "/cluster/clusterName"


def test_json_and_yaml_text_patches():
    json_text = '[{"op": "replace", "path": "/machine/type", "value": "init"}]'
    yaml_text = "- op: add\n  path: /machine/certSANs/-\n  value: c\n"
    [doc] = render_config(SINGLE, [json_text, yaml_text])
    assert doc["machine"]["type"] == "init" and doc["machine"]["certSANs"] == ["a", "b", "c"]


def test_strategic_and_json_patches_mix_in_order():
    [doc] = render_config(SINGLE, [{"machine": {"certSANs": ["c"]}},
                                   [{"op": "remove", "path": "/machine/certSANs/2"}],
                                   {"machine": {"certSANs": ["d"]}}])
    assert doc["machine"]["certSANs"] == ["a", "b", "d"]


def test_refused_on_a_multi_document_config_with_the_talos_message():
    multi = SINGLE + "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: h\n"
    with pytest.raises(ConfigError) as caught:
        render_config(multi, [{"machine": {"type": "worker"}}, [{"op": "remove", "path": "/debug"}]])
    message = str(caught.value)
    assert "JSON6902 patches are not supported for multi-document machine configuration" in message
    assert "JSON6902 patches can only be applied to a single-document v1alpha1 config" in message
    assert message.startswith("patch 2: ") and "v1alpha1, HostnameConfig" in message
    assert caught.value.patch == 2


def test_refused_on_a_single_document_that_is_not_v1alpha1():
    with pytest.raises(ConfigError, match="single-document v1alpha1 config"):
        render_config("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: h\n",
                      [[{"op": "replace", "path": "/hostname", "value": "x"}]])


def test_a_bad_path_names_the_patch_the_operation_and_the_path():
    with pytest.raises(ConfigError) as caught:
        render_config(SINGLE, [{"machine": {"type": "worker"}},
                               [{"op": "add", "path": "/machine/type", "value": "worker"},
                                {"op": "replace", "path": "/machine/nothing/here", "value": 1}]])
    err = caught.value
    assert str(err).startswith("patch 2, operation 2 (replace /machine/nothing/here) does not apply: ")
    assert (err.patch, err.path) == (2, "/machine/nothing/here")


def test_an_unknown_operation_is_refused():
    with pytest.raises(ConfigError, match=r"operation 1 \(merge /machine\): unknown operation"):
        render_config(SINGLE, [[{"op": "merge", "path": "/machine", "value": {}}]])


def test_a_list_mixing_operations_and_documents_is_refused():
    with pytest.raises(ConfigError, match="patch 1 mixes JSON6902 operations with other items"):
        render_config(SINGLE, [[{"op": "remove", "path": "/debug"}, {"machine": {}}]])


def test_the_result_must_stay_a_mapping():
    with pytest.raises(ConfigError, match="leaves the config as a list"):
        render_config(SINGLE, [[{"op": "replace", "path": "", "value": [1]}]])


def test_without_the_library_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonpatch", None)
    with pytest.raises(ConfigError, match="needs the Python library jsonpatch") as caught:
        render_config(SINGLE, [[{"op": "remove", "path": "/cluster"}]])
    assert "pip install jsonpatch" in str(caught.value)
    # Strategic merge patches do not need it.
    assert render_config(SINGLE, [{"machine": {"type": "init"}}])[0]["machine"]["type"] == "init"


def test_an_operation_without_a_path_is_refused():
    with pytest.raises(ConfigError, match=r"patch 1, operation 2 \(remove None\): every operation needs a path"):
        render_config(SINGLE, [[{"op": "remove", "path": "/cluster"}, {"op": "remove"}]])
