"""The CLI round trip (subprocess) and the scale the benchmarks need."""
import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest
from grpclib.const import Status

from tests.emulator import EmulatedCluster
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context, load_talosconfig

REPO = pathlib.Path(__file__).resolve().parents[2]


def _cli(*args, timeout=20):
    return subprocess.run([sys.executable, "-m", "tests.emulator", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_cli_up_status_fault_calls_down(tmp_path):
    state = tmp_path / "state"
    process = subprocess.Popen([sys.executable, "-m", "tests.emulator", "up", "--control-planes", "2", "--workers",
                                "1", "--talos-version", "1.13.5", "--node-version", "2=1.12.4", "--state-dir",
                                str(state)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not (state / "ready").exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "emulator did not become ready"
            time.sleep(0.05)
        assert int((state / "pid").read_text()) == process.pid
        status = json.loads(_cli("status", "--state-dir", str(state)).stdout)
        assert [n["type"] for n in status["nodes"]] == ["controlplane", "controlplane", "worker"]
        assert [n["version"] for n in status["nodes"]] == ["1.13.5", "1.13.5", "1.12.4"]
        assert all(n["up"] and n["boot_id"] for n in status["nodes"])
        config = load_talosconfig(state / "talosconfig")
        endpoint = config["endpoints"][0]
        assert config["nodes"] == [n["address"] for n in status["nodes"]]

        result = _cli("fault", "--state-dir", str(state), "fail", "--rpc", "Version", "--code", "UNAVAILABLE",
                      "--count", "1", "--node", endpoint)
        assert result.returncode == 0, result.stderr

        async def version():
            client = TalosTestClient(endpoint, client_ssl_context(config))
            try:
                return await client.call("Version")
            finally:
                client.close()
        try:
            asyncio.run(version())
            raise AssertionError("the injected failure did not happen")
        except Exception as error:
            assert getattr(error, "status", None) == Status.UNAVAILABLE
        assert asyncio.run(version()).messages[0].version.tag == "v1.13.5"
        calls = json.loads(_cli("calls", "--state-dir", str(state)).stdout)
        assert calls[endpoint]["/machine.MachineService/Version"] == 2

        worker = status["nodes"][2]["address"]
        assert _cli("fault", "--state-dir", str(state), "down", "--node", worker).returncode == 0
        status = json.loads(_cli("status", "--state-dir", str(state)).stdout)
        assert status["nodes"][2]["up"] is False
        assert _cli("fault", "--state-dir", str(state), "clear").returncode == 0
        bad = _cli("fault", "--state-dir", str(state), "down", "--node", "10.9.9.9")
        assert bad.returncode == 1 and "no emulated node" in bad.stderr

        result = _cli("down", "--state-dir", str(state))
        assert result.returncode == 0, result.stderr
        assert process.wait(10) == 0
        assert not (state / "ready").exists() and not (state / "pid").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_fifty_nodes_start_quickly_and_serve(tmp_path):
    started = time.monotonic()
    with EmulatedCluster(control_planes=1, workers=49, state_dir=tmp_path / "fifty") as cluster:
        elapsed = time.monotonic() - started
        assert len(cluster.addresses) == 50 and elapsed < 1.5, elapsed
        admin = Caller(cluster)
        assert admin("Hostname", node=cluster.workers[-1]).messages[0].hostname == "talos-w-49"
    stopped = time.monotonic()
    assert stopped - started - elapsed < 60


def test_fifty_control_planes(emulated_cluster):
    cluster = emulated_cluster(control_planes=50)
    members = Caller(cluster)("EtcdMemberList").messages[0].members
    assert len(members) == 50


def test_thousand_sequential_version_calls(cluster, admin):
    async def run():
        client = TalosTestClient(cluster.control_planes[0], admin.context)
        try:
            started = time.monotonic()
            for _index in range(1000):
                await client.call("Version")
            return time.monotonic() - started
        finally:
            client.close()
    elapsed = asyncio.run(run())
    assert elapsed < 4.0, elapsed
    assert cluster.calls[(cluster.control_planes[0], "/machine.MachineService/Version")] == 1000


def test_stop_is_quick_even_with_open_streams(tmp_path):
    cluster = EmulatedCluster(control_planes=1, state_dir=tmp_path / "s").start()
    admin = Caller(cluster)
    assert admin("Version")
    address = cluster.control_planes[0]
    with socket.create_connection((address, 50000), timeout=1):
        pass
    started = time.monotonic()
    cluster.stop()
    assert time.monotonic() - started < 1.5
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, 50000), timeout=1)
    assert os.path.exists(tmp_path / "s" / "talosconfig")
