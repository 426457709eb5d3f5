"""Facts RPCs (§4.5) and the COSI State API (§5)."""
import asyncio
import gzip
import io
import tarfile

import yaml
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError

from tests.emulator.api import machine_pb2, resource_pb2, state_pb2, storage_pb2
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient


def _list(caller, namespace, type_, node=None):
    return [r.resource for r in caller("List", state_pb2.ListRequest(namespace=namespace, type=type_), node=node)]


def test_members_list_every_node(cluster):
    reader = Caller(cluster, "reader")
    members = _list(reader, "cluster", "Members.cluster.talos.dev", node=cluster.workers[0])
    specs = {r.metadata.id: yaml.safe_load(r.spec.yaml_spec) for r in members}
    assert set(specs) == {"talos-cp-1", "talos-cp-2", "talos-cp-3", "talos-w-1", "talos-w-2"}
    worker = specs["talos-w-2"]
    assert worker["addresses"] == [cluster.workers[1]]
    assert worker["machineType"] == "worker" and worker["operatingSystem"] == "Talos (v1.13.5)"
    assert worker["nodeId"]


def test_facts_resources(cluster, admin):
    node = cluster.workers[0]
    status = admin("Get", state_pb2.GetRequest(namespace="runtime", type="MachineStatuses.runtime.talos.dev",
                                               id="machine"), node=node).resource
    assert yaml.safe_load(status.spec.yaml_spec) == {"stage": "running", "status": {"ready": True,
                                                                                    "unmetConditions": []}}
    addresses = _list(admin, "network", "AddressStatuses.net.talos.dev", node=node)
    assert any(yaml.safe_load(r.spec.yaml_spec)["address"] == f"{node}/24" for r in addresses)
    disks = {r.metadata.id: yaml.safe_load(r.spec.yaml_spec) for r in _list(admin, "runtime", "Disks.block.talos.dev")}
    assert disks["sda"]["dev_path"] == "/dev/sda" and disks["sda"]["size"] > 0
    links = _list(admin, "network", "LinkStatuses.net.talos.dev")
    assert "operationalState" in yaml.safe_load(links[0].spec.yaml_spec)
    error = admin.error("Get", state_pb2.GetRequest(namespace="runtime", type="MachineStatuses.runtime.talos.dev",
                                                    id="nope"))
    assert error.status == Status.NOT_FOUND


def test_plain_fact_rpcs(cluster):
    reader = Caller(cluster, "reader")
    worker = cluster.workers[1]
    assert reader("Hostname", node=worker).messages[0].hostname == "talos-w-2"
    assert reader("Memory", node=worker).messages[0].meminfo.memtotal > 0
    assert reader("CPUInfo").messages[0].cpu_info[0].model_name
    assert reader("SystemStat").messages[0].boot_time > 0
    assert reader("Mounts").messages[0].stats
    assert reader("LoadAvg").messages[0].load1 > 0
    disks = reader("StorageService/Disks").messages[0].disks
    assert [d.device_name for d in disks] == ["/dev/sda", "/dev/sdb"] and disks[0].system_disk
    services = {s.id: s for s in reader("ServiceList", node=worker).messages[0].services}
    assert "etcd" not in services and services["kubelet"].health.healthy
    services = {s.id: s for s in reader("ServiceList").messages[0].services}
    assert services["etcd"].state == "Running" and services["apid"].health.healthy


def test_service_stop_and_start(cluster, admin):
    admin("ServiceStop", machine_pb2.ServiceStopRequest(id="kubelet"))
    services = {s.id: s for s in admin("ServiceList").messages[0].services}
    assert services["kubelet"].state == "Finished"
    admin("ServiceStart", machine_pb2.ServiceStartRequest(id="kubelet"))
    services = {s.id: s for s in admin("ServiceList").messages[0].services}
    assert services["kubelet"].state == "Running"


def test_kubeconfig_is_a_tar_gz_on_control_planes_only(cluster, admin):
    data = b"".join(d.bytes for d in admin("Kubeconfig"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        member = archive.next()      # upstream's tar has no end-of-archive blocks: read the first member only
        kubeconfig = yaml.safe_load(archive.extractfile(member))
    assert kubeconfig["kind"] == "Config"
    error = admin.error("Kubeconfig", node=cluster.workers[0])
    assert error.status == Status.UNIMPLEMENTED and "only available on control plane nodes" in error.message


def test_watch_bootstraps_then_reports_updates(cluster, admin):
    target = cluster.workers[0]
    request = state_pb2.WatchRequest(namespace="runtime", type="MachineStatuses.runtime.talos.dev", api_version=1,
                                     options=state_pb2.WatchOptions(bootstrap_contents=True))

    async def watch():
        client = TalosTestClient(cluster.control_planes[0], admin.context)
        received = []
        try:
            async with client.channel.request("/cosi.resource.State/Watch", Cardinality.UNARY_STREAM,
                                              state_pb2.WatchRequest, state_pb2.WatchResponse, timeout=10,
                                              metadata=[("node", target)]) as stream:
                await stream.send_message(request, end=True)
                for _index in range(2):
                    received.append(await stream.recv_message())
                rebooting = asyncio.get_running_loop().run_in_executor(None, cluster.reboot, target, 0.05)
                async for message in stream:
                    received.append(message)
        except GRPCError as error:        # the watched node went away
            received.append(error)
        finally:
            client.close()
        await rebooting
        return received
    received = asyncio.run(watch())
    assert received[0].event[0].event_type == resource_pb2.CREATED
    assert received[0].event[0].resource.metadata.id == "machine"
    assert received[1].event[0].event_type == resource_pb2.BOOTSTRAPPED
    updates = [m for m in received[2:] if isinstance(m, state_pb2.WatchResponse)]
    assert updates and updates[0].event[0].event_type == resource_pb2.UPDATED
    assert yaml.safe_load(updates[0].event[0].resource.spec.yaml_spec)["stage"] == "rebooting"
    assert int(updates[0].event[0].resource.metadata.version) > int(received[0].event[0].resource.metadata.version)
    assert received[-1].status == Status.UNAVAILABLE


def test_resource_definitions_resolve_aliases(cluster, admin):
    definitions = {r.metadata.id: yaml.safe_load(r.spec.yaml_spec)
                   for r in _list(admin, "meta", "ResourceDefinitions.meta.cosi.dev")}
    machine_config = definitions["machineconfigs.config.talos.dev"]
    assert "mc" in machine_config["aliases"] and machine_config["sensitivity"] == "sensitive"


def test_fan_out_storage_disks(cluster, admin):
    reply = admin("StorageService/Disks", metadata=[("nodes", worker) for worker in cluster.workers])
    assert [m.metadata.hostname for m in reply.messages] == cluster.workers
    assert isinstance(reply, storage_pb2.DisksResponse)
