"""Machine configuration: a generated initial config per node, parsing, validation and diffs.

The initial config looks like `talosctl gen config` output (multi-document, with comments), so that
the dry-run diff, which re-encodes both configs without comments, has something real to strip.
"""
import base64
import difflib
import functools
import secrets as _secrets
import string

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from . import pki

KUBERNETES_VERSION = "1.35.0"
MACHINE_TYPES = ("controlplane", "worker", "init")

# What ≤ v1.13 CanApplyImmediate lets change live (v1alpha1_runtime.go): debug, cluster, these parts of
# `machine` and these `machine.features`; any other change of the v1alpha1 document needs a reboot (env, files,
# udev, type, token, ...). Other documents always apply live.
LIVE_MACHINE_KEYS = frozenset({
    "ca", "acceptedCAs", "time", "certSANs", "install", "network", "sysfs", "sysctls", "logging", "controlPlane",
    "kubelet", "kernel", "registries", "pods", "seccompProfiles", "nodeAnnotations", "nodeLabels", "nodeTaints",
})
LIVE_FEATURE_KEYS = frozenset({"kubernetesTalosAPIAccess", "kubePrism", "hostDNS", "imageCache",
                               "nodeAddressSortAlgorithm"})
LIVE_TOP_LEVEL_KEYS = frozenset({"debug", "cluster"})


class ConfigError(ValueError):
    """A config that fails to parse or validate (InvalidArgument)."""


def _token(length_a=6, length_b=16):
    alphabet = string.ascii_lowercase + string.digits
    return "".join(_secrets.choice(alphabet) for _index in range(length_a)) + "." + \
        "".join(_secrets.choice(alphabet) for _index in range(length_b))


def _b64(data):
    return base64.b64encode(data).decode()


class ClusterSecrets:
    """The secrets bundle of one cluster (what `talosctl gen secrets` produces)."""

    def __init__(self, os_ca):
        self.os_ca = os_ca
        self.machine_token = _token()
        self.cluster_id = _b64(_secrets.token_bytes(32))
        self.cluster_secret = _b64(_secrets.token_bytes(32))
        self.bootstrap_token = _token()
        self.secretbox_secret = _b64(_secrets.token_bytes(32))
        self.kubernetes_ca = pki.ecdsa_ca("kubernetes")
        self.aggregator_ca = pki.ecdsa_ca("", common_name="front-proxy")
        self.etcd_ca = pki.ecdsa_ca("etcd")
        self.service_account_key = pki.private_key_pem(ec.generate_private_key(ec.SECP256R1()), "EC PRIVATE KEY")


def _pair(ca, with_key=True):
    return {"crt": _b64(ca.cert_pem), "key": _b64(ca.key_pem) if with_key else ""}


def render_initial_config(cluster_secrets, *, machine_type, hostname, version, cluster_name, endpoint):
    """The generated config of one node, as YAML bytes with a few gen-config style comments."""
    control_plane = machine_type == "controlplane"
    machine = {
        "type": machine_type,
        "token": cluster_secrets.machine_token,
        "ca": _pair(cluster_secrets.os_ca, with_key=control_plane),
        "certSANs": [],
        "kubelet": {
            "image": f"ghcr.io/siderolabs/kubelet:v{KUBERNETES_VERSION}",
            "defaultRuntimeSeccompProfileEnabled": True,
            "disableManifestsDirectory": True,
        },
        "network": {"hostname": hostname},
        "install": {
            "disk": "/dev/sda",
            "image": f"ghcr.io/siderolabs/installer:{version.tag}",
            "wipe": False,
        },
        "features": {
            "rbac": True,
            "stableHostname": True,
            "apidCheckExtKeyUsage": True,
            "diskQuotaSupport": True,
        },
    }
    cluster = {
        "id": cluster_secrets.cluster_id,
        "secret": cluster_secrets.cluster_secret,
        "controlPlane": {"endpoint": endpoint},
        "clusterName": cluster_name,
        "network": {
            "dnsDomain": "cluster.local",
            "podSubnets": ["10.244.0.0/16"],
            "serviceSubnets": ["10.96.0.0/12"],
        },
        "token": cluster_secrets.bootstrap_token,
        "ca": _pair(cluster_secrets.kubernetes_ca, with_key=control_plane),
        "discovery": {"enabled": True, "registries": {"kubernetes": {"disabled": True}, "service": {}}},
    }
    if control_plane:
        cluster.update({
            "secretboxEncryptionSecret": cluster_secrets.secretbox_secret,
            "aggregatorCA": _pair(cluster_secrets.aggregator_ca),
            "serviceAccount": {"key": _b64(cluster_secrets.service_account_key)},
            "apiServer": {"image": f"registry.k8s.io/kube-apiserver:v{KUBERNETES_VERSION}", "certSANs": []},
            "controllerManager": {"image": f"registry.k8s.io/kube-controller-manager:v{KUBERNETES_VERSION}"},
            "proxy": {"image": f"registry.k8s.io/kube-proxy:v{KUBERNETES_VERSION}"},
            "scheduler": {"image": f"registry.k8s.io/kube-scheduler:v{KUBERNETES_VERSION}"},
            "etcd": {"ca": _pair(cluster_secrets.etcd_ca)},
        })
    v1alpha1 = {"version": "v1alpha1", "debug": False, "persist": True, "machine": machine, "cluster": cluster}
    body = _dump(v1alpha1)
    body = body.replace("version: v1alpha1\n",
                        "version: v1alpha1 # Indicates the schema used to decode the contents.\n", 1)
    body = body.replace("machine:\n", "# Provides machine specific configuration options.\nmachine:\n", 1)
    body = body.replace("cluster:\n", "# Provides cluster specific configuration options.\ncluster:\n", 1)
    resolver = "apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: 1.1.1.1\n"
    return (body + "---\n" + resolver).encode()


# libyaml when PyYAML was built with it: parsing configs is the hot path of apply and resource publishing.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(document):
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def parse_config(data):
    """Split and parse a multi-document config; every document must be a mapping."""
    try:
        text = data.decode() if isinstance(data, (bytes, bytearray)) else data
        documents = [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"failed to parse config: {exc}".replace("\n", " ")) from None
    if not documents:
        raise ConfigError("failed to parse config: empty config")
    for document in documents:
        if not isinstance(document, dict):
            raise ConfigError("failed to parse config: document is not a mapping")
        if "version" not in document and ("apiVersion" not in document or "kind" not in document):
            raise ConfigError("failed to parse config: missing kind")
    return documents


def v1alpha1_document(documents):
    found = [doc for doc in documents if doc.get("version") == "v1alpha1"]
    if len(found) > 1:
        raise ConfigError("failed to parse config: duplicate v1alpha1 document")
    return found[0] if found else None


def validate(documents, *, require_v1alpha1, current_machine_type=None):
    """Runtime validation: the checks the emulator models, with Talos-style multi-error text."""
    errors = []
    v1alpha1 = v1alpha1_document(documents)
    if v1alpha1 is None:
        if require_v1alpha1:
            raise ConfigError("the config is missing v1alpha1 document (machine configuration)")
        return
    for doc in documents:
        if doc is not v1alpha1 and "version" in doc:
            errors.append(f"unknown config version {doc['version']!r}")
    machine = v1alpha1.get("machine")
    if not isinstance(machine, dict):
        errors.append("machine instructions are required")
    else:
        machine_type = machine.get("type")
        if machine_type not in MACHINE_TYPES:
            errors.append(f"unknown machine type {machine_type!r}")
        elif current_machine_type and _normal_type(machine_type) != _normal_type(current_machine_type):
            errors.append(f"machine type can't be changed from {current_machine_type!r} to {machine_type!r}")
        install = machine.get("install")
        if install is not None and not isinstance(install, dict):
            errors.append("machine.install must be a mapping")
    if "cluster" in v1alpha1 and not isinstance(v1alpha1["cluster"], dict):
        errors.append("cluster instructions must be a mapping")
    if errors:
        listing = "".join(f"\t* {e}\n" for e in errors)
        raise ConfigError(f"{len(errors)} error{'s' if len(errors) > 1 else ''} occurred:\n{listing}\n")


def _normal_type(machine_type):
    return "controlplane" if machine_type == "init" else machine_type


@functools.lru_cache(maxsize=1024)
def machine_type_of(data):
    try:
        doc = v1alpha1_document(parse_config(data))
    except ConfigError:
        return None
    machine = (doc or {}).get("machine")
    return machine.get("type") if isinstance(machine, dict) else None


def without_comments(data):
    """Re-encode every document with comments off (what configdiff compares)."""
    if not data:
        return ""
    return "---\n".join(_dump(doc) for doc in parse_config(data))


def config_diff(old, new):
    """A unified diff of the two configs re-encoded without comments, or "No changes."."""
    before, after = without_comments(old), without_comments(new)
    if before == after:
        return "No changes."
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile="a/machineconfig", tofile="b/machineconfig")
    return "".join(lines)


def immediate_mode_refusal(old, new):
    """Why ≤ v1.13 can't apply ``new`` live (CanApplyImmediate's error text), or None when it can."""
    if not old:
        return None
    old_doc = v1alpha1_document(parse_config(old))
    new_doc = v1alpha1_document(parse_config(new))
    if old_doc is None:
        return "current config is not v1alpha1"
    if new_doc is None:
        return "new config is not v1alpha1"
    # the new config with every live field taken from the current one: what is left differs only by reboot
    kept = {key: value for key, value in new_doc.items() if key not in LIVE_TOP_LEVEL_KEYS}
    kept.update({key: old_doc[key] for key in LIVE_TOP_LEVEL_KEYS if key in old_doc})
    old_machine, new_machine = old_doc.get("machine"), new_doc.get("machine")
    if isinstance(old_machine, dict) and isinstance(new_machine, dict):
        machine = {key: value for key, value in new_machine.items() if key not in LIVE_MACHINE_KEYS}
        machine.update({key: old_machine[key] for key in LIVE_MACHINE_KEYS if key in old_machine})
        old_features, new_features = old_machine.get("features"), new_machine.get("features")
        if isinstance(old_features, dict) and isinstance(new_features, dict):
            features = {key: value for key, value in new_features.items() if key not in LIVE_FEATURE_KEYS}
            features.update({key: old_features[key] for key in LIVE_FEATURE_KEYS if key in old_features})
            machine["features"] = features
        kept["machine"] = machine
    if kept == old_doc:
        return None
    diff = config_diff(_dump(old_doc).encode(), _dump(kept).encode())
    return f"this config change can't be applied in immediate mode\ndiff:\n{diff}"


def install_image(data):
    try:
        doc = v1alpha1_document(parse_config(data)) or {}
    except ConfigError:
        return None
    return ((doc.get("machine") or {}).get("install") or {}).get("image")
