"""talos.linux.talos_etcd state=snapshot through real ansible-playbook runs against the emulator."""

import hashlib
import json
import os

import pytest
import yaml

from ansible_collections.talos.linux.plugins.module_utils._etcd_snapshot import MAGIC, verify_snapshot_file
from tests.integration.playbook import run_playbook, static_inventory

SNAPSHOT = "/machine.MachineService/EtcdSnapshot"
STATUS = "/machine.MachineService/EtcdStatus"
MiB = 1 << 20
PASSPHRASE = "Tr0ub4dor&3 etcd backups"


def play(options=None, **args):
    task = {"name": "snapshot", "talos.linux.talos_etcd": {"state": "snapshot", **args}, "register": "taken",
            **(options or {})}
    return yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [task]}], sort_keys=False)


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@pytest.fixture
def cluster(emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=0)
    cluster.set_snapshot_size(2 * MiB + 512)
    return cluster


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "backups"
    path.mkdir()
    return path


def one_node(tmp_path, cluster, role="admin", index=0):
    address = cluster.control_planes[index]
    return address, cluster.node(address).hostname, static_inventory(tmp_path, cluster, role=role, hosts=[address])


@pytest.mark.parametrize("role", ["admin", "etcd-backup"])
def test_a_snapshot_is_written_end_to_end_with_its_checksum(tmp_path, out, cluster, role):
    address, host, inventory = one_node(tmp_path, cluster, role=role, index=1)
    dest = out / "etcd.db"
    run = run_playbook(tmp_path, play(dest=str(dest)), inventory)
    assert run.rc == 0, run.output
    result = run.result("snapshot", host)
    assert result["changed"] is True and result["state"] == "snapshot"
    assert result["dest"] == str(dest) and result["node"] == address
    assert result["size"] == 2 * MiB + 512 + 32 == dest.stat().st_size
    assert result["sha256"] == sha256_of(dest) and result["encrypted"] is False and result["mode"] == "0600"
    assert dest.stat().st_mode & 0o777 == 0o600
    assert verify_snapshot_file(str(dest))["sha256"] == result["sha256"]
    assert cluster.calls[(address, SNAPSHOT)] == 1

    # a snapshot is always a new backup: the second run writes again and says so
    again = run_playbook(tmp_path, play(dest=str(dest)), inventory)
    assert again.rc == 0 and again.result("snapshot", host)["changed"] is True
    assert again.result("snapshot", host)["sha256"] == sha256_of(dest)
    assert cluster.calls[(address, SNAPSHOT)] == 2
    assert sorted(p.name for p in out.iterdir()) == ["etcd.db"], "no temporary file is left behind"


def test_the_module_door_writes_the_same_verified_file(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    dest = out / "etcd-async.db"
    run = run_playbook(tmp_path, play(options={"async": 60, "poll": 1}, dest=str(dest)), inventory)
    assert run.rc == 0, run.output
    result = run.result("snapshot", host)
    assert "ansible_job_id" in result, "async runs the module as its own process"
    assert result["sha256"] == sha256_of(dest) and result["size"] == dest.stat().st_size


def test_check_mode_writes_nothing_and_sends_no_snapshot_call(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    dest = out / "etcd.db"
    run = run_playbook(tmp_path, play(dest=str(dest)), inventory, "--check")
    assert run.rc == 0, run.output
    result = run.result("snapshot", host)
    assert result["changed"] is True and result["dest"] == str(dest)
    assert "nothing was written" in result["msg"]
    assert result["expected_size"] == 2 * MiB + 512 + 32
    assert "sha256" not in result and not dest.exists() and list(out.iterdir()) == []
    assert cluster.calls[(address, SNAPSHOT)] == 0


def test_a_dest_in_a_missing_directory_fails_before_streaming(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    dest = out / "no-such-dir" / "etcd.db"
    run = run_playbook(tmp_path, play(dest=str(dest)), inventory)
    assert run.rc != 0
    assert run.task("snapshot", host)[0]["status"] == "failed"
    result = run.result("snapshot", host)
    assert result["code"] == "InvalidOption"
    assert f"The directory {out / 'no-such-dir'} of dest '{dest}' does not exist" in result["msg"]
    assert cluster.calls[(address, SNAPSHOT)] == 0 and cluster.calls[(address, STATUS)] == 0
    assert list(out.iterdir()) == []


def test_a_passphrase_encrypts_and_never_shows_even_at_vvvv(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    dest = out / "etcd.db.enc"
    shown = ""
    for flags in (["--check"], []):
        run = run_playbook(tmp_path, play(dest=str(dest), passphrase=PASSPHRASE), inventory, "-vvvv", *flags)
        assert run.rc == 0, run.output
        shown += run.output + json.dumps(run.results)
    result = run.result("snapshot", host)
    assert result["encrypted"] is True and dest.read_bytes().startswith(MAGIC)
    assert PASSPHRASE not in shown and "Tr0ub4dor" not in shown
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in shown or "********" in shown, "the invocation shows it masked"
    checked = verify_snapshot_file(str(dest), passphrase=PASSPHRASE)
    assert checked == {"size": result["size"], "sha256": result["sha256"], "encrypted": True}
    assert cluster.calls[(address, SNAPSHOT)] == 1


def test_mode_is_applied_and_a_readable_plain_file_is_warned_about(tmp_path, out, cluster):
    _address, host, inventory = one_node(tmp_path, cluster)
    dest = out / "etcd.db"
    run = run_playbook(tmp_path, play(dest=str(dest), mode="0640"), inventory)
    assert run.rc == 0, run.output
    assert os.stat(dest).st_mode & 0o7777 == 0o640 and run.result("snapshot", host)["mode"] == "0640"
    assert "holds every Kubernetes secret of the cluster unencrypted" in run.output

    encrypted = out / "etcd.db.enc"
    run = run_playbook(tmp_path, play(dest=str(encrypted), mode="0644", passphrase=PASSPHRASE), inventory)
    assert run.rc == 0, run.output
    assert os.stat(encrypted).st_mode & 0o7777 == 0o644
    assert "unencrypted" not in run.output


def test_an_unquoted_decimal_mode_is_refused_before_anything_is_sent(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    task = (f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: snapshot\n      talos.linux.talos_etcd:\n"
            f"        state: snapshot\n        dest: {out / 'etcd.db'}\n        mode: 600\n")
    run = run_playbook(tmp_path, task, inventory)
    assert run.rc != 0
    msg = run.result("snapshot", host)["msg"]
    assert "mode 600 (octal 1130)" in msg and "'0600'" in msg
    assert cluster.calls[(address, SNAPSHOT)] == 0 and list(out.iterdir()) == []
