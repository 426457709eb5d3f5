"""The wire as real Talos speaks it (issue 11, points 1-8): ALPN, handshake alerts, apid's director,
the Events hello, upstream's error texts and the 32 MiB receive limit, through real gRPC and TLS."""
import asyncio
import ssl

import pytest
from grpclib.const import Cardinality, Status

from tests.emulator.api import machine_pb2, state_pb2
from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context, load_talosconfig

HOSTNAME = "/machine.MachineService/Hostname"
MACHINE_STATUS = state_pb2.ListRequest(namespace="runtime", type="MachineStatuses.runtime.talos.dev")


# 1. ALPN -------------------------------------------------------------------------------------------------

async def _first_bytes(address, context):
    """Handshake, then what the server sends first: an h2 server speaks first with its SETTINGS frame."""
    reader, writer = await asyncio.open_connection(address, 50000, ssl=context)
    try:
        return await asyncio.wait_for(reader.read(64), 3)
    finally:
        writer.close()


@pytest.mark.parametrize("offered", [None, ["http/1.1"]])
def test_connection_without_alpn_h2_is_closed_after_the_handshake(cluster, offered):
    context = client_ssl_context(load_talosconfig(cluster.talosconfig_path()))
    context.set_alpn_protocols(offered or [])
    assert asyncio.run(_first_bytes(cluster.control_planes[0], context)) == b""
    context.set_alpn_protocols(["h2"])
    assert asyncio.run(_first_bytes(cluster.control_planes[0], context))  # the SETTINGS frame


# 2. refused client certificates end the handshake with an alert ---------------------------------------

def _handshake_error(cluster, context, tls_version):
    context.maximum_version = tls_version

    async def run():
        reader, writer = await asyncio.open_connection(cluster.control_planes[0], 50000, ssl=context)
        try:
            writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            await asyncio.wait_for(reader.read(64), 3)
        finally:
            writer.close()
    with pytest.raises(ssl.SSLError) as caught:
        asyncio.run(run())
    return caught.value.reason


def _foreign_context(cluster, emulated_cluster):
    other = emulated_cluster(control_planes=1, workers=0)
    foreign = load_talosconfig(other.talosconfig_path())
    return client_ssl_context({**foreign, "ca": cluster.ca_pem})


def _no_certificate_context(cluster):
    context = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    return context


@pytest.mark.parametrize("tls_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_refused_client_certificates_get_an_alert(cluster, emulated_cluster, tls_version):
    expired = client_ssl_context(load_talosconfig(cluster.talosconfig_path("expired")))
    assert _handshake_error(cluster, expired, tls_version) == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    foreign = _foreign_context(cluster, emulated_cluster)
    assert _handshake_error(cluster, foreign, tls_version) == "TLSV1_ALERT_UNKNOWN_CA"
    missing = _handshake_error(cluster, _no_certificate_context(cluster), tls_version)
    # OpenSSL's alerts for "no certificate" (Go: certificate_required under 1.3, bad_certificate under 1.2)
    assert missing == ("TLSV13_ALERT_CERTIFICATE_REQUIRED" if tls_version == ssl.TLSVersion.TLSv1_3
                       else "SSLV3_ALERT_HANDSHAKE_FAILURE")


# 3-5. apid's director ------------------------------------------------------------------------------------

def test_nodes_wins_over_node(cluster, admin):
    target, ignored = cluster.workers
    reply = admin("Hostname", metadata=[("node", ignored), ("nodes", target)])
    assert [(m.metadata.hostname, m.hostname) for m in reply.messages] == [(target, "talos-w-1")]
    assert cluster.calls[(ignored, HOSTNAME)] == 0
    # node is still checked for being single-valued first
    error = admin.error("Hostname", metadata=[("node", target), ("node", ignored), ("nodes", target)])
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "node metadata must be single-valued")


def test_comma_joined_nodes_value_is_one_target(cluster, admin):
    joined = ",".join(cluster.workers)
    reply = admin("Hostname", metadata=[("nodes", joined)])
    assert len(reply.messages) == 1
    assert reply.messages[0].metadata.hostname == joined
    assert reply.messages[0].metadata.status.code == Status.UNAVAILABLE.value
    assert all(cluster.calls[(worker, HOSTNAME)] == 0 for worker in cluster.workers)


def test_worker_serves_nodes_naming_itself_locally_and_unwrapped(cluster, admin):
    worker, other = cluster.workers
    reply = admin("Hostname", endpoint=worker, metadata=[("nodes", worker)])
    assert reply.messages[0].hostname == "talos-w-1" and not reply.messages[0].HasField("metadata")
    listed = admin("List", MACHINE_STATUS, endpoint=worker, metadata=[("nodes", "talos-w-1")])
    assert [r.resource.metadata.id for r in listed] == ["machine"]
    for nodes in ([other], [worker, worker], [worker, other]):
        error = admin.error("Hostname", endpoint=worker, metadata=[("nodes", n) for n in nodes])
        assert (error.status, error.message) == (Status.PERMISSION_DENIED, "no request forwarding")
    # the one-to-many method check comes first, and a target is not validated where nothing is forwarded
    error = admin.error("List", MACHINE_STATUS, endpoint=worker, metadata=[("nodes", other)])
    assert error.status == Status.INVALID_ARGUMENT
    error = admin.error("Hostname", endpoint=worker, node=f"{other}:50000")
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "no request forwarding")


# 6. the Events hello -------------------------------------------------------------------------------------

def test_events_hello_is_upstreams(cluster, admin):
    async def first_event(actor):
        client = TalosTestClient(cluster.control_planes[0], admin.context)
        try:
            async with client.channel.request("/machine.MachineService/Events", Cardinality.UNARY_STREAM,
                                              machine_pb2.EventsRequest, machine_pb2.Event, timeout=5) as stream:
                await stream.send_message(machine_pb2.EventsRequest(with_actor_id=actor), end=True)
                event = await stream.recv_message()
                await stream.cancel()
                return event
        finally:
            client.close()
    first, second = asyncio.run(first_event("actor-1")), asyncio.run(first_event(""))
    assert first.HasField("data") and first.data.type_url == "" and first.data.value == b""
    assert b"\x12\x00" in first.SerializeToString()   # field 2, an empty message, on the wire
    assert len(first.id) == 20 and len(second.id) == 20 and first.id != second.id
    assert first.actor_id == "actor-1" and second.actor_id == ""


# 7. error texts as upstream's ---------------------------------------------------------------------------

def test_error_texts_are_upstreams(cluster, admin):
    worker = cluster.workers[0]
    error = admin.error("List", MACHINE_STATUS, metadata=[("nodes", worker)])
    assert (error.status, error.message) == (
        Status.INVALID_ARGUMENT, "one-2-many proxying is not supported for method /cosi.resource.State/List")
    error = admin.error("Hostname", metadata=[("nodes", worker), ("nodes", f"{worker}:50000")])
    assert (error.status, error.message) == (Status.INTERNAL, f'invalid target "{worker}:50000"')
    error = admin.error("EtcdMemberList", endpoint=worker)
    assert (error.status, error.message) == (Status.UNIMPLEMENTED,
                                             "member list is only available on control plane nodes")
    error = admin.error("HealthCheck", endpoint=worker)
    assert (error.status, error.message) == (Status.UNIMPLEMENTED,
                                             "cluster health check is only available on control plane nodes")


def test_cosi_fan_out_text_before_1_13(emulated_cluster, caller):
    cluster = emulated_cluster(control_planes=1, workers=0, talos_version="1.12.4")
    error = caller(cluster).error("List", MACHINE_STATUS, metadata=[("nodes", cluster.control_planes[0])])
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT,
                                             "one-2-many proxying is not supported for COSI methods")


# 8. apid's 32 MiB receive limit -------------------------------------------------------------------------

def test_messages_over_32_mib_are_refused(cluster, admin):
    limit = 32 * 1024 * 1024
    request = machine_pb2.ApplyConfigurationRequest(data=b"#" * limit)
    size = request.ByteSize()
    error = admin.error("ApplyConfiguration", request, timeout=60)
    assert (error.status, error.message) == (Status.RESOURCE_EXHAUSTED,
                                             f"grpc: received message larger than max ({size} vs. {limit})")
    assert cluster.calls[(cluster.control_planes[0], "/machine.MachineService/ApplyConfiguration")] == 0


def test_upgrade_and_rollback_refusal_texts_are_upstreams(emulated_cluster, caller):
    cluster = emulated_cluster(control_planes=2, workers=1)
    admin = caller(cluster)
    upgrade = machine_pb2.UpgradeRequest(image="ghcr.io/siderolabs/installer:v1.13.6")
    error = admin.error("Upgrade", upgrade)
    assert (error.status, error.message) == (Status.UNKNOWN, "error validating etcd for upgrade: etcd member "
                                             "count(2) is insufficient to maintain quorum if upgrade commences")
    error = admin.error("Rollback", machine_pb2.RollbackRequest(), node=cluster.workers[0])
    assert (error.status, error.message) == (Status.UNKNOWN, 'cannot rollback to "", label does not exist')


def test_lifecycle_refusal_texts_are_upstreams(cluster, admin):
    from tests.emulator.api import lifecycle_pb2

    def install(image=""):
        return lifecycle_pb2.LifecycleServiceInstallRequest(source=machine_pb2.InstallArtifactsSource(image_name=image))

    error = admin.error("LifecycleService/Install", install("ghcr.io/siderolabs/installer:v1.13.5"))
    assert (error.status, error.message) == (Status.ALREADY_EXISTS, "machine is already installed")
    error = admin.error("LifecycleService/Upgrade", lifecycle_pb2.LifecycleServiceUpgradeRequest())
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "installer image name is required")


@pytest.mark.parametrize("version", ["1.12.4", "1.13.5"])
def test_a_maintenance_node_serves_every_call_itself(emulated_cluster, version):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=version, maintenance_nodes=[1])
    address, other = cluster.workers[0], cluster.control_planes[0]

    async def version(metadata):
        client = TalosTestClient(address, client_ssl_context(maintenance=True))
        try:
            return await client.call("Version", metadata=metadata)
        finally:
            client.close()
    for metadata in ([("node", other)], [("nodes", other)], [("nodes", other), ("nodes", address)]):
        reply = asyncio.run(version(metadata))
        assert len(reply.messages) == 1 and not reply.messages[0].HasField("metadata")
    assert cluster.calls[(address, "/machine.MachineService/Version")] == 3
    assert cluster.calls[(other, "/machine.MachineService/Version")] == 0
