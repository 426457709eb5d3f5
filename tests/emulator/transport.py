"""One node's network presence: a grpclib server on <address>:50000 that can vanish and come back.

The handler mapping is built from the service descriptors, so every RPC declared in protos/ is
served. Closing the listener also drops every open connection, so a rebooting node refuses new
connections and breaks existing ones, like a machine going away.
"""
import asyncio
import errno
import socket

from google.protobuf import empty_pb2
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Handler as _RequestHandler
from grpclib.server import Server

from .api import METHODS
from .tls import client_certificate_usage_ok

API_PORT = 50000


class _CheckedH2Protocol(H2Protocol):
    """An H2Protocol that first applies apid's verifyExtKeyUsage to the client certificate."""

    def __init__(self, *args, listener, **kwargs):
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._rejected = False
        self._transport = None

    def connection_made(self, transport):
        ssl_object = transport.get_extra_info("ssl_object")
        if self._listener.require_client_certificate and ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der is None or not client_certificate_usage_ok(der):
                self._rejected = True
                self._listener.rejected_handshakes += 1
                transport.abort()
                return
        self._transport = transport
        self._listener.transports.add(transport)
        super().connection_made(transport)

    def data_received(self, data):
        if not self._rejected:
            super().data_received(data)

    def connection_lost(self, exc):
        if self._rejected:
            return
        self._listener.transports.discard(self._transport)
        super().connection_lost(exc)


class _MethodTable(dict):
    """The handler mapping; paths not declared in protos/ get gRPC's "unknown service/method" answer."""

    def __init__(self, mapping, unknown):
        super().__init__(mapping)
        self._unknown = unknown

    def get(self, path, default=None):
        handler = super().get(path)
        return handler if handler is not None else self._unknown(path)


class _NodeServer(Server):
    def __init__(self, servicer, listener):
        super().__init__([servicer])
        self._mapping = _MethodTable(self._mapping, servicer.unknown_method)
        self._listener = listener

    def _protocol_factory(self):
        self.__gc_step__()
        handler = _RequestHandler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return _CheckedH2Protocol(handler, self._config, self._h2_config, listener=self._listener)


class _NodeServicer:
    """grpclib servable: every declared RPC goes to the dispatcher with the entry node attached."""

    def __init__(self, node, dispatcher):
        self._node = node
        self._dispatcher = dispatcher

    def __mapping__(self):
        mapping = {}
        for path, method in METHODS.items():
            async def handle(stream, method=method):
                await self._dispatcher.serve(self._node, method, stream)
            mapping[path] = Handler(handle, method.cardinality, method.request_type, method.response_type)
        return mapping

    def unknown_method(self, path):
        service, _sep, name = path.lstrip("/").rpartition("/")
        known_services = {method.service for method in METHODS.values()}
        message = (f"unknown method {name} for service {service}" if service in known_services
                   else f"unknown service {service}")

        async def refuse(stream):
            self._dispatcher.cluster.calls[(self._node.address, path)] += 1
            raise GRPCError(Status.UNIMPLEMENTED, message)
        return Handler(refuse, Cardinality.UNARY_UNARY, empty_pb2.Empty, empty_pb2.Empty)


def bind_socket(address, port=API_PORT):
    # proto given explicitly: grpclib only sets TCP_NODELAY on sockets whose proto is IPPROTO_TCP, and
    # without it every small reply waits out the peer's delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def address_in_use(error):
    return error.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


class NodeListener:
    def __init__(self, node, dispatcher):
        self.node = node
        self.dispatcher = dispatcher
        self.transports = set()
        self.rejected_handshakes = 0
        self.require_client_certificate = True
        self._server = None

    @property
    def serving(self):
        return self._server is not None

    async def start(self, ssl_context, sock=None, require_client_certificate=True):
        """Serve on the node's address; `sock` is a socket already bound by address allocation."""
        self.require_client_certificate = require_client_certificate
        if sock is None:
            sock = bind_socket(self.node.address)
        server = _NodeServer(_NodeServicer(self.node, self.dispatcher), self)
        await server.start(sock=sock, ssl=ssl_context)
        self._server = server

    async def stop(self):
        """Close the listener and every connection; handlers are cancelled."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        try:
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except asyncio.TimeoutError:
            pass
