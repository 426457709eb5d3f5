# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The canonical text of a configuration, to tell whether two configurations say the same thing.

Comments, key order, document order and YAML style do not count; values count as the YAML dialect types them
(``mtu: 1500`` and ``mtu: "1500"`` differ). Nothing is added or dropped: an empty mapping stays an empty
mapping. What Talos changes when it loads a configuration is applied first (inline manifests are trimmed), so
a node that holds the loaded form compares equal to the text it came from. The text is one compact JSON line
per document, keys sorted, documents in canonical order (v1alpha1 first, then by kind and name): the C JSON
encoder writes it over ten times faster than a YAML emitter, so comparing costs little more than the one YAML
parse of the node's config.
"""

from __future__ import annotations

import hashlib
import json
import math

from .documents import canonical_order, parse_documents
from .talos_encoding import as_talos_loads


def normalise_config(documents):
    """The canonical text of the documents (a list of mappings, or anything ``parse_documents`` reads)."""
    if not (isinstance(documents, list) and all(isinstance(document, dict) for document in documents)):
        documents = parse_documents(documents)
    lines = []
    for document in canonical_order(as_talos_loads(documents)):
        try:
            lines.append(json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                    allow_nan=False, default=_tagged))
        except (TypeError, ValueError):
            # Keys of mixed types, or inf/nan: the slow exact form.
            lines.append(json.dumps(_canonical_tree(document), ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def config_sha256(documents):
    """Hex SHA-256 of the canonical text: equal for configurations that ``normalise_config`` finds equal."""
    return hashlib.sha256(normalise_config(documents).encode("utf-8")).hexdigest()


def _tagged(value):
    """Values JSON has no type for (bytes from !!binary, sets, dates) keep their type in the text."""
    if isinstance(value, (bytes, bytearray)):
        return {"!!binary": bytes(value).hex()}
    if isinstance(value, (set, frozenset)):
        return {"!!set": sorted(repr(item) for item in value)}
    if isinstance(value, tuple):
        return list(value)
    return {f"!!{type(value).__name__}": str(value)}


def _canonical_tree(value):
    """A JSON-safe tree: keys typed and sorted, non-finite floats spelled out."""
    if isinstance(value, dict):
        return dict(sorted(((_key(key), _canonical_tree(item)) for key, item in value.items()),
                           key=lambda pair: pair[0]))
    if isinstance(value, (list, tuple)):
        return [_canonical_tree(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"!!float": repr(value)}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _tagged(value)


def _key(key):
    # Spelled as the fast path's encoder spells a non-string key (1 -> "1", True -> "true"), so both paths agree.
    return key if isinstance(key, str) else json.dumps(_canonical_tree(key), sort_keys=True)
