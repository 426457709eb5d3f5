# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``$patch: delete`` in strategic merge patches, with Talos's rules (configloader/internal/decoder/delete.go
and selector.go):

- ``key: {$patch: delete}`` removes ``key`` (and its subtree) from the matching document;
- a list item ``{field: value, $patch: delete}`` removes the first item of that list whose ``field`` equals
  ``value`` (the first key of the item other than ``$patch``);
- a document ``{apiVersion, kind, name, $patch: delete}`` removes the whole document (not the v1alpha1 one);
- nothing can be deleted inside a list item (a key of an interface, a VLAN of an interface).

The delete markers are taken out of the patch first; what they leave empty is dropped too, so that a patch
which only deletes adds nothing. Unlike talosctl, deleting something that is already absent is not an error:
a patch is applied again on every run, and the second run must find nothing to do.
"""

from __future__ import annotations

from typing import NamedTuple

from .documents import V1ALPHA1_ID, describe, document_id
from .errors import ConfigError

MARKER = "$patch"
DELETE = "delete"
# A patch document left with only these scalar keys carries nothing to merge (Talos drops it the same way).
IDENTITY_KEYS = frozenset(("version", "kind", "name"))


class Delete(NamedTuple):
    """One deletion: in document ``doc_id``, the key at ``path``, or the list item matching ``item``."""

    doc_id: tuple
    path: tuple
    item: tuple = None


def split_deletes(document, doc_id, patch_number):
    """Take the delete markers out of a patch document (changing it); the deletions, and what is left to merge
    (None when nothing is)."""
    if MARKER in document:
        _check_marker(document[MARKER], (), patch_number)
        if doc_id == V1ALPHA1_ID:
            raise ConfigError(f"patch {patch_number}: the v1alpha1 document cannot be deleted; delete keys inside it",
                              patch=patch_number, path="")
        return [Delete(doc_id, ())], None
    deletes = []
    _collect(document, (), False, doc_id, deletes, patch_number)
    if not document or all(key in IDENTITY_KEYS and not isinstance(value, (dict, list))
                           for key, value in document.items()):
        return deletes, None
    return deletes, document


def apply_delete(documents, delete, patch_number):
    """Carry out one deletion on the documents (changing them); absent targets are left alone."""
    index = next((i for i, document in enumerate(documents) if document_id(document) == delete.doc_id), None)
    if index is None:
        return
    if not delete.path:
        del documents[index]
        return
    node = documents[index]
    for depth, key in enumerate(delete.path[:-1]):
        node = node.get(key)
        if node is None:
            return
        if not isinstance(node, dict):
            raise ConfigError(f"patch {patch_number}: cannot delete {dotted(delete.path)} in {describe(delete.doc_id)}:"
                              f" {dotted(delete.path[:depth + 1])} is not a mapping", patch=patch_number,
                              path=dotted(delete.path))
    last = delete.path[-1]
    if delete.item is None:
        node.pop(last, None)
        return
    items = node.get(last)
    if items is None:
        return
    if not isinstance(items, list):
        raise ConfigError(f"patch {patch_number}: cannot delete an item of {dotted(delete.path)} in "
                          f"{describe(delete.doc_id)}: it is not a list", patch=patch_number, path=dotted(delete.path))
    field, value = delete.item
    for position, item in enumerate(items):
        if isinstance(item, dict) and field in item and item[field] == value:
            del items[position]
            return


def dotted(path):
    return ".".join(str(part) for part in path)


def _collect(node, path, in_item, doc_id, deletes, patch_number):
    """Remove the delete markers below ``node``; True when that left ``node`` empty."""
    removed = False
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            child = path + (key,)
            if isinstance(value, dict) and MARKER in value:
                _check_marker(value[MARKER], child, patch_number)
                if in_item:
                    raise _inside_item(child, patch_number)
                deletes.append(Delete(doc_id, child))
                emptied = True
            else:
                emptied = isinstance(value, (dict, list)) and _collect(value, child, in_item, doc_id, deletes,
                                                                       patch_number)
            if emptied:
                del node[key]
                removed = True
    else:
        kept = []
        for position, item in enumerate(node):
            child = path + (f"[{position}]",)
            if isinstance(item, dict) and MARKER in item:
                _check_marker(item[MARKER], child, patch_number)
                if in_item:
                    raise _inside_item(child, patch_number)
                deletes.append(Delete(doc_id, path, _item_selector(item, child, patch_number)))
                removed = True
            elif isinstance(item, (dict, list)) and _collect(item, child, True, doc_id, deletes, patch_number):
                removed = True
            else:
                kept.append(item)
        node[:] = kept
    return removed and not node


def _item_selector(item, path, patch_number):
    for field, value in item.items():
        if field != MARKER:
            return field, value
    raise ConfigError(f"patch {patch_number}: the list item to delete at {dotted(path)} has no field to find it by "
                      f"(write the item's name, e.g. interface: eth0, next to $patch: delete)",
                      patch=patch_number, path=dotted(path))


def _check_marker(value, path, patch_number):
    if value != DELETE:
        raise ConfigError(f"patch {patch_number}: $patch: {value} at {dotted(path) or 'the document root'} is not "
                          f"supported: Talos knows only $patch: delete", patch=patch_number, path=dotted(path))


def _inside_item(path, patch_number):
    return ConfigError(f"patch {patch_number}: cannot delete inside a list item ({dotted(path)}): Talos deletes only "
                       f"keys outside lists and whole list items; replace the item instead", patch=patch_number,
                       path=dotted(path))
