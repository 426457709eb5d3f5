"""Talos versions and the behaviour that depends on them (talos-api.md §7)."""
import functools
import hashlib
import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
_IMAGE_TAG = re.compile(r":v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:@sha256:[0-9a-f]+)?$")

# Go toolchains Talos releases were built with, by minor version (reported in Version.go_version).
_GO_VERSIONS = {(1, 11): "go1.24.6", (1, 12): "go1.25.3", (1, 13): "go1.25.7", (1, 14): "go1.26.1"}


@functools.total_ordering
class TalosVersion:
    """A parsed Talos version, "1.13.5" (stored without the leading v)."""

    def __init__(self, text):
        match = _VERSION.match(str(text).strip())
        if not match:
            raise ValueError(f"not a Talos version: {text!r}")
        self.major, self.minor, self.patch = (int(g) for g in match.groups()[:3])
        self.prerelease = match.group(4) or ""
        self.text = f"{self.major}.{self.minor}.{self.patch}" + (f"-{self.prerelease}" if self.prerelease else "")

    @property
    def tag(self):
        return "v" + self.text

    def _key(self):
        # A prerelease sorts before its release; "1.13.0-alpha.2" < "1.13.0".
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, self.prerelease)

    def __eq__(self, other):
        try:
            return self._key() == _coerce(other)._key()
        except (TypeError, ValueError):
            return NotImplemented

    def __lt__(self, other):
        return self._key() < _coerce(other)._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"TalosVersion({self.text!r})"

    def at_least(self, minor, major=1):
        return (self.major, self.minor) >= (major, minor)

    # Capabilities (§7). Names say what the version has.
    @property
    def has_lifecycle_and_image_services(self):
        return self.at_least(13)

    @property
    def has_etcd_downgrade(self):
        return self.at_least(11)

    @property
    def etcd_status_open_to_readers(self):
        return self.at_least(11)

    @property
    def refuses_config_without_v1alpha1(self):
        return self.at_least(11)

    @property
    def machine_config_yaml_spec_is_string(self):
        return self.at_least(12)

    @property
    def apply_rule_admits_reader(self):
        return self.at_least(13)

    @property
    def apply_without_reboot_modes(self):
        """v1.14: REBOOT is gone, AUTO never reboots, NO_REBOOT always accepted, applies are serialised."""
        return self.at_least(14)

    @property
    def has_persistent_machine_config(self):
        return self.at_least(10)

    @property
    def bootstrap_on_worker_unimplemented(self):
        return self.at_least(13)

    @property
    def go_version(self):
        return _GO_VERSIONS.get((self.major, self.minor), "go1.26.1")

    @property
    def sha(self):
        # A stable fake commit per version, like the 8-char sha `talosctl version` shows.
        return hashlib.sha1(self.text.encode()).hexdigest()[:8]


def _coerce(value):
    return value if isinstance(value, TalosVersion) else TalosVersion(value)


def version_from_image(image):
    """The version an installer image installs, from its tag (":v1.13.6"); None when it has none."""
    match = _IMAGE_TAG.search(image or "")
    return TalosVersion(match.group(1)) if match else None
