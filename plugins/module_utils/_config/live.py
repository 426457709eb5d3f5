# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which configuration changes a Talos 1.13 (or older) node applies live, and which need a reboot.

The rule of the node's ``CanApplyImmediate`` (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_runtime.go,
v1.13): only the v1alpha1 document is compared (other documents always apply live); in it, ``debug``,
``cluster`` and the ``machine`` fields below may change live, anything else that differs needs a reboot.
Talos 1.14 and newer never refuse: what cannot apply live waits for the next reboot.
"""

from __future__ import annotations

from .documents import is_v1alpha1

LIVE_TOP_LEVEL = frozenset(("debug", "cluster"))
LIVE_MACHINE = frozenset((
    "ca", "acceptedCAs", "time", "certSANs", "install", "network", "sysfs", "sysctls", "logging", "controlPlane",
    "kubelet", "kernel", "registries", "pods", "seccompProfiles", "nodeAnnotations", "nodeLabels", "nodeTaints"))
LIVE_FEATURES = frozenset(("kubernetesTalosAPIAccess", "kubePrism", "hostDNS", "imageCache",
                           "nodeAddressSortAlgorithm"))


def fields_needing_reboot(current, desired) -> list[str]:
    """The dotted paths of ``desired`` (documents) whose change from ``current`` needs a reboot, sorted."""
    old, new = _v1alpha1(current), _v1alpha1(desired)
    if old is None or new is None:
        return [] if old is new else ["v1alpha1"]
    return _changed(old, new, "", LIVE_TOP_LEVEL, {"machine": (LIVE_MACHINE, {"features": (LIVE_FEATURES, {})})})


def _changed(old, new, prefix, live, nested):
    paths = []
    for key in sorted(set(old) | set(new), key=str):
        before, after = old.get(key), new.get(key)
        if key in live or before == after:
            continue
        path = f"{prefix}{key}"
        if key in nested and isinstance(before, dict) and isinstance(after, dict):
            paths += _changed(before, after, f"{path}.", *nested[key])
        else:
            paths.append(path)
    return paths


def _v1alpha1(documents):
    return next((document for document in documents or () if isinstance(document, dict) and is_v1alpha1(document)),
                None)
