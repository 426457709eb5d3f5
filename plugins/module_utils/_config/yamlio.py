# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The YAML dialect of machine configurations: read scalars as Talos (Go yaml) types them, write them so that
both Go and PyYAML read them back unchanged.

PyYAML follows YAML 1.1, where ``52:54:00:12:34:56`` (a MAC address) is a base-60 integer, ``yes`` a boolean
and ``2024-01-01`` a date; Go's yaml reads all three as strings. The loader here resolves plain scalars with
the YAML 1.2 core rules Go uses (plus Go's ``0644`` octal), and the dumper quotes any string that either rule
set would read as something else. PyYAML is imported on first use: this package must import without it.
"""

from __future__ import annotations

import functools
import re

# (tag, pattern, first characters) of the plain scalars that are not strings, in the order they are tried.
CORE_SCHEMA = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    # Go parses integers with base prefixes and reads a leading 0 as octal, as YAML 1.1 did.
    ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[01_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
)

# Wide enough that no line is ever folded (libyaml takes a C int).
WIDTH = 1 << 30


class Dialect:
    """PyYAML with the loader and dumper classes of the dialect, built once per process."""

    def __init__(self, yaml):
        self.yaml = yaml
        self.error = yaml.YAMLError
        self.marked_error = yaml.MarkedYAMLError
        self.loader = _loader_class(yaml)
        self.dumper = _dumper_class(yaml)

    def load(self, text):
        return self.yaml.load(text, Loader=self.loader)

    def load_all(self, text):
        return self.yaml.load_all(text, Loader=self.loader)

    def dump_all(self, documents, sort_keys):
        return self.yaml.dump_all(documents, Dumper=self.dumper, sort_keys=sort_keys, default_flow_style=False,
                                  allow_unicode=True, width=WIDTH)


@functools.lru_cache(maxsize=None)
def dialect():
    import yaml

    return Dialect(yaml)


def _loader_class(yaml):
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = type("TalosConfigLoader", (base,), {"yaml_implicit_resolvers": {}})
    for tag, pattern, first in CORE_SCHEMA:
        loader.add_implicit_resolver(tag, re.compile(pattern), list(first))
    return loader


def _dumper_class(yaml):
    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    # A string is written plain only if neither YAML 1.1 (PyYAML, older tools) nor the core schema reads it as
    # another type; otherwise it is quoted.
    resolvers = {first: list(pairs) for first, pairs in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}
    for tag, pattern, first in CORE_SCHEMA:
        for char in first:
            resolvers.setdefault(char, []).append((tag, re.compile(pattern)))
    dumper = type("TalosConfigDumper", (base,), {
        "yaml_implicit_resolvers": resolvers,
        # Shared subtrees are written out each time: Talos configs carry no anchors.
        "ignore_aliases": lambda self, data: True,
        "yaml_representers": dict(base.yaml_representers),
        "yaml_multi_representers": dict(base.yaml_multi_representers),
    })
    dumper.add_representer(str, _represent_str)
    # Values that arrive from Ansible are often subclasses (AnsibleUnsafeText, ...): write them as their base.
    dumper.add_multi_representer(str, _represent_str)
    dumper.add_multi_representer(dict, base.represent_dict)
    dumper.add_multi_representer(list, base.represent_list)
    dumper.add_multi_representer(tuple, base.represent_list)
    dumper.add_multi_representer(int, _represent_int)
    dumper.add_multi_representer(float, _represent_float)
    return dumper


def _represent_str(dumper, data):
    # Multi-line text (manifests, files) reads best, and diffs best, as a literal block; libyaml falls back
    # to a quoted scalar by itself when the text cannot be a block.
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|" if "\n" in data else None)


def _represent_int(dumper, data):
    if isinstance(data, bool):
        return dumper.represent_bool(bool(data))
    return dumper.represent_int(int(data))


def _represent_float(dumper, data):
    return dumper.represent_float(float(data))
