# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""etcd quorum safety around a control-plane node that is about to go down (talos-api.md §4.4, Implication 11).

Private to the talos.linux collection: it may change in any release. No Ansible import here.

The new upgrade path (LifecycleService.Upgrade + Reboot) skips the checks the legacy Upgrade ran on the node
(ValidateForUpgrade), so ``etcd_quorum_gate`` runs them, and a few more, from the client before anything is
sent; ``forfeit_leadership_if_leader`` moves the leader away first; ``wait_for_etcd_member_healthy`` holds the
next node back until this one has rejoined. The etcd RPCs exist on control planes only (Unimplemented on
workers): call these for control-plane nodes.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from ._cosi import get_resource, list_resources, yaml_spec
from ._errors import TalosError

CALL_TIMEOUT = 10.0       # one etcd or COSI call: a dead node costs this much, never the whole run
POLL_INTERVAL = 0.2
LEADER_MOVE_TIMEOUT = 5.0
CONTROL_PLANE_TYPES = ("controlplane", "init")
# Errors that mean "not now" while waiting for a member to come back; anything else is reported at once.
TRANSIENT_CODES = frozenset({"Unavailable", "DeadlineExceeded", "FailedPrecondition", "Canceled", "Cancelled"})


def member_id_hex(member_id):
    """etcd member ids are shown as 16 hex digits, as talosctl does."""
    return f"{member_id:016x}"


def _refuse(node, problems, report):
    error = TalosError(
        f"etcd is not safe to lose control-plane node {node}: " + "; ".join(problems) + ".",
        code="FailedPrecondition", node=node,
        hint="Nothing was sent to the node. Fix etcd first (talosctl etcd status / etcd alarm list), then retry.")
    error.report = report  # the gate's findings, for a module result
    return error


async def _control_planes(client, node, timeout):
    """{address: hostname} of the control planes COSI cluster discovery knows, read through ``node`` or any
    endpoint; empty when discovery is off (the etcd member list fills in then)."""
    for through in (node, None):
        try:
            resources = await list_resources(client, through, "cluster", "Members.cluster.talos.dev", timeout=timeout)
        except TalosError as exc:
            if exc.code == "PermissionDenied":
                raise
            continue
        found = {}
        for resource in resources:
            spec = yaml_spec(resource) or {}
            if spec.get("machineType") not in CONTROL_PLANE_TYPES:
                continue
            addresses = [str(a) for a in spec.get("addresses") or []]
            hostname = spec.get("hostname") or resource.metadata.id
            # address the node as the caller does when it is this one
            address = node if node in addresses or node == hostname else (addresses[0] if addresses else hostname)
            found[address] = hostname
        return found
    return {}


def _peer_host(member):
    for url in list(member.peer_urls) + list(member.client_urls):
        host = urlsplit(url).hostname
        if host:
            return host
    return None


def _member_nodes(members, control_planes):
    """Each etcd member's node address: by hostname in discovery, else the host of its peer URL."""
    by_hostname = {hostname: address for address, hostname in control_planes.items()}
    return {member.id: by_hostname.get(member.hostname) or _peer_host(member) for member in members}


async def etcd_quorum_gate(client, node, *, timeout=CALL_TIMEOUT):
    """Check that etcd keeps quorum without control-plane ``node``; the report, or TalosError(FailedPrecondition).

    Refuses when a member's status has errors or cannot be read, an alarm is raised, the cluster has exactly
    two members, a member is a learner or not started, members disagree on (or lack) a leader, or another
    control plane is not running and ready. Sends nothing that changes a node. The TalosError carries the
    report as ``.report``.
    """
    control_planes, member_list, alarm_list = await asyncio.gather(
        _control_planes(client, node, timeout),
        client.call("EtcdMemberList", {"query_local": True}, node=node, timeout=timeout),
        client.call("EtcdAlarmList", node=node, timeout=timeout))
    members = [m for reply in member_list.messages for m in reply.members]
    member_nodes = _member_nodes(members, control_planes)
    names = _MemberNames(members)

    addresses = [a for a in dict.fromkeys(list(member_nodes.values()) + list(control_planes)) if a]
    others = [a for a in addresses if a != node]
    statuses, machine_statuses = await asyncio.gather(
        client.fan_out(addresses, lambda address: client.call("EtcdStatus", node=address, timeout=timeout)),
        client.fan_out(others, lambda address: get_resource(
            client, address, "runtime", "MachineStatuses.runtime.talos.dev", "machine", timeout=timeout)))
    for result in statuses + machine_statuses:
        if not result.ok and result.error.code == "PermissionDenied":
            raise result.error  # the role cannot check: say so, rather than blame etcd

    problems = []
    if len(members) == 2:
        problems.append("the cluster has exactly two etcd members: losing one loses quorum "
                        "(add a third control plane first)")
    report_members, leaders = _check_members(members, member_nodes, {r.node: r for r in statuses}, names, problems)
    voted = leaders - {0}
    if 0 in leaders:
        problems.append("a member reports no leader")
    if len(voted) > 1:
        problems.append("members disagree on the leader: " + ", ".join(sorted(names.who(i) for i in voted)))
    for address, hostname in control_planes.items():
        if address not in member_nodes.values() and hostname not in names.hostnames.values():
            problems.append(f"control plane {address} ({hostname}) is not an etcd member: not started or removed")
    raised = [a for reply in alarm_list.messages for a in reply.member_alarms if a.alarm]
    for alarm in raised:
        problems.append(f"alarm {type(alarm).AlarmType.Name(alarm.alarm)} is raised on {names.who(alarm.member_id)}")
    _check_readiness(machine_statuses, problems)

    report = {"members": report_members, "leader": member_id_hex(next(iter(voted))) if len(voted) == 1 else None,
              "alarms": [{"member_id": member_id_hex(a.member_id), "alarm": type(a).AlarmType.Name(a.alarm)}
                         for a in raised],
              "healthy": not problems}
    if problems:
        raise _refuse(node, list(dict.fromkeys(problems)), report)
    return report


class _MemberNames:
    """'member 0123456789abcdef (talos-cp-1)': how a refusal names a member."""

    def __init__(self, members):
        self.hostnames = {m.id: m.hostname for m in members}

    def who(self, member_id):
        name = self.hostnames.get(member_id)
        return f"member {member_id_hex(member_id)}" + (f" ({name})" if name else "")


def _check_members(members, member_nodes, statuses, names, problems):
    """One report entry per member from its own node's EtcdStatus; the leader each one sees."""
    entries, leaders = [], set()
    for member in members:
        address = member_nodes.get(member.id)
        who = names.who(member.id)
        entry = {"id": member_id_hex(member.id), "hostname": member.hostname, "node": address, "healthy": False,
                 "leader": False, "learner": member.is_learner, "errors": []}
        entries.append(entry)
        result = statuses.get(address)
        if result is None or not result.ok:
            reason = (result.error.detail or result.error.code) if result else "no node address is known for it"
            entry["errors"].append(f"status unreadable: {reason}")
            problems.append(f"{who} on {address}: its status cannot be read ({reason}); it may not be started")
            continue
        status = result.value.messages[0].member_status
        if status.member_id != member.id:  # two members claim one node: the mapping cannot be trusted
            entry["errors"].append(f"node {address} answers for {names.who(status.member_id)}")
            problems.append(f"{who}: node {address} answers for {names.who(status.member_id)}")
            continue
        leaders.add(status.leader)
        entry.update(errors=list(status.errors), learner=member.is_learner or status.is_learner,
                     leader=status.leader == member.id)
        if status.errors:
            problems.append(f"{who} on {address} is unhealthy: {'; '.join(status.errors)}")
        if entry["learner"]:
            problems.append(f"{who} on {address} is a learner, not a voting member yet")
        entry["healthy"] = not status.errors and not entry["learner"]
    return entries, leaders


def _check_readiness(machine_statuses, problems):
    """Every other control plane must be running and ready: with one down already, this node is one too many."""
    for result in machine_statuses:
        if not result.ok:
            problems.append(f"control plane {result.node} is not reachable ({result.error.detail or result.error.code})")
            continue
        spec = yaml_spec(result.value) or {}
        stage, ready = spec.get("stage"), bool((spec.get("status") or {}).get("ready"))
        if stage != "running" or not ready:
            problems.append(f"control plane {result.node} is not running and ready (stage {stage}, "
                            f"{'ready' if ready else 'not ready'})")


async def _status(client, node, timeout):
    return (await client.call("EtcdStatus", node=node, timeout=timeout)).messages[0].member_status


async def forfeit_leadership_if_leader(client, node, *, timeout=CALL_TIMEOUT):
    """Hand etcd leadership to another member when ``node`` holds it; True when it did.

    A single-member cluster has nobody to hand it to: False, nothing sent.
    """
    status = await _status(client, node, timeout)
    if status.member_id != status.leader:
        return False
    members = (await client.call("EtcdMemberList", {"query_local": True}, node=node, timeout=timeout)).messages
    voters = [m for reply in members for m in reply.members if not m.is_learner and m.id != status.member_id]
    if not voters:
        return False
    await client.call("EtcdForfeitLeadership", node=node, timeout=timeout)
    # the reply names the new leader, but only by hostname: confirm by id, as elections take a moment
    deadline = time.monotonic() + LEADER_MOVE_TIMEOUT
    while True:
        after = await _status(client, node, timeout)
        if after.leader not in (0, status.member_id):
            return True
        if time.monotonic() >= deadline:
            raise TalosError(
                f"Node {node} is still the etcd leader {LEADER_MOVE_TIMEOUT:g} s after EtcdForfeitLeadership.",
                code="DeadlineExceeded", node=node, rpc="MachineService/EtcdForfeitLeadership",
                hint="Check the other members with talosctl etcd status; retry once they are healthy.")
        await asyncio.sleep(POLL_INTERVAL)


async def wait_for_etcd_member_healthy(client, node, *, timeout):
    """Wait until ``node``'s etcd member answers without errors, knows a leader and is a voting member.

    Returns {"member_id", "leader", "node", "duration"}; TalosError(DeadlineExceeded) naming the node and what
    was still wrong when ``timeout`` seconds pass first.
    """
    started = time.monotonic()
    deadline = started + timeout
    waiting_for = "no answer yet"
    while True:
        per_call = max(0.1, min(CALL_TIMEOUT, deadline - time.monotonic()))
        try:
            status = await _status(client, node, per_call)
            if status.errors:
                waiting_for = f"member {member_id_hex(status.member_id)} reports errors: {'; '.join(status.errors)}"
            elif not status.leader:
                waiting_for = f"member {member_id_hex(status.member_id)} knows no leader"
            else:
                members = await client.call("EtcdMemberList", {"query_local": True}, node=node, timeout=per_call)
                own = [m for reply in members.messages for m in reply.members if m.id == status.member_id]
                if not own:
                    waiting_for = f"member {member_id_hex(status.member_id)} is not in the member list"
                elif own[0].is_learner or status.is_learner:
                    waiting_for = f"member {member_id_hex(status.member_id)} is still a learner"
                else:
                    return {"member_id": member_id_hex(status.member_id), "leader": member_id_hex(status.leader),
                            "node": node, "duration": round(time.monotonic() - started, 3)}
        except TalosError as exc:
            if exc.code not in TRANSIENT_CODES:
                raise
            waiting_for = f"it did not answer: {exc.detail or exc.code}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TalosError(f"The etcd member on node {node} was not healthy within {timeout:g} s: {waiting_for}.",
                             code="DeadlineExceeded", node=node, rpc="MachineService/EtcdStatus",
                             hint="Check it with talosctl etcd status; raise the timeout if it is only slow.")
        await asyncio.sleep(min(POLL_INTERVAL, remaining))
