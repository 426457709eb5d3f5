# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Talos version tags and what each version can do (talos-api.md §7).

Private to the talos.linux collection: it may change in any release. No Ansible import here.
There is no API negotiation in Talos: call Version, parse the tag, and choose the code path by it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True, order=False)
class TalosVersion:
    major: int
    minor: int
    patch: int = 0
    prerelease: str = ""

    @classmethod
    def parse(cls, tag):
        match = _TAG.match(str(tag).strip())
        if not match:
            raise ValueError(f"{tag!r} is not a Talos version tag (expected something like v1.13.5)")
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch or 0), pre or "")

    def _key(self):
        # semver: a pre-release sorts before its release; numeric identifiers compare as numbers
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease.split(".")) \
            if self.prerelease else ((2, 0, ""),)
        return (self.major, self.minor, self.patch, pre)

    def __lt__(self, other):
        return self._key() < _coerce(other)._key()

    def __le__(self, other):
        return self._key() <= _coerce(other)._key()

    def __gt__(self, other):
        return self._key() > _coerce(other)._key()

    def __ge__(self, other):
        return self._key() >= _coerce(other)._key()

    def __str__(self):
        return f"v{self.major}.{self.minor}.{self.patch}" + (f"-{self.prerelease}" if self.prerelease else "")

    @property
    def minor_version(self):
        return f"{self.major}.{self.minor}"


def _coerce(value):
    return value if isinstance(value, TalosVersion) else TalosVersion.parse(value)


# The first version that has each capability (inclusive).
CAPABILITIES = {
    "machine_config_persistent": "v1.10.0",   # COSI MachineConfigs id 'persistent'
    "etcd_downgrade": "v1.11.0",              # EtcdDowngrade{Validate,Enable,Cancel}
    "etcd_status_for_readers": "v1.11.0",     # EtcdStatus/EtcdAlarmList open to os:reader and os:etcd:backup
    "reboot_mode_force": "v1.12.0",           # RebootRequest.Mode.FORCE
    "yaml_spec_string": "v1.12.0",            # MachineConfig yaml_spec is a YAML string scalar
    "lifecycle_upgrade": "v1.13.0-alpha.3",   # LifecycleService.Upgrade + ImageService.Pull (talosctl: >1.13.0-alpha.2)
    "image_service": "v1.13.0",
    "apply_auto_never_reboots": "v1.14.0-alpha.2",  # AUTO is NO_REBOOT, REBOOT is Unimplemented
    "apply_concurrency_guard": "v1.14.0-alpha.1",   # concurrent apply -> FailedPrecondition
}

SUPPORTED = ("1.11", "1.12", "1.13", "1.14")


def supports(version, capability):
    """Whether a node running ``version`` (a tag or TalosVersion) has ``capability``."""
    return _coerce(version) >= CAPABILITIES[capability]


def upgrade_path_problem(current: TalosVersion, target: TalosVersion) -> str | None:
    """Why moving a node from ``current`` to ``target`` leaves Talos's supported upgrade path, or None.

    Upstream ("Supported upgrade paths" in the Talos upgrade guide): the machine-configuration migration is
    only tested between adjacent minor releases, so a node goes up one minor at a time, through the latest
    patch of each minor in between; patch releases of one minor move freely, both ways. Nothing migrates a
    configuration back, so a downgrade stays within its minor (rollback returns to the previous installation).
    """
    if (current.major, current.minor) == (target.major, target.minor):
        return None
    if target < current:
        return (f"a downgrade from {current} to {target} crosses minor releases ({current.minor_version} -> "
                f"{target.minor_version}), which Talos does not support: it migrates the machine configuration "
                f"forward only. Downgrades stay within one minor release; to return to the installation the node "
                f"ran before its last upgrade, use rollback")
    if current.major != target.major:
        return (f"an upgrade from {current} to {target} crosses major versions; Talos supports upgrades between "
                f"adjacent minor releases only: follow the release notes of {target.major}.0")
    if target.minor - current.minor == 1:
        return None
    steps = " -> ".join(f"{current.major}.{minor}" for minor in range(current.minor, target.minor + 1))
    return (f"an upgrade from {current} to {target} skips minor releases; Talos supports upgrades between "
            f"adjacent minor releases only, through the latest patch of each minor in between: {steps}")


def direction(current: TalosVersion, target: TalosVersion) -> str:
    """'upgrade', 'downgrade' or 'same' (the same version: only another schematic can make it a change)."""
    if target > current:
        return "upgrade"
    if target < current:
        return "downgrade"
    return "same"
