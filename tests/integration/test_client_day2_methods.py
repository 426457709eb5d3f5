"""The client and the day-2 RPCs, through real gRPC and mTLS: new reads are retried, changes are not."""
import pytest
from grpclib.const import Status

from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError
from tests.integration.test_client import client_for, run


@pytest.fixture
def cluster(emulated_cluster):
    return emulated_cluster(control_planes=1)


def test_a_new_read_is_retried_after_unavailable(cluster):
    node = cluster.control_planes[0]
    cluster.fail("TimeService/Time", code=Status.UNAVAILABLE, count=1)
    reply = run(client_for(cluster), lambda c: c.call("TimeService/Time", node=node))
    assert reply.messages[0].server == "time.cloudflare.com"
    assert cluster.calls[(node, "/time.TimeService/Time")] == 2


def test_a_meta_write_is_not_sent_twice(cluster):
    node = cluster.control_planes[0]
    cluster.fail("MetaWrite", code=Status.UNAVAILABLE, count=1)
    with pytest.raises(TalosError) as err:
        run(client_for(cluster), lambda c: c.call("MachineService/MetaWrite", {"key": 12, "value": b"x"}, node=node))
    assert err.value.code == "Unavailable"
    assert cluster.calls[(node, "/machine.MachineService/MetaWrite")] == 1
    assert cluster.meta(node) == {}


def test_streams_of_the_new_methods(cluster):
    node = cluster.control_planes[0]

    async def read(c):
        chunks = [m.bytes async for m in c.stream("MachineService/Copy", {"root_path": "/etc"}, node=node)]
        edges = await c.call("InspectService/ControllerRuntimeDependencies", node=node)
        return b"".join(chunks), edges
    archive, edges = run(client_for(cluster, role="admin"), read)
    assert archive[:2] == b"\x1f\x8b" and edges.messages[0].edges
