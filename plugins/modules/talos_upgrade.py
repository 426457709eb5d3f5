#!/usr/bin/python
# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_upgrade
short_description: Upgrade Talos Linux nodes without breaking etcd quorum
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Moves a node to the Talos version named by the tag of O(image), the installer image. A node that already
    runs that version (and, for Image Factory installers, that schematic) is left alone and nothing is sent.
  - Talos 1.13 and newer are upgraded with ImageService.Pull, LifecycleService.Upgrade and a Reboot; older
    nodes with the legacy MachineService.Upgrade. RV(path) says which.
  - Before anything is sent to a control plane, every etcd member must be started and healthy, no alarm
    raised, the cluster must not have exactly two members, and every other control plane must be ready; a node
    that leads etcd forfeits leadership first. After the node returns, the task waits until its etcd member
    is healthy again. O(force) skips these gates, with a warning.
  - With O(wait), the task follows the node through its reboot until it runs the target version, is running
    and ready, and has a new boot id. The node's own endpoint is tried last meanwhile.
  - With O(nodes), control planes are upgraded one at a time and the other nodes concurrently; every node's
    version is read and checked against the upgrade path first, and nothing is sent to any node when one of
    them is refused.
  - A node that runs a newer version than the target is left alone with a warning (RV(direction) C(downgrade),
    RV(newer_than_target)) unless O(allow_downgrade) is set, in check mode too.
  - Talos supports upgrades between adjacent minor releases only (its upgrade guide, "Supported upgrade paths"),
    through the latest patch of each minor in between, for example 1.11 -> 1.12 -> 1.13; patch releases of one
    minor move freely. A jump of more than one minor, a change of major version, or a downgrade across minors is
    refused before anything is sent, with the supported path in the message, unless O(allow_unsupported_path).
options:
  image:
    description:
      - The installer image, for example C(ghcr.io/siderolabs/installer:v1.13.6) or an Image Factory installer
        C(factory.talos.dev/installer/<schematic>:v1.13.6). Its tag is the target version.
      - With O(rollback), the image of the version to return to (only its tag is used).
    type: str
    required: true
  reboot_mode:
    description: C(powercycle) skips kexec on the reboot.
    type: str
    choices: [default, powercycle]
    default: default
  stage:
    description: Stage the upgrade for the next boot (legacy path, Talos 1.12 and older, only).
    type: bool
    default: false
  preserve:
    description: Keep the ephemeral partition's data (legacy path only).
    type: bool
    default: false
  force:
    description:
      - Skip the etcd safety gates (and, on the legacy path, Talos's own etcd checks).
    type: bool
    default: false
  wait:
    description: Wait until the node is back, running and ready on the target version.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the node (and its etcd member) to come back.
    type: float
    default: 1800
  health_check:
    description:
      - After the node is back, run the cluster health check (ClusterService.HealthCheck) through a control-plane
        endpoint, for every member of the cluster.
    type: bool
    default: false
  health_timeout:
    description: Seconds the cluster health check may take.
    type: float
    default: 600
  rollback:
    description:
      - Roll the node back to its previous Talos installation (MachineService.Rollback) instead of upgrading;
        nothing is sent when it already runs the version of O(image).
    type: bool
    default: false
  allow_downgrade:
    description:
      - Downgrade a node that runs a newer version than the target. Without it such a node is left alone with a
        warning and the task is unchanged for it.
      - A downgrade stays within one minor release unless O(allow_unsupported_path); O(rollback) returns to the
        previous installation instead, whatever its version.
    type: bool
    default: false
  allow_unsupported_path:
    description:
      - Go ahead with a move that leaves Talos's supported upgrade path (more than one minor release up, another
        major version, or a downgrade across minors). Not O(force), which is about the etcd gates only.
    type: bool
    default: false
notes:
  - Needs the C(os:admin) role.
  - O(wait_timeout) and O(health_timeout) must be positive numbers of seconds; anything else is refused before
    anything is sent.
  - Once a call that changes the node was sent and may have acted (etcd leadership handed over, the installer,
    the Reboot, the legacy Upgrade, the Rollback), every later failure reports C(changed=true) and says what is
    known, for example that the node rebooted onto the new version and the health check after it failed, or
    that the node went down to reboot and did not come back within O(wait_timeout). A lost answer (Unavailable,
    a deadline) counts as "may have acted"; an answer in which the node refused counts as nothing done. Pulling
    the installer image only fills the node's image cache and is no change. Rerun the task after such a failure;
    it reads the node's version first and goes on from there.
  - Run control planes one at a time (the C(talos.linux.rolling_upgrade) role does the ordering, batching and
    health gates for a whole cluster).
extends_documentation_fragment:
  - talos.linux._connection
  - talos.linux._attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be done, including whether the etcd gates would pass; sends no mutating call.
  diff_mode:
    support: none
seealso:
  - module: talos.linux.talos_facts
"""

EXAMPLES = r"""
- name: Upgrade every node, control planes first, one at a time
  hosts: controlplane:worker
  serial: 1
  gather_facts: false
  tasks:
    - name: Upgrade to Talos 1.13.6
      talos.linux.talos_upgrade:
        image: ghcr.io/siderolabs/installer:v1.13.6

- name: Upgrade three workers at once from the controller
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One task, three nodes
      talos.linux.talos_upgrade:
        talosconfig: ~/.talos/config
        nodes: [10.0.0.11, 10.0.0.12, 10.0.0.13]
        image: factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.6

- name: Downgrade a node that runs a newer patch release (left alone without allow_downgrade)
  talos.linux.talos_upgrade:
    image: ghcr.io/siderolabs/installer:v1.13.5
    allow_downgrade: true

- name: Go back to the previous version
  talos.linux.talos_upgrade:
    image: ghcr.io/siderolabs/installer:v1.13.5
    rollback: true
"""

RETURN = r"""
changed:
  description: Whether the node was (or in check mode would be) upgraded.
  returned: always
  type: bool
path:
  description: C(lifecycle) (Talos 1.13+), C(legacy), C(rollback), or C(none) when nothing was needed.
  returned: when the task targets one node
  type: str
  sample: lifecycle
direction:
  description:
    - C(upgrade), C(downgrade), C(reinstall) (same version, another Image Factory schematic), C(rollback), or
      C(none) when the node already runs the target.
    - C(downgrade) with RV(changed) false means the node is newer than the target and was left alone.
  returned: when the task targets one node
  type: str
  sample: upgrade
newer_than_target:
  description: The node runs a newer version than the target and was left alone (no O(allow_downgrade)).
  returned: when the node was left alone for that reason
  type: bool
previous_version:
  description: The version the node ran before.
  returned: when the task targets one node
  type: str
  sample: v1.13.5
current_version:
  description: The version the node runs now (the target once the wait succeeded).
  returned: when the task targets one node
  type: str
  sample: v1.13.6
target_version:
  description: The version named by O(image).
  returned: when the task targets one node
  type: str
  sample: v1.13.6
boot_id_before:
  description: The boot id before the reboot (when the role may read it).
  returned: when the node was upgraded and waited for
  type: str
boot_id_after:
  description: The boot id after the reboot.
  returned: when the node was upgraded and waited for
  type: str
duration:
  description: Seconds the upgrade took, waiting included.
  returned: when the node was upgraded
  type: float
gates:
  description: The etcd quorum gate's findings for a control plane (members, leader, alarms).
  returned: for control planes, unless force
  type: dict
leader_forfeited:
  description: Whether the node led etcd and handed leadership over first.
  returned: for control planes that were upgraded, unless force
  type: bool
progress:
  description: The last progress messages of the image pull and the installer.
  returned: when the node was upgraded
  type: list
  elements: str
health:
  description: The cluster health check's last messages.
  returned: with health_check
  type: dict
nodes:
  description: The result of each node, as above, when the task targets several nodes.
  returned: when the task targets several nodes
  type: dict
failed_nodes:
  description:
    - The nodes whose upgrade failed, with C(msg), C(code) and C(changed) (true when a call that changes the node
      was sent first; then C(current_version) too); control planes after a failure are not touched.
  returned: when the task targets several nodes
  type: dict
nodes_from_context:
  description:
    - The nodes the task acted on when neither O(node) nor O(nodes) was set, taken from the talosconfig
      context's C(nodes); a warning says so too.
  returned: when the nodes came from the talosconfig context
  type: list
  elements: str
  sample: [10.0.0.2, 10.0.0.3]
"""

from ansible_collections.talos.linux.plugins.module_utils._module import run_module
from ansible_collections.talos.linux.plugins.module_utils._upgrade import OPTIONS, talos_upgrade


def main():
    run_module(talos_upgrade, OPTIONS)


if __name__ == "__main__":
    main()
