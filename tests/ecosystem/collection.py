"""The collection as a release: built with ansible-galaxy into a tarball, installed from it, run from the copy.

Nothing here uses the .collections link to the checkout that tests/integration uses: a playbook run through
`run_installed_playbook` sees talos.linux only where `install` put it.
"""

import json
import os
import pathlib
import subprocess
import tarfile

import yaml

from tests.integration.playbook import BIN, CALLBACKS, ROOT, run_playbook

NAMESPACE, NAME = "talos", "linux"
ECOSYSTEM_CALLBACKS = pathlib.Path(__file__).resolve().parent / "callback_plugins"


def galaxy(*args, cwd=None, collections_path=None, timeout=120):
    """ansible-galaxy ARGS with no ANSIBLE_* setting of the caller; fails the test with its output when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    if collections_path is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections_path)
    proc = subprocess.run([str(BIN / "ansible-galaxy"), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"ansible-galaxy {' '.join(map(str, args))}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def build(source, output_dir):
    """`ansible-galaxy collection build` of the collection at `source`; the tarball's path."""
    version = yaml.safe_load((pathlib.Path(source) / "galaxy.yml").read_text())["version"]
    galaxy("collection", "build", source, "--output-path", output_dir, "--force")
    tarball = pathlib.Path(output_dir) / f"{NAMESPACE}-{NAME}-{version}.tar.gz"
    assert tarball.is_file(), f"ansible-galaxy built no {tarball.name} in {output_dir}"
    return tarball


def tarball_files(tarball):
    """Every regular file in the tarball, as paths relative to the collection root."""
    with tarfile.open(tarball) as archive:
        return sorted(member.name for member in archive.getmembers() if member.isfile())


def install(tarball, collections_path):
    """`ansible-galaxy collection install` of the tarball (offline); the installed collection's directory."""
    galaxy("collection", "install", tarball, "--collections-path", collections_path, "--offline", "--force")
    return pathlib.Path(collections_path) / "ansible_collections" / NAMESPACE / NAME


def source_files(root=ROOT):
    """The files of a checkout that git would commit: tracked ones and untracked ones it does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return sorted(name for name in listed if (pathlib.Path(root) / name).is_file())


def run_installed_playbook(tmp_path, collections_path, playbook, inventory, *args, timeout=600):
    """ansible-playbook with talos.linux found only under `collections_path`, from `tmp_path` (outside the source).

    The run's result also records, in `loaded_from`, the file of every talos.linux Python module the
    controller process imported (the inventory plugin, its module_utils, each task's action plugin).
    """
    loaded_from = pathlib.Path(tmp_path) / "loaded-from.json"
    if loaded_from.exists():
        loaded_from.unlink()
    env = {
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_CALLBACK_PLUGINS": f"{CALLBACKS}{os.pathsep}{ECOSYSTEM_CALLBACKS}",
        "ANSIBLE_CALLBACKS_ENABLED": "talos_test_results,talos_loaded_from",
        "TALOS_LOADED_FROM": str(loaded_from),
        "PYTHONPATH": "",  # whatever the caller's shell had would be a second way to the collection
    }
    run = run_playbook(tmp_path, pathlib.Path(playbook), inventory, *args, env=env, timeout=timeout)
    run.loaded_from = json.loads(loaded_from.read_text()) if loaded_from.exists() else {}
    return run


def installed_from(collections_path):
    """The collection roots where ansible-galaxy, configured with `collections_path` alone, finds talos.linux."""
    proc = galaxy("collection", "list", f"{NAMESPACE}.{NAME}", "--format", "json", collections_path=collections_path,
                  cwd=pathlib.Path(collections_path).parent)
    found = json.loads(proc.stdout)
    return sorted(pathlib.Path(root) for root, collections in found.items() if f"{NAMESPACE}.{NAME}" in collections)
