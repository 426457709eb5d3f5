"""Fault injection and call counting; ClusterService.HealthCheck."""
import time

from google.protobuf import duration_pb2
from grpclib.const import Status

from tests.emulator.api import cluster_pb2
from tests.emulator_tests.conftest import Caller

VERSION = "/machine.MachineService/Version"


def test_fail_next_calls_then_recover(cluster, admin):
    cluster.fail("Version", code=Status.UNAVAILABLE, count=2, message="try again")
    for _attempt in range(2):
        error = admin.error("Version")
        assert (error.status, error.message) == (Status.UNAVAILABLE, "try again")
    assert admin("Version").messages[0].version.tag == "v1.13.5"
    assert cluster.calls[(cluster.control_planes[0], VERSION)] == 3


def test_fail_on_one_node_only(cluster, admin):
    target = cluster.workers[0]
    cluster.fail("/machine.MachineService/Version", code="INTERNAL", count=-1, node=target)
    assert admin.error("Version", node=target).status == Status.INTERNAL
    assert admin.error("Version", node=target).status == Status.INTERNAL
    assert admin("Version", node=cluster.workers[1]).messages[0].version.tag
    cluster.clear_faults()
    assert admin("Version", node=target).messages[0].version.tag


def test_latency_global_per_node_and_per_rpc(cluster, admin):
    slow = cluster.workers[1]
    cluster.add_latency(0.2, node=slow)
    cluster.add_latency(0.1, rpc="Hostname")
    started = time.monotonic()
    admin("Version", node=cluster.workers[0])
    fast = time.monotonic() - started
    started = time.monotonic()
    admin("Hostname", node=slow)
    slowest = time.monotonic() - started
    assert fast < 0.1 and slowest >= 0.3
    cluster.clear_faults()


def test_calls_are_counted_per_node_and_rpc(cluster, admin):
    for address in cluster.addresses:
        admin("Version", node=address)
    assert all(cluster.calls[(address, VERSION)] == 1 for address in cluster.addresses)
    assert cluster.calls_json()[cluster.workers[0]] == {VERSION: 1}


def _health(caller, timeout, node=None, **info):
    request = cluster_pb2.HealthCheckRequest(wait_timeout=duration_pb2.Duration(seconds=timeout),
                                             cluster_info=cluster_pb2.ClusterInfo(**info))
    return caller("ClusterService/HealthCheck", request, node=node, timeout=timeout + 5)


def test_health_check_passes_on_a_healthy_cluster(cluster):
    messages = [m.message for m in _health(Caller(cluster, "reader"), 5)]
    assert messages[0].startswith("discovered nodes:")
    assert "waiting for etcd to be healthy: OK" in messages
    assert messages[-1].endswith(": OK")


def test_health_check_fails_after_timeout_while_a_node_is_down(cluster, admin):
    cluster.take_down(cluster.workers[1])
    started = time.monotonic()
    error = admin.error("ClusterService/HealthCheck", cluster_pb2.HealthCheckRequest(
        wait_timeout=duration_pb2.Duration(nanos=400_000_000)))
    assert 0.3 < time.monotonic() - started < 3
    assert error.status == Status.UNKNOWN and cluster.workers[1] in error.message
    # Without wait_timeout the check fails at once.
    assert admin.error("ClusterService/HealthCheck", cluster_pb2.HealthCheckRequest()).status == Status.UNKNOWN


def test_health_check_waits_for_a_rebooting_node(cluster, admin):
    cluster.reboot(cluster.control_planes[2], seconds=0.3)
    messages = [m.message for m in _health(admin, 5)]
    assert any("waiting for etcd to be healthy: " in m and not m.endswith(("OK", "...")) for m in messages)
    assert messages[-1].endswith(": OK")


def test_health_check_on_worker_is_unimplemented(cluster, admin):
    error = admin.error("ClusterService/HealthCheck", cluster_pb2.HealthCheckRequest(), node=cluster.workers[0])
    assert error.status == Status.UNIMPLEMENTED
