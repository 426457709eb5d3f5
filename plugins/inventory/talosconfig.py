# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: talosconfig
short_description: Talos Linux nodes from a talosconfig, discovered from the cluster
version_added: 0.1.0
author: talos.linux maintainers (@talos-linux-ansible)
description:
  - Builds an inventory of Talos Linux nodes from a talosconfig file, the file C(talosctl) uses.
  - With O(discover=true) (the default) the plugin asks the cluster for its members (COSI resource
    C(Members.cluster.talos.dev) in namespace C(cluster), through the context's endpoints) and adds one host per
    member, named by its hostname, with its machine type and Talos version. Nodes the context lists under
    C(nodes) that are not members are added too, named by their address.
  - With O(discover=false), or when discovery fails, the hosts are the nodes the context lists under C(nodes),
    or its endpoints when it lists none, each named by its address. A failed discovery gives one warning that
    names the context and the reason; with O(strict=true) it fails instead.
  - Every host runs its tasks on the controller through the P(talos.linux.controller#connection) connection
    with the controller's Python, and C(gather_facts) runs M(talos.linux.talos_facts). No key, certificate or
    CA from the talosconfig ever becomes a host variable; modules read them from the talosconfig itself.
  - Discovery runs once, in the controller's main process, before Ansible starts its workers.
  - The configuration file must end in C(talos.yml) or C(talos.yaml), for example C(cluster.talos.yml).
requirements:
  - grpclib, protobuf, cryptography and PyYAML on the controller (see the collection's requirements.txt)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: The name of this plugin; always C(talos.linux.talosconfig).
    type: str
    required: true
    choices: [talos.linux.talosconfig]
  talosconfig:
    description:
      - The talosconfig file.
      - A relative path is relative to the directory of this inventory file.
      - When unset, the file C(talosctl) would use is taken, in this order, E(TALOSCONFIG),
        E(TALOS_HOME)C(/config) (when E(TALOS_HOME) is absolute), C(~/.talos/config). A missing file is
        an error and is never created.
    type: path
    env:
      - name: TALOSCONFIG
  context:
    description:
      - The talosconfig context (or contexts) whose nodes the inventory lists.
      - When unset, the file's current context (its C(context) key).
      - C(all) lists every context of the file. Hosts of different contexts that would get the same name (two
        clusters with the same hostnames, or one cluster under two contexts) keep the plain name in the first
        context (the current one first, then the others by name) and are named C(<name>@<context>) in the others,
        with a warning.
    type: list
    elements: str
  discover:
    description:
      - Ask the cluster for its members through the context's endpoints (read-only; the C(os:reader) role is
        enough).
      - When false, the inventory lists the context's C(nodes), or its endpoints, and nothing is sent to the
        cluster.
      - An expired client certificate fails the inventory when true and only warns when false.
    type: bool
    default: true
  timeout:
    description:
      - Seconds one context's discovery may take, retries included, before the inventory falls back to the
        listed nodes (or fails, with O(strict=true)).
    type: float
    default: 10.0
notes:
  - Host variables set for every host are C(ansible_host) and C(talos_node) (the node's address),
    C(talos_endpoints) (a list of C(host:port)), C(talos_context), C(talos_config_path), C(ansible_connection)
    (C(talos.linux.controller)), C(ansible_python_interpreter) (C({{ ansible_playbook_python }})) and
    C(ansible_facts_modules) (C([talos.linux.talos_facts])). Discovered hosts also get C(talos_machine_type),
    C(talos_version) (for example C(1.13.5), without the leading C(v)) and C(talos_addresses).
  - Groups are C(talos) (every host), C(talos_<context>) (the context name with every character other than
    letters, digits and C(_) replaced by C(_)), and for discovered hosts C(controlplane) and C(worker), plus
    the groups from O(groups) and O(keyed_groups).
  - O(compose), O(groups) and O(keyed_groups) are applied in that order. O(strict=true) turns both their template
    errors and a failed discovery into errors.
  - With O(cache=true) the discovered members are cached per talosconfig file and context; the talosconfig
    itself is read on every run. A discovery that failed is never cached. C(ansible-inventory --flush-cache)
    discovers again.
  - Worker nodes cannot forward calls to other nodes. Discovery through a worker endpoint works (the worker
    answers for itself), but the plugin warns, because tasks for the other nodes would be refused.
seealso:
  - name: Talos configuration file (talosconfig)
    description: Where talosctl looks for the talosconfig and what a context holds.
    link: https://www.talos.dev/latest/talos-guides/configuration/managing-pki/
"""

EXAMPLES = r"""
# cluster.talos.yml: the current context of ~/.talos/config (or $TALOSCONFIG), discovered from the cluster
plugin: talos.linux.talosconfig
---
# prod.talos.yml: one named context of a talosconfig next to this file, without asking the cluster
plugin: talos.linux.talosconfig
talosconfig: ./talosconfig
context: prod
discover: false
---
# all.talos.yml: every context, groups by Talos version, a variable composed from the machine type,
# and the discovered members cached for an hour
plugin: talos.linux.talosconfig
context: all
strict: true
compose:
  talos_is_control_plane: talos_machine_type == 'controlplane'
groups:
  prod: talos_context == 'prod'
keyed_groups:
  - prefix: talos_version
    key: talos_version | default('unknown') | replace('.', '_')
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 3600
"""

import os
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError
from ansible_collections.talos.linux.plugins.module_utils._task import preload_for_workers
from ansible_collections.talos.linux.plugins.module_utils._talosconfig import (
    find_talosconfig,
    load_settings,
    read_talosconfig,
)

try:  # ansible-core 2.19+: a string from an inventory plugin is templated only when trusted
    from ansible.template import trust_as_template
except ImportError:  # older cores template every inventory string
    def trust_as_template(value):
        return value

try:
    from ansible.utils.unsafe_proxy import wrap_var as make_unsafe
except ImportError:  # a core without unsafe_proxy never templates untrusted inventory data
    def make_unsafe(value):
        return value

MEMBERS = {"namespace": "cluster", "type": "Members.cluster.talos.dev"}
CONNECTION = "talos.linux.controller"
FACTS_MODULES = ["talos.linux.talos_facts"]
MACHINE_TYPE_GROUPS = {"controlplane": "controlplane", "init": "controlplane", "worker": "worker"}
_VERSION = re.compile(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)")
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class _DiscoveryFailed(Exception):
    """The cluster could not be asked, or gave nothing to list; the reason is a whole sentence."""


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """Hosts from a talosconfig's contexts, their members discovered through the Talos API."""

    NAME = "talos.linux.talosconfig"

    def __init__(self):
        super().__init__()
        self._owners = {}  # host name -> (context, node) that holds it, across the contexts of one parse

    def verify_file(self, path):
        name = os.path.basename(path)
        return super().verify_file(path) and (name in ("talos.yml", "talos.yaml")
                                              or name.endswith((".talos.yml", ".talos.yaml")))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        config = self._read_config_data(path)
        config_path = self._talosconfig_path(config, path)
        try:
            data = read_talosconfig(config_path)
            contexts = self._contexts(data, config_path)
            settings = {name: load_settings(talosconfig=str(config_path), context=name) for name in contexts}
        except TalosError as exc:
            raise AnsibleParserError(str(exc)) from None

        discover = self.get_option("discover")
        try:
            for context in contexts:
                self._check_certificate(settings[context], fatal=discover)
            members = self._members(settings, str(config_path), cache) if discover else {}
        except ImportError as exc:
            raise AnsibleParserError(f"The talos.linux.talosconfig inventory needs the Python packages of the "
                                     f"collection's requirements.txt on the controller: {exc}.") from None

        self._owners = {}
        for context in contexts:
            self._populate(settings[context], str(config_path), members.get(context))
        try:
            preload_for_workers()
        except ImportError:  # reported by the first task, which needs them on the host it runs on
            pass

    # --- the talosconfig ------------------------------------------------------------------------------

    def _talosconfig_path(self, config, inventory_path):
        """The option, with a path written in the inventory file taken relative to that file."""
        written = config.get("talosconfig")
        if written and not os.path.isabs(os.path.expanduser(str(written))):
            base = os.path.dirname(os.path.abspath(inventory_path))
            return find_talosconfig(os.path.normpath(os.path.join(base, os.path.expanduser(str(written)))))
        return find_talosconfig(self.get_option("talosconfig")).absolute()

    def _contexts(self, data, config_path):
        """The chosen context names: the option, the current context, or every one (the current first)."""
        chosen = [str(name) for name in self.get_option("context") or []]
        current = data.get("context")
        if chosen == ["all"]:
            if not data["contexts"]:
                raise AnsibleParserError(f"The talosconfig {config_path} has no contexts.")
            names = sorted(str(name) for name in data["contexts"])
            return sorted(names, key=lambda name: name != current)
        if "all" in chosen:
            raise AnsibleParserError("context: 'all' cannot be combined with context names.")
        # load_settings names the current context when none is chosen, and says which contexts exist
        return list(dict.fromkeys(chosen)) or [current]

    def _check_certificate(self, settings, fatal):
        """Discovery cannot work with an expired certificate; without discovery, the tasks would fail later."""
        from ansible_collections.talos.linux.plugins.module_utils._tls import inspect_client_certificate

        try:
            certificate = inspect_client_certificate(settings.crt_pem)
        except TalosError as exc:
            raise AnsibleParserError(f"Context {settings.context!r} of {settings.path}: {exc}") from None
        if certificate.expired:
            message = (f"The client certificate of context {settings.context!r} in {settings.path} expired on "
                       f"{certificate.not_after:%Y-%m-%d %H:%M:%S} UTC.")
            hint = "Generate a new talosconfig (talosctl config new, or from the cluster secrets) and use it."
            if fatal:
                raise AnsibleParserError(f"{message} Discovery needs a valid certificate. {hint}")
            self.display.warning(f"{message} Tasks on its nodes will fail. {hint}")

    # --- discovery ------------------------------------------------------------------------------------

    def _members(self, settings, config_path, cache):
        """Members per context: from the cache when allowed, else from the cluster; a failure falls back."""
        use_cache = self.get_option("cache")
        found, keys = {}, {}
        for context in settings:
            keys[context] = self.get_cache_key(f"{config_path}#{context}")
            if use_cache and cache:
                try:
                    found[context] = self._cache[keys[context]]
                except KeyError:
                    pass
        missing = [context for context in settings if context not in found]
        for context, result in self._discover({c: settings[c] for c in missing}).items():
            if isinstance(result, _DiscoveryFailed):
                self._discovery_failed(settings[context], result)
                continue
            found[context] = result
            if use_cache:
                self._cache[keys[context]] = result
        return found

    def _discover(self, settings):
        """{context: members or _DiscoveryFailed}, every context at once, in one event loop that ends here.

        The loop is closed (and its channels with it) before returning, so the forked workers inherit no
        loop, socket or thread.
        """
        if not settings:
            return {}
        import asyncio

        from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient

        timeout = self.get_option("timeout")
        try:
            clients = {context: TalosClient(value, timeout=timeout) for context, value in settings.items()}
        except TalosError as exc:  # the CA or the key cannot be loaded: a broken talosconfig, not a down cluster
            raise AnsibleParserError(str(exc)) from None

        async def discover_one(client):
            try:
                return await _discover_members(client, timeout)
            except _DiscoveryFailed as exc:  # one context's failure must not cancel the others
                return exc

        async def discover_all():
            try:
                results = await asyncio.gather(*(discover_one(client) for client in clients.values()))
            finally:
                await asyncio.gather(*(client.aclose() for client in clients.values()))
            return dict(zip(clients, results))

        return asyncio.run(discover_all())

    def _discovery_failed(self, settings, failure):
        message = f"Discovery of the members of context {settings.context!r} ({settings.path}) failed: {failure}"
        if self.get_option("strict"):
            raise AnsibleParserError(message)
        self.display.warning(f"{message} Listing the nodes of the talosconfig context instead.")

    # --- hosts and groups -----------------------------------------------------------------------------

    def _populate(self, settings, config_path, members):
        context = settings.context
        common = {
            **make_unsafe({"talos_endpoints": [str(endpoint) for endpoint in settings.endpoints],
                           "talos_context": context, "talos_config_path": config_path}),
            "ansible_connection": CONNECTION,
            "ansible_python_interpreter": trust_as_template("{{ ansible_playbook_python }}"),
            "ansible_facts_modules": list(FACTS_MODULES),
        }
        context_group = self.inventory.add_group("talos_" + _GROUP_UNSAFE.sub("_", context))
        self.inventory.add_group("talos")
        renamed = []
        for name, host_vars, machine_group in _hosts(settings, members):
            host = self._claim(name, context, host_vars["talos_node"])
            if host != name:
                renamed.append(name)
            self.inventory.add_host(host, group="talos")
            self.inventory.add_host(host, group=context_group)
            if machine_group:
                self.inventory.add_host(host, group=self.inventory.add_group(machine_group))
            variables = {**common, **make_unsafe(host_vars)}
            for key, value in variables.items():
                self.inventory.set_variable(host, key, value)
            self._construct(host, variables)
        if renamed:
            self.display.warning(
                f"The host names {', '.join(renamed)} of context {context!r} are taken by other hosts (another "
                f"context lists the same names); these hosts are named <name>@{context}.")
        if members:
            self._warn_worker_endpoints(settings, members)

    def _claim(self, name, context, node):
        """A host name no other context or node uses: the plain name first, else name@context, else the node."""
        for candidate in (name, f"{name}@{context}", f"{node}@{context}"):
            owner = self._owners.setdefault(candidate, (context, node))
            if owner == (context, node):
                return candidate
        raise AnsibleParserError(f"Cannot name the node {node} of context {context!r}: {name}, {name}@{context} and "
                                 f"{node}@{context} are all taken by other hosts.")

    def _construct(self, host, variables):
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)

    def _warn_worker_endpoints(self, settings, members):
        workers = {address for member in members if member.get("machineType") == "worker"
                   for address in [*member.get("addresses", []), member.get("hostname")]}
        hosts = [endpoint.host for endpoint in settings.endpoints]
        if hosts and all(host in workers for host in hosts):
            self.display.warning(
                f"The endpoints of context {settings.context!r} ({', '.join(hosts)}) are worker nodes, which cannot "
                "forward calls to other nodes: tasks on the other nodes will be refused with 'no request "
                "forwarding'. List control-plane nodes as endpoints (talosctl config endpoint ...).")


async def _discover_members(client, timeout):
    """The cluster's members as plain data (what the cache keeps); _DiscoveryFailed says why there are none.

    The endpoint answers for itself (no node metadata): every node holds the same member list, so any endpoint
    that is up will do, a worker endpoint included, and the client fails over between them.
    """
    import asyncio

    from ansible_collections.talos.linux.plugins.module_utils._cosi import list_resources, yaml_spec

    try:
        # the client keeps its own deadline; this one also bounds a connection that never completes
        resources = await asyncio.wait_for(list_resources(client, None, MEMBERS["namespace"], MEMBERS["type"]),
                                           timeout + 1)
    except TalosError as exc:
        raise _DiscoveryFailed(str(exc)) from None
    except asyncio.TimeoutError:
        raise _DiscoveryFailed(f"the cluster did not answer within {timeout:g} s.") from None
    members = [_member(yaml_spec(resource), resource.metadata.id) for resource in resources]
    members = [member for member in members if member["addresses"]]
    if not members:
        raise _DiscoveryFailed("the cluster lists no members (cluster discovery may be disabled in its machine "
                               "configuration, cluster.discovery.enabled).")
    return members


def _member(spec, resource_id):
    """The fields the inventory uses, as plain strings and lists (never anything secret)."""
    spec = spec if isinstance(spec, dict) else {}
    return {
        "hostname": str(spec.get("hostname") or resource_id),
        "addresses": [str(address) for address in spec.get("addresses") or []],
        "machineType": str(spec.get("machineType") or ""),
        "operatingSystem": str(spec.get("operatingSystem") or ""),
    }


def _hosts(settings, members):
    """(name, host vars, machine-type group) for each host of one context."""
    listed = list(dict.fromkeys(settings.nodes))
    if members is None:
        seeds = listed or list(dict.fromkeys(endpoint.host for endpoint in settings.endpoints))
        return [(node, {"ansible_host": node, "talos_node": node}, None) for node in seeds]

    preferred = set(listed) | {endpoint.host for endpoint in settings.endpoints}
    hosts, matched = [], set()
    for member in members:
        addresses = member["addresses"]
        # the address the user already reaches the node by wins over the first one the node lists
        address = next((a for a in addresses if a in preferred), addresses[0])
        matched.update(addresses)
        matched.add(member["hostname"])
        host_vars = {"ansible_host": address, "talos_node": address, "talos_addresses": addresses,
                     "talos_machine_type": member["machineType"]}
        version = _VERSION.search(member["operatingSystem"])
        if version:
            host_vars["talos_version"] = version.group(1)
        hosts.append((member["hostname"], host_vars, MACHINE_TYPE_GROUPS.get(member["machineType"])))
    hosts.extend((node, {"ansible_host": node, "talos_node": node}, None) for node in listed if node not in matched)
    return hosts
