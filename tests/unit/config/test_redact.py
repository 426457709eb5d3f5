"""Redaction of a generated-looking config: no secret survives, certificates become fingerprints."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._config import (
    config_sha256, dump_documents, redact_secrets, secret_values)
from ansible_collections.talos.linux.plugins.module_utils._config.redact import certificate_marker, is_secret_name


def marker(fingerprint):
    return "<certificate sha256:" + ":".join(f"{b:02X}" for b in fingerprint) + ">"


def test_no_secret_value_appears_anywhere_in_the_redacted_text(generated, generated_documents):
    text = dump_documents(redact_secrets(generated_documents))
    for name, secret in generated["secrets"].items():
        assert secret not in text, name
    # and the raw config does carry them, so the check above means something
    raw = dump_documents(generated_documents)
    assert all(secret in raw for secret in generated["secrets"].values())


def test_secret_values_finds_every_secret(generated, generated_documents):
    found = secret_values(generated_documents)
    assert set(generated["secrets"].values()) <= set(found)
    assert len(found) == len(set(found))
    # Public values are not secrets: masking them would garble unrelated output.
    assert "7lbEJgsqAIXW1pLo4ERm6m0NPYpRJjJu61jFm0yhrXk=" not in found
    # A registry's credentials are secret whole, the user name with the password.
    assert "ci" in found and "robot" in found


def test_certificates_become_their_fingerprint(generated, generated_documents):
    v1 = redact_secrets(generated_documents)[0]
    fingerprints = generated["fingerprints"]
    assert v1["machine"]["ca"]["crt"] == marker(fingerprints["talos"])
    assert v1["cluster"]["ca"]["crt"] == marker(fingerprints["kubernetes"])
    assert v1["cluster"]["aggregatorCA"]["crt"] == marker(fingerprints["aggregator"])
    assert v1["cluster"]["etcd"]["ca"]["crt"] == marker(fingerprints["etcd"])
    assert v1["machine"]["acceptedCAs"] == [{"crt": marker(fingerprints["extra"])}]


def test_keys_tokens_and_secrets_become_the_marker(generated_documents):
    v1 = redact_secrets(generated_documents)[0]
    assert v1["machine"]["token"] == "<redacted>"
    assert v1["machine"]["ca"]["key"] == "<redacted>"
    assert v1["cluster"]["serviceAccount"] == {"key": "<redacted>"}
    assert v1["cluster"]["secretboxEncryptionSecret"] == "<redacted>"
    assert v1["machine"]["network"]["interfaces"][0]["wireguard"]["privateKey"] == "<redacted>"
    assert v1["machine"]["registries"]["config"]["registry.internal"]["auth"] == {"username": "<redacted>",
                                                                                  "password": "<redacted>"}


def test_settings_under_secret_looking_names_and_public_keys_stay(generated_documents):
    v1 = redact_secrets(generated_documents)[0]
    interfaces = v1["machine"]["network"]["interfaces"]
    assert interfaces[0]["wireguard"]["peers"][0]["publicKey"] == "7lbEJgsqAIXW1pLo4ERm6m0NPYpRJjJu61jFm0yhrXk="
    assert interfaces[1]["bond"]["adUserPortKey"] == 0
    assert v1["cluster"]["id"] == generated_documents[0]["cluster"]["id"]
    assert v1["machine"]["features"]["kubePrism"] == {"enabled": True, "port": 7445}


def test_urls_lose_passwords_and_token_parameters_only(generated_documents):
    redacted = redact_secrets(generated_documents)
    assert redacted[0]["machine"]["env"]["https_proxy"].startswith("<redacted, 52 bytes, fingerprint ")
    assert redacted[1]["apiUrl"] == "https://siderolink.example.com:8099?jointoken=<redacted>&grpc_tunnel=true"
    assert redacted[0]["cluster"]["controlPlane"]["endpoint"] == "https://10.5.0.2:6443"


def test_other_documents_are_redacted_too_but_trusted_roots_are_public(generated, generated_documents):
    by_kind = {d.get("kind"): d for d in redact_secrets(generated_documents)}
    assert by_kind["RegistryAuthConfig"]["password"] == "<redacted>"
    assert by_kind["RegistryAuthConfig"]["username"] == "<redacted>"
    assert by_kind["VolumeConfig"]["encryption"]["keys"] == [{"slot": 0, "static": {"passphrase": "<redacted>"}}]
    assert by_kind["TrustedRootsConfig"]["certificates"] == generated["trusted_pem"]
    assert by_kind["KubeSpanConfig"] == next(d for d in generated_documents if d.get("kind") == "KubeSpanConfig")


def test_a_crt_that_is_not_a_certificate_is_just_redacted():
    assert certificate_marker("bm90IGEgY2VydGlmaWNhdGU=") == "<redacted>"
    assert certificate_marker("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") == "<redacted>"
    [doc] = redact_secrets([{"version": "v1alpha1", "machine": {"ca": {"crt": "garbage"}}}])
    assert doc["machine"]["ca"]["crt"] == "<redacted>"


def test_a_pem_text_certificate_is_fingerprinted(generated):
    assert certificate_marker(generated["trusted_pem"]) == marker(generated["fingerprints"]["extra"])


@pytest.mark.parametrize("name, secret", [
    ("key", True), ("token", True), ("secret", True), ("privateKey", True), ("apiToken", True),
    ("aescbcEncryptionSecret", True), ("PASSWORD", True), ("passphrase", True), ("auth", True),
    ("Authorization", True), ("identityToken", True),
    ("publicKey", False), ("keys", False), ("secrets", False), ("username", False), ("crt", False), (3, False),
])
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_empty_secrets_stay_empty_and_are_not_reported():
    docs = [{"version": "v1alpha1", "machine": {"token": "", "ca": {"key": None}}}]
    assert redact_secrets(docs) == docs
    assert secret_values(docs) == []


def test_the_hash_does_not_depend_on_redaction(generated_documents):
    assert config_sha256(generated_documents) != config_sha256(redact_secrets(generated_documents))
    assert config_sha256(generated_documents) == config_sha256([dict(d) for d in generated_documents])
