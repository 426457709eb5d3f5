# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error of the configuration core: a config or a patch that cannot be read or applied."""

from __future__ import annotations

from .._errors import TalosError


class ConfigError(TalosError):
    """A machine configuration or a patch that cannot be used; nothing was sent to a node.

    Besides the sentence, it says where: ``document`` (1-based, in the text or list it came from),
    ``line``/``column`` (1-based) of a YAML syntax error, ``patch`` (1-based) and ``path`` (the key path or
    JSON pointer) of a patch that does not apply.
    """

    def __init__(self, message, *, document=None, line=None, column=None, patch=None, path=None, hint=None):
        self.document = document
        self.line = line
        self.column = column
        self.patch = patch
        self.path = path
        super().__init__(message, code="InvalidConfig", hint=hint)

    def to_dict(self):
        result = super().to_dict()
        result.update({k: v for k, v in (("document", self.document), ("line", self.line), ("column", self.column),
                                         ("patch", self.patch), ("path", self.path)) if v is not None})
        return result
