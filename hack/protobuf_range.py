"""Prove the committed gencode loads on the oldest and newest protobuf runtimes requirements.txt declares.

For each version: install protobuf (and, for the newest, googleapis-common-protos, which registers
google/rpc/status.proto too) into a target directory placed in front of the venv's site-packages, then in
a fresh interpreter import every generated module and make a real Version call through the client to an
emulated node; then run the unit suite and the client's integration tests (real gRPC and TLS against the
emulator) on that runtime. Exit 1 when any runtime fails.

Usage: python hack/protobuf_range.py OLDEST NEWEST
"""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUITES = ["tests/unit", "tests/integration/test_client.py"]
PROBE = r"""
import sys, tempfile
from google.protobuf import __version__ as runtime
from tests.emulator._import_path import ensure_collection_importable
ensure_collection_importable()
import importlib, pkgutil
import ansible_collections.talos.linux.plugins.module_utils._api as api
names = [m.name for m in pkgutil.walk_packages(api.__path__, api.__name__ + ".") if m.name.endswith("_pb2")]
for name in names:
    importlib.import_module(name)
extra = ""
if sys.argv[1] == "with-googleapis":
    from google.rpc import status_pb2  # theirs and ours must share one descriptor pool
    import google.rpc
    extra = f", beside googleapis-common-protos ({google.rpc.__path__[0]})"
from tests.emulator import EmulatedCluster
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings
from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient
with tempfile.TemporaryDirectory() as tmp, EmulatedCluster(control_planes=1, workers=0, state_dir=tmp) as cluster:
    client = TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path())))
    reply = client.run(lambda c: c.version(cluster.control_planes[0]))
print(f"protobuf {runtime}: {len(names)} generated modules loaded{extra}, Version -> {reply.version.tag}")
"""


def check(version, extra):
    target = ROOT / ".cache" / f"protobuf-{version}{'-googleapis' if extra else ''}"
    if not (target / ".done").exists():
        packages = [f"protobuf=={version}"] + (["googleapis-common-protos"] if extra else [])
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-deps", "--target", str(target), *packages], check=True)
        (target / ".done").touch()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))
    result = subprocess.run([sys.executable, "-c", PROBE, "with-googleapis" if extra else "plain"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode:
        print(f"protobuf {version}: FAILED\n{result.stderr[-3000:]}")
        return False
    print(result.stdout.strip())
    if extra:
        return True
    suites = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    summary = suites.stdout.strip().splitlines()[-1] if suites.stdout.strip() else ""
    if suites.returncode:
        print(f"protobuf {version}: {' '.join(SUITES)} FAILED\n{suites.stdout[-3000:]}{suites.stderr[-1000:]}")
        return False
    print(f"protobuf {version}: {' '.join(SUITES)}: {summary}")
    return True


def main(oldest, newest):
    ok = check(oldest, extra=False) & check(newest, extra=False) & check(newest, extra=True)
    print("protobuf range: passed" if ok else "protobuf range: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
