"""PKI as Talos makes it, talosconfig files, and apid's TLS rules (mTLS, EKU, expiry, maintenance)."""
import asyncio
import base64
import datetime
import ssl

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context, load_talosconfig


def _cert(pem):
    return x509.load_pem_x509_certificate(pem)


def test_ca_is_self_signed_ed25519_authority(cluster):
    ca = _cert(cluster.ca_pem)
    assert isinstance(ca.public_key(), ed25519.Ed25519PublicKey)
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "talos"
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > datetime.timedelta(days=3000)


def test_talosconfig_layout_and_client_certificate(cluster):
    document = yaml.safe_load(cluster.talosconfig_path().read_text())
    assert document["context"] == "emulated"
    context = document["contexts"]["emulated"]
    assert context["endpoints"] == cluster.control_planes
    assert context["nodes"] == cluster.addresses
    assert base64.b64decode(context["ca"]) == cluster.ca_pem
    key_pem = base64.b64decode(context["key"]).decode()
    assert key_pem.startswith("-----BEGIN ED25519 PRIVATE KEY-----")
    cert = _cert(base64.b64decode(context["crt"]))
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["os:admin"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=364) < validity < datetime.timedelta(days=367)
    cert.verify_directly_issued_by(_cert(cluster.ca_pem))


@pytest.mark.parametrize("kind,role", [("operator", "os:operator"), ("reader", "os:reader"),
                                       ("etcd-backup", "os:etcd:backup"), ("expired", "os:admin")])
def test_role_talosconfigs(cluster, kind, role):
    cert = _cert(load_talosconfig(cluster.talosconfig_path(kind))["crt"])
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [role]
    expired = cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc)
    assert expired is (kind == "expired")


def test_server_certificate_sans_and_usage(cluster):
    address = cluster.workers[0]
    pem = ssl.get_server_certificate((address, 50000))
    cert = _cert(pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert ips == {address, "127.0.0.1"}
    assert sans.get_values_for_type(x509.DNSName) == ["talos-w-1"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)


def test_mtls_call_with_hostname_verification(cluster, admin):
    reply = admin("Version")
    assert reply.messages[0].version.tag == "v1.13.5"
    assert reply.messages[0].platform.name == "metal"
    assert reply.messages[0].features.rbac is True


def _call_fails(cluster, talosconfig_path=None, context=None):
    context = context or client_ssl_context(load_talosconfig(talosconfig_path))

    async def run():
        client = TalosTestClient(cluster.control_planes[0], context)
        try:
            await client.call("Version", timeout=3)
        finally:
            client.close()
    with pytest.raises((GRPCError, StreamTerminatedError, ConnectionError, ssl.SSLError, OSError, asyncio.TimeoutError)):
        asyncio.run(run())


@pytest.mark.parametrize("usages", [
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    None,
])
def test_client_certificate_without_exactly_client_auth_is_refused(cluster, usages):
    path = cluster.write_talosconfig("talosconfig-bad-eku", ["os:admin"], extended_key_usage=usages)
    _call_fails(cluster, path)
    listener = cluster.node(cluster.control_planes[0]).raw.listener
    assert listener.rejected_handshakes >= 1
    # The same roles with the right usage work.
    good = cluster.write_talosconfig("talosconfig-good-eku", ["os:admin"])
    assert Caller(cluster, talosconfig=good)("Version").messages[0].version.tag == "v1.13.5"


def test_expired_and_missing_client_certificates_are_refused(cluster):
    _call_fails(cluster, cluster.talosconfig_path("expired"))
    context = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    _call_fails(cluster, context=context)


def test_maintenance_node_serves_without_client_certificate_as_reader(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, maintenance_nodes=[1])
    address = cluster.workers[0]
    assert cluster.node(address).maintenance

    async def run(rpc):
        client = TalosTestClient(address, client_ssl_context(maintenance=True))
        try:
            return await client.call(rpc)
        finally:
            client.close()
    assert asyncio.run(run("Version")).messages[0].version.tag == "v1.13.5"
    with pytest.raises(GRPCError) as caught:
        asyncio.run(run("Reboot"))
    assert caught.value.status == Status.PERMISSION_DENIED and caught.value.message == "not authorized"
