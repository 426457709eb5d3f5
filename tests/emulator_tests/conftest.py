"""Self-tests of the emulator: shared fixtures and a synchronous call helper over a bare grpclib client."""
import asyncio

import pytest
from grpclib.exceptions import GRPCError

from tests.emulator.pytest_plugin import emulated_cluster  # noqa: F401  # pylint: disable=unused-import  # the fixture under test
from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context, load_talosconfig


class Caller:
    """Synchronous one-shot calls against a cluster with one of its talosconfigs."""

    def __init__(self, cluster, kind="admin", talosconfig=None):
        self.cluster = cluster
        self.config = load_talosconfig(talosconfig or cluster.talosconfig_path(kind))
        self.context = client_ssl_context(self.config)

    def __call__(self, rpc, request=None, *, endpoint=None, node=None, metadata=None, timeout=10.0, requests=None):
        endpoint = endpoint or self.config["endpoints"][0]

        async def run():
            client = TalosTestClient(endpoint, self.context)
            try:
                return await client.call(rpc, request, node=node, metadata=metadata, timeout=timeout,
                                         requests=requests)
            finally:
                client.close()
        return asyncio.run(run())

    def error(self, rpc, request=None, **kwargs):
        """The GRPCError the call fails with (the test fails if it succeeds)."""
        with pytest.raises(GRPCError) as caught:
            self(rpc, request, **kwargs)
        return caught.value


@pytest.fixture
def caller():
    return Caller


@pytest.fixture
def cluster(emulated_cluster):  # noqa: F811
    """A small default cluster: 3 control planes, 2 workers, v1.13.5, quick reboots."""
    return emulated_cluster(control_planes=3, workers=2, talos_version="1.13.5", reboot_seconds=0.3)


@pytest.fixture
def admin(cluster):
    return Caller(cluster)
