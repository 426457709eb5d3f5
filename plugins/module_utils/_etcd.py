# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The talos_etcd and talos_etcd_info cores: bootstrap, shrink, back up and recover a cluster's etcd, one state
at a time; and read it (members, status, alarms, health, quorum) on one node or several.

Private to the talos.linux collection: it may change in any release. No Ansible import here.

Every state decides from reads first (EtcdMemberList, EtcdStatus, EtcdAlarmList) and sends its one mutating
call only when the cluster is not yet as asked, so a rerun sends nothing and check mode never sends anything
that changes a node (talos-api.md §4.4, Implications 13 and 15). The snapshot file itself (writing, verifying,
encrypting) lives in _etcd_snapshot.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

from ._errors import TalosError, allowed_roles, short_rpc
from ._etcd_gate import (_control_planes, _member_nodes, forfeit_leadership_if_leader, member_id_hex,
                         wait_for_etcd_member_healthy)
from ._etcd_snapshot import OPTIONS_SNAPSHOT, parse_mode
from ._multi_node import control_planes_among, failed_entries, no_control_plane, read_verdict
from ._upgrade import machine_type

STATES = ("bootstrapped", "absent", "leader_forfeited", "snapshot", "recovered", "defragmented", "alarms_disarmed")
OPTIONS = {
    "state": {"type": "str", "required": True, "choices": list(STATES)},
    "member_id": {"type": "str"},
    "member_hostname": {"type": "str"},
    "force": {"type": "bool", "default": False},
    "recover_skip_hash_check": {"type": "bool", "default": False},
    "min_free_ratio": {"type": "float", "default": 0.1},
    "wait_timeout": {"type": "float", "default": 600.0},
    **OPTIONS_SNAPSHOT,
}
MUTUALLY_EXCLUSIVE = [("member_id", "member_hostname")]
# talos_etcd_info reads with the shared connection options (node, or nodes for several at once), and strict.
INFO_OPTIONS = {"strict": {"type": "bool", "default": False}}
# Options that mean something for some states only: given to another state they are a mistake, not a no-op.
STATE_OPTIONS = {
    "member_id": ("absent",),
    "member_hostname": ("absent",),
    "recover_skip_hash_check": ("recovered",),
    "src": ("recovered",),
    "dest": ("snapshot",),
    "mode": ("snapshot",),
    "passphrase": ("snapshot", "recovered"),
}
MEMBER_ID = re.compile(r"^(?:0x)?([0-9a-fA-F]{16})$")
CONTROL_PLANE_TYPES = ("controlplane", "init")
PROBE_TIMEOUT = 10.0      # a read that only decides what to do: a dead node costs this much
MAX_WAIT_TIMEOUT = 86400.0  # longer is no deadline at all (the slowest recovery upload takes hours, not days)
RETRY_INTERVAL = 0.5      # between two Bootstrap or EtcdRecover attempts the node said "not yet" to
# Bootstrap answers these while the node is still booting or its clock is not synced (talos-api.md §4.4).
BOOTSTRAP_NOT_YET = ("bootstrap is not available yet", "time is not in sync yet")
# Answers after which the request may or may not have reached the node; Bootstrap and EtcdRecover are safe
# to send again (AlreadyExists, or the same file written twice).
LOST_ON_THE_WAY = ("Unavailable", "DeadlineExceeded")


async def talos_etcd(params, client, *, check_mode, diff, mask):  # pylint: disable=unused-argument
    """The core behind talos.linux.talos_etcd: one state, on one node."""
    state = params["state"]
    check_options(params)
    nodes = client.settings.nodes or [None]
    if len(nodes) > 1:
        raise TalosError(
            f"state {state} acts on one node at a time; the task addresses {len(nodes)} nodes "
            f"({', '.join(nodes)}).", code="InvalidOption",
            hint="Give one node (or run the task per host with serial: 1); talos.linux.talos_etcd_info reads "
                 "several nodes at once.")
    node = nodes[0]
    if state == "snapshot":
        from ._etcd_snapshot import take_snapshot

        return {"state": state, **await take_snapshot(params, client, node, check_mode=check_mode)}
    handler = {"bootstrapped": bootstrap, "absent": absent, "leader_forfeited": forfeit_leadership,
               "recovered": recover, "defragmented": defragment, "alarms_disarmed": disarm_alarms}[state]
    result = await handler(params, client, node, check_mode)
    result.setdefault("warnings", [])
    return {"state": state, "node": node, **result}


def check_options(params):
    """Refuse, before anything is sent, options the state does not use and options it cannot do without."""
    state = params["state"]
    for option, states in STATE_OPTIONS.items():
        if params.get(option) not in (None, OPTIONS[option].get("default")) and state not in states:
            raise TalosError(f"Option {option} is not used by state {state}; it applies to state "
                             f"{' and '.join(states)} only.", code="InvalidOption",
                             hint=f"Remove {option} from the task, or use state {states[0]}.")
    if state == "recovered" and not params.get("src"):
        raise TalosError("state recovered needs src, the etcd snapshot file to restore.", code="InvalidOption",
                         hint="Set src to a file written by state snapshot (or talosctl etcd snapshot).")
    if params.get("member_id") is not None:
        parse_member_id(params["member_id"])
    if state == "snapshot":
        parse_mode(params["mode"])
    hostname = params.get("member_hostname")
    if hostname is not None and (not hostname or any(c.isspace() for c in hostname)):
        raise TalosError(f"member_hostname {hostname!r} is empty or has blanks in it, which no etcd member name has.",
                         code="InvalidOption",
                         hint="Give the hostname as talos_etcd_info shows it (such as talos-cp-3), or use member_id; "
                              "check the variable it is templated from. Nothing was sent.")
    # NaN compares false with everything, so each check is written to fail for it
    if not 0 <= params["min_free_ratio"] < 1:
        raise TalosError(f"min_free_ratio {params['min_free_ratio']:g} is not a fraction from 0 up to (not "
                         "including) 1.", code="InvalidOption",
                         hint="Give, for example, 0.1 to defragment when 10 % of the database file is free. "
                              "Nothing was sent.")
    if not 0 < params["wait_timeout"] <= MAX_WAIT_TIMEOUT:
        raise TalosError(f"wait_timeout {params['wait_timeout']:g} is not a number of seconds above 0 and at most "
                         f"{MAX_WAIT_TIMEOUT:g} (a day).", code="InvalidOption",
                         hint="Give how long to wait, such as wait_timeout: 600 (the default). Nothing was sent.")


def parse_member_id(text):
    """An etcd member id as talosctl shows it: 16 hex digits, with or without 0x."""
    match = MEMBER_ID.match(str(text).strip())
    if not match:
        raise TalosError(
            f"member_id {text!r} is not an etcd member id: it must be 16 hexadecimal digits, with or without "
            "0x, as talosctl etcd members and talos_etcd_info show it.", code="InvalidOption",
            hint="Quote it in YAML (member_id: \"0x8a3f0c2d4e5b6a71\"), or use member_hostname.")
    return int(match.group(1), 16)


def require_role(client, rpc, state):
    """Fail before sending when no role of the client certificate may call ``rpc``."""
    need = allowed_roles(rpc)
    if not set(client.roles) & set(need):
        raise TalosError(
            f"state {state} calls {short_rpc(rpc)}, which needs one of the roles {', '.join(need)}; the client "
            f"certificate has {', '.join(client.roles) or 'no role'}.", code="PermissionDenied", rpc=rpc,
            hint="Nothing was sent. Use a talosconfig whose certificate carries one of those roles.")


def not_a_control_plane(node, kind):
    return TalosError(f"Node {node} is a {kind} node, not a control plane: etcd runs on control-plane nodes only.",
                      code="FailedPrecondition", node=node,
                      hint="Nothing was changed. Target a control-plane node.")


def explain_worker(exc, node):
    """etcd RPCs on a worker answer Unimplemented "... only available on control plane nodes": say so plainly."""
    if isinstance(exc, TalosError) and exc.code == "Unimplemented" and "control plane" in (exc.detail or ""):
        error = not_a_control_plane(node or exc.endpoint, "worker")
        error.rpc, error.detail = exc.rpc, exc.detail
        return error
    return exc


async def etcd_call(client, rpc, request=None, *, node, timeout=None):
    try:
        return await client.call(rpc, request, node=node, timeout=timeout)
    except TalosError as exc:
        raise explain_worker(exc, node) from None


async def require_control_plane(client, node):
    kind = await machine_type(client, node)
    if kind not in CONTROL_PLANE_TYPES:
        raise not_a_control_plane(node or "(the endpoint)", kind or "unconfigured")


# --- reading the cluster --------------------------------------------------------------------------------

def member_entry(member):
    return {"id": member_id_hex(member.id), "hostname": member.hostname, "peer_urls": list(member.peer_urls),
            "client_urls": list(member.client_urls), "learner": member.is_learner}


def status_entry(status):
    return {"member_id": member_id_hex(status.member_id), "leader": status.leader == status.member_id,
            "leader_id": member_id_hex(status.leader) if status.leader else None,
            "db_size": status.db_size, "db_size_in_use": status.db_size_in_use, "raft_index": status.raft_index,
            "raft_term": status.raft_term, "raft_applied_index": status.raft_applied_index,
            "protocol_version": status.protocol_version, "storage_version": status.storage_version or None,
            "learner": status.is_learner, "errors": list(status.errors)}


async def member_list(client, node, *, query_local=True, timeout=None):
    reply = await etcd_call(client, "EtcdMemberList", {"query_local": query_local}, node=node, timeout=timeout)
    return [m for message in reply.messages for m in message.members]


async def member_nodes(client, through, members, timeout):
    """{member id: node address}: by hostname in cluster discovery, else the host of the member's peer URL.

    Discovery needs a role that reads COSI (os:etcd:backup does not): the peer URLs then suffice.
    """
    try:
        control_planes = await _control_planes(client, through, timeout)
    except TalosError:
        control_planes = {}
    return _member_nodes(members, control_planes)


async def member_health(client, through, members, timeout=None):
    """Each member's node, status and health, read from that member's own node.

    Returns {member id: {"node", "status" (EtcdMemberStatus or None), "healthy" (True/False/None),
    "problem"}}; healthy is None when the role may not read EtcdStatus.
    """
    timeout = timeout or min(client.timeout, PROBE_TIMEOUT)
    nodes = await member_nodes(client, through, members, timeout)
    addresses = [a for a in dict.fromkeys(nodes.values()) if a]
    results = {r.node: r for r in await client.fan_out(
        addresses, lambda address: client.call("EtcdStatus", node=address, timeout=timeout))}
    health = {}
    for member in members:
        address = nodes.get(member.id)
        entry = {"node": address, "status": None, "healthy": False, "problem": None}
        health[member.id] = entry
        result = results.get(address)
        if result is None:
            entry["problem"] = "no node address is known for it"
        elif not result.ok:
            if result.error.code == "PermissionDenied":
                entry.update(healthy=None, problem="EtcdStatus is not allowed for this role")
            else:
                entry["problem"] = f"its status cannot be read ({result.error.detail or result.error.code})"
        else:
            status = result.value.messages[0].member_status
            if status.member_id != member.id:
                entry["problem"] = f"node {address} answers for member {member_id_hex(status.member_id)}"
                continue
            entry["status"] = status
            if status.errors:
                entry["problem"] = "; ".join(status.errors)
            elif member.is_learner or status.is_learner:
                entry["problem"] = "it is a learner, not a voting member yet"
            elif not status.leader:
                entry["problem"] = "it knows no leader"
            else:
                entry["healthy"] = True
    return health


def who(member):
    return f"member {member_id_hex(member.id)} ({member.hostname})"


# --- talos_etcd_info --------------------------------------------------------------------------------

async def talos_etcd_info(params, client, *, check_mode, diff, mask):  # pylint: disable=unused-argument
    """The core behind talos.linux.talos_etcd_info: read etcd through one node, or through several at once."""
    nodes, failed = client.settings.nodes or [None], {}
    if len(nodes) == 1:
        return await etcd_info(client, nodes[0])
    if client.settings.nodes_from_context:  # a list the task did not name: its control planes only
        nodes, failed = await control_planes_among(client, nodes)
        if not nodes and not failed:
            raise no_control_plane(client.settings)
    return await info_fan_out(client, nodes, failed, strict=params.get("strict"))


talos_etcd_info.read_only = True


async def etcd_info(client, node):
    """Members, each member's status, alarms, and whether etcd is healthy and has quorum. Changes nothing."""
    notes = []
    members = await member_list(client, node)
    health, alarms = await asyncio.gather(member_health(client, node, members),
                                          client.call("EtcdAlarmList", node=node), return_exceptions=True)
    if isinstance(health, BaseException):
        raise health
    if isinstance(alarms, TalosError) and alarms.code == "PermissionDenied":
        notes.append("Alarms are unknown: EtcdAlarmList needs os:operator or os:admin on this Talos version "
                     "(before 1.11); os:reader and os:etcd:backup may read it from Talos 1.11.")
        raised = None
    elif isinstance(alarms, BaseException):
        raise explain_worker(alarms, node)
    else:
        raised = [a for message in alarms.messages for a in message.member_alarms if a.alarm]
    if any(h["healthy"] is None for h in health.values()):
        notes.append("Member status is unknown: EtcdStatus needs os:operator or os:admin on this Talos version "
                     "(before 1.11); os:reader and os:etcd:backup may read it from Talos 1.11. Members are "
                     "listed from EtcdMemberList alone.")
    return {"changed": False, "node": node, **summarize(members, health, raised), "notes": notes}


def summarize(members, health, raised):
    names = {m.id: m.hostname for m in members}
    entries, problems, leaders = [], [], set()
    for member in sorted(members, key=lambda m: m.hostname):
        info = health[member.id]
        status = info["status"]
        entry = {**member_entry(member), "node": info["node"], "healthy": info["healthy"],
                 "status": status_entry(status) if status is not None else None}
        entries.append(entry)
        if status is not None:
            leaders.add(status.leader)
        if info["healthy"] is False:
            problems.append(f"{who(member)}: {info['problem']}")
    voted = leaders - {0}
    if len(voted) > 1:
        problems.append("members disagree on the leader: "
                        + ", ".join(sorted(f"{member_id_hex(i)} ({names.get(i, '?')})" for i in voted)))
    alarms = None
    if raised is not None:
        alarms = [{"member_id": member_id_hex(a.member_id), "hostname": names.get(a.member_id),
                   "alarm": type(a).AlarmType.Name(a.alarm)} for a in raised]
        problems += [f"alarm {a['alarm']} is raised on member {a['member_id']} ({a['hostname']})" for a in alarms]
    unknown = raised is None or any(info["healthy"] is None for info in health.values())
    voting = [m for m in members if not m.is_learner]
    needed = len(voting) // 2 + 1
    healthy_voting = None if any(health[m.id]["healthy"] is None for m in voting) else \
        sum(1 for m in voting if health[m.id]["healthy"])
    leader = next(iter(voted)) if len(voted) == 1 else None
    return {
        "members": entries,
        "leader": {"id": member_id_hex(leader), "hostname": names.get(leader)} if leader else None,
        "alarms": alarms,
        "healthy": False if problems else (None if unknown else True),
        "quorum": {"members": len(members), "voting": len(voting), "needed": needed,
                   "healthy_voting": healthy_voting,
                   "ok": None if healthy_voting is None else healthy_voting >= needed,
                   "failure_tolerance": None if healthy_voting is None else max(0, healthy_voting - needed)},
        "problems": problems,
    }


async def info_fan_out(client, nodes, failed, *, strict):
    results = await client.fan_out(nodes, lambda node: etcd_info(client, node))
    done, failed = {r.node: r.value for r in results if r.ok}, {**failed, **failed_entries(results)}
    return {"changed": False, "nodes": done, "failed_nodes": failed,
            **read_verdict(done, failed, could_not="etcd could not be read on", strict=strict)}


# --- state bootstrapped -----------------------------------------------------------------------------

async def running_member(client, node):
    """The status of this node's etcd member when one runs there, else None (a node whose etcd waits for
    bootstrap, or was stopped, does not answer EtcdStatus)."""
    try:
        # "not running" is the answer expected here, not a blip to retry: one round over the endpoints. A
        # running member missed through a lost answer does no harm: Bootstrap, from a snapshot or not, answers
        # AlreadyExists on a node whose etcd data directory is not empty.
        reply = await client.call("EtcdStatus", node=node, timeout=min(client.timeout, PROBE_TIMEOUT), rounds=1)
    except TalosError as exc:
        if exc.code in ("PermissionDenied", "Unimplemented"):
            raise explain_worker(exc, node) from None
        return None
    return reply.messages[0].member_status


async def send_until_accepted(client, node, rpc, send, wait_timeout, retryable):
    """Call ``send(seconds left)`` until the node accepts it, while it answers "not yet" (``retryable(error)``)
    or the answer was lost, for at most ``wait_timeout`` seconds. Returns (reply or TalosError(AlreadyExists),
    attempts, whether an earlier attempt may have been applied)."""
    deadline = time.monotonic() + wait_timeout
    attempts, maybe_applied = 0, False
    while True:
        attempts += 1
        try:
            return await send(max(0.1, deadline - time.monotonic())), attempts, maybe_applied
        except TalosError as exc:
            if exc.code == "AlreadyExists":
                return exc, attempts, maybe_applied
            lost = exc.code in LOST_ON_THE_WAY
            if not (lost or retryable(exc)):
                raise
            maybe_applied = maybe_applied or lost
            if time.monotonic() + RETRY_INTERVAL >= deadline:
                raise TalosError(
                    f"{short_rpc(rpc)} on node {node} was not accepted within {wait_timeout:g} s "
                    f"({attempts} attempts); the last answer: {exc.detail or exc.code}.", code=exc.code,
                    node=node, rpc=rpc, detail=exc.detail,
                    hint="The node is not ready for it yet; raise wait_timeout, or check its time sync and "
                         "services (talosctl services, talosctl time).") from None
        await asyncio.sleep(RETRY_INTERVAL)


def bootstrap_not_yet(exc):
    return exc.code == "FailedPrecondition" and any(text in (exc.detail or "") for text in BOOTSTRAP_NOT_YET)


async def bootstrap_node(client, node, request, wait_timeout):
    async def send(left):
        return await client.call("Bootstrap", request, node=node, timeout=min(client.timeout, left))

    return await send_until_accepted(client, node, "MachineService/Bootstrap", send, wait_timeout,
                                     bootstrap_not_yet)


async def bootstrap(params, client, node, check_mode):
    require_role(client, "MachineService/Bootstrap", "bootstrapped")
    await require_control_plane(client, node)
    status = await running_member(client, node)
    if status is not None and status.leader and not status.errors:
        # an existing healthy member: nothing to ask the node, not even Bootstrap
        return {"changed": False, "member_id": member_id_hex(status.member_id),
                "leader_id": member_id_hex(status.leader)}
    if check_mode:
        return {"changed": True}
    started = time.monotonic()
    reply, attempts, maybe_applied = await bootstrap_node(client, node, {}, params["wait_timeout"])
    changed = not isinstance(reply, TalosError) or maybe_applied
    remaining = max(1.0, params["wait_timeout"] - (time.monotonic() - started))
    member = await wait_for_etcd_member_healthy(client, node, timeout=remaining)
    result = {"changed": changed, "attempts": attempts, "member_id": member["member_id"],
              "leader_id": member["leader"], "duration": round(time.monotonic() - started, 3)}
    if isinstance(reply, TalosError) and maybe_applied:
        result["warnings"] = [f"Bootstrap on node {node} answered AlreadyExists after an earlier attempt's answer "
                              "was lost: that attempt probably bootstrapped etcd."]
    return result


# --- state absent -----------------------------------------------------------------------------------

def quorum_problem(members, health, removing):
    """Why removing ``removing`` leaves etcd without quorum, or None."""
    voting = [m for m in members if not m.is_learner and m.id != removing.id]
    if not voting:
        return f"{who(removing)} is the last voting etcd member: removing it ends the cluster's etcd"
    healthy = [m for m in voting if health[m.id]["healthy"]]
    needed = len(voting) // 2 + 1
    if len(healthy) >= needed:
        return None
    unhealthy = [f"{who(m)}: {health[m.id]['problem'] or 'health unknown'}" for m in voting if m not in healthy]
    return (f"without {who(removing)}, {len(voting)} voting members remain, of which {len(healthy)} "
            f"{'is' if len(healthy) == 1 else 'are'} healthy, and quorum needs {needed} ("
            + "; ".join(unhealthy) + ")")


def refuse(message, node, force, warnings, hint):
    """A safety refusal: an error before anything is sent, or, with force, a warning."""
    if force:
        warnings.append(f"force: {message}; going ahead.")
        return
    raise TalosError(message + ".", code="FailedPrecondition", node=node,
                     hint="Nothing was sent. " + hint + " force: true skips this check.")


async def absent(params, client, node, check_mode):
    if params.get("member_id") is not None or params.get("member_hostname") is not None:
        return await remove_member(params, client, node, check_mode)
    if node is None:
        raise TalosError("state absent needs node (the control plane that leaves etcd, with EtcdLeaveCluster) "
                         "or member_id / member_hostname (a member whose node is gone).", code="InvalidOption",
                         hint="Set node, or member_id or member_hostname.")
    return await leave_cluster(params, client, node, check_mode)


async def leave_cluster(params, client, node, check_mode):
    """The departing node takes its own member out (EtcdLeaveCluster is sent to it), then stops etcd."""
    require_role(client, "MachineService/EtcdLeaveCluster", "absent")
    await require_control_plane(client, node)
    hostname = (await client.call("Hostname", node=node)).messages[0].hostname
    # query_local false: the node's own etcd may be stopped already; the other members still answer
    members = await member_list(client, node, query_local=False)
    health = await member_health(client, node, members)
    own = [m for m in members if m.hostname == hostname or health[m.id]["node"] == node]
    if not own:
        return {"changed": False, "member": None, "method": "leave",
                "msg": f"Node {node} ({hostname}) is not an etcd member (it left already)."}
    member, warnings = own[0], []
    problem = quorum_problem(members, health, member)
    if problem:
        refuse(f"removing {who(member)} would break etcd quorum: {problem}", node, params["force"], warnings,
               "Bring the unhealthy members back first.")
    result = {"changed": True, "method": "leave", "member": {**member_entry(member), "node": node},
              "warnings": warnings}
    if not check_mode:
        await etcd_call(client, "EtcdLeaveCluster", node=node, timeout=max(client.timeout, params["wait_timeout"]))
    return result


def find_member(members, params):
    if params.get("member_id") is not None:
        wanted = parse_member_id(params["member_id"])
        return [m for m in members if m.id == wanted], f"id {member_id_hex(wanted)}"
    name = params["member_hostname"]
    return [m for m in members if m.hostname == name], f"hostname {name!r}"


async def remove_member(params, client, through, check_mode):
    """Remove a member whose node is gone, through a healthy control plane (``node``, or the endpoint)."""
    require_role(client, "MachineService/EtcdRemoveMemberByID", "absent")
    members = await member_list(client, through)
    found, described = find_member(members, params)
    if not found:
        # no change, as for a member removed by an earlier run; but a typo looks the same, so say who is there
        listing = ", ".join(f"{member_id_hex(m.id)} ({m.hostname})"
                            for m in sorted(members, key=lambda m: m.hostname)) or "none"
        option = "member_id" if params.get("member_id") is not None else "member_hostname"
        return {"changed": False, "member": None, "method": "remove",
                "msg": f"No etcd member has {described} (already removed?); the members are: {listing}.",
                "warnings": [f"{option}: no etcd member has {described}, so nothing was removed. The current "
                             f"members are {listing}. If it was removed already, this is expected; otherwise "
                             f"correct {option}."]}
    if len(found) > 1:
        raise TalosError(f"{len(found)} etcd members have {described}: "
                         + ", ".join(member_id_hex(m.id) for m in found) + ".", code="InvalidOption",
                         hint="Nothing was sent. Name the member with member_id.")
    target, warnings = found[0], []
    health, own = await asyncio.gather(member_health(client, through, members),
                                       etcd_call(client, "EtcdStatus", node=through))
    own_id = own.messages[0].member_status.member_id
    via = through or "the endpoint"
    if target.id == own_id and health[target.id]["healthy"] is not False:
        # upstream Talos issue 3340: a removal sent through the member itself took out a healthy node's etcd
        refuse(f"{who(target)} is the etcd member of node {via}, which this task talks through, and it is "
               "healthy", through, params["force"], warnings,
               f"To take node {via} out of etcd, run state absent with node: {via} and no member_id "
               "(it leaves with EtcdLeaveCluster); to remove another member, talk through a healthy control "
               "plane (node).")
    elif health[target.id]["healthy"]:
        refuse(f"{who(target)} is still healthy on node {health[target.id]['node']}: its node is not gone",
               through, params["force"], warnings,
               f"To take a running node out of etcd, run state absent with node: {health[target.id]['node']}.")
    problem = quorum_problem(members, health, target)
    if problem:
        refuse(f"removing {who(target)} would break etcd quorum: {problem}", through, params["force"], warnings,
               "Bring the unhealthy members back first.")
    result = {"changed": True, "method": "remove", "warnings": warnings,
              "member": {**member_entry(target), "node": health[target.id]["node"]}}
    if check_mode:
        return result
    try:
        await etcd_call(client, "EtcdRemoveMemberByID", {"member_id": target.id}, node=through)
    except TalosError as exc:
        if exc.code != "NotFound":
            raise
        result.update(changed=False, msg=f"{who(target)} was removed meanwhile (NotFound).")
    return result


# --- state leader_forfeited ---------------------------------------------------------------------------

async def forfeit_leadership(params, client, node, check_mode):
    require_role(client, "MachineService/EtcdForfeitLeadership", "leader_forfeited")
    status = (await etcd_call(client, "EtcdStatus", node=node)).messages[0].member_status
    result = {"changed": False, "member_id": member_id_hex(status.member_id),
              "leader_before": member_id_hex(status.leader) if status.leader else None}
    if status.leader != status.member_id:
        return {**result, "leader_after": result["leader_before"]}
    voters = [m for m in await member_list(client, node) if not m.is_learner and m.id != status.member_id]
    if not voters:
        return {**result, "leader_after": result["leader_before"],
                "warnings": [f"Node {node or 'the endpoint'} leads a single-member etcd cluster: there is no other "
                             "member to hand leadership to."]}
    if check_mode:
        return {**result, "changed": True}
    changed = await forfeit_leadership_if_leader(client, node)
    after = (await etcd_call(client, "EtcdStatus", node=node)).messages[0].member_status
    return {**result, "changed": changed, "leader_after": member_id_hex(after.leader) if after.leader else None}


# --- state defragmented -------------------------------------------------------------------------------

def free_ratio(status):
    return (status.db_size - status.db_size_in_use) / status.db_size if status.db_size else 0.0


async def defragment(params, client, node, check_mode):
    require_role(client, "MachineService/EtcdDefragment", "defragmented")
    status = (await etcd_call(client, "EtcdStatus", node=node)).messages[0].member_status
    ratio = free_ratio(status)
    result = {"changed": False, "member_id": member_id_hex(status.member_id),
              "leader": status.leader == status.member_id, "db_size_before": status.db_size,
              "db_size_in_use": status.db_size_in_use, "free_ratio": round(ratio, 4),
              "db_size_after": status.db_size}
    if status.db_size <= status.db_size_in_use or ratio < params["min_free_ratio"]:
        return result
    result["changed"] = True
    if check_mode:
        return result
    # heavy on a big database (the member stalls meanwhile): wait_timeout bounds it, not the per-call timeout
    await etcd_call(client, "EtcdDefragment", node=node, timeout=max(client.timeout, params["wait_timeout"]))
    after = (await etcd_call(client, "EtcdStatus", node=node)).messages[0].member_status
    result.update(db_size_after=after.db_size, db_size_in_use=after.db_size_in_use)
    return result


# --- state alarms_disarmed ----------------------------------------------------------------------------

def alarm_entries(alarms, names):
    return [{"member_id": member_id_hex(a.member_id), "hostname": names.get(a.member_id),
             "alarm": type(a).AlarmType.Name(a.alarm)} for message in alarms.messages
            for a in message.member_alarms if a.alarm]


async def disarm_alarms(params, client, node, check_mode):
    require_role(client, "MachineService/EtcdAlarmDisarm", "alarms_disarmed")
    alarms, members = await asyncio.gather(etcd_call(client, "EtcdAlarmList", node=node), member_list(client, node))
    names = {m.id: m.hostname for m in members}
    raised = alarm_entries(alarms, names)
    result = {"changed": bool(raised), "alarms": raised}
    if not raised or check_mode:
        return result
    disarmed = await etcd_call(client, "EtcdAlarmDisarm", node=node)
    result["disarmed"] = alarm_entries(disarmed, names)
    still = alarm_entries(await etcd_call(client, "EtcdAlarmList", node=node), names)
    if still:
        result["warnings"] = ["etcd raised these alarms again right after the disarm: "
                              + ", ".join(f"{a['alarm']} on {a['member_id']} ({a['hostname']})" for a in still)
                              + ". A NOSPACE alarm returns until space is freed (defragment, or raise the quota)."]
    return result


# --- state recovered ----------------------------------------------------------------------------------

async def running_etcd(client, node):
    """What says etcd still runs, seen from ``node``: its own member, or members elsewhere; [] when none."""
    timeout = min(client.timeout, PROBE_TIMEOUT)
    # with every member lost (what recovery is for), no answer is the expected one: one round, as above
    own, others = await asyncio.gather(running_member(client, node),
                                       client.call("EtcdMemberList", {"query_local": False}, node=node,
                                                   timeout=timeout, rounds=1), return_exceptions=True)
    if isinstance(own, BaseException):
        raise own
    found = []
    if own is not None:
        found.append(f"node {node or 'the endpoint'} runs etcd member {member_id_hex(own.member_id)}")
    if not isinstance(others, BaseException):
        members = [m for message in others.messages for m in message.members]
        if members:
            found.append("the cluster's etcd answers with members "
                         + ", ".join(f"{member_id_hex(m.id)} ({m.hostname})" for m in members))
    return found


async def recover(params, client, node, check_mode):
    """Verify the snapshot, upload it with EtcdRecover, bootstrap from it, and wait for the member."""
    from ._etcd_snapshot import snapshot_chunks, verify_snapshot_file

    require_role(client, "MachineService/EtcdRecover", "recovered")
    src, passphrase = params["src"], params.get("passphrase")
    warnings = []
    if params["recover_skip_hash_check"] and not encrypted_snapshot(src):
        # a database copied out of a member's data directory has no SHA-256 trailer to check
        snapshot = unchecked_snapshot_file(src)
        warnings.append(f"recover_skip_hash_check: src {src} was not checked; the node restores it as it is.")

        def read_chunks():
            return raw_chunks(src)
    else:
        # before anything is sent: a file that is not a whole snapshot is never uploaded
        snapshot = verify_snapshot_file(src, passphrase=passphrase)

        def read_chunks():
            return snapshot_chunks(src, passphrase=passphrase)
    await require_control_plane(client, node)
    running = await running_etcd(client, node)
    if running:
        refuse("etcd is running: " + "; ".join(running), node, params["force"], warnings,
               "Recovery restores etcd on a control plane whose etcd waits for bootstrap (all members lost); "
               "a running cluster would be replaced or split. Check with talos.linux.talos_etcd_info.")
    result = {"changed": True, "snapshot": snapshot, "warnings": warnings}
    if check_mode:
        return result

    started = time.monotonic()
    data_type = rpc_method_request("EtcdRecover")

    async def upload(left):  # a fresh read of the file each attempt; a big one may take all the time left
        chunks = (data_type(bytes=chunk) for chunk in read_chunks())
        return await client.send_stream("EtcdRecover", chunks, node=node, timeout=max(client.timeout, left))

    def not_ready(exc):  # FailedPrecondition until the etcd service waits for recovery
        return exc.code == "FailedPrecondition"

    _reply, uploads, _lost = await send_until_accepted(client, node, "MachineService/EtcdRecover", upload,
                                                       params["wait_timeout"], not_ready)
    request = {"recover_etcd": True, "recover_skip_hash_check": params["recover_skip_hash_check"]}
    remaining = max(1.0, params["wait_timeout"] - (time.monotonic() - started))
    reply, attempts, maybe_applied = await bootstrap_node(client, node, request, remaining)
    if isinstance(reply, TalosError) and not maybe_applied:
        raise TalosError(f"Node {node} refused to bootstrap from the snapshot: its etcd data directory is not "
                         "empty (AlreadyExists).", code="AlreadyExists", node=node, rpc="MachineService/Bootstrap",
                         detail=reply.detail,
                         hint="The snapshot was uploaded but not restored. Recovery needs a control plane whose "
                              "etcd data is gone (talosctl reset --system-labels-to-wipe EPHEMERAL).")
    remaining = max(1.0, params["wait_timeout"] - (time.monotonic() - started))
    member = await wait_for_etcd_member_healthy(client, node, timeout=remaining)
    result.update(uploads=uploads, attempts=attempts, member_id=member["member_id"], leader_id=member["leader"],
                  duration=round(time.monotonic() - started, 3))
    return result


def rpc_method_request(rpc):
    from ._client import rpc_method

    return rpc_method(rpc).request_type


def encrypted_snapshot(src):
    from ._etcd_snapshot import MAGIC

    try:
        with open(src, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False  # verify_snapshot_file or unchecked_snapshot_file says what is wrong with it


def unchecked_snapshot_file(src):
    """What recover_skip_hash_check still requires of src: a readable, non-empty regular file."""
    try:
        info = os.stat(src)
        readable = os.access(src, os.R_OK)
    except OSError as exc:
        raise TalosError(f"src {src!r} cannot be used: {exc.strerror or exc}.", code="InvalidOption",
                         hint="Give the path on the controller of an etcd snapshot.") from None
    for wrong, what in ((not os.path.isfile(src), "is not a regular file"), (not info.st_size, "is empty"),
                        (not readable, "is not readable by this user")):
        if wrong:
            raise TalosError(f"src {src!r} {what}.", code="InvalidOption",
                             hint="Give the path on the controller of an etcd snapshot.")
    return {"size": info.st_size, "sha256": None, "encrypted": False}


def raw_chunks(src, chunk_size=1 << 20):
    with open(src, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                return
            yield chunk
