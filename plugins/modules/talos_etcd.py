#!/usr/bin/python
# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_etcd
short_description: Bootstrap, back up, recover and maintain the etcd of a Talos Linux cluster
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Manages the etcd cluster that Talos runs on its control-plane nodes, through the Talos API
    (C(talosctl bootstrap) and C(talosctl etcd ...)), one O(state) per task.
  - Every state reads first and sends its one changing call only when the cluster is not yet as asked, so a
    second run reports no change and sends nothing that changes a node, and check mode sends nothing that
    changes a node at all.
  - Every state acts on one node and refuses a task that addresses several (run it per host, one host at a
    time with C(serial) set to 1).
  - To read etcd (members, their status, alarms, health and quorum, on several nodes at once if asked), use
    M(talos.linux.talos_etcd_info).
  - etcd runs on control planes only; a worker named as the node is refused with a clear message.
options:
  state:
    description:
      - What to do. There is no default, because the states are unrelated operations; say which one.
      - V(bootstrapped) bootstraps etcd on the node (C(talosctl bootstrap)) unless it already runs a healthy
        member, in which case nothing is sent. While the node answers that bootstrap is not available yet, or
        that its time is not in sync yet, the call is retried for O(wait_timeout) seconds. Then the task waits
        until the node's etcd member is healthy. Bootstrap a cluster once, on one control plane.
      - V(absent) takes a member out of etcd. With O(node) alone, the departing control plane itself leaves
        (EtcdLeaveCluster is sent to it; its etcd stops). With O(member_id) or O(member_hostname), a member
        whose node is gone is removed through the control plane named by O(node) (or the endpoint), which must
        be healthy. A member that is already gone is no change; when O(member_id) or O(member_hostname) matches
        no member, the task also warns, naming the current members (ids and hostnames), because a typo looks
        the same as a member removed by an earlier run. Refused, with nothing sent, when the members
        left would be too few healthy ones for quorum, when the named member is the one of the node the task
        talks through and it is healthy (a guard against removing the wrong node's etcd, Talos issue 3340), or
        when the named member is still healthy on a running node (use O(node) for that node instead).
        O(force=true) overrides these refusals with a warning.
      - V(leader_forfeited) hands etcd leadership to another member when the node leads; no change otherwise.
      - V(snapshot) writes an etcd snapshot of the node's member to O(dest) on the controller, verified and
        atomically (O(mode), O(passphrase)). A snapshot is always a change.
      - V(recovered) restores etcd from the snapshot O(src) after every member was lost (C(talosctl bootstrap
        --recover-from)). O(src) is verified first (size and SHA-256 trailer, or decryption), before anything
        is sent; then it is uploaded (EtcdRecover, retried while the node answers that etcd is not ready for
        recovery yet), the node is bootstrapped from it, and the task waits until its member is healthy; the
        other control planes then join. Refused, with nothing sent, while etcd runs on the node or answers on
        the other control planes (O(force=true) overrides). This state is not idempotent in the usual sense; a
        rerun after a successful recovery finds etcd running and is refused the same way.
      - V(defragmented) defragments the node's member when at least O(min_free_ratio) of its database file is
        free space; no change otherwise (so a second run sends nothing). Defragmenting stalls the member
        meanwhile, so run it on one control plane at a time (C(serial) 1), followers first and the leader last
        (RV(leader) tells which).
      - V(alarms_disarmed) disarms the etcd alarms (NOSPACE, CORRUPT) when any is raised; no change otherwise.
        A NOSPACE alarm comes back until space is freed; defragment first.
    type: str
    required: true
    choices: [bootstrapped, absent, leader_forfeited, snapshot, recovered, defragmented, alarms_disarmed]
  member_id:
    description:
      - With O(state=absent), the id of the member to remove, as C(talosctl etcd members) and
        M(talos.linux.talos_etcd_info) show it, 16 hexadecimal digits, with or without C(0x) (for example
        C(8a3f0c2d4e5b6a71)). Quote it in YAML, so that a C(0x) value is not read as a number.
      - Mutually exclusive with O(member_hostname).
    type: str
  member_hostname:
    description:
      - With O(state=absent), the hostname of the member to remove (the etcd member name Talos gives it).
        An empty value, or one with blanks in it (often an empty templated variable), is refused before
        anything is sent.
      - Mutually exclusive with O(member_id).
    type: str
  force:
    description:
      - Go ahead despite the safety refusals of O(state=absent) (quorum, wrong node, member still healthy)
        and O(state=recovered) (etcd still running), with a warning.
    type: bool
    default: false
  recover_skip_hash_check:
    description:
      - With O(state=recovered), restore a database that has no SHA-256 trailer, such as a C(member/snap/db)
        file copied out of a member's data directory; O(src) is then uploaded unchecked (unless it is
        encrypted) and the node skips its own hash check (C(talosctl bootstrap --recover-skip-hash-check)).
    type: bool
    default: false
  min_free_ratio:
    description:
      - With O(state=defragmented), the fraction of the member's database file that must be free, that is
        (db_size - db_size_in_use) / db_size from its status, for a defragmentation to happen. Below it the
        task reports no change and sends nothing. V(0) defragments whenever any space is free.
      - From V(0) up to, not including, V(1); anything else (NaN included) is refused before anything is sent.
    type: float
    default: 0.1
  wait_timeout:
    description:
      - Seconds that O(state=bootstrapped) and O(state=recovered) keep retrying while the node is not ready
        yet and then wait for its etcd member to be healthy; also the deadline of the long calls
        (EtcdDefragment, EtcdLeaveCluster and the snapshot upload).
      - Above V(0) and at most V(86400) (a day); anything else (NaN and infinity included) is refused before
        anything is sent.
    type: float
    default: 600
  dest:
    description:
      - With O(state=snapshot), the file on the controller to write the snapshot to. Its directory must exist.
        It is replaced only by a complete, verified snapshot.
      - The snapshot is first written to a partial file beside it, named
        C(.<dest file name>.<controller hostname>.<pid>.<8 hex digits>.partial) (mode C(0600)), which is renamed
        onto O(dest) once verified. It is removed when the transfer fails, the task is cancelled or times out,
        and when the process writing it gets SIGINT (Ctrl-C) or SIGTERM. A writer killed outright (SIGKILL, an
        C(async) job past its time limit, a power cut) cannot clean up; the next O(state=snapshot) run for the
        same O(dest) (not in check mode) removes such partial files, with a warning, when they were written on
        this host by this user and their pid no longer runs. Other files, other dests' partial files and those
        of a running writer are left alone. A file name too long to leave room for that prefix and suffix is
        refused before anything is sent.
    type: path
  src:
    description:
      - With O(state=recovered), the snapshot file on the controller to restore (required then), one written
        by O(state=snapshot) (encrypted or not) or by C(talosctl etcd snapshot).
    type: path
  mode:
    description:
      - With O(state=snapshot), the permissions of O(dest), as a quoted octal string. The snapshot holds
        every Kubernetes secret of the cluster.
      - The group may at most read it (V('0640'), with a warning when the file is not encrypted), other users
        get no permission at all, and the owner must be able to read it. A mode that lets the group write,
        gives other users any access (V('0644'), V('0777')) or keeps the owner from reading it (V('0200')) is
        refused before anything is sent, encrypted or not, because encryption does not stop others from replacing or
        truncating the file, or from guessing the passphrase offline.
    type: raw
    default: '0600'
  passphrase:
    description:
      - With O(state=snapshot), encrypt O(dest) with this passphrase (AES-256-GCM, key from scrypt); with
        O(state=recovered), the passphrase to decrypt O(src). Never shown in output.
    type: str
notes:
  - Roles. V(snapshot) needs C(os:etcd:backup), C(os:operator) or C(os:admin); V(defragmented) and
    V(alarms_disarmed) need C(os:operator) or C(os:admin); the others need C(os:admin). A role that is too weak
    is refused before anything is sent.
  - To take a control plane out for good, run O(state=absent) with O(node) set to it before resetting it;
    if it is already gone, remove its member with O(member_hostname) through another control plane.
extends_documentation_fragment:
  - talos.linux._connection
  - talos.linux._attributes
attributes:
  check_mode:
    support: full
    details: Every state decides from read-only calls and reports what it would do; no changing call is sent.
  diff_mode:
    support: none
seealso:
  - module: talos.linux.talos_etcd_info
    description: Read etcd members, status, alarms, health and quorum, on one node or several.
  - module: talos.linux.talos_facts
  - module: talos.linux.talos_upgrade
"""

EXAMPLES = r"""
- name: Bootstrap etcd on the first control plane (no change once it runs)
  talos.linux.talos_etcd:
    state: bootstrapped
    node: 10.0.0.2

- name: Take a control plane out of etcd before it is reset
  talos.linux.talos_etcd:
    state: absent
    node: 10.0.0.4

- name: Remove the member of a control plane that died, through a healthy one
  talos.linux.talos_etcd:
    state: absent
    member_hostname: talos-cp-3
    node: 10.0.0.2

- name: Hand etcd leadership away before maintenance
  talos.linux.talos_etcd:
    state: leader_forfeited
    node: 10.0.0.2

- name: Back up etcd to a dated, encrypted file on the controller
  talos.linux.talos_etcd:
    state: snapshot
    node: 10.0.0.2
    dest: "backups/etcd-{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}.snapshot"
    passphrase: "{{ etcd_backup_passphrase }}"

- name: Restore etcd from a snapshot after every member was lost
  talos.linux.talos_etcd:
    state: recovered
    node: 10.0.0.2
    src: backups/etcd-20250101T000000Z.snapshot
    passphrase: "{{ etcd_backup_passphrase }}"
    wait_timeout: 900

- name: Defragment each control plane in turn (order the hosts so the leader comes last)
  hosts: controlplane
  serial: 1
  gather_facts: false
  tasks:
    - name: Defragment this node's etcd member when a tenth of its database is free
      talos.linux.talos_etcd:
        state: defragmented
        min_free_ratio: 0.1

- name: Disarm etcd alarms once space is freed
  talos.linux.talos_etcd:
    state: alarms_disarmed
    node: 10.0.0.2
"""

RETURN = r"""
changed:
  description: Whether the state changed etcd (or, in check mode, would have).
  returned: always
  type: bool
state:
  description: The state the task ran.
  returned: always
  type: str
node:
  description: The node the task acted on (null when the endpoint itself answered).
  returned: always
  type: str
leader:
  description: With O(state=defragmented), whether the node's member leads.
  returned: with state defragmented
  type: bool
alarms:
  description: The raised alarms, each with C(member_id), C(hostname) and C(alarm) (C(NOSPACE) or C(CORRUPT)).
  returned: with state alarms_disarmed
  type: list
  elements: dict
disarmed:
  description: The alarms EtcdAlarmDisarm reported disarmed.
  returned: with state alarms_disarmed when alarms were raised (not in check mode)
  type: list
  elements: dict
member_id:
  description: The node's etcd member id (16 hex digits).
  returned: with states bootstrapped, recovered, leader_forfeited and defragmented
  type: str
leader_id:
  description: The leader's member id once the node's member is healthy.
  returned: with states bootstrapped and recovered, when etcd runs
  type: str
attempts:
  description: How many Bootstrap calls were sent (the node may answer "not yet" first).
  returned: with states bootstrapped and recovered, when Bootstrap was sent
  type: int
uploads:
  description: How many EtcdRecover uploads were started (the node may answer "not ready yet" first).
  returned: with state recovered, when the snapshot was uploaded
  type: int
duration:
  description: Seconds the operation took, waiting included.
  returned: with states bootstrapped, recovered and snapshot, when something was sent
  type: float
method:
  description: With O(state=absent), C(leave) (EtcdLeaveCluster on the departing node) or C(remove)
    (EtcdRemoveMemberByID through another control plane).
  returned: with state absent
  type: str
member:
  description: With O(state=absent), the member taken out (C(id), C(hostname), C(node), URLs), or null when
    there was none.
  returned: with state absent
  type: dict
msg:
  description: Why nothing was done, when the reason is worth telling (a member already gone).
  returned: sometimes
  type: str
leader_before:
  description: With O(state=leader_forfeited), the leader's member id before.
  returned: with state leader_forfeited
  type: str
leader_after:
  description: With O(state=leader_forfeited), the leader's member id after (not in check mode).
  returned: with state leader_forfeited, unless check mode changed it
  type: str
db_size_before:
  description: With O(state=defragmented), the member's database size in bytes before.
  returned: with state defragmented
  type: int
db_size_after:
  description: With O(state=defragmented), the member's database size in bytes after.
  returned: with state defragmented
  type: int
db_size_in_use:
  description: With O(state=defragmented), the bytes of the database in use.
  returned: with state defragmented
  type: int
free_ratio:
  description: With O(state=defragmented), the free fraction of the database file before, which decided.
  returned: with state defragmented
  type: float
snapshot:
  description: With O(state=recovered), the snapshot restored, C(size), C(sha256) (of the plaintext snapshot;
    null with recover_skip_hash_check) and C(encrypted).
  returned: with state recovered
  type: dict
dest:
  description: With O(state=snapshot), the absolute path of the snapshot file.
  returned: with state snapshot
  type: str
size:
  description: With O(state=snapshot), the snapshot's size in bytes (of the plaintext, trailer included).
  returned: with state snapshot, not in check mode
  type: int
sha256:
  description: With O(state=snapshot), the SHA-256 of the plaintext snapshot, as C(sha256sum) prints it for an
    unencrypted file.
  returned: with state snapshot, not in check mode
  type: str
encrypted:
  description: With O(state=snapshot), whether O(dest) is encrypted.
  returned: with state snapshot
  type: bool
mode:
  description: With O(state=snapshot), the permissions given to O(dest), in octal.
  returned: with state snapshot
  type: str
  sample: '0600'
expected_size:
  description: With O(state=snapshot) in check mode, the snapshot size the node's status announces (null when
    the role may not read it).
  returned: with state snapshot in check mode
  type: int
nodes_from_context:
  description:
    - The nodes the task acted on when neither O(node) nor O(nodes) was set, taken from the talosconfig
      context's C(nodes); a warning says so too.
  returned: when the nodes came from the talosconfig context
  type: list
  elements: str
  sample: [10.0.0.2, 10.0.0.3]
"""

from ansible_collections.talos.linux.plugins.module_utils._etcd import MUTUALLY_EXCLUSIVE, OPTIONS, talos_etcd
from ansible_collections.talos.linux.plugins.module_utils._module import run_module


def main():
    run_module(talos_etcd, OPTIONS, mutually_exclusive=MUTUALLY_EXCLUSIVE)


if __name__ == "__main__":
    main()
