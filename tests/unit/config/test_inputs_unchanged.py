"""No function of the config core changes what it is given."""

import copy

from ansible_collections.talos.linux.plugins.module_utils._config import (
    config_sha256, dump_documents, machine_type_of, normalise_config, parse_documents, redact_secrets, render_config,
    secret_values)


def test_no_function_mutates_its_inputs(generated_documents):
    config = copy.deepcopy(generated_documents)
    strategic = [{"machine": {"certSANs": ["10.9.9.9"], "network": {"interfaces": [
        {"interface": "wg0", "mtu": 1280}, {"interface": "bond0", "$patch": "delete"}]}}},
        {"apiVersion": "v1alpha1", "kind": "KubeSpanConfig", "$patch": "delete"}]
    patches = [strategic, {"cluster": {"network": {"podSubnets": ["10.32.0.0/12"]}}}]
    patches_before = copy.deepcopy(patches)

    desired = render_config(config, patches)
    assert config == generated_documents and patches == patches_before

    # The result shares nothing with the inputs: changing it leaves them alone.
    desired[0]["machine"]["certSANs"].append("changed")
    desired[0]["cluster"]["network"]["podSubnets"].append("changed")
    assert config == generated_documents and patches == patches_before

    single = [copy.deepcopy(generated_documents[0])]
    json_patch = [{"op": "add", "path": "/machine/nodeLabels", "value": {"a": "b"}}]
    json_before = copy.deepcopy(json_patch)
    render_config(single, [json_patch])[0]["machine"]["nodeLabels"]["a"] = "changed"
    assert single == [generated_documents[0]] and json_patch == json_before

    patched_current = render_config(None, [{"machine": {"type": "worker"}}], current=config)
    assert patched_current[0]["machine"]["type"] == "worker" and config == generated_documents

    for function in (normalise_config, config_sha256, dump_documents, redact_secrets, secret_values, machine_type_of,
                     parse_documents):
        function(config)
        assert config == generated_documents, function.__name__
