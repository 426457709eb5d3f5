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
secret, and a mapping or list under it is searched field by field. Empty strings stay empty. The rule errs
towards hiding: a Kubernetes toleration ``key`` inside ``machine.pods`` is hidden too.

Certificates (``crt`` fields, base64 PEM or PEM text) are public; they become their SHA-256 fingerprint, which
is shorter and still tells two certificates apart. Other certificate fields (``acceptedCAs``, registry ``ca``,
``TrustedRootsConfig``) are left as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from urllib.parse import unquote

REDACTED = "<redacted>"
SECRET_WORDS = ("key", "token", "secret", "password", "passphrase")
SECRET_NAMES = frozenset(("auth", "authorization"))
PUBLIC_PREFIX = "public"
CERTIFICATE_FIELDS = frozenset(("crt",))

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):(?P<password>[^/@\s]+)@")
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def redact_secrets(documents):
    """Deep copies of the documents with every secret replaced by ``<redacted>`` and every ``crt``
    certificate by ``<certificate sha256:AB:CD:...>``."""
    found = []
    return [_redact(document, None, found) for document in documents]


def secret_values(documents):
    """Every secret string of the documents, each once, in the order found (to be masked as no_log values)."""
    found = []
    for document in documents:
        _redact(document, None, found)
    return list(dict.fromkeys(found))


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
        return {key: _redact(item, key, found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, name, found) for item in value]
    if isinstance(value, (str, bytes, bytearray)):
        if not value or value == REDACTED:
            return value
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
