"""One node's network presence: a grpclib server on <address>:50000 that can vanish and come back.

The handler mapping is built from the service descriptors, so every RPC declared in protos/ is
served. Closing the listener also drops every open connection, so a rebooting node refuses new
connections and breaks existing ones, like a machine going away.

TLS as grpc-go over Go's crypto/tls ends it: a failed handshake sends its alert before the close
(asyncio alone drops it), a connection that did not negotiate ALPN h2 is closed right after the
handshake, and received messages are limited to apid's 32 MiB (README: what still differs).
"""
import asyncio
import contextlib
import errno
import socket
from asyncio import sslproto

from google.protobuf import empty_pb2
from grpclib.const import Cardinality, Handler, Status
from grpclib.encoding.proto import ProtoCodec
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Handler as _RequestHandler
from grpclib.server import Server

from .api import METHODS
from .tls import client_certificate_usage_ok

API_PORT = 50000
# apid: grpc.MaxRecvMsgSize(constants.GRPCMaxMessageSize)
MAX_RECEIVE_MESSAGE_SIZE = 32 * 1024 * 1024


class _LimitedProtoCodec(ProtoCodec):
    """grpc-go's receive limit, with its message; the length is that of the message as received."""

    def decode(self, data, message_type):
        if len(data) > MAX_RECEIVE_MESSAGE_SIZE:
            raise GRPCError(Status.RESOURCE_EXHAUSTED, f"grpc: received message larger than max "
                            f"({len(data)} vs. {MAX_RECEIVE_MESSAGE_SIZE})")
        return super().decode(data, message_type)


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's server TLS, but a failed handshake first sends the alert OpenSSL wrote for it
    (certificate required, unknown CA, certificate expired...), as Go's crypto/tls does."""

    def _on_handshake_complete(self, handshake_exc):
        if handshake_exc is not None:
            with contextlib.suppress(Exception):  # a peer already gone: nothing to tell it
                self._process_outgoing()
        super()._on_handshake_complete(handshake_exc)


class _CheckedH2Protocol(H2Protocol):
    """An H2Protocol that first does what grpc-go and apid do once the TLS handshake is done: close a
    connection without ALPN h2 (grpc-go's ALPN enforcement) and apply apid's verifyExtKeyUsage."""

    def __init__(self, *args, listener, **kwargs):
        super().__init__(*args, **kwargs)
        self._listener = listener
        self._rejected = False
        self._transport = None

    def connection_made(self, transport):
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            # grpc-go: "credentials: cannot check peer: missing selected ALPN property", then tls.Conn.Close
            # (a close_notify). A client offering only http/1.1 gets here too: Go's crypto/tls lets it
            # through as if it offered nothing.
            self._reject(transport.close)
            return
        if self._listener.require_client_certificate and ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der is None or not client_certificate_usage_ok(der):
                # Go refuses these in the handshake with "bad certificate"; Python's ssl has no verify
                # callback, so the EKU rule's remainder can only drop the connection once it is up.
                self._reject(transport.abort)
                return
        self._transport = transport
        self._listener.transports.add(transport)
        super().connection_made(transport)

    def _reject(self, close):
        self._rejected = True
        self._listener.rejected_handshakes += 1
        close()

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
    def __init__(self, servicer, listener, ssl_context):
        super().__init__([servicer], codec=_LimitedProtoCodec())
        self._mapping = _MethodTable(self._mapping, servicer.unknown_method)
        self._listener = listener
        self._ssl_context = ssl_context

    def _protocol_factory(self):
        self.__gc_step__()
        handler = _RequestHandler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        h2_protocol = _CheckedH2Protocol(handler, self._config, self._h2_config, listener=self._listener)
        # TLS is layered here rather than by the event loop, so that a refused handshake sends its alert
        return _AlertingSSLProtocol(asyncio.get_running_loop(), h2_protocol, self._ssl_context, None,
                                    server_side=True)


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
        server = _NodeServer(_NodeServicer(self.node, self.dispatcher), self, ssl_context)
        await server.start(sock=sock)
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
