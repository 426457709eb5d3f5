#!/usr/bin/python
# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_etcd_info
short_description: Read the etcd members, status, alarms, health and quorum of a Talos Linux cluster
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Reads the etcd cluster that Talos runs on its control-plane nodes, through the Talos API, as
    C(talosctl etcd members), C(talosctl etcd status) and C(talosctl etcd alarm list) show it, and tells
    whether it is healthy and how many more members may fail. Changes nothing.
  - The member list is read through the node (O(node), or the endpoint itself), and each member's status
    (leader, database size and size in use, raft index and term, errors) from that member's own node, so a
    member that does not answer is reported unhealthy with the reason.
  - With O(nodes), one task reads etcd through each of several nodes at once and returns the results by node;
    a node that cannot be read (a worker, a node that is down) is named in RV(failed_nodes) with a warning, and
    the task fails when no node could be read, or with O(strict). Without O(node) and O(nodes), the control
    planes among the talosconfig context's nodes are read, never its workers.
  - Works with the C(os:reader) and C(os:etcd:backup) roles too. On Talos before 1.11 those roles may not read
    member status and alarms; they are then reported as unknown (null), with a note in RV(notes), instead of
    failing.
  - etcd runs on control planes only; a worker named as the node is refused with a clear message.
options:
  strict:
    description:
      - With several nodes, fail the task when any node cannot be read. By default such nodes are reported in
        RV(failed_nodes) with a warning, and the task fails only when no node could be read.
    type: bool
    default: false
notes:
  - To change etcd (bootstrap, membership, leadership, snapshots, recovery, defragmentation, alarms), use
    M(talos.linux.talos_etcd).
extends_documentation_fragment:
  - talos.linux._connection
  - talos.linux._attributes
  - talos.linux._attributes.INFO_MODULE
seealso:
  - module: talos.linux.talos_etcd
    description: Bootstrap, back up, recover and maintain etcd.
  - module: talos.linux.talos_facts
    description: The C(etcd) subset reads the local member of each control plane as facts.
"""

EXAMPLES = r"""
- name: Read etcd through one control plane
  talos.linux.talos_etcd_info:
    node: 10.0.0.2
  register: etcd

- name: Stop unless etcd is healthy with a member to spare
  ansible.builtin.assert:
    that:
      - etcd.healthy
      - etcd.quorum.failure_tolerance >= 1
    fail_msg: "etcd: {{ etcd.problems | join('; ') }}"

- name: Read etcd through every control plane at once, with a read-only certificate
  talos.linux.talos_etcd_info:
    talosconfig: ~/.talos/reader.yaml
    nodes: [10.0.0.2, 10.0.0.3, 10.0.0.4]
  run_once: true
  register: everywhere

- name: Every control plane names the same leader
  ansible.builtin.assert:
    that: everywhere.nodes.values() | map(attribute='leader.id') | unique | length == 1
  run_once: true
"""

RETURN = r"""
node:
  description: The node etcd was read through (null when the endpoint itself answered).
  returned: when the task addresses one node
  type: str
members:
  description:
    - One entry per etcd member, sorted by hostname.
    - C(id) (16 hex digits), C(hostname), C(peer_urls), C(client_urls), C(learner), C(node) (the address of
      its node, from cluster discovery or its peer URL), C(healthy) (true, false, or null when the role may
      not read member status), and C(status), read from the member's own node (null when unreadable), with
      C(member_id), C(leader) (whether it leads), C(leader_id), C(db_size), C(db_size_in_use), C(raft_index),
      C(raft_term), C(raft_applied_index), C(protocol_version), C(storage_version), C(learner), C(errors).
  returned: when the task addresses one node
  type: list
  elements: dict
  sample:
    - id: 8a3f0c2d4e5b6a71
      hostname: talos-cp-1
      node: 10.0.0.2
      learner: false
      healthy: true
      peer_urls: [https://10.0.0.2:2380]
      client_urls: [https://10.0.0.2:2379]
      status: {leader: true, db_size: 20971520, db_size_in_use: 12582912, raft_index: 1200, raft_term: 3,
               errors: []}
leader:
  description: The member every readable member names as leader, with C(id) and C(hostname); null when there
    is none or they disagree.
  returned: when the task addresses one node
  type: dict
  sample: {id: 8a3f0c2d4e5b6a71, hostname: talos-cp-1}
alarms:
  description: The raised alarms, each with C(member_id), C(hostname) and C(alarm) (C(NOSPACE) or C(CORRUPT));
    null when the role may not read them (Talos before 1.11, C(os:reader) and C(os:etcd:backup)).
  returned: when the task addresses one node
  type: list
  elements: dict
healthy:
  description: True when every member answers without errors, is a voting member, all agree on one leader and
    no alarm is raised; false with the reasons in RV(problems); null when the role could not read enough to
    tell.
  returned: when the task addresses one node
  type: bool
quorum:
  description: C(members), C(voting) members, C(needed) for quorum (a majority of the voting members),
    C(healthy_voting), C(ok) (enough healthy voting members) and C(failure_tolerance) (how many more may
    fail); the last three are null when member health is unknown.
  returned: when the task addresses one node
  type: dict
  sample: {members: 3, voting: 3, needed: 2, healthy_voting: 3, ok: true, failure_tolerance: 1}
problems:
  description: What makes etcd unhealthy, one sentence each.
  returned: when the task addresses one node
  type: list
  elements: str
notes:
  description: What could not be read with this role, and why.
  returned: when the task addresses one node
  type: list
  elements: str
nodes:
  description: With O(nodes), the result read through each node, as above, by node.
  returned: when the task addresses several nodes
  type: dict
failed_nodes:
  description: With O(nodes), the nodes that could not be read, by node, with C(msg) and C(code).
  returned: when the task addresses several nodes
  type: dict
"""

from ansible_collections.talos.linux.plugins.module_utils._etcd import INFO_OPTIONS, talos_etcd_info
from ansible_collections.talos.linux.plugins.module_utils._module import run_module


def main():
    run_module(talos_etcd_info, INFO_OPTIONS)


if __name__ == "__main__":
    main()
