"""The snapshot file side of talos_etcd (_etcd_snapshot) through a real TalosClient against the emulator."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.talos.linux.plugins.module_utils._client import RetryPolicy, TalosClient, rpc_method
from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError
from ansible_collections.talos.linux.plugins.module_utils._etcd_snapshot import (
    MAGIC, snapshot_chunks, take_snapshot, verify_snapshot_file)
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)
SNAPSHOT = "/machine.MachineService/EtcdSnapshot"
STATUS = "/machine.MachineService/EtcdStatus"
MiB = 1 << 20


def client_for(cluster, role="admin"):
    return TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path(role))), timeout=10, retry=FAST_RETRY)


def snapshot(cluster, dest, role="admin", node=None, check_mode=False, **params):
    node = node or cluster.control_planes[0]
    params = {"dest": str(dest), "mode": "0600", "passphrase": None, "timeout": 10, **params}
    return client_for(cluster, role).run(lambda c: take_snapshot(params, c, node, check_mode=check_mode))


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


@pytest.fixture
def out(tmp_path):
    """The directory of dest (tmp_path also holds the emulator's state)."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def cluster(emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=1)
    cluster.set_snapshot_size(3 * MiB + 1536)       # three 1 MiB messages and a short one
    return cluster


@pytest.mark.parametrize("role", ["admin", "etcd-backup"])
def test_a_snapshot_is_written_with_a_verified_checksum(out, cluster, role):
    node = cluster.control_planes[1]
    dest = out / "etcd.db"
    result = snapshot(cluster, dest, role=role, node=node)
    size = 3 * MiB + 1536 + 32
    assert result["changed"] is True and result["node"] == node and result["dest"] == str(dest)
    assert result["size"] == size == dest.stat().st_size and size % 512 == 32
    assert result["sha256"] == sha256_of(dest) and result["encrypted"] is False and result["mode"] == "0600"
    data = dest.read_bytes()
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert verify_snapshot_file(str(dest)) == {"size": size, "sha256": result["sha256"], "encrypted": False}
    assert cluster.calls[(node, SNAPSHOT)] == 1 and cluster.calls[(node, STATUS)] == 1
    assert leftovers(out) == []


def test_a_reader_is_refused_with_nothing_sent(out, cluster):
    cluster.reset_calls()
    with pytest.raises(TalosError) as err:
        snapshot(cluster, out / "etcd.db", role="reader")
    text = str(err.value)
    assert err.value.code == "PermissionDenied"
    assert "os:admin, os:operator, os:etcd:backup" in text and "the client certificate has os:reader" in text
    assert "Nothing was sent" in text
    assert sum(cluster.calls.values()) == 0 and list(out.iterdir()) == []


@pytest.mark.parametrize("existing", [False, True], ids=["no-file", "good-file"])
def test_an_interrupted_stream_leaves_dest_as_it_was(out, cluster, existing):
    node = cluster.control_planes[0]
    dest = out / "etcd.db"
    if existing:
        snapshot(cluster, dest)
        good, before = dest.read_bytes(), dest.stat()
    cluster.interrupt_stream("EtcdSnapshot", after_messages=2, node=node)
    with pytest.raises(TalosError) as err:
        snapshot(cluster, dest)
    text = str(err.value)
    assert err.value.code == "Unavailable" and err.value.node == node
    assert "lost after 2 messages" in text
    if existing:
        assert text.endswith(f"The snapshot was not written: {dest} was left as it was.")
        assert dest.read_bytes() == good and dest.stat().st_ino == before.st_ino
    else:
        assert text.endswith(f"The snapshot was not written: nothing was written to {dest}.")
        assert not dest.exists()
    assert leftovers(out) == []


def test_a_stream_broken_before_its_first_message_is_asked_again(out, cluster):
    node = cluster.control_planes[0]
    cluster.interrupt_stream("EtcdSnapshot", after_messages=0, node=node)
    result = snapshot(cluster, out / "etcd.db")
    assert result["sha256"] == sha256_of(out / "etcd.db")
    assert cluster.calls[(node, SNAPSHOT)] == 2


def test_a_node_that_sends_nothing_fails_after_the_timeout(out, cluster):
    node = cluster.control_planes[0]
    cluster.add_latency(30, rpc="EtcdSnapshot", node=node)
    with pytest.raises(TalosError) as err:
        snapshot(cluster, out / "etcd.db", timeout=0.5)
    assert err.value.code == "DeadlineExceeded" and err.value.node == node
    assert f"EtcdSnapshot on node {node} sent nothing for 0.5 s after 0 bytes" in str(err.value)
    assert list(out.iterdir()) == []


def test_a_worker_fails_before_any_file_or_snapshot_call(out, cluster):
    worker = cluster.workers[0]
    with pytest.raises(TalosError) as err:
        snapshot(cluster, out / "etcd.db", node=worker)
    assert err.value.code == "Unimplemented" and "control plane" in str(err.value)
    assert cluster.calls[(worker, SNAPSHOT)] == 0 and list(out.iterdir()) == []


def test_a_dest_without_room_fails_before_streaming(out, cluster, monkeypatch):
    node = cluster.control_planes[0]
    real_statvfs = os.statvfs

    def two_mib_free(path):
        stats = real_statvfs(path)
        return os.statvfs_result((stats.f_bsize, 4096, 512, 512, 512) + tuple(stats)[5:])

    monkeypatch.setattr(os, "statvfs", two_mib_free)
    for check_mode in (True, False):
        with pytest.raises(TalosError) as err:
            snapshot(cluster, out / "etcd.db", check_mode=check_mode)
        assert err.value.code == "InvalidOption"
        assert f"The directory {out} of dest {out / 'etcd.db'} has 2.0 MiB free" in str(err.value)
        assert "needs about 3.0 MiB" in str(err.value)
    assert cluster.calls[(node, SNAPSHOT)] == 0 and list(out.iterdir()) == []


def test_check_mode_writes_nothing_and_streams_nothing(out, cluster):
    node = cluster.control_planes[0]
    result = snapshot(cluster, out / "etcd.db", check_mode=True)
    assert result["changed"] is True and result["dest"] == str(out / "etcd.db") and result["node"] == node
    assert result["expected_size"] == 3 * MiB + 1536 + 32
    assert "nothing was written" in result["msg"] and "sha256" not in result
    assert cluster.calls[(node, SNAPSHOT)] == 0 and list(out.iterdir()) == []


def test_an_encrypted_snapshot_uploads_as_the_plain_snapshot(out, cluster):
    node = cluster.control_planes[2]
    dest = out / "etcd.db.enc"
    result = snapshot(cluster, dest, node=node, passphrase="s3cret passphrase", mode="0400")
    assert result["encrypted"] is True and dest.read_bytes().startswith(MAGIC)
    assert dest.stat().st_mode & 0o777 == 0o400
    checked = verify_snapshot_file(str(dest), passphrase="s3cret passphrase")
    assert checked == {"size": result["size"], "sha256": result["sha256"], "encrypted": True}

    data_type = rpc_method("EtcdRecover").request_type
    chunks = (data_type(bytes=chunk) for chunk in snapshot_chunks(str(dest), passphrase="s3cret passphrase"))
    client_for(cluster).run(lambda c: c.send_stream("EtcdRecover", chunks, node=node))
    uploaded = cluster.runtime.etcd.recovery_snapshots[node]
    assert uploaded.size == result["size"] and uploaded.valid, "the node received the verified plaintext"


# Linux carries a parent's peak RSS into ru_maxrss across fork and exec (a child of this pytest process would
# report pytest's peak), so the child reads its own high-water mark: VmHWM, per address space.
CHILD = """
import json, sys
from tests.emulator._import_path import ensure_collection_importable
ensure_collection_importable()
from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient
from ansible_collections.talos.linux.plugins.module_utils._etcd_snapshot import take_snapshot
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings
talosconfig, node, dest = sys.argv[1:4]
params = {"dest": dest, "mode": "0600", "passphrase": None, "timeout": 60}
client = TalosClient(load_settings(talosconfig=talosconfig))
result = client.run(lambda c: take_snapshot(params, c, node, check_mode=False))
with open("/proc/self/status") as status:
    result["peak_rss_kib"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps(result))
"""


def snapshot_in_child(cluster, dest):
    """take_snapshot in its own process (the emulator stays in this one): its result and peak RSS."""
    proc = subprocess.run([sys.executable, "-c", CHILD, str(cluster.talosconfig_path()), cluster.control_planes[0],
                           str(dest)], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_memory_stays_flat_for_a_512_mib_snapshot(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, snapshot_size=MiB)
    small = snapshot_in_child(cluster, tmp_path / "small.db")
    cluster.set_snapshot_size(512 * MiB)
    big_dest = tmp_path / "big.db"
    big = snapshot_in_child(cluster, big_dest)
    try:
        assert small["size"] == MiB + 32 and big["size"] == 512 * MiB + 32 == big_dest.stat().st_size
        assert big["sha256"] == sha256_of(big_dest)
        growth_mib = (big["peak_rss_kib"] - small["peak_rss_kib"]) / 1024
        assert growth_mib < 64, f"peak RSS grew by {growth_mib:.1f} MiB for 511 MiB more snapshot"
    finally:
        os.unlink(big_dest)
