# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TalosClient: gRPC to Talos nodes over grpclib, one node per call, fan-out on the client.

Private to the talos.linux collection: it may change in any release. No Ansible import here.

Every call carries exactly one ``node`` metadata value (never ``nodes``, deprecated upstream); endpoints are
shuffled and a call moves to the next one after a connection error or Unavailable; retries back off
exponentially with jitter and stay inside the call's deadline; a call that changes a node is retried only
when it cannot have reached the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from dataclasses import dataclass

try:
    from grpclib.client import Channel
    from grpclib.config import Configuration
    from grpclib.const import Cardinality
    from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
except ImportError as exc:  # reported by the doors as a missing requirement, with this traceback
    GRPCLIB_IMPORT_ERROR = exc
    Channel = object
else:
    GRPCLIB_IMPORT_ERROR = None

from ._errors import TalosError, certificate_refusal_hint, explain_status, short_rpc
from ._tls import check_client_certificate, make_ssl_context
from ._version import CAPABILITIES, TalosVersion, supports

VERSION = "MachineService/Version"
# RPCs that change nothing on a node: safe to retry after the request may have arrived.
READ_ONLY = frozenset({
    "MachineService/Version", "MachineService/Hostname", "MachineService/Memory", "MachineService/CPUInfo",
    "MachineService/SystemStat", "MachineService/Mounts", "MachineService/LoadAvg",
    "MachineService/ServiceList", "MachineService/Events", "MachineService/Read", "MachineService/Kubeconfig",
    "MachineService/EtcdMemberList", "MachineService/EtcdStatus", "MachineService/EtcdAlarmList",
    "MachineService/EtcdSnapshot", "MachineService/EtcdDowngradeValidate", "StorageService/Disks",
    "ClusterService/HealthCheck", "State/Get", "State/List", "State/Watch", "ImageService/List",
    "MachineService/Logs", "MachineService/LogsContainers", "MachineService/Dmesg", "MachineService/Containers",
    "MachineService/Processes", "MachineService/Stats", "MachineService/Netstat", "MachineService/DiskUsage",
    "MachineService/List", "MachineService/Copy", "MachineService/CPUFreqStats", "MachineService/DiskStats",
    "MachineService/NetworkDeviceStats", "MachineService/ImageList", "MachineService/PacketCapture",
    "MachineService/GenerateClientConfiguration", "ImageService/Verify", "TimeService/Time",
    "TimeService/TimeCheck", "InspectService/ControllerRuntimeDependencies",
})
# Node answers that mean "not done, try again shortly" even for a call that changes the node.
RETRYABLE_DETAILS = ("another apply configuration is already in progress",)


@dataclass(frozen=True)
class RpcMethod:
    name: str            # "MachineService/Version"
    path: str            # "/machine.MachineService/Version"
    request_type: type
    reply_type: type
    cardinality: Cardinality

    @property
    def read_only(self):
        return self.name in READ_ONLY


_METHODS = {}


def rpc_method(name):
    """Look an RPC up by 'Service/Method' (or the full '/package.Service/Method' path)."""
    if not _METHODS:
        _load_methods()
    method = _METHODS.get(short_rpc(name))
    if method is None:
        raise ValueError(f"unknown Talos RPC {name!r}")
    return method


def _load_methods():
    from google.protobuf.message_factory import GetMessageClass

    from ._api.cluster import cluster_pb2
    from ._api.cosi.v1alpha1 import state_pb2
    from ._api.inspect import inspect_pb2
    from ._api.machine import image_pb2, lifecycle_pb2, machine_pb2
    from ._api.storage import storage_pb2
    from ._api.time import time_pb2

    for module in (machine_pb2, lifecycle_pb2, image_pb2, cluster_pb2, storage_pb2, state_pb2, inspect_pb2, time_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                cardinality = Cardinality((m.client_streaming, m.server_streaming))
                method = RpcMethod(f"{service.name}/{m.name}", f"/{service.full_name}/{m.name}",
                                   GetMessageClass(m.input_type), GetMessageClass(m.output_type), cardinality)
                _METHODS[method.name] = method


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``attempts`` rounds over the endpoints, never past the call's deadline."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt, rng=random):
        # full jitter: a random wait up to the exponential cap, so many clients do not retry in step
        return rng.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))


@dataclass
class NodeResult:
    """One node's share of a fan-out: a value or the TalosError it ended with."""

    node: str
    value: object = None
    error: TalosError | None = None

    @property
    def ok(self):
        return self.error is None


class _NotSent(Exception):
    """The request never left the client (no connection): any call may be retried elsewhere."""


class _Tries:
    """The endpoints one call may try, in order, with a backoff between rounds and one deadline over all.

    ``next()`` gives the next endpoint and the time left, or raises the final TalosError once the rounds or
    the deadline run out; ``failed()`` raises at once what must not be retried.
    """

    def __init__(self, client, method, node, timeout, rounds=None):
        self.client, self.method, self.node = client, method, node
        self.rounds = client.retry.attempts if rounds is None else rounds
        self.timeout = client.timeout if timeout is None else timeout
        self.deadline = time.monotonic() + self.timeout
        self.failures = []
        self.round = 0
        self.queue = client._endpoint_order()

    async def next(self):
        if not self.queue:
            self.round += 1
            if self.round >= self.rounds:
                raise self.client._exhausted(self.method, self.node, self.failures)
            pause = self.client.retry.delay(self.round - 1, self.client._rng)
            await asyncio.sleep(max(0.0, min(pause, self.deadline - time.monotonic())))
            self.queue = self.client._endpoint_order()
        endpoint = self.queue.pop(0)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self.client._deadline_error(self.method, self.node, endpoint, self.timeout, 0)
        return endpoint, remaining

    async def failed(self, endpoint, exc, received=0):
        client = self.client
        error = client._failure(exc, self.method, self.node, endpoint, self.timeout, received)
        if error.code == "Unimplemented" and self.node not in client._versions and self.method.name != VERSION:
            # "unknown service" alone does not tell the user why: name the node's Talos version
            with contextlib.suppress(TalosError):
                await client.version(self.node, timeout=max(0.1, min(5.0, self.deadline - time.monotonic())))
                error = client._failure(exc, self.method, self.node, endpoint, self.timeout, received)
        if received or not client._retryable(exc, self.method, error):
            raise error from None
        self.failures.append((endpoint, error))
        if error.code != "Unavailable" and not isinstance(exc, _NotSent):
            self.queue = []  # the node said "try again shortly": back off, then start over


class _Channel(Channel):
    """grpclib's Channel, remembering how its last connection ended, which grpclib itself forgets.

    Under TLS 1.3 a node checks the client certificate after the client considers the handshake done: the
    node's alert (unknown CA, expired, bad certificate) arrives on the first read and ends the connection
    with that ssl.SSLError, kept as ``lost_reason``. The alert can also be lost, overtaken by the TCP reset
    of a node closing with unread data; then a refused certificate shows up only as a connection lost
    before the node said anything over HTTP/2 (a server speaks first, with its settings frame).
    ``refused_at_tls`` tells both cases apart from a node going away mid-call.
    """

    lost_reason = None
    answered = False
    transport = None  # the connection's transport while its socket is open

    def _protocol_factory(self):
        protocol = super()._protocol_factory()
        self.lost_reason, self.answered = None, False
        on_made, on_data, on_lost = protocol.connection_made, protocol.data_received, protocol.connection_lost

        def connection_made(transport):
            self.transport = transport
            on_made(transport)

        def first_data(data):
            self.answered = True
            protocol.data_received = on_data  # only the first chunk is watched
            on_data(data)

        def connection_lost(exc):
            self.lost_reason, self.transport = exc, None
            on_lost(exc)

        protocol.connection_made, protocol.data_received = connection_made, first_data
        protocol.connection_lost = connection_lost
        return protocol

    @property
    def refused_at_tls(self):
        return self.lost_reason is not None and not self.answered


def status_name(status):
    """grpclib's PERMISSION_DENIED -> PermissionDenied, as Talos and grpc-go print it."""
    return "OK" if status.name == "OK" else "".join(w.title() for w in status.name.split("_"))


class TalosClient:
    """A connection to one Talos cluster, for the lifetime of one asyncio event loop.

    Build it once per task, use it from coroutines, and close it (or use ``run``), which drops the channels.
    """

    def __init__(self, settings, *, timeout=30.0, retry=None, concurrency=32, rng=None):
        if GRPCLIB_IMPORT_ERROR is not None:
            raise GRPCLIB_IMPORT_ERROR
        self.settings = settings
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self.concurrency = concurrency
        self._rng = rng or random.Random()
        # Before any dialing: an expired certificate would only earn a bare "bad certificate" from the node.
        self.certificate = None if settings.insecure else check_client_certificate(settings.crt_pem, settings.context)
        self._ssl = make_ssl_context(settings)
        self._config = Configuration(ssl_target_name_override=settings.server_name) if settings.server_name else None
        self._endpoints = list(settings.endpoints)
        self._rng.shuffle(self._endpoints)
        self._channels = {}
        self._versions = {}
        self._avoided = set()

    @property
    def roles(self):
        return self.certificate.roles if self.certificate else ()

    # --- lifecycle ------------------------------------------------------------------------------------

    def run(self, operation):
        """Run ``await operation(client)`` in a fresh event loop and close the channels afterwards."""
        async def main():
            try:
                return await operation(self)
            finally:
                await self.aclose()
        return asyncio.run(main())

    def close(self):
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    async def aclose(self, grace=0.1):
        """Close the channels and see their sockets closed before the loop ends.

        A TLS close waits for the node's close_notify; a loop that ends first leaves the socket open, and the
        inventory's process would hand it to every forked worker. What is still open after ``grace`` seconds
        is aborted.
        """
        channels = [channel for channel in self._channels.values() if channel.transport is not None]
        self.close()
        deadline = time.monotonic() + grace
        while any(channel.transport is not None for channel in channels) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        for channel in channels:
            if channel.transport is not None:
                channel.transport.abort()
        if channels:
            await asyncio.sleep(0)  # the abort closes the socket in the loop's next round

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    def _channel(self, endpoint):
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = _Channel(endpoint.host, endpoint.port, ssl=self._ssl, config=self._config)
            self._channels[endpoint] = channel
        return channel

    # --- calls ----------------------------------------------------------------------------------------

    async def call(self, rpc, request=None, *, node=None, timeout=None, rounds=None):
        """A unary call to one node (``node=None``: the endpoint itself answers).

        ``rounds`` overrides the retry policy's rounds over the endpoints (1: each endpoint once, no backoff),
        for callers that run their own retry loop, such as a reboot watch.
        """
        method = rpc_method(rpc)
        request = self._request(method, request)

        async def attempt(stream):
            await stream.send_message(request, end=True)
            reply = await stream.recv_message()
            await stream.recv_trailing_metadata()
            return reply

        return await self._with_retries(method, node, timeout, attempt, rounds)

    async def stream(self, rpc, request=None, *, node=None, timeout=None, rounds=None):
        """A server stream, yielded message by message as it arrives (never buffered whole).

        Retried like a unary call until the first message arrives; after that a failure ends the stream.
        """
        method = rpc_method(rpc)
        request = self._request(method, request)
        tries = _Tries(self, method, node, timeout, rounds)
        received = 0
        while True:
            endpoint, remaining = await tries.next()
            try:
                async with self._open(endpoint, method, node, remaining) as stream:
                    await stream.send_message(request, end=True)
                    while True:
                        reply = await stream.recv_message()
                        if reply is None:
                            break
                        received += 1
                        yield reply
                    await stream.recv_trailing_metadata()
            except Exception as exc:  # noqa: BLE001 - classified by tries.failed, never swallowed
                await tries.failed(endpoint, exc, received)
                continue
            self._prefer(endpoint)
            return

    async def send_stream(self, rpc, messages, *, node=None, timeout=None):
        """A client stream (EtcdRecover): send each message from ``messages`` (sync or async iterable)."""
        method = rpc_method(rpc)

        async def attempt(stream):
            if hasattr(messages, "__aiter__"):
                async for message in messages:
                    await stream.send_message(message)
            else:
                for message in messages:
                    await stream.send_message(message)
            await stream.end()
            reply = await stream.recv_message()
            await stream.recv_trailing_metadata()
            return reply

        return await self._with_retries(method, node, timeout, attempt)

    async def fan_out(self, nodes, operation, *, concurrency=None):
        """Run ``await operation(node)`` for every node concurrently; one NodeResult per node, in order.

        A node that fails or hangs costs its own deadline only; the others finish as fast as they can.
        """
        limit = asyncio.Semaphore(concurrency or self.concurrency)

        async def one(node):
            async with limit:
                try:
                    return NodeResult(node, value=await operation(node))
                except TalosError as exc:
                    return NodeResult(node, error=exc)

        return list(await asyncio.gather(*(one(node) for node in nodes)))

    # --- versions -------------------------------------------------------------------------------------

    async def version(self, node=None, *, timeout=None):
        """The node's Version reply (tag, sha, arch, platform, features); remembers the parsed tag."""
        reply = await self.call(VERSION, node=node, timeout=timeout)
        info = reply.messages[0]
        self._versions[node] = TalosVersion.parse(info.version.tag)
        return info

    async def talos_version(self, node=None):
        if node not in self._versions:
            await self.version(node)
        return self._versions[node]

    async def require(self, node, capability, rpc):
        """Fail before calling ``rpc`` when the node's Talos version lacks ``capability``."""
        version = await self.talos_version(node)
        if not supports(version, capability):
            raise TalosError(
                f"{short_rpc(rpc)} is not supported by Talos {version} on node {node}.",
                code="Unimplemented", node=node, rpc=rpc,
                hint=f"It needs Talos {CAPABILITIES[capability].lstrip('v')} or newer; upgrade the node first.")
        return version

    # --- internals ------------------------------------------------------------------------------------

    def _request(self, method, request):
        if request is None:
            return method.request_type()
        if isinstance(request, dict):
            return method.request_type(**request)
        return request

    @staticmethod
    def _metadata(node):
        return {"node": str(node)} if node else None

    def _endpoint_order(self):
        return list(self._endpoints)

    def avoid_endpoint(self, node):
        """Try the endpoints on ``node`` last, for example while that node reboots: calls to it (and forwarded
        through other endpoints) keep working. Other endpoints are kept first until the client is closed."""
        self._avoided.add(str(node))
        on_node = [e for e in self._endpoints if e.host == str(node)]
        self._endpoints = [e for e in self._endpoints if e.host != str(node)] + on_node

    def _prefer(self, endpoint):
        # stay on an endpoint that works, so later calls do not keep paying for a dead one
        if self._endpoints[0] != endpoint and endpoint.host not in self._avoided:
            self._endpoints.remove(endpoint)
            self._endpoints.insert(0, endpoint)

    @contextlib.asynccontextmanager
    async def _open(self, endpoint, method, node, remaining):
        """A gRPC stream to ``endpoint`` whose request headers are sent: the connection is up."""
        async with self._channel(endpoint).request(
                method.path, method.cardinality, method.request_type, method.reply_type,
                timeout=remaining, metadata=self._metadata(node)) as stream:
            try:
                await stream.send_request()
            except (ssl.SSLError, TimeoutError):
                raise
            except OSError as exc:
                raise _NotSent() from exc
            yield stream

    async def _with_retries(self, method, node, timeout, attempt, rounds=None):
        tries = _Tries(self, method, node, timeout, rounds)
        while True:
            endpoint, remaining = await tries.next()
            try:
                async with self._open(endpoint, method, node, remaining) as stream:
                    reply = await attempt(stream)
            except Exception as exc:  # noqa: BLE001 - classified by tries.failed, never swallowed
                await tries.failed(endpoint, exc)
                continue
            self._prefer(endpoint)
            return reply

    @staticmethod
    def _retryable(exc, method, error):
        if isinstance(exc, _NotSent):
            return True
        if error.code == "Unavailable":
            # Unavailable or a lost connection: a read is simply asked again; a call that changes the node
            # may already have started there, so it is not sent twice.
            return method.read_only
        return isinstance(exc, GRPCError) and any(text in (exc.message or "") for text in RETRYABLE_DETAILS)

    def _exhausted(self, method, node, failures):
        last = failures[-1][1] if failures else None
        tried = sorted({str(endpoint) for endpoint, _error in failures})
        reasons = "; ".join(f"{endpoint}: {error.detail or error.code}" for endpoint, error in failures[-len(tried):])
        target = f" on node {node}" if node else ""
        return TalosError(
            f"{method.name}{target} failed after {len(failures)} attempts over the endpoints {', '.join(tried)}: "
            f"{reasons}.", code=last.code if last else "Unavailable", node=node,
            endpoint=last.endpoint if last else None, rpc=method.path, detail=last.detail if last else None,
            hint="Check that the endpoints are up and reachable on their API port, and that the node is up.")

    def _deadline_error(self, method, node, endpoint, timeout, received):
        seconds = self.timeout if timeout is None else timeout
        target = f" on node {node}" if node else ""
        got = _after(received)
        return TalosError(f"{method.name}{target} did not finish within its deadline of {seconds:g} s{got}.",
                          code="DeadlineExceeded", node=node, endpoint=str(endpoint), rpc=method.path,
                          hint="Raise the timeout if the node is slow, or check that it is healthy.")

    def _failure(self, exc, method, node, endpoint, timeout, received):
        """Classify anything a call raised into one TalosError that says what happened and what to do."""
        where = f"{method.name} on node {node}" if node else method.name
        if isinstance(exc, TalosError):
            return exc
        if isinstance(exc, GRPCError):
            return explain_status(status_name(exc.status), exc.message or "", rpc=method.path, node=node,
                                  endpoint=str(endpoint), roles=self.roles, version=self._versions.get(node))
        if isinstance(exc, asyncio.TimeoutError):
            return self._deadline_error(method, node, endpoint, timeout, received)
        if isinstance(exc, ssl.SSLCertVerificationError):
            if "mismatch" in (exc.verify_message or ""):
                return TalosError(
                    f"{where}: the certificate of endpoint {endpoint} is not valid for the name {endpoint.host}.",
                    code="TLSError", node=node, endpoint=str(endpoint), rpc=method.path, detail=exc.verify_message,
                    hint="Connect by a name in the node's certSANs, or set server_name to one (a VIP or DNS name "
                         "must be listed in machine.certSANs).")
            return TalosError(
                f"{where}: the certificate of endpoint {endpoint} is not signed by the CA of context "
                f"{self.settings.context!r} ({exc.verify_message}).", code="TLSError", node=node,
                endpoint=str(endpoint), rpc=method.path, detail=exc.verify_message,
                hint="The talosconfig belongs to another cluster, or its ca field is wrong.")
        channel = self._channels.get(endpoint)
        if isinstance(exc, (StreamTerminatedError, ConnectionError)) and channel and channel.refused_at_tls:
            exc = channel.lost_reason if isinstance(channel.lost_reason, ssl.SSLError) else ssl.SSLError(
                "the connection was closed after the TLS handshake, before the node answered")
        if isinstance(exc, ssl.SSLError):
            return TalosError(
                f"{where}: endpoint {endpoint} refused the client certificate of context {self.settings.context!r} "
                f"({_ssl_reason(exc)}).", code="TLSError", node=node, endpoint=str(endpoint), rpc=method.path,
                detail=_ssl_reason(exc), hint=certificate_refusal_hint(getattr(exc, "reason", None)))
        if isinstance(exc, _NotSent):
            cause = exc.__cause__
            reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
            return TalosError(f"{where}: cannot connect to endpoint {endpoint}: {reason}.", code="Unavailable",
                              node=node, endpoint=str(endpoint), rpc=method.path, detail=reason)
        if isinstance(exc, (StreamTerminatedError, ProtocolError, ConnectionError, OSError)):
            got = _after(received)
            maybe = "" if method.read_only else " The request may or may not have reached the node; check its state."
            return TalosError(f"{where}: the connection to endpoint {endpoint} was lost{got} ({exc or type(exc).__name__}).{maybe}",
                              code="Unavailable", node=node, endpoint=str(endpoint), rpc=method.path,
                              detail=str(exc) or type(exc).__name__)
        return TalosError(f"{where} failed unexpectedly: {type(exc).__name__}: {exc}", code="Unknown", node=node,
                          endpoint=str(endpoint), rpc=method.path, detail=str(exc))


def _after(received):
    return f" after {received} message{'s' if received != 1 else ''}" if received else ""


def _ssl_reason(exc):
    # an SSLError made here has one argument and no reason (its str() would be the args tuple)
    text = getattr(exc, "reason", None) or (exc.args[0] if len(exc.args) == 1 else str(exc))
    return str(text).replace("_", " ").lower()
