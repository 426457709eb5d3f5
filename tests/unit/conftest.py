"""Key material for unit tests: an Ed25519 CA and client certificate made the way Talos makes them."""

import base64
import datetime

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _cert(subject_key, issuer_key, subject, issuer, *, ca=False, days=365, not_after=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    not_after = not_after or now + datetime.timedelta(days=days)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(min(now, not_after) - datetime.timedelta(days=2))
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, None).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def pki():
    ca_key = ed25519.Ed25519PrivateKey.generate()
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "talos")])
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "os:admin"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "os:etcd:backup")])
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_pem = (b"-----BEGIN ED25519 PRIVATE KEY-----\n" + base64.encodebytes(key_der)
               + b"-----END ED25519 PRIVATE KEY-----\n")
    expired = _cert(key, ca_key, subject, ca_name,
                    not_after=datetime.datetime(2025, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc))
    return {
        "ca": _cert(ca_key, ca_key, ca_name, ca_name, ca=True),
        "crt": _cert(key, ca_key, subject, ca_name),
        "key": key_pem,
        "expired_crt": expired,
    }


@pytest.fixture
def write_talosconfig(tmp_path, pki):
    """Write a talosconfig; contexts default to one context 'prod' with base64 PEM fields."""

    def write(contexts=None, current="prod", name="config", raw=None):
        path = tmp_path / name
        if raw is not None:
            path.write_text(raw)
            return path
        if contexts is None:
            contexts = {"prod": {"endpoints": ["10.0.0.2"]}}
        for ctx in contexts.values():
            for field in ("ca", "crt", "key"):
                ctx.setdefault(field, base64.b64encode(pki[field]).decode())
        path.write_text(yaml.safe_dump({"context": current, "contexts": contexts}))
        return path

    return write
