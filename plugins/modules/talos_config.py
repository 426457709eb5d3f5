#!/usr/bin/python
# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: talos_config
short_description: Apply machine configuration to Talos Linux nodes, idempotently
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Renders the desired machine configuration locally (O(config), then each of O(patches) in order), reads the
    node's current configuration, and applies the configuration only when the two differ after normalisation
    (comments, key order, document order and YAML style do not count). An equal configuration sends nothing.
  - Check mode decides and diffs locally and sends no mutating call, not even a dry-run apply (which would cancel
    a pending C(try) rollback on the node). It predicts the real run from the node's own rule. On Talos 1.13 and
    older a change that cannot apply live (C(machine.env), C(machine.files), ... outside the fields Talos applies
    live) fails in check mode as it would for real with O(mode=no_reboot) or O(mode=try), and is reported as a
    reboot (RV(mode=reboot), RV(rebooted)) with O(mode=auto). The real run refuses such a change before sending.
  - Diff mode shows the configuration before and after with every secret replaced (private keys, tokens,
    encryption secrets; certificates as fingerprints). The same redaction applies to every returned field
    and warning, and the configuration's secrets are masked in all output.
  - The apply mode is always sent explicitly. What each mode does depends on the node's Talos version; see
    O(mode).
options:
  config:
    description:
      - The full machine configuration, as multi-document YAML text (for example from
        C(lookup('template', 'controlplane.yaml.j2'))), a dictionary (one document) or a list of documents.
      - Without O(config), O(patches) apply on top of the node's current configuration, like
        C(talosctl patch machineconfig).
    type: raw
  patches:
    description:
      - Patches applied in order on top of O(config) (or the node's configuration).
      - A list, one item per patch. A string is refused, as Ansible would split it at commas; give a list, even of
        one patch.
      - A strategic-merge patch is a YAML string or a dictionary (or a list of document dictionaries); it
        follows Talos's rules (documents matched by kind and name, maps merged, lists appended except those
        Talos replaces or merges by key; C($patch) set to C(delete) removes).
      - Without O(config) (patching the node's configuration) a list item the patch appends and the list already
        holds, equal in every field, is present and not appended again, so the task converges. With O(config)
        the patches append as Talos does.
      - A JSON Patch (RFC 6902) is a list of operations (C(op), C(path), C(value)); as in Talos, it applies
        only to a configuration that is a single v1alpha1 document. Its operations apply as written.
    type: raw
    default: []
  mode:
    description:
      - C(no_reboot) applies the configuration live. On Talos 1.13 and older the node refuses a change that
        needs a reboot (the task fails, nothing changes; use C(auto) or C(staged)); on 1.14 and newer what
        cannot apply live waits for the next reboot and RV(reboot_required) is null (the node no longer says).
      - C(auto) applies live when possible; on Talos 1.13 and older it B(reboots the node) when the change needs
        it (RV(rebooted)); on 1.14 and newer it never reboots (as C(no_reboot)).
      - C(reboot) applies and reboots (Talos 1.13 and older; refused before sending on 1.14 and newer).
      - C(staged) saves the configuration for the next boot; it is compared with the node's saved
        (persistent) configuration.
      - C(try) applies live and rolls back after O(try_timeout) unless confirmed (see O(confirm_try)).
      - Default is C(no_reboot), or C(auto) with O(insecure) (a node in maintenance mode).
    type: str
    choices: [auto, no_reboot, reboot, staged, try]
  try_timeout:
    description: Seconds after which a configuration applied with O(mode=try) rolls back; greater than 0.
    type: float
    default: 60
  confirm_try:
    description:
      - Keep a configuration applied earlier with O(mode=try), by applying it again in O(mode) (not C(try)).
      - This is the one case where a configuration equal to the active one is sent. Without it, the node
        rolls back when the timer ends. Nothing is sent when no tried configuration is pending.
    type: bool
    default: false
  force:
    description:
      - Apply even when the configuration's C(machine.type) differs from the node's (a worker configuration
        sent to a control plane by mistake is refused before sending otherwise).
    type: bool
    default: false
  wait:
    description:
      - When the node reboots to apply the change (O(mode=auto) or O(mode=reboot) on Talos 1.13 and older), wait
        until it is back up and ready, so the next task can reach it.
      - The node's event stream is followed (with polling as the fallback), as M(talos.linux.talos_upgrade) does.
      - Not done with O(insecure); a node leaving maintenance mode comes back asking for a client certificate.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for a rebooting node (see O(wait)), greater than 0; the task fails naming the node's last
        stage, with C(changed=true) since the configuration was applied.
    type: float
    default: 600
notes:
  - Needs the C(os:admin) role (reading the configuration is admin-only).
  - Once the configuration may have reached the node, the task never reports C(changed=false). An apply whose
    answer is lost (the connection cut in flight, a deadline) fails with C(changed=true) and the message "the
    node may have applied the configuration; rerun to compare" (a rerun compares and sends only what is
    missing). A node that rebooted to apply and did not come back within O(wait_timeout) fails the same way.
  - With O(insecure) the node is expected in maintenance mode (no configuration yet). A node that asks for a
    client certificate is configured already, and if the talosconfig (or O(ca), O(crt), O(key)) is available
    it is compared and updated like any other node, so the task stays idempotent.
  - Patches are applied as Talos applies them, with one difference on purpose. Deleting (C($patch) set to
    C(delete)) something that is already absent does nothing, where C(talosctl) fails with C(lookup failed),
    so a patch given on every run stays idempotent.
  - One patch may name the same document more than once; its documents are merged one after the other, so a
    patch can delete a document and give its replacement.
  - A JSON Patch sees the configuration as Talos encodes it, with the fields Talos always writes (for example
    C(machine.certSANs), so C(add /machine/certSANs/-) works on a configuration that does not spell it).
  - Configurations are compared as Talos loads them, so leading newlines and tabs in
    C(cluster.inlineManifests[].contents), which Talos trims, make no difference.
extends_documentation_fragment:
  - talos.linux._connection
  - talos.linux._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
seealso:
  - module: talos.linux.talos_facts
"""

EXAMPLES = r"""
- name: Apply a templated configuration to each node
  talos.linux.talos_config:
    config: "{{ lookup('ansible.builtin.template', talos_machine_type ~ '.yaml.j2') }}"

- name: Patch every node's current configuration
  talos.linux.talos_config:
    patches:
      - machine:
          sysctls:
            net.core.somaxconn: "65535"
          nodeLabels:
            example.com/rack: r1

- name: A JSON Patch on a single-document configuration
  talos.linux.talos_config:
    config: "{{ lookup('ansible.builtin.file', 'worker.yaml') }}"
    patches:
      - - op: replace
          path: /machine/install/disk
          value: /dev/nvme0n1

- name: Try a risky change, then keep it once the node is still reachable
  block:
    - name: Try
      talos.linux.talos_config:
        patches: ["{{ lookup('ansible.builtin.file', 'network.patch.yaml') }}"]
        mode: try
        try_timeout: 120
    - name: Still reachable?
      talos.linux.talos_facts:
        gather_subset: [min]
    - name: Confirm
      talos.linux.talos_config:
        patches: ["{{ lookup('ansible.builtin.file', 'network.patch.yaml') }}"]
        confirm_try: true

- name: First configuration of a node in maintenance mode
  talos.linux.talos_config:
    node: 192.168.1.50
    endpoints: [192.168.1.50]
    insecure: true
    config: "{{ lookup('ansible.builtin.file', 'controlplane.yaml') }}"
"""

RETURN = r"""
changed:
  description: Whether the configuration was (or in check mode would be) applied.
  returned: always
  type: bool
mode:
  description:
    - The mode the node actually used (C(auto) resolves to C(no_reboot) or C(reboot)); in check mode, the mode
      it would use.
  returned: when the task targets one node
  type: str
  sample: no_reboot
mode_details:
  description: The node's own words about the apply, redacted.
  returned: when a configuration was sent
  type: str
  sample: Applied configuration without a reboot
reboot_required:
  description:
    - Whether the change waits for a reboot; null when the node does not say (Talos 1.14 and newer).
  returned: when the task targets one node
  type: bool
rebooted:
  description:
    - Whether the node rebooted to apply the change (C(auto) or C(reboot) on Talos 1.13 and older); in check
      mode, whether it would.
  returned: when a configuration was sent, or would be in check mode
  type: bool
boot_id_before:
  description: The node's boot ID before the reboot (O(wait) and the node rebooted).
  returned: when the node rebooted and the task waited
  type: str
boot_id_after:
  description: The node's boot ID once it was back; differs from RV(boot_id_before).
  returned: when the node rebooted and the task waited
  type: str
try_rollback_at:
  description: When a configuration applied with C(mode=try) rolls back unless confirmed (UTC, ISO 8601).
  returned: when applied with mode try
  type: str
  sample: "2026-11-29T21:30:00+00:00"
confirmed_try:
  description: Whether this task confirmed a tried configuration (O(confirm_try)).
  returned: when a configuration was sent
  type: bool
config_sha256:
  description: SHA-256 of the normalised desired configuration, independent of redaction and formatting.
  returned: when the task targets one node
  type: str
  sample: 3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
version:
  description: The Talos version of the node.
  returned: when the task targets one node
  type: str
  sample: v1.13.5
node:
  description: The node the configuration was applied to.
  returned: when the task targets one node
  type: str
  sample: 10.0.0.2
diff:
  description: The configuration before and after, with secrets redacted.
  returned: in diff mode
  type: dict
nodes:
  description: The result of each node, as above, when the task targets several nodes.
  returned: when the task targets several nodes
  type: dict
failed_nodes:
  description:
    - The nodes where applying failed, with C(msg) and C(code); C(changed) is true for a node that may have
      applied the configuration before the failure.
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

from ansible_collections.talos.linux.plugins.module_utils._apply_config import OPTIONS, REQUIRED_ONE_OF, talos_config
from ansible_collections.talos.linux.plugins.module_utils._module import run_module


def main():
    run_module(talos_config, OPTIONS, required_one_of=REQUIRED_ONE_OF)


if __name__ == "__main__":
    main()
