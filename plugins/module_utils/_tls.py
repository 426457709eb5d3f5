# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TLS for the Talos API: mutual TLS with Talos's Ed25519 keys over Python's ssl, and maintenance mode.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
Python's ssl (OpenSSL) offers Ed25519 signatures; grpcio's BoringSSL does not, which is why the client
speaks gRPC through grpclib over this context (docs/why-grpclib.md).
"""

from __future__ import annotations

import datetime
import os
import re
import ssl
import tempfile
from dataclasses import dataclass

from ._errors import ConfigError

# Talos armours PKCS#8 DER as "ED25519 PRIVATE KEY"; OpenSSL reads the same bytes only as "PRIVATE KEY".
_TALOS_KEY_LABEL = re.compile(rb"-----(BEGIN|END) ED25519 PRIVATE KEY-----")


@dataclass(frozen=True)
class ClientCertificate:
    roles: tuple
    not_after: datetime.datetime
    subject: str

    @property
    def expired(self):
        return self.not_after <= datetime.datetime.now(datetime.timezone.utc)


def normalise_key_pem(key_pem):
    return _TALOS_KEY_LABEL.sub(rb"-----\1 PRIVATE KEY-----", key_pem)


def inspect_client_certificate(crt_pem):
    """Roles (the Organization values, as Talos reads them) and expiry of the client certificate."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(crt_pem)
    except ValueError:
        raise ConfigError("The client certificate (crt) is not a valid PEM certificate.") from None
    roles = tuple(a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) if a.value)
    not_after = getattr(cert, "not_valid_after_utc", None)
    if not_after is None:  # cryptography < 42
        not_after = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return ClientCertificate(roles=roles, not_after=not_after, subject=cert.subject.rfc4514_string())


def check_client_certificate(crt_pem, context):
    """Refuse an expired certificate before dialing: the node would only say 'bad certificate'."""
    info = inspect_client_certificate(crt_pem)
    if info.expired:
        raise ConfigError(
            f"The client certificate of context {context!r} expired on {info.not_after:%Y-%m-%d %H:%M:%S} UTC.",
            hint="Generate a new talosconfig (talosctl config new, or from the cluster secrets) and use it.")
    return info


def make_ssl_context(settings):
    """An SSLContext for grpclib: CA pinned, client certificate loaded, ALPN h2, TLS 1.2 or newer."""
    if "LibreSSL" in ssl.OPENSSL_VERSION:
        raise ConfigError(f"This Python is built with {ssl.OPENSSL_VERSION}, which cannot use Talos's Ed25519 "
                          "certificates.", hint="Use a Python built against OpenSSL 1.1.1 or newer.")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["h2"])
    if settings.insecure:
        # Maintenance mode: the node has no identity yet and asks for no client certificate.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if settings.ca_pem:
        try:
            ctx.load_verify_locations(cadata=settings.ca_pem.decode("ascii", "replace"))
        except ssl.SSLError:
            raise ConfigError(f"The CA certificate (ca) of context {settings.context!r} is not valid PEM.") from None
    else:
        ctx.load_default_certs()  # as talosctl: an empty ca means the system roots
    load_client_certificate(ctx, settings.crt_pem, settings.key_pem, settings.context)
    return ctx


def load_client_certificate(ctx, crt_pem, key_pem, context):
    """ssl reads certificates only from files: write both to 0600 files in a 0700 directory, load, remove."""
    directory = tempfile.mkdtemp(prefix="talos-tls-")
    crt_path, key_path = os.path.join(directory, "crt.pem"), os.path.join(directory, "key.pem")
    try:
        for path, data in ((crt_path, crt_pem), (key_path, normalise_key_pem(key_pem))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        ctx.load_cert_chain(crt_path, key_path)
    except ssl.SSLError as exc:
        reason = "do not belong together" if "KEY_VALUES_MISMATCH" in str(exc) else "cannot be loaded"
        raise ConfigError(f"The client certificate and key of context {context!r} {reason}.",
                          hint="Check the crt and key fields of the talosconfig.") from None
    finally:
        for path in (crt_path, key_path):
            if os.path.exists(path):
                os.unlink(path)
        os.rmdir(directory)
