# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The desired configuration: a base (the given config, or the node's current one) with the patches applied
in order, as ``talosctl machineconfig patch`` and ``talosctl patch machineconfig`` do."""

from __future__ import annotations

from .documents import canonical_order, load_yaml, parse_documents, plain_tree, type_name
from .errors import ConfigError
from .json6902 import apply_json6902, is_json6902, looks_like_json6902
from .merge import strategic_merge
from .talos_encoding import as_talos_loads


def render_config(config=None, patches=(), current=None):
    """The desired documents: ``config`` (or, when it is None, ``current``) with each patch applied in order.

    A patch is a strategic merge patch (YAML text of one or more documents, a mapping, or a list of mappings)
    or a JSON6902 patch (a list of ``{op, path, value, from}`` operations, or YAML/JSON text of one). Inputs are
    never changed. Patches on ``current`` (no ``config``) do not append a list item the list already holds.
    """
    if config is not None:
        documents = parse_documents(config, "config")
    elif current is not None:
        documents = parse_documents(current, "current config")
    else:
        raise ConfigError("there is no config to start from: give config, or the node's current config to patch")
    # Talos refuses a config with two documents of the same kind and name; so does every step below.
    canonical_order(documents, "config" if config is not None else "current config")
    # as Talos holds them, so that an item a patch appends again compares equal to the one the node has
    documents = as_talos_loads(documents)
    if isinstance(patches, (str, bytes, dict)):
        patches = [patches]
    for number, patch in enumerate(patches or (), 1):
        kind, content = classify_patch(patch, number)
        if kind == "json6902":
            documents = apply_json6902(documents, content, number)
        else:
            # on the node's own configuration a patch must converge: an item it appends again is present
            documents = strategic_merge(documents, as_talos_loads(content), number, keep_present=config is None)
    canonical_order(documents, "the patched config")
    return as_talos_loads(documents)


def classify_patch(patch, number):
    """("json6902", operations) or ("strategic", documents), as fresh data the caller may consume."""
    what = f"patch {number}"
    if isinstance(patch, (bytes, bytearray)):
        patch = patch.decode("utf-8")
    if isinstance(patch, str):
        loaded = [document for document in load_yaml(patch, what) if document is not None]
        if len(loaded) == 1 and isinstance(loaded[0], list):
            patch = loaded[0]
        else:
            return "strategic", parse_documents(loaded, what)
    if patch is None:
        return "strategic", []
    if isinstance(patch, dict):
        return "strategic", parse_documents(patch, what)
    if isinstance(patch, (list, tuple)):
        patch = plain_tree(patch)
        if is_json6902(patch):
            return "json6902", patch
        if looks_like_json6902(patch):
            raise ConfigError(f"{what} mixes JSON6902 operations with other items: every item of a JSON6902 patch "
                              f"is an operation with op and path", patch=number)
        if any(not isinstance(item, dict) for item in patch if item is not None):
            raise ConfigError(f"{what} is a list of {type_name(next(i for i in patch if not isinstance(i, dict)))}"
                              f" items: a patch is a list of config documents or of JSON6902 operations "
                              f"(op, path, value)", patch=number)
        return "strategic", parse_documents(patch, what)
    raise ConfigError(f"{what} must be YAML text, a mapping or a list, not {type_name(patch)}", patch=number)
