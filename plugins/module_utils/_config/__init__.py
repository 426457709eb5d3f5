# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The configuration core of talos_config: read, patch, compare, write and redact Talos machine configurations.

Pure functions over plain data; no Ansible and no network here, so any door, test or benchmark can use them.
PyYAML, jsonpatch and cryptography are imported only when needed.

Private to the talos.linux collection: it may change in any release.
"""

from __future__ import annotations

from .documents import dump_documents, machine_type_of, parse_documents
from .errors import ConfigError
from .json6902 import apply_json6902
from .live import fields_needing_reboot
from .merge import strategic_merge
from .normalise import config_sha256, normalise_config
from .redact import redact_secrets, secret_values
from .render import render_config

__all__ = [
    "ConfigError",
    "apply_json6902",
    "config_sha256",
    "dump_documents",
    "fields_needing_reboot",
    "machine_type_of",
    "normalise_config",
    "parse_documents",
    "redact_secrets",
    "render_config",
    "secret_values",
    "strategic_merge",
]
