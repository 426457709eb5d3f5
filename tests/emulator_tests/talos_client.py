"""A bare grpclib client for the emulator's self-tests (independent of plugins/module_utils/_client.py)."""
import asyncio
import base64
import os
import ssl
import tempfile

import yaml
from grpclib.client import Channel
from grpclib.const import Cardinality

from tests.emulator.api import METHODS, method_by_name


def load_talosconfig(path):
    document = yaml.safe_load(open(path))
    context = document["contexts"][document["context"]]
    return {
        "endpoints": context["endpoints"], "nodes": context.get("nodes", []),
        "ca": base64.b64decode(context["ca"]), "crt": base64.b64decode(context["crt"]),
        "key": base64.b64decode(context["key"]),
    }


def client_ssl_context(config=None, *, maintenance=False):
    """mTLS context from a talosconfig (key label rewritten for OpenSSL), or maintenance (no verification)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["h2"])
    if maintenance:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context.load_verify_locations(cadata=config["ca"].decode())
    key = config["key"].replace(b"ED25519 PRIVATE KEY", b"PRIVATE KEY")
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = os.path.join(directory, "crt"), os.path.join(directory, "key")
        with open(cert_path, "wb") as handle:
            handle.write(config["crt"])
        with open(key_path, "wb") as handle:
            handle.write(key)
        context.load_cert_chain(cert_path, key_path)
    return context


class TalosTestClient:
    """One channel to one endpoint; `call` takes an RPC name, a request and optional `node` metadata."""

    def __init__(self, endpoint, ssl_context, port=50000):
        self.channel = Channel(endpoint, port, ssl=ssl_context)

    def close(self):
        self.channel.close()

    async def call(self, rpc, request=None, *, node=None, metadata=None, timeout=10.0, requests=None):
        method = METHODS[method_by_name(rpc)]
        meta = list(metadata or [])
        if node is not None:
            meta.append(("node", node))
        request = request if request is not None else method.request_type()
        async with self.channel.request(method.path, method.cardinality, method.request_type,
                                        method.response_type, timeout=timeout, metadata=meta or None) as stream:
            if method.cardinality.client_streaming:
                for message in requests or ():
                    await stream.send_message(message)
                await stream.end()
            else:
                await stream.send_message(request, end=True)
            if method.cardinality.server_streaming:
                replies = [reply async for reply in stream]
            else:
                replies = await stream.recv_message()
            await stream.recv_trailing_metadata()
            return replies


def run(coroutine):
    return asyncio.run(coroutine)


__all__ = ["TalosTestClient", "load_talosconfig", "client_ssl_context", "run", "Cardinality"]
