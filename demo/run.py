"""make demo: start an emulated Talos cluster, run the main job against it with Ansible, and stop it.

The cluster is the emulator's (3 control planes, 2 workers, Talos 1.13.5), started as its own process with
`python -m tests.emulator up`; the job sees it only through the talosconfig it writes, as a real cluster.
Each step is an ordinary ansible command using the collection from this checkout.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.emulator._import_path import ensure_collection_importable  # noqa: E402

# (title, command) run in order; {inventory} is the talosconfig inventory of the emulated cluster, {state_dir}
# the emulator's temporary state directory
STEPS = [
    ("The inventory, discovered from the cluster through its talosconfig",
     ["ansible-inventory", "-i", "{inventory}", "--graph", "--vars"]),
    ("Facts of every node", ["ansible-playbook", "-i", "{inventory}", "examples/facts.yml"]),
    ("What the patch would change on one node: check mode, diff with secrets redacted",
     ["ansible-playbook", "-i", "{inventory}", "examples/config.yml", "--check", "--diff", "--limit", "talos-w-1"]),
    ("Patch every node", ["ansible-playbook", "-i", "{inventory}", "examples/config.yml"]),
    ("The same again: nothing changes, nothing is sent",
     ["ansible-playbook", "-i", "{inventory}", "examples/config.yml"]),
    ("Rolling upgrade to Talos 1.13.6: control planes one at a time, then the workers",
     ["ansible-playbook", "-i", "{inventory}", "examples/rolling_upgrade.yml"]),
    ("Versions after the upgrade", ["ansible-playbook", "-i", "{inventory}", "examples/facts.yml"]),
    ("Back up etcd: the member list, then a snapshot verified by its SHA-256 trailer",
     ["ansible-playbook", "-i", "{inventory}", "examples/etcd.yml", "-e", "etcd_backup_dir={state_dir}/backups"]),
]


def start_cluster(state_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "up", "--control-planes", "3", "--workers", "2",
         "--talos-version", "1.13.5", "--state-dir", str(state_dir)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not (state_dir / "ready").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the emulated cluster did not start")
        time.sleep(0.05)
    return process


def stop_cluster(process, state_dir):
    subprocess.run([sys.executable, "-m", "tests.emulator", "down", "--state-dir", str(state_dir)], cwd=ROOT,
                   timeout=30, check=False)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def run_steps(state_dir):
    inventory = state_dir / "cluster.talos.yml"
    inventory.write_text(f"plugin: talos.linux.talosconfig\ntalosconfig: {state_dir / 'talosconfig'}\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(state_dir / "ansible-tmp"))
    env.pop("TALOSCONFIG", None)
    for title, command in STEPS:
        shown = " ".join(command).format(inventory=inventory.name, state_dir="$STATE")
        print(f"\n=== {title}\n$ {shown}", flush=True)
        argv = [str(BIN / command[0])] + [part.format(inventory=inventory, state_dir=state_dir) for part in command[1:]]
        if subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode:
            print(f"step failed: {title}")
            return False
    return True


def main():
    ensure_collection_importable()
    with tempfile.TemporaryDirectory(prefix="talos-demo-") as tmp:
        state_dir = pathlib.Path(tmp)
        print("starting an emulated Talos cluster (3 control planes, 2 workers, v1.13.5) ...")
        process = start_cluster(state_dir)
        try:
            ok = run_steps(state_dir)
        finally:
            stop_cluster(process, state_dir)
        print("\nemulated cluster stopped")
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
