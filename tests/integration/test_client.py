"""The Talos client against the emulator, through real gRPC and real Ed25519 mutual TLS."""

import asyncio
import base64
import datetime
import re
import ssl
import time

import pytest
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpclib.const import Status

from ansible_collections.talos.linux.plugins.module_utils._client import RetryPolicy, TalosClient
from ansible_collections.talos.linux.plugins.module_utils._errors import ConfigError, TalosError
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)


def client_for(cluster, role="admin", **options):
    kwargs = {k: options.pop(k) for k in ("timeout", "retry", "concurrency") if k in options}
    kwargs.setdefault("retry", FAST_RETRY)
    return TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path(role)), **options), **kwargs)


def run(client, operation):
    return client.run(operation)


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=3, workers=2)


def test_version_and_hostname_over_ed25519_mtls(cluster):
    client = client_for(cluster)

    async def both(c):
        out = {}
        for node in cluster.addresses:
            version = await c.version(node)
            hostname = await c.call("Hostname", node=node)
            out[node] = (version.version.tag, hostname.messages[0].hostname)
        return out

    result = run(client, both)
    assert set(result) == set(cluster.addresses)
    for node, (tag, hostname) in result.items():
        assert tag == "v1.13.5" and hostname == cluster.node(node).hostname
    assert client.roles == ("os:admin",)


def test_server_certificate_is_ed25519_and_alpn_is_h2(cluster):
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519

    client = client_for(cluster)
    endpoint = cluster.control_planes[0]

    async def handshake():
        reader, writer = await asyncio.open_connection(endpoint, 50000, ssl=client._ssl)
        sslobj = writer.get_extra_info("ssl_object")
        cert = x509.load_der_x509_certificate(sslobj.getpeercert(binary_form=True))
        protocol = sslobj.selected_alpn_protocol()
        writer.close()
        return cert, protocol

    cert, protocol = asyncio.run(handshake())
    assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey) and protocol == "h2"


def test_every_call_carries_node_metadata_and_is_routed(cluster):
    client = client_for(cluster, endpoints=[cluster.control_planes[0]])
    worker = cluster.workers[0]
    reply = run(client, lambda c: c.call("Hostname", node=worker))
    assert reply.messages[0].hostname == cluster.node(worker).hostname
    assert cluster.calls[(worker, "/machine.MachineService/Hostname")] == 1


def test_failover_when_the_first_endpoint_is_down(cluster):
    first, second = cluster.control_planes[:2]
    cluster.take_down(first)
    client = client_for(cluster, endpoints=[first, second])
    client._endpoints = list(client.settings.endpoints)  # first endpoint first, deterministically
    reply = run(client, lambda c: c.version(cluster.workers[0]))
    assert reply.version.tag == "v1.13.5"
    assert str(client._endpoints[0]).startswith(second), "the working endpoint is preferred afterwards"


def test_all_endpoints_down_names_every_endpoint_tried(cluster):
    for address in cluster.control_planes:
        cluster.take_down(address)
    client = client_for(cluster, timeout=5)
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version(cluster.workers[0]))
    assert err.value.code == "Unavailable"
    for address in cluster.control_planes:
        assert f"{address}:50000" in str(err.value)


def test_retry_on_an_unavailable_burst(cluster):
    node = cluster.workers[0]
    cluster.fail("Version", code=Status.UNAVAILABLE, count=2, node=node, message="node is restarting")
    reply = run(client_for(cluster), lambda c: c.version(node))
    assert reply.version.tag == "v1.13.5"
    assert cluster.calls[(node, "/machine.MachineService/Version")] == 3


def test_retries_are_bounded(cluster):
    node = cluster.workers[0]
    cluster.fail("Version", code=Status.UNAVAILABLE, count=100, node=node, message="still down")
    with pytest.raises(TalosError) as err:
        run(client_for(cluster), lambda c: c.version(node))
    assert err.value.code == "Unavailable" and "still down" in str(err.value)
    # 4 rounds over 3 endpoints, each forwarded to the same node
    assert cluster.calls[(node, "/machine.MachineService/Version")] == 4 * 3


def test_a_mutating_call_is_not_retried_after_unavailable(cluster):
    node = cluster.control_planes[1]
    cluster.fail("EtcdDefragment", code=Status.UNAVAILABLE, count=1, node=node, message="lost")
    with pytest.raises(TalosError) as err:
        run(client_for(cluster), lambda c: c.call("EtcdDefragment", node=node))
    assert err.value.code == "Unavailable"
    assert cluster.calls[(node, "/machine.MachineService/EtcdDefragment")] == 1


def test_deadline_on_a_slow_node(cluster):
    slow, fast = cluster.workers
    cluster.add_latency(3.0, node=slow)
    client = client_for(cluster, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version(slow))
    assert time.monotonic() - started < 2.0
    assert err.value.code == "DeadlineExceeded" and "0.5 s" in str(err.value) and slow in str(err.value)
    assert run(client_for(cluster, timeout=0.5), lambda c: c.version(fast)).version.tag == "v1.13.5"


def test_reader_refused_on_an_admin_rpc_with_a_clear_message(cluster):
    node = cluster.control_planes[0]
    client = client_for(cluster, role="reader")
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.call("Bootstrap", node=node))
    text = str(err.value)
    assert err.value.code == "PermissionDenied"
    assert "MachineService/Bootstrap" in text and "needs one of the roles os:admin" in text
    assert "the client certificate has os:reader" in text
    # a reader may still read
    assert run(client_for(cluster, role="reader"), lambda c: c.version(node)).version.tag == "v1.13.5"


def test_expired_certificate_refused_before_dialing(cluster):
    before = sum(cluster.calls.values())
    with pytest.raises(ConfigError) as err:
        client_for(cluster, role="expired")
    assert "expired on" in str(err.value) and "context" in str(err.value)
    assert sum(cluster.calls.values()) == before


def test_wrong_ca_is_named(cluster, emulated_cluster, tmp_path):
    other = emulated_cluster(control_planes=1, workers=0)
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    ctx = config["contexts"][config["context"]]
    ctx["ca"] = base64.b64encode(other.ca_pem).decode()
    path = tmp_path / "wrong-ca"
    path.write_text(yaml.safe_dump(config))
    client = TalosClient(load_settings(talosconfig=str(path)), retry=FAST_RETRY)
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version())
    assert err.value.code == "TLSError" and "not signed by the CA of context" in str(err.value)


def test_client_certificate_of_another_cluster_is_refused(cluster, emulated_cluster, tmp_path):
    other = emulated_cluster(control_planes=1, workers=0)
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    foreign = yaml.safe_load(other.talosconfig_path().read_text())
    ctx, fctx = config["contexts"][config["context"]], foreign["contexts"][foreign["context"]]
    ctx["crt"], ctx["key"] = fctx["crt"], fctx["key"]
    path = tmp_path / "foreign-cert"
    path.write_text(yaml.safe_dump(config))
    client = TalosClient(load_settings(talosconfig=str(path)), retry=FAST_RETRY, timeout=5)
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version())
    assert err.value.code == "TLSError" and "refused the client certificate" in str(err.value)


def test_server_name_mismatch_and_override(cluster):
    node = cluster.control_planes[0]
    hostname = cluster.node(node).hostname
    # connecting by an address the certificate does not hold: 127.0.0.1 is in the SANs, so use localhost
    settings = load_settings(talosconfig=str(cluster.talosconfig_path()), endpoints=[node],
                             server_name="not-in-the-sans.example")
    with pytest.raises(TalosError) as err:
        run(TalosClient(settings, retry=FAST_RETRY), lambda c: c.version())
    assert err.value.code == "TLSError" and "server_name" in str(err.value)
    settings.server_name = hostname
    assert run(TalosClient(settings, retry=FAST_RETRY), lambda c: c.version()).version.tag == "v1.13.5"


def test_worker_endpoint_refuses_to_forward(cluster):
    worker, other = cluster.workers
    client = client_for(cluster, endpoints=[worker])
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version(other))
    assert err.value.code == "PermissionDenied" and "cannot forward" in str(err.value)
    # its own address is served locally
    assert run(client_for(cluster, endpoints=[worker]), lambda c: c.version(worker)).version.tag == "v1.13.5"


def test_fan_out_reports_per_node_errors(cluster):
    down = cluster.workers[1]
    cluster.take_down(down)
    client = client_for(cluster, timeout=3)

    async def hostnames(c):
        async def one(node):
            return (await c.call("Hostname", node=node)).messages[0].hostname
        return await c.fan_out(cluster.addresses, one)

    results = run(client, hostnames)
    assert [r.node for r in results] == cluster.addresses
    bad = [r for r in results if not r.ok]
    assert [r.node for r in bad] == [down] and bad[0].error.code == "Unavailable"
    assert all(r.value == cluster.node(r.node).hostname for r in results if r.ok)


def test_fan_out_dead_node_costs_only_its_own_deadline(cluster):
    slow = cluster.workers[0]
    cluster.add_latency(5.0, node=slow)
    client = client_for(cluster, timeout=1.0)

    async def timed(c):
        finished = {}

        async def one(node):
            try:
                return await c.version(node)
            finally:
                finished[node] = time.monotonic()
        start = time.monotonic()
        results = await c.fan_out(cluster.addresses, one)
        return results, {n: t - start for n, t in finished.items()}

    results, elapsed = run(client, timed)
    assert [r.node for r in results if not r.ok] == [slow]
    assert all(elapsed[n] < 0.9 for n in cluster.addresses if n != slow)
    assert elapsed[slow] < 2.0


def test_unimplemented_on_an_older_version(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, node_versions={1: "1.12.4"})
    old = cluster.workers[0]
    client = client_for(cluster)

    async def consume(c):  # no Version call first: the client asks for it to explain the refusal
        async for _progress in c.stream("LifecycleService/Upgrade", {"source": {"image_name": "x"}}, node=old):
            pass

    with pytest.raises(TalosError) as err:
        run(client, consume)
    assert err.value.code == "Unimplemented"
    assert "Talos v1.12.4 on node" in str(err.value) and "LifecycleService/Upgrade" in str(err.value)

    with pytest.raises(TalosError) as err:
        run(client_for(cluster), lambda c: c.require(old, "lifecycle_upgrade", "LifecycleService/Upgrade"))
    assert "needs Talos 1.13.0-alpha.3 or newer" in str(err.value)


def test_server_stream_arrives_incrementally(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0, snapshot_size=8 << 20)
    node = cluster.control_planes[0]
    client = client_for(cluster)

    async def snapshot(c):
        import hashlib
        digest, size, messages = hashlib.sha256(), 0, 0
        data = bytearray()
        async for chunk in c.stream("EtcdSnapshot", node=node):
            messages += 1
            size += len(chunk.bytes)
            data += chunk.bytes
        return bytes(data), messages

    data, messages = run(client, snapshot)
    import hashlib
    assert len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert messages > 1


def test_interrupted_stream_is_a_clear_error(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0, snapshot_size=8 << 20)
    node = cluster.control_planes[0]
    cluster.interrupt_stream("EtcdSnapshot", after_messages=2, node=node)

    async def snapshot(c):
        got = 0
        async for _chunk in c.stream("EtcdSnapshot", node=node):
            got += 1
        return got

    with pytest.raises(TalosError) as err:
        run(client_for(cluster), snapshot)
    # the node sent 2 messages and reset the stream; HTTP/2 may drop what was in flight with the reset
    assert "EtcdSnapshot" in str(err.value) and re.search(r"was lost after [12] messages?", str(err.value))
    assert err.value.code == "Unavailable"


def test_client_stream_recover_upload(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0, snapshot_size=1 << 20)
    node = cluster.control_planes[0]

    async def roundtrip(c):
        chunks = [chunk.bytes async for chunk in c.stream("EtcdSnapshot", node=node)]
        snapshot = b"".join(chunks)

        async def upload():
            for i in range(0, len(snapshot), 4096):
                yield {"bytes": snapshot[i:i + 4096]}

        from ansible_collections.talos.linux.plugins.module_utils._client import rpc_method
        data_type = rpc_method("EtcdRecover").request_type
        return await c.send_stream("EtcdRecover", (data_type(**m) async for m in upload()), node=node)

    reply = run(client_for(cluster), roundtrip)
    assert reply is not None
    assert cluster.calls[(node, "/machine.MachineService/EtcdRecover")] == 1


def test_cosi_list_streams_cluster_members(cluster):
    node = cluster.control_planes[0]

    async def members(c):
        request = {"namespace": "cluster", "type": "Members.cluster.talos.dev"}
        return [yaml.safe_load(r.resource.spec.yaml_spec) async for r in c.stream("State/List", request, node=node)]

    specs = run(client_for(cluster), members)
    assert sorted(s["hostname"] for s in specs) == sorted(cluster.node(a).hostname for a in cluster.addresses)


def test_no_secret_in_any_error_text(cluster, capsys):
    config = yaml.safe_load(cluster.talosconfig_path("reader").read_text())
    ctx = config["contexts"][config["context"]]
    secrets = [ctx["key"], ctx["crt"], base64.b64decode(ctx["key"]).decode(), base64.b64decode(ctx["crt"]).decode()]
    secrets += [line for s in secrets[2:] for line in s.splitlines() if "-----" not in line and len(line) > 16]
    errors = []
    for operation in (lambda c: c.call("Bootstrap", node=cluster.workers[0]),
                      lambda c: c.version("192.0.2.1"),
                      lambda c: c.call("Kubeconfig", node=cluster.workers[0])):
        try:
            run(client_for(cluster, role="reader", timeout=2), operation)
        except TalosError as exc:
            errors.append(f"{exc} {exc.to_dict()} {exc!r}")
    assert len(errors) == 3
    printed = capsys.readouterr()
    for text in errors + [printed.out, printed.err]:
        for secret in secrets:
            assert secret not in text


def test_a_read_stream_broken_before_its_first_message_is_retried(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0, snapshot_size=1 << 20)
    node = cluster.control_planes[0]
    cluster.interrupt_stream("EtcdSnapshot", after_messages=0, node=node)

    async def snapshot(c):
        return sum([len(chunk.bytes) async for chunk in c.stream("EtcdSnapshot", node=node)])

    assert run(client_for(cluster), snapshot) % 512 == 32
    assert cluster.calls[(node, "/machine.MachineService/EtcdSnapshot")] == 2


def _refusal(path, tls_version):
    client = TalosClient(load_settings(talosconfig=str(path)), retry=FAST_RETRY, timeout=5)
    client._ssl.maximum_version = tls_version  # the same client, capped to one TLS version
    with pytest.raises(TalosError) as err:
        run(client, lambda c: c.version())
    assert err.value.code == "TLSError" and "refused the client certificate of context" in str(err.value)
    return err.value


def _foreign_certificate(cluster, emulated_cluster, tmp_path):
    other = emulated_cluster(control_planes=1, workers=0)
    config = yaml.safe_load(cluster.talosconfig_path().read_text())
    foreign = yaml.safe_load(other.talosconfig_path().read_text())
    ctx, fctx = config["contexts"][config["context"]], foreign["contexts"][foreign["context"]]
    ctx["crt"], ctx["key"] = fctx["crt"], fctx["key"]
    path = tmp_path / "foreign-cert"
    path.write_text(yaml.safe_dump(config))
    return path


def test_refused_client_certificate_names_the_cause_from_the_alert(cluster, emulated_cluster, tmp_path):
    # TLS 1.2: the node's alert ends the client's own handshake, so it always arrives
    error = _refusal(_foreign_certificate(cluster, emulated_cluster, tmp_path), ssl.TLSVersion.TLSv1_2)
    assert error.detail == "tlsv1 alert unknown ca"
    assert "does not trust the CA that issued the certificate" in str(error)
    # a server-only usage: OpenSSL's purpose check refuses it in the handshake
    path = cluster.write_talosconfig("talosconfig-server-eku", ["os:admin"],
                                     extended_key_usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    error = _refusal(path, ssl.TLSVersion.TLSv1_2)
    assert error.detail == "sslv3 alert unsupported certificate" and "Talos requires exactly clientAuth" in str(error)
    # not valid yet by the node's clock (the client itself only refuses an expired one): OpenSSL says "bad
    # certificate" (Go: "certificate expired"); either way the hint points at the clocks
    now = datetime.datetime.now(datetime.timezone.utc)
    path = cluster.write_talosconfig("talosconfig-future", ["os:admin"], not_before=now + datetime.timedelta(days=1),
                                     not_after=now + datetime.timedelta(days=2))
    error = _refusal(path, ssl.TLSVersion.TLSv1_2)
    assert error.detail == "sslv3 alert bad certificate" and "check the clocks" in str(error)


GENERIC = "not issued by this cluster's CA, has expired, or its extended key usage is not exactly clientAuth"


def test_refused_client_certificate_under_tls_1_3(cluster, emulated_cluster, tmp_path):
    # the node checks the certificate after the client's handshake is done: its alert arrives on the first
    # read, unless the TCP reset of the node's close overtakes it (as with real Talos); either way the
    # message says the certificate was refused, with the alert's cause when the alert was read
    error = _refusal(_foreign_certificate(cluster, emulated_cluster, tmp_path), ssl.TLSVersion.TLSv1_3)
    assert ("does not trust the CA" in str(error)) if "alert" in error.detail else (GENERIC in str(error))
    # serverAuth+clientAuth passes OpenSSL's check; apid's exact-clientAuth rule then drops the connection
    path = cluster.write_talosconfig("talosconfig-two-ekus", ["os:admin"], extended_key_usage=[
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    error = _refusal(path, ssl.TLSVersion.TLSv1_3)
    assert GENERIC in str(error)
    assert error.detail == "the connection was closed after the tls handshake, before the node answered"


def test_the_events_hello_is_not_taken_for_an_event(cluster):
    """Talos opens Events with an event that has an id and an empty payload; it is in no buffer, so a reopened
    stream must not wait to replay up to it."""
    from ansible_collections.talos.linux.plugins.module_utils._wait import RebootWatch

    node = cluster.workers[0]

    async def first_message(client):
        stream = client.stream("Events", {"tail_events": 0}, node=node, timeout=5)
        try:
            return await stream.__anext__()
        finally:
            await stream.aclose()
    client = client_for(cluster)
    hello = run(client, first_message)
    assert hello.id and hello.HasField("data")          # as upstream sends it
    watch = RebootWatch(client, node)
    assert watch._absorb(hello) is False
    assert (watch.events_seen, watch._last_event_id) == (0, "")
