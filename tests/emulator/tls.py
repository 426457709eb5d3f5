"""Server-side TLS as apid sets it up: TLS >= 1.2, ALPN h2, no session tickets, client certificates.

Normal mode requires and verifies a client certificate against the Talos OS CA; maintenance mode asks
for none. A missing, expired or foreign-CA certificate fails the handshake with OpenSSL's alert, and so
does one whose ExtKeyUsage lacks clientAuth (OpenSSL's ssl_client purpose check). Python's ssl has no
verify callback for the rest of apid's verifyExtKeyUsage rule (every non-CA client certificate must have
ExtKeyUsage exactly [clientAuth]), so `client_certificate_usage_ok` runs right after the handshake and the
listener drops connections that fail it (README: known differences).
"""
import functools
import ssl

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID


def server_context(cert_path, key_path, ca_pem=None):
    """An SSLContext for one node. `ca_pem=None` means maintenance mode (no client certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_TICKET
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(cert_path, key_path)
    if ca_pem is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem)
    return context


@functools.lru_cache(maxsize=256)
def client_certificate_usage_ok(der):
    """True when the DER certificate is a CA or its ExtKeyUsage is exactly [clientAuth]."""
    cert = x509.load_der_x509_certificate(der)
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return False
    return usages == [ExtendedKeyUsageOID.CLIENT_AUTH]


def roles_from_peer_certificate(peercert):
    """Roles are the Subject Organization values of the leaf certificate; empty values are skipped."""
    if not peercert:
        return frozenset()
    return frozenset(
        value
        for rdn in peercert.get("subject", ())
        for key, value in rdn
        if key == "organizationName" and value
    )
