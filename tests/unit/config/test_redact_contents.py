"""Free content is secret by where it is: env, files, inline manifests, headers, extension services (issue 10.8)."""

import yaml

from ansible_collections.talos.linux.plugins.module_utils._config import (
    dump_documents, parse_documents, redact_secrets, secret_values)

SECRET_MANIFEST = """\
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: app}
type: Opaque
data:
  password: c3VwZXItc2VjcmV0LWRiLXBhc3N3b3Jk
stringData:
  api-key: plain-api-key-in-a-manifest
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  colour: blue
"""
SECRETS = {
    "env": "env-value-with-a-credential", "file": "[auth]\ntoken = file-content-secret\n",
    "manifest data": "c3VwZXItc2VjcmV0LWRiLXBhc3N3b3Jk", "manifest stringData": "plain-api-key-in-a-manifest",
    "unparsed manifest": "this: is: not yaml: at all: {", "header": "Bearer header-bearer-token",
    "extension file": "secret-in-an-extension-config-file", "extension env": "extension-env-credential",
    "registry user": "registry-user-name", "registry password": "registry-password-value",
    "registry auth": "cmVnaXN0cnktYXV0aA==", "registry identity": "registry-identity-token",
    "registry client key": "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t", "pod env": "pod-env-password-value",
    "aescbc": "YWVzY2JjLWVuY3J5cHRpb24tc2VjcmV0LWZvci10ZXN0cw==", "bootstrap": "abcdef.0123456789abcdef",
    "passphrase": "luks-passphrase-of-a-volume", "wireguard": "d2lyZWd1YXJkLXByaXZhdGUta2V5LWZvci10ZXN0cw=",
    "apiserver env": "apiserver-env-credential", "container env": "container-env-credential",
    "cri content": "cri-registry-mirror-credential", "etc file": "etc-file-credential",
    "kube apiserver env": "kube-apiserver-env-credential", "external header": "external-manifest-header",
    "inline manifest doc": "c2VjcmV0LWluLWEtbWFuaWZlc3QtZG9j", "hcloud": "hcloud-api-token-value",
}
CONFIG = [
    {"version": "v1alpha1", "machine": {
        "type": "worker", "env": {"HTTPS_PROXY": "http://proxy:3128", "CREDS": SECRETS["env"]},
        "files": [{"path": "/var/etc/app.conf", "op": "create", "content": SECRETS["file"]}],
        "registries": {"config": {"registry.internal": {
            "auth": {"username": SECRETS["registry user"], "password": SECRETS["registry password"],
                     "auth": SECRETS["registry auth"], "identityToken": SECRETS["registry identity"]},
            "tls": {"clientIdentity": {"crt": "", "key": SECRETS["registry client key"]}}}}},
        "pods": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "busybox", "env": [{"name": "DB_PASSWORD", "value": SECRETS["pod env"]},
                                                      {"name": "MODE", "value": "production"}]}]}}]},
     "cluster": {"aescbcEncryptionSecret": SECRETS["aescbc"], "token": SECRETS["bootstrap"],
                 "apiServer": {"env": {"OIDC": SECRETS["apiserver env"]}},
                 "extraManifestHeaders": {"X-Fetch": SECRETS["header"]},
                 "inlineManifests": [{"name": "db", "contents": SECRET_MANIFEST},
                                     {"name": "odd", "contents": SECRETS["unparsed manifest"]}]}},
    {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "tailscale",
     "configFiles": [{"content": SECRETS["extension file"], "mountPath": "/etc/ts"}],
     "environment": [f"TS_AUTHKEY={SECRETS['extension env']}", "TS_HOSTNAME=node-1"]},
    {"apiVersion": "v1alpha1", "kind": "UserVolumeConfig", "name": "data",
     "encryption": {"provider": "luks2", "keys": [{"slot": 0, "static": {"passphrase": SECRETS["passphrase"]}}]}},
    {"apiVersion": "v1alpha1", "kind": "WireguardConfig", "name": "wg0", "privateKey": SECRETS["wireguard"]},
    {"apiVersion": "v1alpha1", "kind": "ContainerConfig", "name": "c", "environment": [f"X={SECRETS['container env']}"]},
    {"apiVersion": "v1alpha1", "kind": "CRICustomizationConfig", "name": "m", "content": SECRETS["cri content"]},
    {"apiVersion": "v1alpha1", "kind": "EtcFileConfig", "name": "f", "contents": SECRETS["etc file"]},
    {"apiVersion": "v1alpha1", "kind": "KubeAPIServerConfig", "env": {"A": SECRETS["kube apiserver env"]}},
    {"apiVersion": "v1alpha1", "kind": "KubeExternalManifestConfig", "name": "e", "url": "https://example.com/m.yaml",
     "headers": {"X-Fetch": SECRETS["external header"]}},
    {"apiVersion": "v1alpha1", "kind": "KubeInlineManifestConfig", "name": "i",
     "manifest": f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{k: {SECRETS['inline manifest doc']}}}\n"},
    {"apiVersion": "v1alpha1", "kind": "HCloudVIPConfig", "name": "v", "apiToken": SECRETS["hcloud"]},
]


def test_no_secret_survives_in_the_shown_configuration():
    text = dump_documents(redact_secrets(CONFIG))
    for name, secret in SECRETS.items():
        for line in secret.splitlines():
            assert line not in text, name
    assert all(secret in dump_documents(CONFIG) for secret in SECRETS.values() if "\n" not in secret)


def test_every_secret_is_handed_to_the_mask():
    found = set(secret_values(CONFIG))
    missing = [name for name, secret in SECRETS.items() if secret not in found]
    assert not missing
    assert "production" not in found and "blue" not in found
    assert not any(value.startswith("<redacted") for value in found), "markers are not secrets"


def test_what_is_not_secret_stays_readable():
    v1, extension = redact_secrets(CONFIG)[:2]
    assert set(v1["machine"]["env"]) == {"HTTPS_PROXY", "CREDS"}, "the names stay"
    assert v1["machine"]["files"][0]["path"] == "/var/etc/app.conf"
    assert extension["environment"][1].startswith("TS_HOSTNAME=<redacted, ")
    manifests = list(yaml.safe_load_all(v1["cluster"]["inlineManifests"][0]["contents"]))
    assert manifests[0]["metadata"] == {"name": "db", "namespace": "app"}
    assert manifests[0]["data"]["password"].startswith("<redacted, 32 bytes, fingerprint ")
    assert manifests[1]["data"] == {"colour": "blue"}, "a ConfigMap stays as it is"
    env = v1["machine"]["pods"][0]["spec"]["containers"][0]["env"]
    assert env == [{"name": "DB_PASSWORD", "value": "<redacted>"}, {"name": "MODE", "value": "production"}]


def test_a_fingerprint_shows_a_changed_content_and_is_stable_within_a_run():
    changed = parse_documents(dump_documents(CONFIG))
    changed[0]["machine"]["files"][0]["content"] += "more = 1\n"
    before, again, after = (redact_secrets(c)[0]["machine"]["files"][0]["content"] for c in (CONFIG, CONFIG, changed))
    assert before == again != after
    assert before.startswith(f"<redacted, {len(SECRETS['file'])} bytes, fingerprint ")
