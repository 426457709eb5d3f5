# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""JSON6902 (RFC 6902) patches, applied with the ``jsonpatch`` library.

As in Talos (pkg/machinery/config/configpatcher/json6902.go), a JSON6902 patch applies only to a configuration
that is a single document, and here that document must be the v1alpha1 one: a JSON pointer cannot say which of
several documents it means. The operations see the document as Talos encodes it (every field Talos always
writes is there, ``machine.certSANs: []`` for one), as they do in talosctl; the empty fields added for that and
left untouched are taken out again afterwards.
"""

from __future__ import annotations

from .documents import describe, document_id, is_v1alpha1, type_name
from .errors import ConfigError
from .talos_encoding import fill_encoded_empty, strip_encoded_empty

OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
TALOS_REFUSAL = "JSON6902 patches are not supported for multi-document machine configuration"


def is_json6902(value):
    """True for a non-empty list of operations (mappings with ``op``; config documents have no such key)."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) and "op" in item for item in value)


def looks_like_json6902(value):
    """True when some item of a list is an operation: a list that mixes them with documents is a mistake."""
    return isinstance(value, list) and any(isinstance(item, dict) and "op" in item for item in value)


def apply_json6902(documents, operations, patch_number):
    """Apply the operations, one by one, to the single v1alpha1 document; the new list of documents."""
    if len(documents) != 1 or not is_v1alpha1(documents[0]):
        found = ", ".join(describe(document_id(document, index)) for index, document in enumerate(documents, 1))
        raise ConfigError(f"patch {patch_number}: {TALOS_REFUSAL}: JSON6902 patches can only be applied to a "
                          f"single-document v1alpha1 config, and this config has {len(documents)} document(s)"
                          f"{': ' + found if found else ''}", patch=patch_number,
                          hint="Use a strategic merge patch (YAML documents) instead.")
    library = _jsonpatch(patch_number)
    document = documents[0]
    added = fill_encoded_empty(document)
    for number, operation in enumerate(operations, 1):
        path = operation.get("path")
        where = f"patch {patch_number}, operation {number} ({operation.get('op')} {path})"
        if operation.get("op") not in OPERATIONS:
            raise ConfigError(f"{where}: unknown operation; use one of {', '.join(OPERATIONS)}",
                              patch=patch_number, path=path)
        if not isinstance(path, str):
            raise ConfigError(f"{where}: every operation needs a path (a JSON pointer such as /machine/type)",
                              patch=patch_number, path=path)
        try:
            document = library.JsonPatch([operation]).apply(document, in_place=True)
        except library.JsonPatchTestFailed as exc:
            raise ConfigError(f"{where}: the test failed: {exc}", patch=patch_number, path=path) from None
        except (library.JsonPatchException, library.JsonPointerException, KeyError, IndexError, TypeError,
                ValueError) as exc:
            raise ConfigError(f"{where} does not apply: {exc}", patch=patch_number, path=path) from None
    if not isinstance(document, dict):
        raise ConfigError(f"patch {patch_number} leaves the config as {type_name(document)}, not a mapping",
                          patch=patch_number, path="")
    strip_encoded_empty(added)
    return [document]


def _jsonpatch(patch_number):
    try:
        import jsonpatch
    except ImportError:
        raise ConfigError(f"patch {patch_number} is a JSON6902 patch, which needs the Python library jsonpatch on "
                          f"the host that runs the module", patch=patch_number,
                          hint="Install it (pip install jsonpatch), or write the patch as a strategic merge patch."
                          ) from None
    return jsonpatch
