# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets out of machine configurations, so that a config can be shown, logged or returned.

What counts as a secret is decided by field name, in every document kind, so that documents added to Talos
later are covered without a list to keep up:

- a field named ``key``, ``token``, ``secret``, ``password``, ``passphrase`` or ending in one of these words
  (case-insensitive: ``machine.ca.key``, ``cluster.token``, ``secretboxEncryptionSecret``, ``privateKey``,
  ``identityToken``), and the fields ``auth`` and ``authorization`` (registry credentials, HTTP headers);
  ``publicKey`` is public;
- in any URL, a password (``https://user:password@host``) and the value of a query parameter whose name is a
  secret name by the rule above (SideroLink's ``?jointoken=...``).

Only text is redacted: a number or a boolean under such a name (``adUserPortKey: 0``) is a setting, not a
secret; every text in a mapping or list under such a name is secret (a registry's ``auth``: ``username`` too).
In a ``{name: ..., value: ...}`` pair (a container's ``env``) the value is secret when the name is. Empty strings
stay empty. The rule errs towards hiding: a Kubernetes toleration ``key`` inside ``machine.pods`` is hidden too.

Fields that hold free content, whatever it says, are secret by where they are (``CONTENT_FIELDS``): the values of
``machine.env``, of the ``env`` of ``cluster.apiServer``, ``controllerManager`` and ``scheduler`` (and of their
Kube*Config documents) and of manifest headers, ``machine.files[].content``, the ``environment`` values of
ExtensionServiceConfig and ContainerConfig, their config files, CRICustomizationConfig and EtcFileConfig
contents (a RegistryAuthConfig's ``username`` is ``<redacted>``, as under ``auth``). They become
``<redacted, N bytes, fingerprint ...>``: the fingerprint is an HMAC keyed afresh in each run, so a diff still
shows which content changed, and it tells nothing about the value. ``cluster.inlineManifests[].contents`` (and a
KubeInlineManifestConfig's ``manifest``) stays readable: each YAML document is shown with the rules above, and a
``Secret``'s ``data`` and ``stringData`` values as fingerprints; contents that do not parse as YAML mappings
become one fingerprint.

Certificates (``crt`` fields, base64 PEM or PEM text) are public; they become their SHA-256 fingerprint, which
is shorter and still tells two certificates apart. Other certificate fields (``acceptedCAs``, registry ``ca``,
``TrustedRootsConfig``) are left as they are.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import os
import re
from urllib.parse import unquote

REDACTED = "<redacted>"
SECRET_WORDS = ("key", "token", "secret", "password", "passphrase")
SECRET_NAMES = frozenset(("auth", "authorization"))
PUBLIC_PREFIX = "public"
CERTIFICATE_FIELDS = frozenset(("crt",))

# A fingerprint key per run (per process): equal contents look equal within a run, nothing can be guessed from it.
_FINGERPRINT_KEY = os.urandom(32)
# Where free content lives, by document kind ("v1alpha1" for the machine config document): path -> how it holds it.
CONTENT_FIELDS = {
    "v1alpha1": {("machine", "env"): "values", ("cluster", "extraManifestHeaders"): "values",
                 ("cluster", "apiServer", "env"): "values", ("cluster", "controllerManager", "env"): "values",
                 ("cluster", "scheduler", "env"): "values",
                 ("machine", "files"): ("items", "content"), ("cluster", "inlineManifests"): ("manifests", "contents")},
    "ExtensionServiceConfig": {("configFiles",): ("items", "content"), ("environment",): "assignments"},
    "ContainerConfig": {("environment",): "assignments"},
    "RegistryAuthConfig": {("username",): "all"},  # as machine.registries.config.*.auth, whose every field is
    "CRICustomizationConfig": {("content",): "text"},
    "EtcFileConfig": {("contents",): "text"},
    "KubeAPIServerConfig": {("env",): "values"},
    "KubeControllerManagerConfig": {("env",): "values"},
    "KubeSchedulerConfig": {("env",): "values"},
    "KubeExternalManifestConfig": {("headers",): "values"},
    "KubeInlineManifestConfig": {("manifest",): "manifest"},
}

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@")
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def redact_secrets(documents):
    """Deep copies of the documents with every secret replaced by ``<redacted>`` (free content by a
    fingerprint, see the module's docstring) and every ``crt`` certificate by ``<certificate sha256:AB:CD:...>``."""
    found = []
    return [_redact_document(document, found) for document in documents]


def secret_values(documents):
    """Every secret string of the documents, each once, in the order found (to be masked as no_log values)."""
    found = []
    for document in documents:
        _redact_document(document, found)
    return list(dict.fromkeys(found))


def content_marker(value):
    """``<redacted, N bytes, fingerprint ...>`` for free content: its size and a keyed fingerprint."""
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
    digest = hmac.new(_FINGERPRINT_KEY, data, hashlib.sha256).hexdigest()[:16]
    return f"<redacted, {len(data)} bytes, fingerprint {digest}>"


def _redact_document(document, found):
    if not isinstance(document, dict):
        return _redact(document, None, found)
    kind = document.get("kind") if document.get("kind") is not None or "apiVersion" in document else "v1alpha1"
    fields = CONTENT_FIELDS.get(kind)
    if fields:
        document = copy.deepcopy(document)
        for path, how in fields.items():
            parent = document
            for step in path[:-1]:
                parent = parent.get(step) if isinstance(parent, dict) else None
            if isinstance(parent, dict) and parent.get(path[-1]) is not None:
                parent[path[-1]] = _redact_content(parent[path[-1]], how, found)
    return _redact(document, None, found)


def _redact_content(value, how, found):
    if how == "text":
        return _secret_content(value, found)
    if how == "manifest":
        return _manifests(value, found)
    if how == "values" and isinstance(value, dict):
        return {key: _secret_content(item, found) for key, item in value.items()}
    if how == "assignments" and isinstance(value, list):
        return [f"{item.partition('=')[0]}={_secret_content(item.partition('=')[2], found)}"
                if isinstance(item, str) and "=" in item else _secret_content(item, found) for item in value]
    if isinstance(how, tuple) and isinstance(value, list):
        kind, field = how
        hide = _manifests if kind == "manifests" else _secret_content
        return [dict(item, **{field: hide(item[field], found)}) if isinstance(item, dict) and item.get(field)
                else item for item in value]
    return _redact_everything(value, found)


def _secret_content(value, found):
    if isinstance(value, (str, bytes, bytearray)) and value and not str(value).startswith("<redacted"):
        text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
        _redact(text, None, found)  # a URL's password is masked on its own too
        found.append(text)
        return content_marker(value)
    return _redact_everything(value, found)


def _redact_everything(value, found):
    """Every text in ``value`` is secret (a mapping or list under a secret name)."""
    if isinstance(value, dict):
        return {key: _redact_everything(item, found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_everything(item, found) for item in value]
    if isinstance(value, (str, bytes, bytearray)) and value and not str(value).startswith(REDACTED[:-1]):
        found.append(value if isinstance(value, str) else bytes(value).decode("utf-8", "replace"))
        return REDACTED
    return value


def _manifests(text, found):
    """Kubernetes manifests kept readable: every document redacted by the rules, a Secret's values fingerprinted;
    one fingerprint for contents that are not YAML mappings."""
    import yaml

    if not isinstance(text, str):
        return _secret_content(text, found)
    try:
        manifests = [m for m in yaml.safe_load_all(text) if m is not None]
    except yaml.YAMLError:
        return _secret_content(text, found)
    if not all(isinstance(m, dict) for m in manifests):
        return _secret_content(text, found)
    shown = []
    for manifest in manifests:
        if manifest.get("kind") == "Secret":
            manifest = dict(manifest, **{field: _redact_content(manifest[field], "values", found)
                                         for field in ("data", "stringData") if manifest.get(field) is not None})
        shown.append(_redact(manifest, None, found))
    return yaml.safe_dump_all(shown, sort_keys=False, default_flow_style=False)


def is_secret_name(name):
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return lowered in SECRET_NAMES or (lowered.endswith(SECRET_WORDS) and not lowered.startswith(PUBLIC_PREFIX))


def certificate_marker(value):
    """``<certificate sha256:..>`` for a PEM certificate (raw or base64-encoded), else ``<redacted>``."""
    text = value if "-----BEGIN" in value else _base64_text(value)
    match = _PEM_CERTIFICATE.search(text or "")
    if not match:
        return REDACTED
    der = _certificate_der(match.group(0), match.group("body"))
    if der is None:
        return REDACTED
    digest = hashlib.sha256(der).hexdigest().upper()
    return "<certificate sha256:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)) + ">"


def _redact(value, name, found):
    if isinstance(value, dict):
        if is_secret_name(name):
            return _redact_everything(value, found)
        if is_secret_name(value.get("name")) and "value" in value:
            value = dict(value, value=_redact_everything(value["value"], found))
        return {key: _redact(item, key, found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, name, found) for item in value]
    if isinstance(value, (str, bytes, bytearray)):
        if not value or (isinstance(value, str) and value.startswith(REDACTED[:-1])):
            return value  # empty, or redacted already (a marker)
        if isinstance(name, str) and name in CERTIFICATE_FIELDS and isinstance(value, str):
            return certificate_marker(value)
        if is_secret_name(name):
            found.append(value if isinstance(value, str) else bytes(value).decode("utf-8", "replace"))
            return REDACTED
        if isinstance(value, str) and "://" in value:
            return _URL.sub(lambda match: _redact_url(match.group(0), found), value)
    return value


def _redact_url(url, found):
    def password(match):
        found.append(match.group("password"))
        return f"{match.group('scheme')}{match.group('user')}:{REDACTED}@"

    def parameter(match):
        secret = match.group("value")
        if not secret or secret == REDACTED or not is_secret_name(unquote(match.group("name"))):
            return match.group(0)
        found.append(secret)
        if unquote(secret) != secret:
            found.append(unquote(secret))
        return f"{match.group('lead')}{match.group('name')}={REDACTED}"

    return _QUERY_PARAMETER.sub(parameter, _USERINFO.sub(password, url, count=1))


def _base64_text(value):
    try:
        return base64.b64decode(value, validate=False).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _certificate_der(pem, body):
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
    except ImportError:
        # Without cryptography the DER is still the PEM body; it is only not checked to be a certificate.
        try:
            return base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER)
    except ValueError:
        return None
