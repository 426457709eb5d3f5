"""Kubeconfig and GenerateClientConfiguration: fresh client certificates from the cluster's CAs.

Kubeconfig sends what upstream sends: one common.Data holding a gzip of a tar stream with one regular
file "kubeconfig" (mode 0600) and nothing after its bytes. machined never closes its tar writer, so
there is no padding and no end-of-archive blocks: a reader must stop after the first member (Python's
tarfile raises "unexpected end of data" if asked for more, Go's tar reader returns ErrUnexpectedEOF).
"""
import base64
import datetime
import gzip
import re
import tarfile
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpclib.const import Status

from .. import machine_config, pki
from ..api import common_pb2, machine_pb2
from .base import fail, require_control_plane, rpc

M = "machine.MachineService"
ADMIN_CERT_LIFETIME = datetime.timedelta(hours=8760)     # KubernetesAdminCertDefaultLifetime
ALLOWED_TIME_SKEW = datetime.timedelta(seconds=10)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def b64(data):
    return base64.b64encode(data).decode()


def _cluster_section(node):
    document = machine_config.v1alpha1_document(machine_config.parse_config(node.config)) or {}
    return document.get("cluster") or {}


def _go_duration(text):
    """time.ParseDuration for the units a config uses (8760h, 1h30m, 90s)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = _GO_DURATION.findall(text or "")
    if not parts:
        return None
    return datetime.timedelta(seconds=sum(float(value) * units[unit] for value, unit in parts))


def _admin_certificate(issuing_ca, lifetime):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                 x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
        .issuer_name(issuing_ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - ALLOWED_TIME_SKEW).not_valid_after(now + lifetime)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    cert = builder.sign(issuing_ca.key, hashes.SHA256())
    return pki.certificate_pem(cert), pki.private_key_pem(key, "EC PRIVATE KEY")


def kubeconfig_document(cluster, node):
    """GenerateAdmin: clientcmd.Write of the admin config (keys sorted, as sigs.k8s.io/yaml writes them)."""
    section = _cluster_section(node)
    name = section.get("clusterName") or cluster.name
    endpoint = (section.get("controlPlane") or {}).get("endpoint") or \
        f"https://{cluster.control_planes[0].address}:6443"
    issuing = cluster.secrets.kubernetes_ca
    accepted = [issuing.cert_pem] + [base64.b64decode(ca["crt"]) for ca in section.get("acceptedCAs") or []
                                     if isinstance(ca, dict) and ca.get("crt")]
    lifetime = _go_duration((section.get("adminKubeconfig") or {}).get("certLifetime")) or ADMIN_CERT_LIFETIME
    crt, key = _admin_certificate(issuing, lifetime)
    user = f"admin@{name}"
    document = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": endpoint,
                                                "certificate-authority-data": b64(b"".join(accepted))}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(crt), "client-key-data": b64(key)}}],
        "contexts": [{"name": user, "context": {"cluster": name, "namespace": "default", "user": user}}],
        "current-context": user,
    }
    return yaml.safe_dump(document, sort_keys=True).encode()


def kubeconfig_archive(content):
    """The tar header and the bytes, gzipped; no padding, no end-of-archive blocks (see the module doc)."""
    info = tarfile.TarInfo("kubeconfig")
    info.size, info.mode, info.mtime, info.type = len(content), 0o600, int(time.time()), tarfile.REGTYPE
    return gzip.compress(info.tobuf(format=tarfile.USTAR_FORMAT) + content)


@rpc(M, "Kubeconfig")
async def kubeconfig(call, request):
    require_control_plane(call, "kubeconfig")
    yield common_pb2.Data(bytes=kubeconfig_archive(kubeconfig_document(call.cluster, call.node)))


@rpc(M, "GenerateClientConfiguration")
async def generate_client_configuration(call, request):
    node = call.node
    if not node.is_control_plane:
        if node.version.at_least(13):
            require_control_plane(call, "generate client configuration")
        fail(Status.FAILED_PRECONDITION, "client configuration (talosconfig) can't be generated on worker nodes")
    ttl = request.crt_ttl.ToTimedelta() if request.HasField("crt_ttl") else datetime.timedelta(0)
    if ttl <= datetime.timedelta(0):
        fail(Status.INVALID_ARGUMENT, "crt_ttl should be positive")
    roles = sorted(set(request.roles))        # role.Parse keeps unknown roles; Set.Strings() is sorted
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = call.cluster.pki_ca
    cert, key = ca.issue_client_certificate(roles, not_before=now, not_after=now + ttl)
    crt_pem, key_pem = pki.certificate_pem(cert), pki.private_key_pem(key, pki.TALOS_KEY_LABEL)
    name = _cluster_section(node).get("clusterName") or call.cluster.name
    context = f"{roles[0].removeprefix('os:')}@{name}" if len(roles) == 1 else name
    talosconfig = yaml.safe_dump({"context": context, "contexts": {context: {
        "endpoints": [], "ca": b64(ca.cert_pem), "crt": b64(crt_pem), "key": b64(key_pem)}}}, sort_keys=False)
    return machine_pb2.GenerateClientConfigurationResponse(messages=[machine_pb2.GenerateClientConfiguration(
        ca=ca.cert_pem, crt=crt_pem, key=key_pem, talosconfig=talosconfig.encode())])
