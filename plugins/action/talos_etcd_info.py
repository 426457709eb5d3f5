# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.talos.linux.plugins.module_utils._etcd import INFO_OPTIONS, talos_etcd_info
from ansible_collections.talos.linux.plugins.plugin_utils._action import TalosAction


class ActionModule(TalosAction):
    module = "talos.linux.talos_etcd_info"
    options = INFO_OPTIONS
    core = staticmethod(talos_etcd_info)
