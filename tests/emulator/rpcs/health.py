"""ClusterService.HealthCheck: the cluster checks talosctl health runs, polled until wait_timeout."""
import asyncio
import json

from grpclib.const import Status

from ..api import cluster_pb2
from ..etcd import format_member_id
from .base import fail, require_control_plane, rpc

POLL_INTERVAL = 0.1


def _nodes(cluster, addresses):
    return [(address, cluster.node_at(address)) for address in addresses]


def _unreachable(address):
    return (f"rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: "
            f"dial tcp {address}:50000: connect: connection refused\"")


def check_etcd_healthy(cluster, control_planes, workers):
    etcd = cluster.etcd
    if not etcd.bootstrapped:
        return "etcd is not bootstrapped"
    for address, node in _nodes(cluster, control_planes):
        if node is None or not node.up:
            return f"{address}: {_unreachable(address)}"
        member = etcd.member_at(address)
        if member is None or not node.etcd_running:
            return f"{address}: service \"etcd\" not in expected state \"Running\": current state [Finished]"
        if member.errors:
            return f"{address}: etcd member {format_member_id(member.id)} is unhealthy: {'; '.join(member.errors)}"
    for member_id, alarm in etcd.alarm_list():
        return f"etcd alarm {alarm} raised on member {format_member_id(member_id)}"
    return None


def check_etcd_members_consistent(cluster, control_planes, workers):
    expected = sorted(node.hostname for _address, node in _nodes(cluster, control_planes) if node is not None)
    actual = sorted(m.hostname for m in cluster.etcd.members.values())
    if expected != actual:
        return f"etcd members {json.dumps(actual)} do not match control plane nodes {json.dumps(expected)}"
    return None


def check_all_reachable(cluster, control_planes, workers):
    for address, node in _nodes(cluster, control_planes + workers):
        if node is None or not node.up:
            return f"{address}: {_unreachable(address)}"
    return None


def check_kubelet(cluster, control_planes, workers):
    for address, node in _nodes(cluster, control_planes + workers):
        if node is None or not node.up:
            return f"{address}: {_unreachable(address)}"
        kubelet = node.services.get("kubelet")
        if kubelet is None or not kubelet.running:
            return f"{address}: service \"kubelet\" not in expected state \"Running\""
    return None


def check_booted(cluster, control_planes, workers):
    for address, node in _nodes(cluster, control_planes + workers):
        if node is None or not node.up:
            return f"{address}: {_unreachable(address)}"
        if node.stage != "running" or not node.ready:
            return f"{address}: node is not ready: stage {node.stage}"
    return None


def _ok(cluster, control_planes, workers):
    return None


CHECKS = (
    ("etcd to be healthy", check_etcd_healthy),
    ("etcd members to be consistent across nodes", check_etcd_members_consistent),
    ("etcd members to be control plane nodes", check_etcd_members_consistent),
    ("apid to be ready", check_all_reachable),
    ("all nodes memory sizes", check_all_reachable),
    ("all nodes disk sizes", check_all_reachable),
    ("no diagnostics", _ok),
    ("kubelet to be healthy", check_kubelet),
    ("all nodes to finish boot sequence", check_booted),
    ("all k8s nodes to report", check_all_reachable),
    ("all control plane static pods to be running", check_all_reachable),
    ("all control plane components to be ready", _ok),
    ("all k8s nodes to report ready", check_booted),
    ("kube-proxy to report ready", _ok),
    ("coredns to report ready", _ok),
    ("all k8s nodes to report schedulable", _ok),
)


def _progress(message):
    return cluster_pb2.HealthCheckProgress(message=message)


@rpc("cluster.ClusterService", "HealthCheck")
async def health_check(call, request):
    require_control_plane(call, "cluster health check")
    cluster = call.cluster
    timeout = request.wait_timeout.ToNanoseconds() / 1e9 if request.HasField("wait_timeout") else 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    info = request.cluster_info
    control_planes = list(info.control_plane_nodes) or [n.address for n in cluster.nodes if n.is_control_plane]
    workers = list(info.worker_nodes) or [n.address for n in cluster.nodes
                                          if n.config is not None and not n.is_control_plane]
    yield _progress(f"discovered nodes: {' '.join(json.dumps(a) for a in control_planes + workers).join('[]')}")
    for name, check in CHECKS:
        yield _progress(f"waiting for {name}: ...")
        last_error = None
        while True:
            error = check(cluster, control_planes, workers)
            if error is None:
                yield _progress(f"waiting for {name}: OK")
                break
            if error != last_error:
                yield _progress(f"waiting for {name}: {error}")
                last_error = error
            if loop.time() >= deadline:
                fail(Status.UNKNOWN, f"waiting for {name}: {error}: context deadline exceeded")
            await asyncio.sleep(min(POLL_INTERVAL, max(deadline - loop.time(), 0.0)))
