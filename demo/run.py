"""make demo: start an emulated Talos cluster, run the main job against it, and stop it.

The cluster is the emulator's (3 control planes, 2 workers, Talos 1.13.5), started as its own process
exactly as `python -m tests.emulator up` does; the job talks to it only through the talosconfig it writes.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator._import_path import ensure_collection_importable  # noqa: E402

ensure_collection_importable()

from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient  # noqa: E402
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings  # noqa: E402


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


def versions_and_hostnames(talosconfig):
    """Step 1: Version and Hostname from every node, through the client, concurrently."""
    settings = load_settings(talosconfig=str(talosconfig))
    client = TalosClient(settings)

    async def both(c):
        async def one(node):
            version = await c.version(node)
            hostname = (await c.call("Hostname", node=node)).messages[0].hostname
            return hostname, version.version.tag, version.platform.name
        return await c.fan_out(settings.nodes, one)

    results = client.run(both)
    print(f"\ncontext {settings.context!r}, endpoints {', '.join(map(str, settings.endpoints))}, "
          f"certificate roles {', '.join(client.roles)}")
    print(f"{'node':<16} {'hostname':<14} {'version':<10} platform")
    for result in results:
        if result.ok:
            hostname, tag, platform = result.value
            print(f"{result.node:<16} {hostname:<14} {tag:<10} {platform}")
        else:
            print(f"{result.node:<16} error: {result.error}")
    return all(r.ok for r in results)


def main():
    with tempfile.TemporaryDirectory(prefix="talos-demo-") as tmp:
        state_dir = pathlib.Path(tmp)
        print("starting an emulated Talos cluster (3 control planes, 2 workers, v1.13.5) ...")
        process = start_cluster(state_dir)
        try:
            ok = versions_and_hostnames(state_dir / "talosconfig")
        finally:
            stop_cluster(process, state_dir)
        print("\nemulated cluster stopped")
    return 0 if ok else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
