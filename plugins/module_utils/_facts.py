# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The talos_facts core: read what a node is and how it is doing, changing nothing.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
Each subset reads only its own RPCs, concurrently within a node; nodes are read concurrently by fan-out.
"""

from __future__ import annotations

import asyncio

from ._cosi import get_resource, list_resources, yaml_spec
from ._errors import TalosError
from ._multi_node import failed_entries, read_verdict

# The module's own options (the connection options are added by the doors).
OPTIONS = {
    "gather_subset": {"type": "list", "elements": "str", "default": ["all"]},
    "strict": {"type": "bool", "default": False},
}
MIN = "min"
SUBSETS = ("boot", "network", "hardware", "services", "extensions", "etcd")
ADMIN = "os:admin"


def choose_subsets(requested):
    """setup-style gather_subset: 'all', names, '!name', '!all'; 'min' is always read."""
    chosen, excluded, only_exclusions = set(), set(), True
    for item in requested or ["all"]:
        name = str(item).strip()
        negate = name.startswith("!")
        name = name[1:] if negate else name
        if name not in SUBSETS + ("all", MIN):
            raise TalosError(f"gather_subset: unknown subset {name!r}.", code="InvalidOption",
                             hint="Choose from all, min, " + ", ".join(SUBSETS) + ", each optionally with '!'.")
        names = set(SUBSETS) if name == "all" else ({name} - {MIN})
        if negate:
            excluded |= names
        else:
            only_exclusions = False
            chosen |= names
    if only_exclusions:
        chosen = set(SUBSETS)
    return sorted(chosen - excluded)


async def talos_facts(params, client, *, check_mode, diff, mask):  # pylint: disable=unused-argument
    """The core behind talos.linux.talos_facts: facts of one node, or of many nodes at once."""
    subsets = choose_subsets(params.get("gather_subset"))
    nodes = client.settings.nodes or [None]
    if len(nodes) == 1:
        facts, warnings = await node_facts(client, nodes[0], subsets)
        return {"changed": False, "ansible_facts": facts, "gathered_subsets": [MIN] + subsets,
                "warnings": warnings}

    results = await client.fan_out(nodes, lambda node: node_facts(client, node, subsets))
    gathered = {r.node: r.value[0] for r in results if r.ok}
    failed = failed_entries(results)
    verdict = read_verdict(gathered, failed, could_not="Could not gather facts from", strict=params.get("strict"))
    warnings = sorted({w for r in results if r.ok for w in r.value[1]}) + verdict.pop("warnings", [])
    return {"changed": False, "nodes": gathered, "failed_nodes": failed, "gathered_subsets": [MIN] + subsets,
            "warnings": warnings, **verdict}


talos_facts.read_only = True


async def node_facts(client, node, subsets):
    """(facts, warnings) of one node: 'min' first (the machine type decides the etcd subset), then the rest."""
    facts, warnings = await _minimum(client, node), []
    readers = {"boot": _boot, "network": _network, "hardware": _hardware, "services": _services,
               "extensions": _extensions, "etcd": _etcd}
    parts = await asyncio.gather(*(_permitted(name, readers[name](client, node, facts, warnings), warnings)
                                   for name in subsets))
    for part in parts:
        facts.update(part)
    return facts, warnings


async def _permitted(subset, reading, warnings):
    """A subset the certificate's roles may not read is skipped with a warning, never a failure."""
    try:
        return await reading
    except TalosError as exc:
        if exc.code != "PermissionDenied":
            raise
        warnings.append(f"The {subset} facts were not gathered: {exc}")
        return {}


async def _minimum(client, node):
    version, hostname, machine_type, status = await asyncio.gather(
        client.version(node),
        client.call("Hostname", node=node),
        get_resource(client, node, "config", "MachineTypes.config.talos.dev", "machine-type"),
        get_resource(client, node, "runtime", "MachineStatuses.runtime.talos.dev", "machine"))
    machine_status = yaml_spec(status) or {}
    certificate = client.certificate
    return {
        "talos_node": node,
        # the same plain form as the inventory's talos_version, so `is version('1.13', '>=')` works
        "talos_version": version.version.tag.lstrip("v"),
        "talos_version_info": {"tag": version.version.tag, "sha": version.version.sha,
                               "arch": version.version.arch, "go_version": version.version.go_version,
                               "built": version.version.built, "os": version.version.os},
        "talos_platform": {"name": version.platform.name, "mode": version.platform.mode},
        "talos_features": {"rbac": version.features.rbac},
        "talos_hostname": hostname.messages[0].hostname,
        "talos_machine_type": yaml_spec(machine_type),
        "talos_stage": machine_status.get("stage"),
        "talos_ready": bool((machine_status.get("status") or {}).get("ready")),
        "talos_unmet_conditions": [c.get("name") for c in (machine_status.get("status") or {}).get("unmetConditions")
                                   or []],
        "talos_client_certificate": {
            "roles": list(certificate.roles), "not_after": certificate.not_after.isoformat(),
        } if certificate else None,
    }


async def _boot(client, node, facts, warnings):
    if ADMIN not in client.roles:
        warnings.append("talos_boot_id was not gathered: reading it needs the os:admin role, and the client "
                        f"certificate has {', '.join(client.roles) or 'no role'}.")
        return {}
    chunks = [chunk.bytes async for chunk in client.stream("Read", {"path": "/proc/sys/kernel/random/boot_id"},
                                                           node=node)]
    return {"talos_boot_id": b"".join(chunks).decode().strip()}


async def _network(client, node, facts, warnings):
    addresses, links, routes, resolvers, node_addresses = await asyncio.gather(
        list_resources(client, node, "network", "AddressStatuses.net.talos.dev"),
        list_resources(client, node, "network", "LinkStatuses.net.talos.dev"),
        list_resources(client, node, "network", "RouteStatuses.net.talos.dev"),
        get_resource(client, node, "network", "ResolverStatuses.net.talos.dev", "resolvers"),
        get_resource(client, node, "network", "NodeAddresses.net.talos.dev", "current"))
    return {
        # plain addresses like the inventory's talos_addresses; with prefixes in talos_interface_addresses
        "talos_addresses": [a.split("/")[0] for a in (yaml_spec(node_addresses) or {}).get("addresses", [])],
        "talos_interface_addresses": [_pick(yaml_spec(r), address="address", link="linkName", family="family",
                                            scope="scope") for r in addresses],
        "talos_links": [{"name": r.metadata.id,
                         **_pick(yaml_spec(r), type="type", mac="hardwareAddr", mtu="mtu", state="operationalState",
                                 kind="kind", driver="driver")} for r in links],
        "talos_routes": [_pick(yaml_spec(r), destination="dst", gateway="gateway", link="outLinkName",
                               table="table", priority="priority", family="family") for r in routes],
        "talos_resolvers": (yaml_spec(resolvers) or {}).get("dnsServers", []),
    }


async def _hardware(client, node, facts, warnings):
    disks, memory, cpus = await asyncio.gather(client.call("StorageService/Disks", node=node),
                                               client.call("Memory", node=node),
                                               client.call("CPUInfo", node=node))
    info = memory.messages[0].meminfo
    processors = list(cpus.messages[0].cpu_info) if cpus.messages else []
    return {
        "talos_disks": [{"device": d.device_name, "size": d.size, "model": d.model, "serial": d.serial,
                         "wwid": d.wwid, "type": type(d).DiskType.Name(d.type), "system_disk": d.system_disk,
                         "readonly": d.readonly} for d in disks.messages[0].disks] if disks.messages else [],
        # /proc/meminfo counts kibibytes; the facts say bytes, as their names do
        "talos_memory": {"total_bytes": info.memtotal * 1024, "free_bytes": info.memfree * 1024,
                         "available_bytes": info.memavailable * 1024},
        "talos_processor": {"count": len(processors),
                            "model": processors[0].model_name if processors else None,
                            "mhz": processors[0].cpu_mhz if processors else None},
    }


async def _services(client, node, facts, warnings):
    reply = await client.call("ServiceList", node=node)
    return {"talos_services": [
        {"id": s.id, "state": s.state, "healthy": s.health.healthy, "health_unknown": s.health.unknown,
         "last_message": s.health.last_message} for s in reply.messages[0].services] if reply.messages else []}


async def _extensions(client, node, facts, warnings):
    resources = await list_resources(client, node, "runtime", "ExtensionStatuses.runtime.talos.dev")
    extensions = []
    for resource in resources:
        metadata = (yaml_spec(resource) or {}).get("metadata") or {}
        extensions.append({"name": metadata.get("name", resource.metadata.id), "version": metadata.get("version"),
                           "description": metadata.get("description")})
    return {"talos_extensions": extensions}


async def _etcd(client, node, facts, warnings):
    if facts.get("talos_machine_type") not in ("controlplane", "init"):
        return {"talos_etcd": None}  # workers run no etcd member
    members, status = await asyncio.gather(client.call("EtcdMemberList", {"query_local": True}, node=node),
                                           client.call("EtcdStatus", node=node))
    member_status = status.messages[0].member_status
    member_list = members.messages[0].members if members.messages else []
    return {"talos_etcd": {
        "member_id": f"{member_status.member_id:016x}",
        "leader_id": f"{member_status.leader:016x}",
        "is_leader": member_status.member_id == member_status.leader,
        "is_learner": member_status.is_learner,
        "db_size": member_status.db_size,
        "db_size_in_use": member_status.db_size_in_use,
        "raft_index": member_status.raft_index,
        "raft_term": member_status.raft_term,
        "protocol_version": member_status.protocol_version,
        "errors": list(member_status.errors),
        "members": [{"id": f"{m.id:016x}", "hostname": m.hostname, "peer_urls": list(m.peer_urls),
                     "client_urls": list(m.client_urls), "is_learner": m.is_learner} for m in member_list],
    }}


def _pick(spec, **fields):
    """A few fields of a COSI spec, under our own names."""
    spec = spec or {}
    return {ours: spec.get(theirs) for ours, theirs in fields.items()}
