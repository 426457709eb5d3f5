"""Containers, Stats, Restart (a container's SIGTERM) and Processes, from workloads.py."""
from grpclib.const import Status

from .. import workloads
from ..api import machine_pb2
from .base import fail, rpc
from .logs import check_container_namespace, container_log

M = "machine.MachineService"


@rpc(M, "Containers")
async def containers(call, request):
    check_container_namespace(request.namespace, request.driver)
    infos = [machine_pb2.ContainerInfo(
        namespace=request.namespace, id=c.display_id, internal_id=c.internal_id, uid=c.uid, pod_id=c.pod_id,
        name=c.name, image=c.image, pid=c.pid, status=c.status, network_namespace=c.network_namespace)
        for c in workloads.containers(call.node, request.namespace)]
    return machine_pb2.ContainersResponse(messages=[machine_pb2.Container(containers=infos)])


@rpc(M, "Stats")
async def stats(call, request):
    check_container_namespace(request.namespace, request.driver)
    rows = [machine_pb2.Stat(namespace=request.namespace, id=c.display_id, pod_id=c.pod_id, name=c.name,
                             memory_usage=(1 << 20) * (3 if c.sandbox else 40 + c.pid % 97),
                             cpu_usage=1_000_000 * (c.pid % 1000 + 1))
            for c in workloads.containers(call.node, request.namespace)]
    return machine_pb2.StatsResponse(messages=[machine_pb2.Stats(stats=rows)])


@rpc(M, "Restart")
async def restart(call, request):
    """SIGTERM to the container's task; its supervisor (machined or kubelet) starts it again with a new pid."""
    check_container_namespace(request.namespace, request.driver)
    node = call.node
    container = workloads.find(node, request.namespace, request.id)
    if container is None:
        fail(Status.UNKNOWN, f'container "{request.id}" not found')
    container_log(node, container).append(f"{container.name}: received SIGTERM, exiting")
    node.container_restarts[container.short_id] += 1
    return machine_pb2.RestartResponse(messages=[machine_pb2.Restart()])


_KERNEL_PROCESSES = ((1, 0, "init", "/sbin/init", ""), (2, 0, "kthreadd", "", ""))
_SERVICE_BINARIES = {"machined": "/sbin/init", "containerd": "/bin/containerd", "cri": "/bin/containerd",
                     "udevd": "/sbin/udevd", "syslogd": "/sbin/init", "auditd": "/sbin/init",
                     "dashboard": "/sbin/dashboard"}


@rpc(M, "Processes")
async def processes(call, request):
    node = call.node
    rows = [machine_pb2.ProcessInfo(pid=pid, ppid=ppid, state="S", threads=1, command=command, executable=exe,
                                    args=args or exe, cpu_time=0.5, virtual_memory=1 << 24, resident_memory=1 << 22)
            for pid, ppid, command, exe, args in _KERNEL_PROCESSES]
    for offset, service_id in enumerate(sorted(node.services)):
        binary = _SERVICE_BINARIES.get(service_id)
        if binary and node.services[service_id].running:
            rows.append(machine_pb2.ProcessInfo(
                pid=100 + offset, ppid=1, state="S", threads=12, command=service_id, executable=binary,
                args=f"{binary} {service_id}" if binary == "/sbin/init" else binary, cpu_time=3.2,
                virtual_memory=1_400_000_000, resident_memory=60_000_000))
    for namespace in (workloads.SYSTEM, workloads.K8S):
        for container in workloads.containers(node, namespace):
            command = "pause" if container.sandbox else container.name
            rows.append(machine_pb2.ProcessInfo(
                pid=container.pid, ppid=1, state="S", threads=8, command=command[:15], executable=f"/{command}",
                args=f"/{command}", cpu_time=1.5, virtual_memory=800_000_000, resident_memory=30_000_000))
    return machine_pb2.ProcessesResponse(messages=[machine_pb2.Process(processes=sorted(rows, key=lambda p: p.pid))])
