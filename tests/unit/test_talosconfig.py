"""talosconfig discovery, parsing, endpoint normalisation and key decoding (pure logic, no network)."""

import base64
import os
import stat

import pytest

from ansible_collections.talos.linux.plugins.module_utils._errors import ConfigError
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import (
    Endpoint, find_talosconfig, load_settings, parse_endpoint)
from ansible_collections.talos.linux.plugins.module_utils._tls import make_ssl_context, normalise_key_pem


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.2", Endpoint("10.0.0.2", 50000)),
    ("cp.example:50001", Endpoint("cp.example", 50001)),
    ("https://omni.example", Endpoint("omni.example", 443)),
    ("https://omni.example:8443/", Endpoint("omni.example", 8443)),
    ("fd00::2", Endpoint("fd00::2", 50000)),
    ("[fd00::2]", Endpoint("fd00::2", 50000)),
    ("[fd00::2]:50001", Endpoint("fd00::2", 50001)),
])
def test_endpoints_are_normalised_like_talosctl(text, expected):
    assert parse_endpoint(text) == expected


def test_ipv6_endpoint_prints_in_brackets():
    assert str(parse_endpoint("fd00::2")) == "[fd00::2]:50000"


@pytest.mark.parametrize("bad", ["", "host:port", "host:70000", "https://"])
def test_bad_endpoint_is_refused_by_name(bad):
    with pytest.raises(ConfigError) as err:
        parse_endpoint(bad)
    assert "endpoint" in str(err.value)


def test_search_order(tmp_path):
    assert find_talosconfig("/x/explicit", {"TALOSCONFIG": "/x/env"}) == type(tmp_path)("/x/explicit")
    assert str(find_talosconfig(None, {"TALOSCONFIG": "/x/env", "TALOS_HOME": "/x/home"})) == "/x/env"
    assert str(find_talosconfig(None, {"TALOS_HOME": "/x/home"})) == "/x/home/config"
    # a relative TALOS_HOME is ignored, as talosctl does
    assert str(find_talosconfig(None, {"TALOS_HOME": "rel"})) == os.path.expanduser("~/.talos/config")


def test_env_talosconfig_is_used(write_talosconfig):
    path = write_talosconfig()
    settings = load_settings(environ={"TALOSCONFIG": str(path)})
    assert settings.context == "prod" and settings.path == str(path)
    assert settings.endpoints == [Endpoint("10.0.0.2")]


def test_missing_file_is_an_error_and_is_not_created(tmp_path):
    path = tmp_path / "nope" / "config"
    with pytest.raises(ConfigError) as err:
        load_settings(talosconfig=str(path))
    assert str(path) in str(err.value) and "does not exist" in str(err.value)
    assert not path.exists() and not path.parent.exists()


def test_not_yaml(write_talosconfig):
    path = write_talosconfig(raw="context: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_settings(talosconfig=str(path))


def test_no_contexts(write_talosconfig):
    with pytest.raises(ConfigError, match="no 'contexts' mapping"):
        load_settings(talosconfig=str(write_talosconfig(raw="foo: bar\n")))


def test_unknown_context_lists_the_known_ones(write_talosconfig):
    path = write_talosconfig({"prod": {"endpoints": ["a"]}, "lab": {"endpoints": ["b"]}})
    with pytest.raises(ConfigError) as err:
        load_settings(talosconfig=str(path), context="staging")
    assert "'staging'" in str(err.value) and "lab, prod" in str(err.value)


def test_context_choice_and_nodes(write_talosconfig):
    path = write_talosconfig({"prod": {"endpoints": ["a"]}, "lab": {"endpoints": ["b", "c:1"], "nodes": ["n1"]}})
    settings = load_settings(talosconfig=str(path), context="lab")
    assert settings.context == "lab"
    assert [str(e) for e in settings.endpoints] == ["b:50000", "c:1"]
    assert settings.nodes == ["n1"]


def test_context_without_endpoints(write_talosconfig):
    path = write_talosconfig({"prod": {"nodes": ["10.0.0.3"]}})
    with pytest.raises(ConfigError, match="No endpoints are set in context 'prod'"):
        load_settings(talosconfig=str(path))


def test_legacy_target_is_appended(write_talosconfig):
    path = write_talosconfig({"prod": {"target": "10.0.0.9"}})
    assert load_settings(talosconfig=str(path)).endpoints == [Endpoint("10.0.0.9")]


def test_bad_base64(write_talosconfig):
    path = write_talosconfig({"prod": {"endpoints": ["a"], "key": "%%%not base64%%%"}})
    with pytest.raises(ConfigError) as err:
        load_settings(talosconfig=str(path))
    assert "key" in str(err.value) and "context 'prod'" in str(err.value)


def test_base64_without_pem(write_talosconfig):
    path = write_talosconfig({"prod": {"endpoints": ["a"], "crt": base64.b64encode(b"hello").decode()}})
    with pytest.raises(ConfigError, match="crt .* holds no PEM block"):
        load_settings(talosconfig=str(path))


def test_explicit_options_override_the_file(write_talosconfig, pki, tmp_path):
    path = write_talosconfig()
    key_file = tmp_path / "client.key"
    key_file.write_bytes(pki["key"])
    settings = load_settings(talosconfig=str(path), endpoints=["192.0.2.1:50001"], nodes=["192.0.2.5"],
                             ca=pki["ca"].decode(), key=str(key_file))
    assert settings.endpoints == [Endpoint("192.0.2.1", 50001)] and settings.nodes == ["192.0.2.5"]
    assert settings.ca_pem.strip() == pki["ca"].strip() and settings.key_pem == pki["key"]


def test_options_alone_need_no_file(pki, tmp_path):
    settings = load_settings(endpoints=["10.0.0.2"], ca=pki["ca"], crt=pki["crt"], key=pki["key"],
                             environ={"TALOSCONFIG": str(tmp_path / "absent")})
    assert settings.path is None and settings.context is None


def test_maintenance_mode_needs_no_certificate(tmp_path):
    settings = load_settings(endpoints=["10.0.0.2"], insecure=True, environ={"TALOSCONFIG": str(tmp_path / "x")})
    assert settings.insecure and settings.crt_pem is None
    assert make_ssl_context(settings).verify_mode.name == "CERT_NONE"


def test_secrets_stay_out_of_repr(write_talosconfig, pki):
    settings = load_settings(talosconfig=str(write_talosconfig()))
    text = repr(settings)
    for secret in settings.secrets():
        assert secret not in text
    assert base64.b64encode(pki["key"]).decode() in settings.secrets()


def test_talos_key_label_is_rewritten_for_openssl(pki):
    assert b"ED25519" in pki["key"]
    rewritten = normalise_key_pem(pki["key"])
    assert rewritten.startswith(b"-----BEGIN PRIVATE KEY-----") and rewritten.rstrip().endswith(b"PRIVATE KEY-----")


def test_ssl_context_loads_ed25519_and_leaves_no_key_file(write_talosconfig, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    created = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        created.append((path, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    settings = load_settings(talosconfig=str(write_talosconfig()))
    ctx = make_ssl_context(settings)
    assert ctx.check_hostname and ctx.verify_mode.name == "CERT_REQUIRED"
    assert created and all(mode == stat.S_IRUSR | stat.S_IWUSR for _path, mode in created)
    assert not any(os.path.exists(path) for path, _mode in created)
    assert list(tmp_path.glob("talos-tls-*")) == []


def test_mismatched_key_is_a_clear_error(write_talosconfig, pki):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = write_talosconfig({"prod": {"endpoints": ["a"], "key": base64.b64encode(other).decode()}})
    with pytest.raises(ConfigError, match="do not belong together|cannot be loaded") as err:
        make_ssl_context(load_settings(talosconfig=str(path)))
    assert "PRIVATE KEY" not in str(err.value)


def test_expired_certificate_is_refused_before_dialing(write_talosconfig, pki):
    from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient

    expired = base64.b64encode(pki["expired_crt"]).decode()
    path = write_talosconfig({"prod": {"endpoints": ["192.0.2.1"], "crt": expired}})
    with pytest.raises(ConfigError) as err:
        TalosClient(load_settings(talosconfig=str(path)))
    assert "context 'prod' expired on 2025-03-04 05:06:07 UTC" in str(err.value)


def test_certificate_roles_are_the_organization_values(pki):
    from ansible_collections.talos.linux.plugins.module_utils._tls import inspect_client_certificate

    info = inspect_client_certificate(pki["crt"])
    assert info.roles == ("os:admin", "os:etcd:backup") and not info.expired


@pytest.mark.parametrize("bad,reason", [
    ("http://[bad", "Invalid IPv6 URL"),
    ("https://host:99999", "Port out of range"),
    ("https://", "it has no host"),
    (":50000", "has no host"),
])
def test_an_endpoint_error_names_the_value_and_where_it_came_from(bad, reason):
    with pytest.raises(ConfigError) as err:
        parse_endpoint(bad, "context 'prod' of /x/config")
    assert repr(bad) in str(err.value) and "context 'prod' of /x/config" in str(err.value)
    assert reason in str(err.value) and "443 for an https:// URL" in str(err.value)


def test_a_bad_endpoint_option_is_named_as_the_option(write_talosconfig):
    with pytest.raises(ConfigError, match=r"'http://\[bad' in the endpoints option"):
        load_settings(talosconfig=str(write_talosconfig()), endpoints=["http://[bad"])


@pytest.mark.parametrize("text,port", [("https://omni.example", 443), ("http://cp.example", 50000),
                                       ("grpc://cp.example", 50000)])
def test_a_url_without_a_port_gets_the_talosctl_default(text, port):
    # talosctl (pkg/machinery/client/connection.go): https:// means 443, any other URL the API port
    assert parse_endpoint(text).port == port


def test_nodes_from_context_says_where_the_nodes_came_from(write_talosconfig):
    path = write_talosconfig({"prod": {"endpoints": ["a"], "nodes": ["n1", "n2"]}})
    implicit = load_settings(talosconfig=str(path))
    assert implicit.nodes == ["n1", "n2"] and implicit.nodes_from_context is True
    named = load_settings(talosconfig=str(path), nodes=["n3"])
    assert named.nodes == ["n3"] and named.nodes_from_context is False
    empty = write_talosconfig({"prod": {"endpoints": ["a"]}})
    assert load_settings(talosconfig=str(empty)).nodes_from_context is False
