"""COSI specs are Go-written YAML: read with Go's scalar rules."""

from ansible_collections.talos.linux.plugins.module_utils._api.cosi.v1alpha1 import resource_pb2
from ansible_collections.talos.linux.plugins.module_utils._cosi import yaml_spec


def resource(text):
    return resource_pb2.Resource(spec=resource_pb2.Spec(yaml_spec=text))


def test_unquoted_mac_stays_a_string():
    spec = yaml_spec(resource("hardwareAddr: 52:54:00:12:34:56\nmtu: 1500\nlinkState: true\nkind: yes\n"))
    assert spec == {"hardwareAddr": "52:54:00:12:34:56", "mtu": 1500, "linkState": True, "kind": "yes"}


def test_empty_spec_is_none():
    assert yaml_spec(resource("")) is None
