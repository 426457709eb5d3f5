"""Client overhead and fan-out, against an emulated cluster in its own process.

1. 1,000 Version calls through TalosClient.call against 1,000 made with bare grpclib on the same node
   (same TLS context, same node metadata). Goal: ratio <= 1.3.
2. Version on 50 nodes: one fan-out against 50 sequential calls, 10 ms of latency injected per call in
   both (without latency both are CPU-bound in one process and the comparison says nothing). Goal >= 5x.
"""

import asyncio

from grpclib.client import Channel

from bench._harness import alternate, emulated_cluster, inject_fault, publish

CALLS = 1000
ROUNDS = 5


def load_client(state):
    from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient
    from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings

    return TalosClient(load_settings(talosconfig=str(state / "talosconfig")))


def client_overhead():
    from ansible_collections.talos.linux.plugins.module_utils._client import rpc_method

    with emulated_cluster(control_planes=1, workers=0) as state:
        client = load_client(state)
        endpoint = client.settings.endpoints[0]
        node = endpoint.host
        method = rpc_method("Version")

        async def measure():
            channel = Channel(endpoint.host, endpoint.port, ssl=client._ssl)

            async def bare():
                for _call in range(CALLS):
                    async with channel.request(method.path, method.cardinality, method.request_type,
                                               method.reply_type, timeout=30, metadata={"node": node}) as stream:
                        await stream.send_message(method.request_type(), end=True)
                        await stream.recv_message()
                        await stream.recv_trailing_metadata()

            async def through_client():
                for _call in range(CALLS):
                    await client.call("Version", node=node)

            await bare()  # warm both connections and the emulator before timing
            await through_client()
            try:
                return await alternate(ROUNDS, bare=bare, client=through_client)
            finally:
                channel.close()
                client.close()

        times = asyncio.run(measure())
    ratio = times["client"] / times["bare"]
    return {"name": f"{CALLS} Version calls: TalosClient vs bare grpclib", "measured": f"{times['client']:.3f} s",
            "baseline": f"{times['bare']:.3f} s", "ratio": f"{ratio:.2f}x", "goal": "<= 1.3x", "met": ratio <= 1.3}


def fan_out():
    nodes = 50
    with emulated_cluster(control_planes=1, workers=nodes - 1) as state:
        inject_fault(state, "latency", "--seconds", "0.01")
        client = load_client(state)
        addresses = client.settings.nodes
        assert len(addresses) == nodes, addresses

        async def measure():
            async def sequential():
                for node in addresses:
                    await client.call("Version", node=node)

            async def concurrent():
                results = await client.fan_out(addresses, lambda node: client.call("Version", node=node))
                assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok]

            await concurrent()
            try:
                return await alternate(3, sequential=sequential, fan_out=concurrent)
            finally:
                client.close()

        times = asyncio.run(measure())
    speedup = times["sequential"] / times["fan_out"]
    return {"name": f"Version on {nodes} nodes, 10 ms latency each: fan-out vs sequential",
            "measured": f"{times['fan_out']:.3f} s", "baseline": f"{times['sequential']:.3f} s",
            "ratio": f"{speedup:.1f}x faster", "goal": ">= 5x faster", "met": speedup >= 5}


def main():
    rows = [client_overhead(), fan_out()]
    publish("client", "make bench", rows)
    return rows
