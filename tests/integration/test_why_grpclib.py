"""Why the collection speaks gRPC through grpclib and Python's ssl rather than grpcio.

Talos's CA and apid server certificates are Ed25519. grpcio's BoringSSL does not offer Ed25519 in its
signature algorithms, so the TLS handshake with a Talos node fails before any RPC; Python's ssl (OpenSSL)
completes it. This test reproduces both against an emulated node with a Talos-made PKI
(docs/why-grpclib.md explains it for users).
"""

import base64

import pytest
import yaml

from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings
from ansible_collections.talos.linux.plugins.module_utils._tls import normalise_key_pem

grpc = pytest.importorskip("grpc", reason="grpcio comes with grpcio-tools from requirements-dev.txt")


def test_grpcio_cannot_handshake_with_an_ed25519_node_but_grpclib_can(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0)
    node = cluster.control_planes[0]
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    ctx = config["contexts"][config["context"]]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=base64.b64decode(ctx["ca"]),
        private_key=normalise_key_pem(base64.b64decode(ctx["key"])),
        certificate_chain=base64.b64decode(ctx["crt"]))

    from ansible_collections.talos.linux.plugins.module_utils._client import rpc_method
    method = rpc_method("Version")
    with grpc.secure_channel(f"{node}:50000", credentials) as channel:
        version = channel.unary_unary(method.path, request_serializer=method.request_type.SerializeToString,
                                      response_deserializer=method.reply_type.FromString)
        with pytest.raises(grpc.RpcError) as err:
            version(method.request_type(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # the failure is the TLS handshake, not the RPC: no call ever reached the node
    assert cluster.calls[(node, method.path)] == 0

    client = TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path())))
    assert client.run(lambda c: c.version(node)).version.tag.startswith("v1.")
    assert cluster.calls[(node, method.path)] == 1
