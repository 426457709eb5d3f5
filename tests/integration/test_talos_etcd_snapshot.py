"""talos.linux.talos_etcd state=snapshot through real ansible-playbook runs against the emulator."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ansible_collections.talos.linux.plugins.module_utils._etcd_snapshot import MAGIC, verify_snapshot_file
from tests.integration.playbook import BIN, ansible_env, run_playbook, static_inventory

ROOT = pathlib.Path(__file__).resolve().parents[2]
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
    run = run_playbook(tmp_path, play(dest=str(encrypted), mode="0440", passphrase=PASSPHRASE), inventory)
    assert run.rc == 0, run.output
    assert os.stat(encrypted).st_mode & 0o7777 == 0o440
    assert "unencrypted" not in run.output


@pytest.mark.parametrize("mode", ["0777", "0644", "0660", "0200"])
@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_a_mode_that_exposes_the_snapshot_is_refused_before_anything_is_sent(
        tmp_path, out, cluster, mode, passphrase):
    address, host, inventory = one_node(tmp_path, cluster)
    args = {"dest": str(out / "etcd.db"), "mode": mode, **({"passphrase": passphrase} if passphrase else {})}
    for flags in (["--check"], []):
        run = run_playbook(tmp_path, play(**args), inventory, *flags)
        assert run.rc != 0, run.output
        result = run.result("snapshot", host)
        assert result["changed"] is False and result["code"] == "InvalidOption"
        assert result["msg"].startswith(f"mode '{mode}' (octal {mode}) ")
        assert "an etcd snapshot holds every secret of the cluster" in result["msg"]
    assert cluster.calls[(address, SNAPSHOT)] == 0 and cluster.calls[(address, STATUS)] == 0
    assert list(out.iterdir()) == []


def test_an_unquoted_decimal_mode_is_refused_before_anything_is_sent(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    task = (f"- hosts: all\n  gather_facts: false\n  tasks:\n    - name: snapshot\n      talos.linux.talos_etcd:\n"
            f"        state: snapshot\n        dest: {out / 'etcd.db'}\n        mode: 600\n")
    run = run_playbook(tmp_path, task, inventory)
    assert run.rc != 0
    msg = run.result("snapshot", host)["msg"]
    assert "mode 600 (octal 1130)" in msg and "'0600'" in msg
    assert cluster.calls[(address, SNAPSHOT)] == 0 and list(out.iterdir()) == []


# --- interrupted snapshots: no partial file is left --------------------------------------------------------

def partials(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


def wait_for_partial(directory, proc, at_least, timeout=60):
    """The partial file once it holds ``at_least`` bytes (the stream is then stalled by the emulator)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in directory.glob(".*.partial"):
            if path.stat().st_size >= at_least:
                return path
        time.sleep(0.05)
    raise AssertionError(f"no partial file of {at_least} bytes appeared in {directory}: {os.listdir(directory)}")


def start_playbook(tmp_path, playbook, inventory):
    """ansible-playbook in its own session, as a terminal runs it (Ctrl-C reaches the whole group)."""
    path = tmp_path / "interrupted.yml"
    path.write_text(playbook)
    return subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(inventory), str(path)], cwd=tmp_path,
                            env=ansible_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop(proc, how=signal.SIGKILL):
    if proc.poll() is None:
        os.killpg(proc.pid, how)
    return proc.communicate(timeout=60)[0]


def stalled(cluster, address):
    """The node streams 6 MiB of a 16 MiB snapshot, then goes quiet for two minutes."""
    cluster.set_snapshot_size(16 * MiB)
    cluster.stall_stream("EtcdSnapshot", after_messages=6, seconds=120, node=address)


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
def test_ctrl_c_during_a_snapshot_leaves_no_partial_file(tmp_path, out, cluster, passphrase):
    address, _host, inventory = one_node(tmp_path, cluster)
    stalled(cluster, address)
    dest = out / "etcd.db"
    args = {"dest": str(dest)} if passphrase is None else {"dest": str(dest), "passphrase": passphrase}
    proc = start_playbook(tmp_path, play(**args), inventory)
    try:
        wait_for_partial(out, proc, 4 * MiB)
        output = stop(proc, signal.SIGINT)          # what Ctrl-C in a terminal does: SIGINT to the whole group
    finally:
        stop(proc)
    assert proc.returncode != 0 and "User interrupted execution" in output, output
    assert partials(out) == [] and not dest.exists(), output


def test_a_task_timeout_during_a_snapshot_leaves_no_partial_file(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    stalled(cluster, address)
    dest = out / "etcd.db"
    started = time.monotonic()
    run = run_playbook(tmp_path, play(options={"timeout": 3}, dest=str(dest)), inventory, timeout=90)
    assert run.rc != 0 and time.monotonic() - started < 60, run.output
    assert "Timed out after 3 second" in run.result("snapshot", host)["msg"], run.output
    assert partials(out) == [] and not dest.exists(), run.output


def test_a_stale_partial_of_a_killed_run_is_removed_by_the_next_run_and_nothing_else(tmp_path, out, cluster):
    address, host, inventory = one_node(tmp_path, cluster)
    stalled(cluster, address)
    dest = out / "etcd.db"
    proc = start_playbook(tmp_path, play(dest=str(dest)), inventory)
    try:
        stale = wait_for_partial(out, proc, 4 * MiB)
        writer = int(stale.name.split(".")[-3])     # the worker process, in a session of its own
        os.kill(writer, signal.SIGKILL)             # as the OOM killer would: no handler runs, the file stays
        wait_for_exit(writer)
    finally:
        stop(proc)
    assert partials(out) == [stale.name]

    host_name, dead_pid, live = stale.name.split(".")[-4], dead_process(), subprocess.Popen(["sleep", "60"])
    others = {
        f".etcd.db.old.{host_name}.{dead_pid}.0123abcd.partial": "another dest's, its writer gone",
        f".etcd.db.{host_name}.{live.pid}.0123abcd.partial": "this dest's, its writer still running",
        f".etcd.db.other-controller.{dead_pid}.0123abcd.partial": "written by another host",
        f".etcd.db.{host_name}.{dead_pid}.notmine.partial": "not our name pattern",
        "etcd.db.partial": "not hidden, not ours",
    }
    try:
        for name in others:
            (out / name).write_text("keep me")
        cluster.clear_faults()
        run = run_playbook(tmp_path, play(dest=str(dest)), inventory)
    finally:
        live.kill()
        live.wait()
    assert run.rc == 0, run.output
    result = run.result("snapshot", host)
    assert [w for w in result["warnings"] if "partial" in w] == [
        f"Removed {stale}, the partial snapshot file of an earlier run that was killed before it could clean up."]
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([*others, "etcd.db"])
    assert all((out / name).read_text() == "keep me" for name in others)
    assert result["sha256"] == sha256_of(dest)


def wait_for_exit(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return                              # dead, not reaped yet
        except FileNotFoundError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


def dead_process():
    """The pid of a process that has exited."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


MODULE = ROOT / "plugins" / "modules" / "talos_etcd.py"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_module_process_stopped_by_a_signal_leaves_no_partial_file(tmp_path, out, cluster, how):
    """The module door: the module file run as its own process, as AnsiballZ runs it, with its arguments."""
    address = cluster.control_planes[0]
    stalled(cluster, address)
    dest = out / "etcd.db"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "state": "snapshot", "dest": str(dest), "node": address,
        "talosconfig": str(cluster.talosconfig_path("admin"))}}))
    env = {**ansible_env(tmp_path), "PYTHONPATH": str(ROOT / ".collections")}
    proc = subprocess.Popen([sys.executable, str(MODULE), str(args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for_partial(out, proc, 4 * MiB)
        proc.send_signal(how)
        output = proc.communicate(timeout=60)[0]
    finally:
        stop(proc)
    assert proc.returncode != 0, output
    assert partials(out) == [] and not dest.exists(), output
