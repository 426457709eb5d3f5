"""The Talos OS PKI as `talosctl gen config` makes it: an Ed25519 CA, Ed25519 server and client leaves.

Roles travel in the client certificate's Subject Organization (one O value per role); the client
certificate's ExtendedKeyUsage is exactly [clientAuth]. talosconfig files store base64 PEM, with the
private key as PKCS#8 DER in a block labelled "ED25519 PRIVATE KEY" (siderolabs/crypto's label).
"""
import base64
import datetime
import ipaddress

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
CLIENT_VALIDITY = datetime.timedelta(days=365)   # TalosAPIDefaultCertificateValidityDuration
SERVER_VALIDITY = datetime.timedelta(days=365)
# Certificates are backdated a little so a client clock slightly behind ours still accepts them.
BACKDATE = datetime.timedelta(minutes=5)

TALOS_KEY_LABEL = "ED25519 PRIVATE KEY"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def private_key_pem(key, label="PRIVATE KEY"):
    """PKCS#8 PEM; Talos labels Ed25519 keys "ED25519 PRIVATE KEY"."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if label != "PRIVATE KEY":
        pem = pem.replace(b"PRIVATE KEY-----", label.encode() + b"-----")
    return pem


def certificate_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _sign(builder, key):
    # Ed25519 signs without a separate digest; ECDSA keys (the Kubernetes CAs) use SHA-256.
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _serial():
    return x509.random_serial_number()


class CertificateAuthority:
    """A self-signed CA able to issue leaves. Ed25519 for the Talos OS CA (NewTalosCA)."""

    def __init__(self, organization="talos", key=None, common_name=None):
        self.key = key or ed25519.Ed25519PrivateKey.generate()
        now = _now()
        name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
        if common_name:
            name.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        subject = x509.Name(name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(_serial())
            .not_valid_before(now - BACKDATE).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            # Go's self-signed CAs carry both usages; OpenSSL checks CA EKU compatibility when verifying leaves.
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
        )
        self.cert = _sign(builder, self.key)

    @property
    def cert_pem(self):
        return certificate_pem(self.cert)

    @property
    def key_pem(self):
        return private_key_pem(self.key, TALOS_KEY_LABEL if isinstance(self.key, ed25519.Ed25519PrivateKey)
                               else "PRIVATE KEY")

    def _leaf(self, subject, public_key, not_before, not_after, usages, sans=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(_serial())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if usages is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _sign(builder, self.key)

    def issue_server_certificate(self, hostname, addresses, extra_sans=()):
        """apid's serving certificate: SANs = node addresses, 127.0.0.1, hostname (+ certSANs)."""
        key = ed25519.Ed25519PrivateKey.generate()
        ips, names = [], [hostname]
        for value in [*addresses, "127.0.0.1", *extra_sans]:
            try:
                ip = ipaddress.ip_address(value)
            except ValueError:
                if value not in names:
                    names.append(value)
            else:
                if ip not in ips:
                    ips.append(ip)
        sans = [x509.IPAddress(ip) for ip in ips] + [x509.DNSName(n) for n in names]
        now = _now()
        cert = self._leaf(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]), key.public_key(),
                          now - BACKDATE, now + SERVER_VALIDITY, [ExtendedKeyUsageOID.SERVER_AUTH], sans)
        return cert, key

    def issue_client_certificate(self, roles, *, extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
                                 not_before=None, not_after=None, common_name=None):
        """A talosctl-style client certificate: one Subject O value per role, EKU exactly [clientAuth].

        `extended_key_usage=None` omits the extension; tests pass other lists to provoke the EKU check.
        """
        key = ed25519.Ed25519PrivateKey.generate()
        now = _now()
        not_before = not_before or now - BACKDATE
        not_after = not_after or now + CLIENT_VALIDITY
        name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, role) for role in roles]
        if common_name:
            name.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        cert = self._leaf(x509.Name(name), key.public_key(), not_before, not_after, extended_key_usage)
        return cert, key


def self_signed_server_certificate(hostname, addresses):
    """Maintenance mode serves a throwaway self-signed certificate (clients skip verification)."""
    return CertificateAuthority(organization="talos-maintenance").issue_server_certificate(hostname, addresses)


def ecdsa_ca(organization, common_name=None):
    """Kubernetes/etcd CAs in a generated machine config are ECDSA P-256, not Ed25519."""
    return CertificateAuthority(organization, key=ec.generate_private_key(ec.SECP256R1()), common_name=common_name)


def _b64(data):
    return base64.b64encode(data).decode()


def render_talosconfig(context, endpoints, nodes, ca_pem, cert, key):
    """talosconfig YAML (pkg/machinery/client/config): no roles key, roles live in the certificate."""
    document = {
        "context": context,
        "contexts": {
            context: {
                "endpoints": list(endpoints),
                "nodes": list(nodes),
                "ca": _b64(ca_pem),
                "crt": _b64(certificate_pem(cert)),
                "key": _b64(private_key_pem(key, TALOS_KEY_LABEL)),
            }
        },
    }
    return yaml.safe_dump(document, sort_keys=False)
