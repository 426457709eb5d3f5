# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What Talos itself does to a v1alpha1 document when it loads or encodes one, without its Go types.

- Loading trims leading tabs, newlines, vertical tabs, form feeds and carriage returns (not spaces) from every
  ``cluster.inlineManifests[].contents`` (v1alpha1 ClusterInlineManifests.UnmarshalYAML), so the node works
  with, and talosctl writes back, the trimmed text.
- Encoding writes every field its type does not tag ``omitempty`` even when it is empty (``certSANs: []``,
  ``token: ""``), wherever the enclosing object exists. A JSON6902 patch (talosctl patch machineconfig) works on
  that encoding, so ``add /machine/certSANs/-`` succeeds on a config that never spelled ``certSANs``.

The fields are written down as paths below (pkg/machinery/config/types/v1alpha1/v1alpha1_types.go); ``*`` is
any item of a list or any value of a mapping.
"""

from __future__ import annotations

import copy

from .documents import is_v1alpha1

INLINE_MANIFEST_TRIMMED = "\t\n\v\f\r"  # strings.TrimLeft's cutset upstream: a leading space is kept
ANY = "*"

_INTERFACE = ("machine", "network", "interfaces", ANY)
_VLAN = _INTERFACE + ("vlans", ANY)
_EXTRA_VOLUMES = tuple(("cluster", part, "extraVolumes", ANY) for part in ("apiServer", "controllerManager", "scheduler"))
_ENCRYPTION = tuple(("machine", "systemDiskEncryption", part) for part in ("state", "ephemeral"))
_ID_MAPPINGS = tuple(("machine", "kubelet", "extraMounts", ANY, part, ANY) for part in ("uidMappings", "gidMappings"))

# path -> the value the encoder writes for an empty field; parents come before their children.
ENCODED_EMPTY = {
    ("version",): "",
    ("machine", "type"): "",
    ("machine", "token"): "",
    ("machine", "certSANs"): [],
    ("machine", "seccompProfiles", ANY, "name"): "",
    ("machine", "seccompProfiles", ANY, "value"): {},
    ("machine", "kubelet", "extraMounts", ANY, "destination"): "",
    **{mapping + (field,): 0 for mapping in _ID_MAPPINGS for field in ("containerID", "hostID", "size")},
    ("machine", "install", "extensions", ANY, "image"): "",
    ("machine", "files", ANY, "content"): "",
    ("machine", "files", ANY, "permissions"): 0,
    ("machine", "files", ANY, "path"): "",
    ("machine", "files", ANY, "op"): "",
    ("machine", "network", "extraHostEntries", ANY, "ip"): "",
    ("machine", "network", "extraHostEntries", ANY, "aliases"): [],
    _INTERFACE + ("dhcpOptions", "routeMetric"): 0,
    _INTERFACE + ("vip", "equinixMetal", "apiToken"): "",
    _INTERFACE + ("vip", "hcloud", "apiToken"): "",
    _INTERFACE + ("bond", "interfaces"): [],
    _INTERFACE + ("bond", "mode"): "",
    _INTERFACE + ("bridge", "interfaces"): [],
    _INTERFACE + ("routes", ANY, "network"): "",
    _INTERFACE + ("routes", ANY, "gateway"): "",
    _VLAN + ("routes",): [],
    _VLAN + ("vlanId",): 0,
    _VLAN + ("dhcpOptions", "routeMetric"): 0,
    _VLAN + ("routes", ANY, "network"): "",
    _VLAN + ("routes", ANY, "gateway"): "",
    ("machine", "registries", "mirrors", ANY, "endpoints"): [],
    **{encryption + ("provider",): "" for encryption in _ENCRYPTION},
    **{encryption + ("keys",): [] for encryption in _ENCRYPTION},
    **{encryption + ("keys", ANY, "slot"): 0 for encryption in _ENCRYPTION},
    **{encryption + ("keys", ANY, "kms", "endpoint"): "" for encryption in _ENCRYPTION},
    ("machine", "logging", "destinations"): [],
    ("machine", "logging", "destinations", ANY, "format"): "",
    ("machine", "kernel", "modules", ANY, "name"): "",
    ("cluster", "network", "dnsDomain"): "",
    ("cluster", "apiServer", "admissionControl", ANY, "name"): "",
    ("cluster", "apiServer", "admissionControl", ANY, "configuration"): {},
    ("cluster", "apiServer", "authorizationConfig", ANY, "type"): "",
    ("cluster", "apiServer", "authorizationConfig", ANY, "name"): "",
    **{volume + (field,): "" for volume in _EXTRA_VOLUMES for field in ("hostPath", "mountPath")},
    ("cluster", "inlineManifests", ANY, "name"): "",
    ("cluster", "inlineManifests", ANY, "contents"): "",
    ("cluster", "discovery", "registries"): {},
    ("cluster", "discovery", "registries", "kubernetes"): {},
    ("cluster", "discovery", "registries", "service"): {},
}


def as_talos_loads(documents: list) -> list:
    """The documents as Talos holds them once loaded: inline manifests' contents trimmed. The input is left
    alone; what needs no change is shared, not copied (this runs on every comparison)."""
    return [_trimmed_manifests(document) if is_v1alpha1(document) else document for document in documents]


def _trimmed_manifests(document):
    cluster = document.get("cluster")
    manifests = cluster.get("inlineManifests") if isinstance(cluster, dict) else None
    if not isinstance(manifests, list) or not any(_untrimmed(manifest) for manifest in manifests):
        return document
    manifests = [dict(manifest, contents=manifest["contents"].lstrip(INLINE_MANIFEST_TRIMMED))
                 if _untrimmed(manifest) else manifest for manifest in manifests]
    return dict(document, cluster=dict(cluster, inlineManifests=manifests))


def _untrimmed(manifest):
    contents = manifest.get("contents") if isinstance(manifest, dict) else None
    return isinstance(contents, str) and contents[:1] != "" and contents[0] in INLINE_MANIFEST_TRIMMED


def fill_encoded_empty(document: dict) -> list:
    """Add to a v1alpha1 document (in place) the empty fields Talos's encoder would write for it.

    Returns what was added, as ``(container, key, was_null, empty)`` for ``strip_encoded_empty``.
    """
    added = []
    for path, empty in ENCODED_EMPTY.items():
        for container in _containers(document, path[:-1]):
            key = path[-1]
            if isinstance(container, dict) and container.get(key) is None:
                added.append((container, key, key in container, empty))
                container[key] = copy.deepcopy(empty)
    return added


def strip_encoded_empty(added: list) -> None:
    """Take out again each field ``fill_encoded_empty`` added that is still empty: what the patch did not touch
    stays as the user wrote it, so a patch that changes nothing compares equal."""
    for container, key, was_null, empty in reversed(added):
        if key in container and container[key] == empty and type(container[key]) is type(empty):
            if was_null:
                container[key] = None
            else:
                del container[key]


def _containers(value, path):
    """Every object at ``path`` in ``value`` (``*`` fans out over list items and mapping values)."""
    if not path:
        yield value
        return
    step, rest = path[0], path[1:]
    if step == ANY:
        children = value if isinstance(value, list) else value.values() if isinstance(value, dict) else ()
    elif isinstance(value, dict) and isinstance(value.get(step), (dict, list)):
        children = (value[step],)
    else:
        children = ()
    for child in children:
        yield from _containers(child, rest)
