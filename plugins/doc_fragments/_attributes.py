# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the talos.linux collection: it may change in any release.

from __future__ import annotations


class ModuleDocFragment:
    # Attributes every talos.linux module shares.
    DOCUMENTATION = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/talos.linux.talos) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - talos.linux.talos
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Runs on the Ansible controller (or the delegated host) and talks to Talos nodes over their API.
    support: full
    platforms: talos
"""

    # A module that only reads.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This action does not modify state.
  diff_mode:
    support: N/A
    details: This action does not modify state.
"""

    # A module that returns ansible_facts.
    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
"""
