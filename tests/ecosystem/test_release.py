"""The release path: the tarball `ansible-galaxy collection build` makes, installed and used as a user would.

The tarball carries what an installed collection is used with: plugins, roles, meta (runtime and the
execution environment), the README, licence, requirements.txt, docs, examples, the changelog, the protos
the generated message code comes from, and tests/config.yml + tests/sanity/ (ansible-test sanity run on the
artifact, as Galaxy's importer does, reads them). Nothing a developer's checkout accumulates ships.
"""

import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest
import yaml

from tests.ecosystem.collection import (
    NAME,
    NAMESPACE,
    build,
    galaxy,
    installed_from,
    run_installed_playbook,
    source_files,
    tarball_files,
)
from tests.integration.playbook import ROOT

# Top-level entries an installed collection may hold; anything else is dev-only or needs a decision here.
SHIPPED_TOP_LEVEL = {"MANIFEST.json", "FILES.json", "README.md", "COPYING", "CHANGELOG.md", "requirements.txt",
                     "bindep.txt", "changelogs", "docs", "examples", "meta", "plugins", "protos", "roles", "tests"}
# Every file of these trees in the checkout ships.
SHIPPED_TREES = ("changelogs/", "docs/", "examples/", "meta/", "plugins/", "protos/", "roles/", "tests/sanity/")
REQUIRED_FILES = {"MANIFEST.json", "FILES.json", "README.md", "COPYING", "requirements.txt", "meta/runtime.yml",
                  "meta/execution-environment.yml", "changelogs/config.yaml", "tests/config.yml"}
# What a developer's checkout gathers besides its tracked files (make, pytest, bench, ansible-test, builds).
DEV_ONLY = {
    ".venv/bin/python": "#!/bin/sh\n",
    ".venv-python3.13/pyvenv.cfg": "home = /usr/bin\n",
    ".cache/sanity/ansible_collections/talos/linux/README.md": "copy\n",
    ".pytest_cache/v/cache/nodeids": "[]\n",
    "tests/output/junit/python3.11-sanity.xml": "<testsuites/>\n",
    "bench/results/latest.json": "{}\n",
    "docs/build/html/index.html": "<html></html>\n",
    "plugins/modules/__pycache__/talos_facts.cpython-311.pyc": "",
    "talos-linux-0.0.1.tar.gz": "",
}
DEV_ONLY_LINK = ".collections/ansible_collections/talos/linux"  # tests/emulator/_import_path.py makes this link

# The cluster an example runs against, when the default (one control plane, one worker at 1.13.5) is not it,
# and the arguments its header comment asks for.
EXAMPLE_CLUSTERS = {"rolling_upgrade.yml": {"reboot_seconds": 0.3}}
EXAMPLE_ARGS = {"rolling_upgrade.yml": ("-e", "talos_upgrade_image=ghcr.io/siderolabs/installer:v1.13.6")}
EXAMPLES = sorted(path.name for path in (ROOT / "examples").glob("*.yml"))


def unexpected_files(files):
    """Files in a tarball that no installed collection should carry."""
    wrong = []
    for name in files:
        top = name.split("/", 1)[0]
        if top not in SHIPPED_TOP_LEVEL:
            wrong.append(name)
        elif top == "tests" and name != "tests/config.yml" and not name.startswith("tests/sanity/"):
            wrong.append(name)
    return wrong


def play_hosts(playbook, cluster):
    """The hosts the plays of an example run on, from their `hosts:` and the groups the inventory makes."""
    def hostnames(addresses):
        return {cluster.node(address).hostname for address in addresses}

    groups = {"all": hostnames(cluster.addresses), "talos": hostnames(cluster.addresses),
              "controlplane": hostnames(cluster.control_planes), "worker": hostnames(cluster.workers),
              "localhost": {"localhost"}}
    hosts = set()
    for play in yaml.safe_load(playbook.read_text()):
        for pattern in str(play["hosts"]).split(":"):
            assert pattern.strip() in groups, f"{playbook.name}: teach play_hosts the pattern {pattern!r}"
            hosts |= groups[pattern.strip()]
    return hosts


def test_the_tarball_holds_what_an_installed_collection_is_used_with(collection_tarball):
    files = set(tarball_files(collection_tarball))
    assert not REQUIRED_FILES - files, f"missing from {collection_tarball.name}: {sorted(REQUIRED_FILES - files)}"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    expected = {name for name in tracked if name.startswith(SHIPPED_TREES) and not name.startswith("docs/build/")}
    expected |= {name for name in ("CHANGELOG.md", "bindep.txt") if name in tracked}
    assert not expected - files, f"files of the checkout missing from the tarball: {sorted(expected - files)}"
    assert any(name.startswith("plugins/modules/") for name in files) and any(
        name.startswith("roles/") for name in files)
    assert not unexpected_files(files), f"dev-only content in the tarball: {unexpected_files(files)}"

    with tarfile.open(collection_tarball) as archive:
        manifest = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
    galaxy_yml = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    for key in ("namespace", "name", "version", "license", "dependencies", "repository"):
        assert manifest[key] == galaxy_yml[key], key


def test_nothing_git_ignores_ships(collection_tarball):
    files = [name for name in tarball_files(collection_tarball) if name not in ("MANIFEST.json", "FILES.json")]
    check = subprocess.run(["git", "check-ignore", "--stdin"], cwd=ROOT, input="\n".join(files), capture_output=True,
                           text=True, check=False)
    assert check.returncode in (0, 1), check.stderr  # 1: nothing ignored
    assert check.stdout.split() == [], "git-ignored files in the tarball (add them to build_ignore in galaxy.yml)"


def test_a_developers_checkout_builds_the_same_tarball_without_its_dev_only_content(tmp_path):
    # the collection's files as a fresh clone has them, plus what make, pytest, bench and ansible-test leave behind
    source = tmp_path / "checkout"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name, content in DEV_ONLY.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(content)
    (source / DEV_ONLY_LINK).parent.mkdir(parents=True)
    os.symlink("../../..", source / DEV_ONLY_LINK)

    files = tarball_files(build(source, tmp_path / "dist"))
    leaked = [name for name in files if name in DEV_ONLY or name.startswith(
        (".venv", ".cache/", ".pytest_cache/", ".collections/", "tests/output/", "bench/", "docs/build/"))
        or name.endswith((".pyc", ".tar.gz"))]
    assert leaked == [], f"dev-only content in the tarball: {leaked}"
    assert not unexpected_files(files), f"unexpected content in the tarball: {unexpected_files(files)}"
    assert "plugins/modules/talos_facts.py" in files and "meta/execution-environment.yml" in files


def test_ansible_finds_talos_linux_only_in_the_installed_copy_and_it_is_intact(installed_collection):
    assert installed_from(installed_collection.collections_path) == [installed_collection.collections_path /
                                                                     "ansible_collections"]
    verify = galaxy("collection", "verify", f"{NAMESPACE}.{NAME}", "--offline",
                    collections_path=installed_collection.collections_path, cwd=installed_collection.collections_path)
    assert "Successfully verified" in verify.stdout, verify.stdout


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_runs_from_the_installed_copy(example, installed_collection, emulated_cluster, tmp_path):
    playbook = installed_collection.path / "examples" / example
    assert playbook.is_file(), f"examples/{example} is not in the tarball"
    cluster = emulated_cluster(control_planes=1, workers=1, **EXAMPLE_CLUSTERS.get(example, {}))
    inventory = tmp_path / "cluster.talos.yml"  # the inventory file the examples' header comments name
    inventory.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig",
                                         "talosconfig": str(cluster.talosconfig_path())}))

    run = run_installed_playbook(tmp_path, installed_collection.collections_path, playbook, inventory,
                                 *EXAMPLE_ARGS.get(example, ()))
    assert run.rc == 0, run.output[-4000:]
    assert [r for r in run.results if r["status"] in ("failed", "unreachable")] == []
    assert set(run.stats) == play_hosts(playbook, cluster), run.stats

    # every talos.linux module the controller imported (inventory plugin, module_utils, action plugins)
    # came from the installed copy
    files = [pathlib.Path(f) for entry in run.loaded_from.values()
             for f in ([entry] if isinstance(entry, str) else entry)]
    assert "ansible_collections.talos.linux.plugins.inventory.talosconfig" in run.loaded_from, run.loaded_from
    outside = [str(f) for f in files if not f.resolve().is_relative_to(installed_collection.path.resolve())]
    assert outside == [], f"talos.linux loaded from outside the installed copy: {outside}"
