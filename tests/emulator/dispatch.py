"""The request pipeline: authenticate, route, then on the serving node count, delay, inject faults,
gate by version and mode, authorize and run the implementation.

Forwarded calls run in-process against the target node's state, with the target's own faults,
latency, RBAC and down state; a target that goes away mid-call ends the call with Unavailable, as
apid's proxy does when its backend connection drops.
"""
import asyncio

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from multidict import MultiDict

from . import rbac, routing, rpcs
from .api import status_pb2
from .rpcs.base import HANDLERS, Call, available_since
from .tls import roles_from_peer_certificate

# Imported for its side effect: importing the rpcs package registers every implementation in HANDLERS.
_IMPLEMENTATIONS = rpcs
BACKEND_GONE = "error reading from server: EOF"
# The ≤ v1.12 maintenance service implemented only these; everything else was Unimplemented.
MAINTENANCE_SERVICE_METHODS = frozenset({
    "/machine.MachineService/ApplyConfiguration", "/machine.MachineService/Version",
    "/machine.MachineService/Reboot", "/machine.MachineService/Reset", "/machine.MachineService/Shutdown",
    "/storage.StorageService/Disks",
    "/cosi.resource.State/Get", "/cosi.resource.State/List", "/cosi.resource.State/Watch",
})


class StreamInterrupted(Exception):
    def __init__(self, rule):
        super().__init__(rule.message)
        self.rule = rule


def unavailable(target):
    return GRPCError(Status.UNAVAILABLE,
                     f"connection error: desc = \"transport: Error while dialing: dial tcp {target}:50000: "
                     f"connect: connection refused\"")


async def reset_after_delivery(stream, timeout=1.0):
    """RST_STREAM once the client has read what was sent, so "after N messages" means it saw N.

    The client returns flow-control credit as it reads; when the stream's outbound window is back to
    its initial size, everything sent was consumed. This peeks at grpclib's and h2's internals (no
    public API exposes the window); if they change, the reset just happens at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        h2_stream = stream._stream
        connection = h2_stream._h2_connection
        initial = connection.remote_settings.initial_window_size
        while (connection._get_stream_by_id(h2_stream.id).outbound_flow_control_window < initial
               and loop.time() < deadline):
            h2_stream.window_updated.clear()
            await asyncio.wait_for(h2_stream.window_updated.wait(), deadline - loop.time())
    except Exception:  # internals moved, stream gone, or the client stopped reading
        pass
    await stream.cancel()


class Dispatcher:
    def __init__(self, cluster):
        self.cluster = cluster

    # Entry: one grpclib stream arriving at `entry` -----------------------------------------------
    async def serve(self, entry, method, stream):
        if entry.maintenance:
            roles = frozenset({rbac.READER})
        else:
            roles = rbac.effective_roles(roles_from_peer_certificate(stream.peer.cert()), stream.metadata)
        try:
            route = routing.route(stream.metadata, entry, method.path)
        except GRPCError:
            self.cluster.calls[(entry.address, method.path)] += 1
            raise
        if route.kind == routing.FAN_OUT:
            await self._fan_out(entry, method, stream, roles, route.targets)
            return
        if route.kind == routing.LOCAL:
            target = entry
        else:
            target = self._reachable_target(entry, method, route.targets[0])
        call = Call(method, target, roles, stream.metadata, target.generation)
        request = stream if method.client_streaming else await stream.recv_message()
        try:
            if method.server_streaming:
                async for message in self.stream_responses(call, request):
                    await stream.send_message(message)
            else:
                await stream.send_message(await self.unary_response(call, request))
        except StreamInterrupted as interrupted:
            if interrupted.rule.code is None:
                await reset_after_delivery(stream)
            else:
                raise GRPCError(interrupted.rule.code, interrupted.rule.message) from None

    def _reachable_target(self, entry, method, address):
        target = self.cluster.node_at(address)
        if target is None or not target.up:
            self.cluster.calls[(entry.address, method.path)] += 1
            raise unavailable(address)
        if target.maintenance:
            # apid dials with the cluster CA; a maintenance node's self-signed certificate fails it.
            self.cluster.calls[(entry.address, method.path)] += 1
            raise GRPCError(Status.UNAVAILABLE, "connection error: desc = \"transport: authentication handshake "
                            "failed: tls: failed to verify certificate: x509: certificate signed by unknown "
                            "authority\"")
        return target

    # On the serving node ---------------------------------------------------------------------------
    async def _admit(self, call):
        """Count, delay, inject failures, gate and authorize; returns the implementation."""
        node, path = call.node, call.method.path
        cluster = self.cluster
        cluster.calls[(node.address, path)] += 1
        if cluster.faults.active:
            delay = cluster.faults.latency_for(node.address, path)
            if delay:
                await asyncio.sleep(delay)
                if node.generation != call.generation:
                    raise GRPCError(Status.UNAVAILABLE, BACKEND_GONE)
            failure = cluster.faults.take_failure(node.address, path)
            if failure is not None:
                raise GRPCError(failure.code, failure.message)
        self._check_available(node, call.method)
        if not (node.maintenance and not node.version.at_least(13)):   # ≤ v1.12 maintenance had no authz
            rbac.authorize(path, call.roles, node.version)
        return HANDLERS[path]

    @staticmethod
    def _check_available(node, method):
        path = method.path
        since = available_since(path)
        if since is not None and not node.version.at_least(since):
            if method.service in ("machine.LifecycleService", "machine.ImageService"):
                raise GRPCError(Status.UNIMPLEMENTED, f"unknown service {method.service}")
            raise GRPCError(Status.UNIMPLEMENTED, f"unknown method {method.name} for service {method.service}")
        if path not in HANDLERS:
            raise GRPCError(Status.UNIMPLEMENTED, f"method {method.name} not implemented")
        if node.maintenance and not node.version.at_least(13) and path not in MAINTENANCE_SERVICE_METHODS:
            raise GRPCError(Status.UNIMPLEMENTED, f"method {method.name} not implemented")

    async def unary_response(self, call, request):
        implementation = await self._admit(call)
        response = await implementation(call, request)
        if call.node.generation != call.generation:
            raise GRPCError(Status.UNAVAILABLE, BACKEND_GONE)
        # an interrupt rule on a unary call: the node did the work, its answer is lost on the way back
        interrupt = self.cluster.faults.take_stream_interrupt(call.node.address, call.method.path)
        if interrupt is not None:
            raise StreamInterrupted(interrupt)
        return response

    async def stream_responses(self, call, request):
        implementation = await self._admit(call)
        node = call.node
        interrupt = self.cluster.faults.take_stream_interrupt(node.address, call.method.path)
        sent = 0
        responses = implementation(call, request)
        try:
            async for message in responses:
                if node.generation != call.generation:
                    raise GRPCError(Status.UNAVAILABLE, BACKEND_GONE)
                if interrupt is not None and sent >= interrupt.after_messages:
                    if not interrupt.stall:
                        raise StreamInterrupted(interrupt)
                    await asyncio.sleep(interrupt.stall)    # a slow node: the stream resumes afterwards
                    interrupt = None
                yield message
                sent += 1
        finally:
            await responses.aclose()
        if node.generation != call.generation:
            raise GRPCError(Status.UNAVAILABLE, BACKEND_GONE)

    # One-to-many (`nodes`) ---------------------------------------------------------------------------
    async def _fan_out(self, entry, method, stream, roles, targets):
        if method.client_streaming:
            raise GRPCError(Status.INVALID_ARGUMENT, "nodes is not supported by the emulator for client streams")
        request = await stream.recv_message()
        if method.server_streaming:
            await self._fan_out_stream(entry, method, stream, roles, targets, request)
            return
        results = await asyncio.gather(*(self._fan_out_one(entry, method, roles, target, request)
                                         for target in targets))
        reply = method.response_type()
        for target, result in zip(targets, results):
            if isinstance(result, GRPCError):
                _error_message(reply.messages.add(), target, result)
            else:
                for message in result.messages:
                    message.metadata.hostname = target
                    reply.messages.append(message)
        await stream.send_message(reply)

    def _fan_out_call(self, entry, method, roles, target):
        node = entry if entry.owns_target(target) else self._reachable_target(entry, method, target)
        return Call(method, node, roles, _forwarded_metadata(), node.generation)

    async def _fan_out_one(self, entry, method, roles, target, request):
        try:
            return await self.unary_response(self._fan_out_call(entry, method, roles, target), request)
        except GRPCError as error:
            return error

    async def _fan_out_stream(self, entry, method, stream, roles, targets, request):
        queue = asyncio.Queue()

        async def pump(target):
            try:
                call = self._fan_out_call(entry, method, roles, target)
                async for message in self.stream_responses(call, request):
                    message.metadata.hostname = target
                    await queue.put(message)
            except GRPCError as error:
                reply = method.response_type()
                _error_message(reply, target, error)
                await queue.put(reply)
            except StreamInterrupted as interrupted:
                reply = method.response_type()
                _error_message(reply, target, GRPCError(Status.UNAVAILABLE, interrupted.rule.message))
                await queue.put(reply)

        tasks = [asyncio.ensure_future(pump(target)) for target in targets]
        done = asyncio.ensure_future(asyncio.gather(*tasks))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                finished, _pending = await asyncio.wait({getter, done}, return_when=asyncio.FIRST_COMPLETED)
                if getter in finished:
                    await stream.send_message(getter.result())
                    continue
                getter.cancel()
                while not queue.empty():
                    await stream.send_message(queue.get_nowait())
                return
        finally:
            for task in tasks:
                task.cancel()


def _forwarded_metadata():
    return MultiDict({"proxyfrom": "emulator"})


def _error_message(message, target, error):
    """apid's BuildError: a reply element whose metadata carries error and google.rpc.Status."""
    message.metadata.hostname = target
    message.metadata.error = error.message or error.status.name
    message.metadata.status.CopyFrom(status_pb2.Status(code=error.status.value, message=error.message or ""))
