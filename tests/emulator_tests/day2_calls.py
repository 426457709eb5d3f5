"""Helpers for the day-2 method tests: bounded reads of endless streams, and one valid request per method."""
import asyncio

from google.protobuf import duration_pb2
from h2.exceptions import StreamClosedError

from tests.emulator.api import METHODS, common_pb2, image_pb2, machine_pb2, method_by_name, storage_pb2, time_pb2
from tests.emulator_tests.talos_client import TalosTestClient

K8S = dict(namespace="k8s.io", driver=common_pb2.CRI)
CRI = common_pb2.ContainerdInstance(driver=common_pb2.CRI, namespace=common_pb2.NS_CRI)

# Every method point 10 of issue 11 adds, with a request that is valid on a control plane.
REQUESTS = {
    "MachineService/Logs": machine_pb2.LogsRequest(namespace="system", id="apid", tail_lines=-1),
    "MachineService/LogsContainers": None,
    "MachineService/Dmesg": machine_pb2.DmesgRequest(),
    "MachineService/Containers": machine_pb2.ContainersRequest(**K8S),
    "MachineService/Processes": None,
    "MachineService/Netstat": machine_pb2.NetstatRequest(),
    "MachineService/DiskUsage": machine_pb2.DiskUsageRequest(paths=["/etc"]),
    "MachineService/List": machine_pb2.ListRequest(root="/etc"),
    "MachineService/Copy": machine_pb2.CopyRequest(root_path="/etc"),
    "MachineService/Read": machine_pb2.ReadRequest(path="/etc/os-release"),
    "MachineService/Kubeconfig": None,
    "MachineService/Stats": machine_pb2.StatsRequest(**K8S),
    "MachineService/DiskStats": None,
    "MachineService/CPUFreqStats": None,
    "MachineService/NetworkDeviceStats": None,
    "MachineService/MetaWrite": machine_pb2.MetaWriteRequest(key=0x0C, value=b"user"),
    "MachineService/MetaDelete": machine_pb2.MetaDeleteRequest(key=0x0D),
    "MachineService/GenerateClientConfiguration": machine_pb2.GenerateClientConfigurationRequest(
        roles=["os:reader"], crt_ttl=duration_pb2.Duration(seconds=3600)),
    "MachineService/Restart": machine_pb2.RestartRequest(id="kube-system/kube-proxy-x:kube-proxy", **K8S),
    "MachineService/PacketCapture": machine_pb2.PacketCaptureRequest(interface="eth0"),
    "MachineService/ImageList": machine_pb2.ImageListRequest(namespace=common_pb2.NS_CRI),
    "MachineService/ImagePull": machine_pb2.ImagePullRequest(namespace=common_pb2.NS_CRI, reference="alpine:3"),
    "ImageService/Import": [image_pb2.ImageServiceImportRequest(containerd=CRI)],
    "ImageService/Remove": image_pb2.ImageServiceRemoveRequest(containerd=CRI, image_ref="nothing:here"),
    "ImageService/Verify": image_pb2.ImageServiceVerifyRequest(image_ref="ghcr.io/siderolabs/talos:v1.13.5"),
    "StorageService/BlockDeviceWipe": storage_pb2.BlockDeviceWipeRequest(),
    "TimeService/Time": None,
    "TimeService/TimeCheck": time_pb2.TimeRequest(server="pool.ntp.org"),
    "InspectService/ControllerRuntimeDependencies": None,
}


async def _first_messages(channel, method, request, requests, node, limit, timeout, metadata):
    meta = list(metadata or []) + ([("node", node)] if node else [])
    replies = []
    async with channel.request(method.path, method.cardinality, method.request_type, method.response_type,
                               timeout=timeout, metadata=meta or None) as stream:
        if method.client_streaming:
            for message in requests or ():
                await stream.send_message(message)
            await stream.end()
        else:
            await stream.send_message(request if request is not None else method.request_type(), end=True)
        if not method.server_streaming:
            return [await stream.recv_message()]
        while len(replies) < limit:
            message = await stream.recv_message()
            if message is None:
                break
            replies.append(message)
        if len(replies) >= limit:
            try:
                await stream.cancel()
            except StreamClosedError:       # the server had ended the stream already
                pass
    return replies


def first_messages(caller, rpc, request=None, *, node=None, limit=1000, timeout=10.0, requests=None,
                   metadata=None, during=None, endpoint=None):
    """Up to `limit` replies (the stream is cancelled there); `during()` runs in a thread while reading."""
    method = METHODS[method_by_name(rpc)]

    async def run():
        client = TalosTestClient(endpoint or caller.config["endpoints"][0], caller.context)
        try:
            reading = asyncio.ensure_future(_first_messages(client.channel, method, request, requests, node,
                                                            limit, timeout, metadata))
            if during is not None:
                await asyncio.sleep(0.3)
                await asyncio.get_running_loop().run_in_executor(None, during)
            return await reading
        finally:
            client.close()
    return asyncio.run(run())


def call_once(caller, rpc, *, node=None, endpoint=None):
    """The method's listed request; endless streams are read for one message."""
    request = REQUESTS[rpc]
    if isinstance(request, list):
        return first_messages(caller, rpc, requests=request, node=node, endpoint=endpoint)
    return first_messages(caller, rpc, request, node=node, limit=1, endpoint=endpoint)
