"""Talos version tags and capability rules (talos-api.md §7)."""

import pytest

from ansible_collections.talos.linux.plugins.module_utils._version import (
    TalosVersion, direction, supports, upgrade_path_problem)


@pytest.mark.parametrize("tag,parts", [
    ("v1.13.5", (1, 13, 5, "")), ("1.12.0", (1, 12, 0, "")), ("v1.14.0-beta.1", (1, 14, 0, "beta.1")),
    ("v1.11", (1, 11, 0, "")), ("v1.13.0-alpha.2+dirty", (1, 13, 0, "alpha.2")),
])
def test_parse(tag, parts):
    v = TalosVersion.parse(tag)
    assert (v.major, v.minor, v.patch, v.prerelease) == parts


@pytest.mark.parametrize("bad", ["", "latest", "v1", "1.x.0"])
def test_parse_refuses_what_is_not_a_tag(bad):
    with pytest.raises(ValueError, match="not a Talos version tag"):
        TalosVersion.parse(bad)


def test_ordering_follows_semver():
    ordered = ["v1.12.9", "v1.13.0-alpha.2", "v1.13.0-alpha.10", "v1.13.0-beta.1", "v1.13.0", "v1.13.1", "v1.14.0"]
    parsed = [TalosVersion.parse(t) for t in ordered]
    assert sorted(parsed, key=lambda v: v._key()) == parsed
    assert TalosVersion.parse("v1.13.0") > "v1.13.0-rc.1"


@pytest.mark.parametrize("tag,capability,expected", [
    ("v1.12.4", "lifecycle_upgrade", False),
    ("v1.13.0-alpha.2", "lifecycle_upgrade", False),
    ("v1.13.0-alpha.3", "lifecycle_upgrade", True),
    ("v1.13.5", "lifecycle_upgrade", True),
    ("v1.10.7", "etcd_downgrade", False),
    ("v1.11.0", "etcd_downgrade", True),
    ("v1.13.5", "apply_auto_never_reboots", False),
    ("v1.14.0", "apply_auto_never_reboots", True),
    ("v1.11.3", "reboot_mode_force", False),
])
def test_capabilities(tag, capability, expected):
    assert supports(tag, capability) is expected


@pytest.mark.parametrize("current,target", [
    ("v1.12.4", "v1.13.6"), ("v1.13.5", "v1.13.6"), ("v1.13.6", "v1.13.5"), ("v1.13.0-alpha.3", "v1.13.0"),
    ("v1.11.9", "v1.12.0-beta.1"), ("v1.13.6", "v1.13.6"),
])
def test_supported_paths(current, target):
    assert upgrade_path_problem(TalosVersion.parse(current), TalosVersion.parse(target)) is None


@pytest.mark.parametrize("current,target,words", [
    ("v1.11.3", "v1.13.6", ["skips minor releases", "1.11 -> 1.12 -> 1.13"]),
    ("v1.11.3", "v1.14.0", ["1.11 -> 1.12 -> 1.13 -> 1.14"]),
    ("v1.13.5", "v1.12.4", ["downgrade", "crosses minor releases", "1.13 -> 1.12", "rollback"]),
    ("v1.14.1", "v2.0.0", ["major versions"]),
])
def test_unsupported_paths_say_the_supported_one(current, target, words):
    problem = upgrade_path_problem(TalosVersion.parse(current), TalosVersion.parse(target))
    assert problem is not None and all(word in problem for word in words), problem


@pytest.mark.parametrize("current,target,expected", [
    ("v1.13.5", "v1.13.6", "upgrade"), ("v1.13.7", "v1.13.6", "downgrade"), ("v1.13.6", "v1.13.6", "same"),
    ("v1.13.0", "v1.13.0-rc.1", "downgrade"),
])
def test_direction(current, target, expected):
    assert direction(TalosVersion.parse(current), TalosVersion.parse(target)) == expected
