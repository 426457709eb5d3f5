"""apid routing (§3) and the RBAC table (§1), including refusals being counted."""
import asyncio

import pytest
from google.protobuf import empty_pb2
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from tests.emulator.api import METHODS, machine_pb2, state_pb2
from tests.emulator.rpcs.base import HANDLERS
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient

HOSTNAME = "/machine.MachineService/Hostname"


def test_control_plane_forwards_to_every_node(cluster, admin):
    for address in cluster.addresses:
        reply = admin("Hostname", node=address)
        assert reply.messages[0].hostname == cluster.node(address).hostname
        assert not reply.messages[0].HasField("metadata")      # one-to-one: no metadata block
        assert cluster.calls[(address, HOSTNAME)] == 1


def test_worker_refuses_forwarding_but_serves_itself(cluster, admin):
    worker, other = cluster.workers
    error = admin.error("Hostname", endpoint=worker, node=other)
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "no request forwarding")
    assert admin("Hostname", endpoint=worker, node=worker).messages[0].hostname == "talos-w-1"
    assert admin("Hostname", endpoint=worker, node="talos-w-1").messages[0].hostname == "talos-w-1"
    assert admin("Hostname", endpoint=worker).messages[0].hostname == "talos-w-1"


def test_node_metadata_validation(cluster, admin):
    error = admin.error("Version", metadata=[("node", cluster.workers[0]), ("node", cluster.workers[1])])
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "node metadata must be single-valued")
    error = admin.error("Version", node=f"{cluster.workers[0]}:50000")
    assert (error.status, error.message) == (Status.INTERNAL, f'invalid target "{cluster.workers[0]}:50000"')


def test_unreachable_target_is_unavailable(cluster, admin):
    target = cluster.workers[1]
    cluster.take_down(target)
    assert admin.error("Version", node=target).status == Status.UNAVAILABLE
    assert admin.error("Version", node="127.0.0.99").status == Status.UNAVAILABLE
    cluster.bring_up(target)
    assert admin("Version", node=target).messages[0].version.tag == "v1.13.5"


def test_proxyfrom_means_handled_locally(cluster, admin):
    reply = admin("Hostname", metadata=[("proxyfrom", "10.0.0.1"), ("node", cluster.workers[0])])
    assert reply.messages[0].hostname == "talos-cp-1"


def test_nodes_fan_out_aggregates_and_reports_errors_inline(cluster, admin):
    down = cluster.workers[1]
    cluster.take_down(down)
    targets = [cluster.control_planes[1], cluster.workers[0], down]
    reply = admin("Hostname", metadata=[("nodes", target) for target in targets])
    by_target = {m.metadata.hostname: m for m in reply.messages}
    assert by_target[targets[0]].hostname == "talos-cp-2"
    assert by_target[targets[1]].hostname == "talos-w-1"
    assert by_target[down].metadata.status.code == Status.UNAVAILABLE.value
    assert by_target[down].metadata.error
    error = admin.error("Get", state_pb2.GetRequest(namespace="runtime", type="MachineStatuses.runtime.talos.dev",
                                                    id="machine"), metadata=[("nodes", targets[0])])
    assert error.status == Status.INVALID_ARGUMENT


def test_reader_is_refused_admin_rpcs_and_refusals_are_counted(cluster):
    reader = Caller(cluster, "reader")
    assert reader("Version").messages[0].version.tag == "v1.13.5"
    target = cluster.workers[0]
    error = reader.error("Read", machine_pb2.ReadRequest(path="/proc/sys/kernel/random/boot_id"), node=target)
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "not authorized")
    assert cluster.calls[(target, "/machine.MachineService/Read")] == 1
    error = reader.error("ApplyConfiguration", machine_pb2.ApplyConfigurationRequest(
        data=cluster.node(target).config, mode=machine_pb2.ApplyConfigurationRequest.NO_REBOOT, dry_run=True))
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "not authorized")


def test_operator_and_etcd_backup_roles(cluster):
    operator = Caller(cluster, "operator")
    assert operator("ServiceRestart", machine_pb2.ServiceRestartRequest(id="kubelet")).messages[0].resp == \
        'Service "kubelet" restarted'
    assert operator.error("Read", machine_pb2.ReadRequest(path="/etc/os-release")).status == Status.PERMISSION_DENIED
    backup = Caller(cluster, "etcd-backup")
    assert backup("EtcdMemberList", machine_pb2.EtcdMemberListRequest()).messages[0].members
    assert backup("EtcdStatus").messages[0].member_status.member_id
    assert backup.error("Version").status == Status.PERMISSION_DENIED


@pytest.mark.parametrize("version,allowed", [("1.10.7", False), ("1.11.5", True)])
def test_etcd_status_opened_to_readers_in_1_11(emulated_cluster, version, allowed):
    cluster = emulated_cluster(control_planes=1, talos_version=version)
    reader = Caller(cluster, "reader")
    if allowed:
        assert reader("EtcdStatus").messages[0].member_status.leader
        assert reader("EtcdAlarmList").messages[0].member_alarms == []
    else:
        assert reader.error("EtcdStatus").message == "not authorized"
        assert reader.error("EtcdAlarmList").message == "not authorized"


def test_cosi_access_filter(cluster, admin):
    reader = Caller(cluster, "reader")
    get_config = state_pb2.GetRequest(namespace="config", type="MachineConfigs.config.talos.dev", id="v1alpha1")
    error = reader.error("Get", get_config)
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "not authorized")
    assert admin("Get", get_config).resource.metadata.id == "v1alpha1"
    error = reader.error("List", state_pb2.ListRequest(namespace="runtime", type="Bogus.talos.dev"))
    assert error.status == Status.PERMISSION_DENIED and error.message.endswith("is not supported")
    error = admin.error("Destroy", state_pb2.DestroyRequest(namespace="config", type="MachineConfigs.config.talos.dev",
                                                            id="v1alpha1"))
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "write access is not allowed")
    assert reader.error("Destroy", state_pb2.DestroyRequest()).message == "not authorized"


def test_empty_request_rpcs_accept_empty(cluster, admin):
    assert admin("Memory", empty_pb2.Empty()).messages[0].meminfo.memtotal > 0


def test_every_declared_rpc_is_served_and_unknown_ones_are_unimplemented(cluster, admin):
    assert set(HANDLERS) == set(METHODS)

    async def unknown(path):
        client = TalosTestClient(cluster.control_planes[0], admin.context)
        try:
            async with client.channel.request(path, Cardinality.UNARY_UNARY, empty_pb2.Empty, empty_pb2.Empty,
                                              timeout=5) as stream:
                await stream.send_message(empty_pb2.Empty(), end=True)
                await stream.recv_message()
        finally:
            client.close()
    # GenerateConfiguration left with v1.13; DebugService (v1.13) is not emulated.
    for path, message in (("/machine.MachineService/GenerateConfiguration",
                           "unknown method GenerateConfiguration for service machine.MachineService"),
                          ("/machine.DebugService/ContainerRun", "unknown service machine.DebugService")):
        with pytest.raises(GRPCError) as caught:
            asyncio.run(unknown(path))
        assert (caught.value.status, caught.value.message) == (Status.UNIMPLEMENTED, message)
