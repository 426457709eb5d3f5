"""Logs, LogsContainers and Dmesg: machined's service logs, CRI container logs and the kernel ring.

Streams send the history in 1024-byte chunks (arbitrary byte slices, not lines), then with `follow`
every new line as it is appended, until the client goes away or the node does.
"""
from grpclib.const import Status

from .. import node_logs, workloads
from ..api import common_pb2, machine_pb2
from ..filesystem import chunks
from .base import fail, rpc

M = "machine.MachineService"
FOLLOW_POLL = 0.2          # seconds between checks that the node is still the one the call started on


def check_node_unchanged(call):
    from ..dispatch import BACKEND_GONE     # dispatch imports this package: resolved at call time
    if call.node.generation != call.generation:
        fail(Status.UNAVAILABLE, BACKEND_GONE)


async def _stream_lines(call, log, *, start, follow, render):
    history = "".join(render(line) for line in log.lines[start:]).encode()
    for chunk in chunks(history):
        yield common_pb2.Data(bytes=chunk)
    sent = len(log.lines)
    while follow:
        await log.wait_beyond(sent, FOLLOW_POLL)
        check_node_unchanged(call)
        for line in log.lines[sent:]:
            yield common_pb2.Data(bytes=render(line).encode())
        sent = len(log.lines)


def _tail_start(log, tail_lines):
    """tail_lines >= 0: the last N lines (so the proto default 0 sends no history); < 0: all of it."""
    return 0 if tail_lines < 0 else max(len(log.lines) - tail_lines, 0)


def check_container_namespace(namespace, driver):
    """getContainerInspector's refusals."""
    if not namespace:
        fail(Status.INVALID_ARGUMENT, "namespace can't be empty")
    if driver == common_pb2.CRI and namespace != workloads.K8S:
        fail(Status.UNKNOWN, "CRI inspector is supported only for K8s namespace")
    if driver not in (common_pb2.CRI, common_pb2.CONTAINERD):
        fail(Status.INVALID_ARGUMENT, f'unsupported driver "{driver}"')


def container_log(node, container):
    key = container.short_id
    if key not in node.container_logs:
        node.container_logs[key] = node_logs.container_log(container.name, node.boot_time)
    return node.container_logs[key]


@rpc(M, "Logs")
async def logs(call, request):
    node = call.node
    if request.namespace == workloads.SYSTEM or request.id == "kubelet":
        # machined's buffer; only a writer creates one, so an id nothing has logged under is refused
        log = node.logs.get(request.id)
        if log is None:
            fail(Status.UNKNOWN, f'log "{request.id}" was not registered')
    else:
        check_container_namespace(request.namespace, request.driver)
        container = workloads.find(node, request.namespace, request.id)
        if container is None:
            fail(Status.UNKNOWN, f'container "{request.id}" not found')
        log = container_log(node, container)
    async for message in _stream_lines(call, log, start=_tail_start(log, request.tail_lines),
                                       follow=request.follow, render=lambda line: line + "\n"):
        yield message


@rpc(M, "LogsContainers")
async def logs_containers(call, request):
    return machine_pb2.LogsContainersResponse(messages=[machine_pb2.LogsContainer(ids=sorted(call.node.logs))])


@rpc(M, "Dmesg")
async def dmesg(call, request):
    """One kernel message per Data, no newline; `tail` means only messages from now on (kmsg.FromTail)."""
    log = call.node.kmsg
    start = len(log.lines) if request.tail else 0
    sent = start
    for line in log.lines[start:]:
        yield common_pb2.Data(bytes=line.encode())
    while request.follow:
        await log.wait_beyond(sent, FOLLOW_POLL)
        check_node_unchanged(call)
        for line in log.lines[sent:]:
            yield common_pb2.Data(bytes=line.encode())
        sent = len(log.lines)
