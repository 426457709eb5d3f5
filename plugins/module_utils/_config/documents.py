# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Machine configuration documents: reading them, telling which document is which, writing them for a node.

A configuration is a list of YAML mappings. The v1alpha1 document has no ``kind`` (it is recognised, as Talos
does, by ``version`` or one of its top-level keys); every other document has ``apiVersion`` and ``kind``, and
many a ``name``. Talos allows one document per (kind, name).
"""

from __future__ import annotations

from .errors import ConfigError
from .yamlio import dialect

V1ALPHA1 = "v1alpha1"
# Keys that make a kind-less document the v1alpha1 one (Talos's decoder looks for the same).
V1ALPHA1_KEYS = ("version", "machine", "cluster", "debug", "persist")
V1ALPHA1_ID = ("", V1ALPHA1, "")


def parse_documents(value, what="config"):
    """The documents of ``value``: YAML text (one or more ``---`` documents), a mapping, or a list of mappings.

    Empty documents are dropped. The result is always a fresh plain tree (dict, list, str, int, float, bool,
    None) that the caller may change without touching ``value``.
    """
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8")
    if isinstance(value, str):
        documents = load_yaml(value, what)
    elif isinstance(value, dict):
        documents = [plain_tree(value)]
    elif isinstance(value, (list, tuple)):
        documents = [None if item is None else plain_tree(item) for item in value]
    else:
        raise ConfigError(f"{what} must be YAML text, a mapping or a list of mappings, not {type_name(value)}")
    result = []
    for index, document in enumerate(documents, 1):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ConfigError(f"{what}: document {index} is {type_name(document)}, not a mapping of settings",
                              document=index)
        result.append(document)
    return result


def load_yaml(text, what):
    """Every document of a YAML text as data (empty ones as None); a syntax error names the line and column."""
    yaml = dialect()
    # libyaml's parser takes only an exact str; Ansible hands over subclasses (AnsibleUnsafeText and the like).
    text = str.__str__(text)
    documents = []
    try:
        documents.extend(yaml.load_all(text))
    except yaml.marked_error as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        where = f"line {line}, column {column}" if mark else "an unknown place"
        raise ConfigError(f"{what}: YAML syntax error at {where} (document {len(documents) + 1}): {problem}",
                          document=len(documents) + 1, line=line, column=column) from None
    except yaml.error as exc:
        raise ConfigError(f"{what}: invalid YAML (document {len(documents) + 1}): {exc}",
                          document=len(documents) + 1) from None
    return documents


def dump_documents(documents):
    """The YAML text to send to a node: the documents in their order, joined by ``---``, keys as given."""
    return dialect().dump_all(list(documents), sort_keys=False)


def document_id(document, index=None, what="config"):
    """(apiVersion, kind, name) of a document; the v1alpha1 document is ``("", "v1alpha1", "")``."""
    kind = document.get("kind")
    api_version = document.get("apiVersion")
    if kind is None and api_version is None:
        if any(key in document for key in V1ALPHA1_KEYS):
            return V1ALPHA1_ID
        raise ConfigError(f"{what}: document {_ordinal(index)}has no kind: give apiVersion and kind, or, for the "
                          f"v1alpha1 document, version: v1alpha1", document=index)
    if kind is None or api_version is None:
        missing = "kind" if kind is None else "apiVersion"
        raise ConfigError(f"{what}: document {_ordinal(index)}({kind or api_version}) has no {missing}",
                          document=index)
    name = document.get("name")
    return (str(api_version), str(kind), "" if name is None else str(name))


def is_v1alpha1(document):
    return document.get("kind") is None and document.get("apiVersion") is None and any(
        key in document for key in V1ALPHA1_KEYS)


def describe(doc_id):
    """How an error names a document: ``v1alpha1``, ``HostnameConfig``, ``ExtensionServiceConfig foo``."""
    _api_version, kind, name = doc_id
    return f"{kind} {name}" if name else kind


def canonical_order(documents, what="config"):
    """The documents sorted v1alpha1 first, then by kind and name; two with the same kind and name are refused."""
    keyed = {}
    for index, document in enumerate(documents, 1):
        api_version, kind, name = document_id(document, index, what)
        key = (kind != V1ALPHA1, kind, name)
        if key in keyed:
            raise ConfigError(f"{what}: duplicate document {describe((api_version, kind, name))} (documents "
                              f"{keyed[key][0]} and {index}): Talos allows one document per kind and name",
                              document=index)
        keyed[key] = (index, api_version, document)
    return [keyed[key][2] for key in sorted(keyed, key=lambda k: (k, keyed[k][1]))]


def machine_type_of(documents):
    """``machine.type`` of the v1alpha1 document (``controlplane``, ``worker``, ``init``), or None."""
    for document in documents:
        if isinstance(document, dict) and is_v1alpha1(document):
            machine = document.get("machine")
            machine_type = machine.get("type") if isinstance(machine, dict) else None
            return machine_type if isinstance(machine_type, str) and machine_type else None
    return None


def plain_tree(value):
    """A deep copy made of plain dict, list, str, int, float, bool and None (subclasses become their base)."""
    if isinstance(value, dict):
        return {plain_tree(key): plain_tree(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_tree(item) for item in value]
    # str(), int() and float() return a plain value as it is, and a subclass's value as the plain type.
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def type_name(value):
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def _ordinal(index):
    return f"{index} " if index is not None else ""
