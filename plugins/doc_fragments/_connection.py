# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Private to the talos.linux collection: it may change in any release.

from __future__ import annotations


class ModuleDocFragment:
    # The connection options of every talos.linux module (plugins/module_utils/_options.py).
    DOCUMENTATION = r"""
options:
  talosconfig:
    description:
      - Path of the talosconfig file, as written by C(talosctl gen config) or C(talosctl config new).
      - If not set, the host variable C(talos_config_path) (set by the P(talos.linux.talosconfig#inventory) inventory)
        is used, then the environment variable E(TALOSCONFIG), then E(TALOS_HOME)C(/config), then
        C(~/.talos/config), as C(talosctl) does. A missing file is an error; it is never created.
      - A talosconfig the task names is used whole; the host variables C(talos_context) and C(talos_endpoints),
        and E(TALOS_CONTEXT) and E(TALOS_ENDPOINTS), which belong to another talosconfig, are then not used.
        See the precedence in the notes.
    type: path
  context:
    description:
      - The talosconfig context to use. Default is the file's current context.
      - If not set, the host variable C(talos_context) is used, then the environment variable
        E(TALOS_CONTEXT); neither when the task names O(talosconfig).
      - A context the task names brings its own endpoints; C(talos_endpoints) and E(TALOS_ENDPOINTS) are then
        not used.
    type: str
  endpoints:
    description:
      - API endpoints to connect to, overriding the context's; control-plane nodes, because workers do not
        forward calls to other nodes.
      - Each is C(host), C(host:port), C([ipv6]:port) or a URL such as C(https://host:port). Without a port,
        50000 is used, and 443 for an C(https://) URL, as C(talosctl) does. A value that is none of these is
        an error naming it, before anything is sent.
      - If not set, the host variable C(talos_endpoints), then the environment variable E(TALOS_ENDPOINTS)
        (comma-separated), then the context's endpoints are used; the first two only when the task names
        neither O(talosconfig) nor O(context).
    type: list
    elements: str
  node:
    description:
      - The node the task acts on (its address, sent as C(node) metadata with every call).
      - If neither O(node) nor O(nodes) is set, the host variable C(talos_node) that the inventory sets is
        used, then the environment variable E(TALOS_NODE), then the context's C(nodes); with none of them,
        the endpoint itself answers.
      - An empty or blank value (an empty templated variable) is an error, never a fall back to the
        context's nodes; leave the option out for that (C(default(omit, true)) for a variable that may be empty).
      - Mutually exclusive with O(nodes). The host variable and E(TALOS_NODE) never fill it next to O(nodes).
    type: str
  nodes:
    description:
      - Several nodes for one task. The calls go to all of them concurrently from one process, typically
        with C(run_once). The result then holds one entry per node.
      - An empty list, or an empty item, is an error.
      - Mutually exclusive with O(node).
    type: list
    elements: str
  ca:
    description:
      - The cluster's CA certificate, overriding the context's; PEM text, base64 of it, or a file path.
    type: str
  crt:
    description:
      - The client certificate, overriding the context's; PEM text, base64 of it, or a file path. Its
        Organization values are the Talos roles it grants.
    type: str
  key:
    description:
      - The client certificate's private key, overriding the context's; PEM text (the Talos
        C(ED25519 PRIVATE KEY) label is accepted), base64 of it, or a file path.
      - Key material is kept in memory; it touches disk only as a 0600 temporary file removed right after
        loading, and is masked in every result.
    type: str
  server_name:
    description:
      - The name to verify the nodes' certificates against, when connecting through an address (a VIP,
        a load balancer) that is not in their certificate's SANs; it must be in C(machine.certSANs).
    type: str
  insecure:
    description:
      - Connect without a client certificate and without verifying the node, for a node in maintenance mode
        (not yet configured). Never use it for a configured node.
    type: bool
    default: false
  timeout:
    description:
      - Deadline in seconds for each call to a node, retries included.
      - A finite number greater than 0; anything else is refused before anything is sent.
    type: float
    default: 30
requirements:
  - grpclib
  - protobuf >= 5.29.0
  - cryptography
  - PyYAML
notes:
  - The modules run on the Ansible controller (or on the host the task is delegated to) and talk to the
    nodes over the Talos API with mutual TLS; Talos nodes need no SSH and no Python.
  - A task whose connection is local or P(talos.linux.controller#connection) runs in the controller's worker process
    (the action plugin); with C(async) or C(delegate_to) another host it runs as a module on that host.
  - "Precedence of the connection options: each comes from the first of the task (C(module_defaults)
    included), the host's C(talos_*) variables, the environment variables, the talosconfig context. A lower
    source never adds what the task did not write: it never fills O(node) next to O(nodes), and endpoints and
    context from a lower source are used only with the talosconfig of the same source. For example, a task
    on a host of the P(talos.linux.talosconfig#inventory) inventory that names O(talosconfig) uses that file's
    context and endpoints, not the host's C(talos_context) and C(talos_endpoints) (which came from the
    inventory's talosconfig); one that names O(context) uses that context's endpoints."
  - "Which nodes: O(nodes), else O(node), else the talosconfig context's C(nodes). The context's nodes are
    used only when neither option is set by the task, a host variable or an environment variable; a module
    that changes nodes then says so in its result, with the key C(nodes_from_context) (the nodes) and a
    warning."
  - "Reading several nodes (the read-only modules M(talos.linux.talos_facts) and M(talos.linux.talos_etcd_info)):
    a node that cannot be read is named in C(failed_nodes) with a warning and the task succeeds; it fails
    when no node could be read, or when any node could not be read with C(strict: true). An etcd read
    over the context's nodes (no O(node) or O(nodes)) reads the control planes among them only, as etcd runs
    there; M(talos.linux.talos_facts) reports C(talos_etcd) as null for workers."
"""
