"""Fixtures of the ecosystem tests: the collection built once per session, and installed from that tarball.

    def test_something(installed_collection):
        installed_collection.tarball            # talos-linux-<version>.tar.gz, built from this checkout
        installed_collection.collections_path   # the directory to give as ANSIBLE_COLLECTIONS_PATH
        installed_collection.path               # <collections_path>/ansible_collections/talos/linux

Do not write into the installed copy: it is shared by every test of the session.
"""

import pathlib
from dataclasses import dataclass

import pytest

from tests.ecosystem.collection import build, install
from tests.integration.playbook import ROOT


@dataclass(frozen=True)
class InstalledCollection:
    tarball: pathlib.Path
    collections_path: pathlib.Path
    path: pathlib.Path


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory):
    """The release tarball, built by `ansible-galaxy collection build` from this checkout as it is."""
    return build(ROOT, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed_collection(collection_tarball, tmp_path_factory):
    """The tarball installed by `ansible-galaxy collection install` into a fresh collections path."""
    collections_path = tmp_path_factory.mktemp("installed-collections")
    return InstalledCollection(collection_tarball, collections_path, install(collection_tarball, collections_path))
