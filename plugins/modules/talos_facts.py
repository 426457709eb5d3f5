#!/usr/bin/python
# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_facts
short_description: Gather facts about Talos Linux nodes
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Reads what a Talos node is and how it is doing, through the Talos API, and returns it as
    C(ansible_facts) named C(talos_*). Changes nothing.
  - Used by C(gather_facts) for hosts of the P(talos.linux.talosconfig#inventory) inventory, which sets
    C(ansible_facts_modules) to this module.
  - With O(nodes) (or, with neither O(node) nor O(nodes), the talosconfig context's nodes), one task reads many
    nodes concurrently and returns their facts keyed by node, plus the errors of nodes that could not be read.
    The task fails when no node could be read.
  - Works with an C(os:reader) certificate; what needs C(os:admin) (the boot id) is skipped with a warning.
options:
  gather_subset:
    description:
      - What to read, as for M(ansible.builtin.setup). C(min) (version, platform, hostname, machine type,
        stage and readiness, client certificate) is always read; the other subsets are C(boot) (boot id,
        needs C(os:admin)), C(network) (addresses, links, routes, resolvers), C(hardware) (disks, memory,
        processors), C(services) (services and their health), C(extensions) (installed system extensions)
        and C(etcd) (the local etcd member and its status, on control planes).
      - C(all) reads every subset; C(!name) leaves one out; C(!all) reads only C(min). Nothing else is read.
    type: list
    elements: str
    default: [all]
  strict:
    description:
      - With several nodes, fail the task when any node cannot be read. By default such nodes are reported in
        RV(failed_nodes) with a warning, and the task fails only when no node could be read.
    type: bool
    default: false
extends_documentation_fragment:
  - talos.linux._connection
  - talos.linux._attributes
  - talos.linux._attributes.INFO_MODULE
  - talos.linux._attributes.FACTS
seealso:
  - plugin: talos.linux.talosconfig
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Gather Talos facts for every host of the talosconfig inventory
  hosts: talos
  gather_facts: true   # the inventory makes this run talos.linux.talos_facts

- name: Read only what a health dashboard needs
  hosts: talos
  gather_facts: false
  tasks:
    - name: Version, readiness and services
      talos.linux.talos_facts:
        gather_subset: [min, services]

    - name: Show unhealthy services
      ansible.builtin.debug:
        msg: "{{ ansible_facts.talos_services | rejectattr('healthy') | map(attribute='id') | list }}"

- name: Read fifty nodes in one task, from the controller
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Facts of every node, concurrently
      talos.linux.talos_facts:
        talosconfig: ~/.talos/config
        nodes: "{{ groups['talos'] | map('extract', hostvars, 'talos_node') | list }}"
        gather_subset: [min]
      register: cluster_facts

    - name: Versions by node
      ansible.builtin.debug:
        msg: "{{ cluster_facts.nodes | dict2items | map(attribute='value.talos_version') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts of the node (one node per task). Keys of subsets that were not gathered are absent.
  returned: when the task targets one node
  type: dict
  contains:
    talos_node:
      description: The node address the facts were read from (null when the endpoint itself answered).
      type: str
      sample: 10.0.0.2
    talos_version:
      description:
        - The Talos version the node runs, without the leading C(v) (as the inventory's C(talos_version)), so
          that C(talos_version is version('1.13', '>=')) works.
      type: str
      sample: 1.13.5
    talos_version_info:
      description: The node's Version reply.
      type: dict
      sample: {tag: v1.13.5, sha: 5a7b1c2, arch: amd64, go_version: go1.25.3, built: "", os: linux}
    talos_platform:
      description: The platform and its mode.
      type: dict
      sample: {name: metal, mode: metal}
    talos_features:
      description: Features the node reports.
      type: dict
      sample: {rbac: true}
    talos_hostname:
      description: The node's hostname.
      type: str
      sample: talos-cp-1
    talos_machine_type:
      description: C(controlplane), C(worker) or C(init).
      type: str
      sample: controlplane
    talos_stage:
      description: The machine stage (C(booting), C(running), C(rebooting), C(upgrading), C(maintenance), ...).
      type: str
      sample: running
    talos_ready:
      description: Whether the machine reports itself ready.
      type: bool
      sample: true
    talos_unmet_conditions:
      description: The conditions that keep the machine from being ready.
      type: list
      elements: str
      sample: []
    talos_client_certificate:
      description: The roles and expiry of the client certificate used (never the certificate itself).
      type: dict
      sample: {roles: ["os:admin"], not_after: "2027-11-29T20:00:00+00:00"}
    talos_boot_id:
      description: The boot id, which changes with every boot (subset C(boot); needs C(os:admin)).
      type: str
      sample: 0b4c5f4e-51b0-4a8e-a0a4-2d0d6d2f0b1e
    talos_addresses:
      description: The node's current addresses, without prefix lengths (subset C(network)).
      type: list
      elements: str
      sample: [10.0.0.2]
    talos_interface_addresses:
      description: Every address with its link, family and scope (subset C(network)).
      type: list
      elements: dict
      sample: [{address: 10.0.0.2/24, link: eth0, family: inet4, scope: global}]
    talos_links:
      description: Network links (subset C(network)).
      type: list
      elements: dict
      sample: [{name: eth0, type: ether, mac: "52:54:00:12:34:56", mtu: 1500, state: up, kind: "", driver: virtio_net}]
    talos_routes:
      description: Routes (subset C(network)).
      type: list
      elements: dict
      sample: [{destination: "", gateway: 10.0.0.1, link: eth0, table: main, priority: 1024, family: inet4}]
    talos_resolvers:
      description: DNS servers in use (subset C(network)).
      type: list
      elements: str
      sample: [1.1.1.1]
    talos_disks:
      description: Disks (subset C(hardware)).
      type: list
      elements: dict
      sample: [{device: /dev/sda, size: 107374182400, model: QEMU HARDDISK, serial: "", wwid: "", type: HDD, system_disk: true, readonly: false}]
    talos_memory:
      description: Memory in bytes (subset C(hardware)).
      type: dict
      sample: {total_bytes: 8589934592, free_bytes: 4294967296, available_bytes: 6442450944}
    talos_processor:
      description: Processor summary (subset C(hardware)).
      type: dict
      sample: {count: 4, model: AMD EPYC, mhz: 2000.0}
    talos_services:
      description: Services with their state and health (subset C(services)).
      type: list
      elements: dict
      sample: [{id: etcd, state: Running, healthy: true, health_unknown: false, last_message: ""}]
    talos_extensions:
      description: Installed system extensions (subset C(extensions)).
      type: list
      elements: dict
      sample: [{name: iscsi-tools, version: v0.1.6, description: iSCSI tools}]
    talos_etcd:
      description:
        - The local etcd member and its status (subset C(etcd)); null on workers. Ids are 16-digit hex.
      type: dict
      sample: {member_id: 2c1f3d7e9a0b4c5d, leader_id: 2c1f3d7e9a0b4c5d, is_leader: true, is_learner: false,
               db_size: 20480, db_size_in_use: 16384, raft_index: 1200, raft_term: 3, protocol_version: 3.5.0,
               errors: [], members: []}
nodes:
  description: Facts by node, as in C(ansible_facts), when the task targets several nodes.
  returned: when the task targets several nodes
  type: dict
  sample: {10.0.0.2: {talos_hostname: talos-cp-1, talos_ready: true}}
failed_nodes:
  description: The nodes that could not be read, each with C(msg), C(code), C(node), C(endpoint) and C(rpc).
  returned: when the task targets several nodes
  type: dict
  sample: {10.0.0.9: {msg: "MachineService/Version on node 10.0.0.9 failed: Unavailable", code: Unavailable}}
gathered_subsets:
  description: The subsets that were read.
  returned: always
  type: list
  elements: str
  sample: [min, network]
"""

from ansible_collections.talos.linux.plugins.module_utils._facts import OPTIONS, talos_facts
from ansible_collections.talos.linux.plugins.module_utils._module import run_module


def main():
    run_module(talos_facts, OPTIONS)


if __name__ == "__main__":
    main()
