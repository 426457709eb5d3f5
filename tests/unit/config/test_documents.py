"""Reading and writing configuration documents: forms accepted, errors located, scalars typed as Talos types them."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import (
    ConfigError, dump_documents, machine_type_of, parse_documents)
from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError


def test_text_dict_and_list_give_the_same_documents():
    text = "version: v1alpha1\nmachine: {type: worker}\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: a\n"
    as_list = [{"version": "v1alpha1", "machine": {"type": "worker"}},
               {"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "a"}]
    assert parse_documents(text) == as_list
    assert parse_documents(as_list) == as_list
    assert parse_documents(as_list[0]) == as_list[:1]
    assert parse_documents(text.encode()) == as_list


def test_empty_documents_are_dropped():
    assert parse_documents("---\n# only a comment\n---\nversion: v1alpha1\n---\n") == [{"version": "v1alpha1"}]
    assert parse_documents([None, {"version": "v1alpha1"}]) == [{"version": "v1alpha1"}]
    assert parse_documents(None) == []
    assert parse_documents("") == []


def test_syntax_error_names_what_line_and_column():
    text = "version: v1alpha1\n---\nmachine:\n  type: worker\n  token: [unclosed\n"
    with pytest.raises(ConfigError) as caught:
        parse_documents(text, what="patch 2")
    err = caught.value
    assert str(err).startswith("patch 2: YAML syntax error at line ")
    assert (err.line, err.document) == (6, 2)
    assert err.column == 1
    assert err.code == "InvalidConfig" and isinstance(err, TalosError)
    assert err.to_dict()["line"] == 6


def test_syntax_error_column_points_at_the_problem():
    with pytest.raises(ConfigError) as caught:
        parse_documents("machine:\n  type: worker\n   bad: indent\n")
    assert (caught.value.line, caught.value.column) == (3, 7)


def test_a_document_that_is_not_a_mapping_is_refused():
    with pytest.raises(ConfigError, match=r"config: document 2 is a list, not a mapping") as caught:
        parse_documents("version: v1alpha1\n---\n- a\n- b\n")
    assert caught.value.document == 2
    with pytest.raises(ConfigError, match="document 1 is a string"):
        parse_documents("just text")
    with pytest.raises(ConfigError, match="not a number"):
        parse_documents(42)


def test_scalars_are_typed_as_go_yaml_types_them():
    [doc] = parse_documents("mac: 52:54:00:12:34:56\nflag: yes\nswitch: on\nmode: 0o644\nold: 0644\n"
                            "date: 2024-01-01\nport: 6443\nratio: 1.5\nnothing: ~\nreal: true\n")
    assert doc == {"mac": "52:54:00:12:34:56", "flag": "yes", "switch": "on", "mode": 0o644, "old": 0o644,
                   "date": "2024-01-01", "port": 6443, "ratio": 1.5, "nothing": None, "real": True}


def test_dump_round_trips_strings_that_look_like_other_types():
    tricky = {"a": "yes", "b": "0o644", "c": "1:20", "d": "2024-01-01", "e": "08", "f": "true", "g": "null",
              "h": "1e3", "i": "52:54:00:12:34:56", "j": "~", "k": "", "l": ".inf"}
    text = dump_documents([tricky])
    assert parse_documents(text) == [tricky]
    # Readers that follow YAML 1.1 (older PyYAML users) must see strings too.
    import yaml
    assert yaml.safe_load(text) == tricky


def test_dump_keeps_order_joins_documents_and_writes_no_aliases():
    shared = ["10.0.0.1"]
    documents = [{"version": "v1alpha1", "machine": {"type": "worker", "certSANs": shared},
                  "cluster": {"apiServer": {"certSANs": shared}}},
                 {"kind": "HostnameConfig", "apiVersion": "v1alpha1", "hostname": "naïve-host"}]
    text = dump_documents(documents)
    assert text == ("version: v1alpha1\nmachine:\n  type: worker\n  certSANs:\n  - 10.0.0.1\ncluster:\n  apiServer:\n"
                    "    certSANs:\n    - 10.0.0.1\n---\nkind: HostnameConfig\napiVersion: v1alpha1\n"
                    "hostname: naïve-host\n")


def test_dump_writes_multiline_text_as_a_block_and_never_folds_long_lines():
    long_line = "x" * 500
    text = dump_documents([{"contents": "apiVersion: v1\nkind: Namespace\n", "long": long_line}])
    assert "contents: |\n  apiVersion: v1\n  kind: Namespace\n" in text
    assert f"long: {long_line}\n" in text


def test_dump_accepts_subclasses_of_plain_types():
    class Unsafe(str):
        pass

    class Count(int):
        pass

    text = dump_documents([{Unsafe("name"): Unsafe("value"), "n": Count(3), "t": (1, 2)}])
    assert text == "name: value\nn: 3\nt:\n- 1\n- 2\n"


def test_text_may_be_a_str_subclass():
    # libyaml refuses anything but an exact str; Ansible passes AnsibleUnsafeText.
    class Unsafe(str):
        pass

    assert parse_documents(Unsafe("version: v1alpha1\n")) == [{"version": "v1alpha1"}]


def test_parse_gives_plain_copies():
    class Unsafe(str):
        pass

    source = {"machine": {"certSANs": [Unsafe("a")]}}
    [doc] = parse_documents(source)
    assert doc["machine"]["certSANs"][0].__class__ is str
    doc["machine"]["certSANs"].append("b")
    assert source == {"machine": {"certSANs": ["a"]}}


def test_machine_type_of():
    assert machine_type_of(parse_documents("version: v1alpha1\nmachine:\n  type: controlplane\n")) == "controlplane"
    assert machine_type_of([{"apiVersion": "v1alpha1", "kind": "HostnameConfig"},
                            {"version": "v1alpha1", "machine": {"type": "worker"}}]) == "worker"
    assert machine_type_of([{"apiVersion": "v1alpha1", "kind": "HostnameConfig"}]) is None
    assert machine_type_of([{"version": "v1alpha1", "machine": None}]) is None
