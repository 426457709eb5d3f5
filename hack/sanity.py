"""Run `ansible-test sanity` on a copy of the collection laid out as ansible_collections/talos/linux.

ansible-test needs that path (a symlink is refused), and bootstraps pip in each of its venvs from a URL
CI cannot reach: a stand-in that uses ensurepip and PyPI is put in its cache first.

Usage: python hack/sanity.py [ansible-test sanity arguments...]
"""
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
COPY = ROOT / ".cache" / "sanity" / "ansible_collections" / "talos" / "linux"
GET_PIP_STAND_IN = '''\
# Stand-in for ansible-test's get-pip download (written by talos.linux hack/sanity.py): ensurepip, then PyPI.
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
'''


def pip_version():
    from ansible_test._internal.host_configs import NativePythonConfig
    from ansible_test._internal.python_requirements import get_venv_packages

    version = ".".join(map(str, sys.version_info[:2]))
    return get_venv_packages(NativePythonConfig(version=version, path=sys.executable))["pip"]


def main(args):
    cache = pathlib.Path("~/.ansible/test/cache").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    stand_in = cache / f"get_pip_{pip_version().replace('.', '_')}.py"
    if not stand_in.exists():
        stand_in.write_text(GET_PIP_STAND_IN)

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    if COPY.exists():
        shutil.rmtree(COPY)
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = COPY / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "-q"], cwd=COPY, check=True)
    subprocess.run(["git", "add", "-A"], cwd=COPY, check=True)

    python = ".".join(map(str, sys.version_info[:2]))
    command = [str(pathlib.Path(sys.executable).parent / "ansible-test"), "sanity", "--venv", "--python", python,
               "--requirements", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH")}
    return subprocess.run(command, cwd=COPY, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
