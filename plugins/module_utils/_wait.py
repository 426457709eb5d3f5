# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Follow a node through a reboot until it is back: running, ready, really rebooted, on the right version.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
Shared by the upgrade, reboot and shutdown cores::

    watch = await RebootWatch.start(client, node)      # before the action
    await client.call("Reboot", node=node)              # the action
    result = await watch.wait(timeout=600)              # after it returned

Why machined's Events stream, as talosctl's ``--wait`` tracker does (talos-api.md §4.3, Implication 12),
rather than polling COSI ``MachineStatuses`` every half second:

- The stream is opened *before* the action, so the stage changes the action causes (``rebooting``,
  ``upgrading``) are seen even when the node goes down and comes back between two polls.
- After the stream breaks it is reopened with ``tail_events=-1``: machined replays its buffer, so nothing
  that happened while we were disconnected is missed, and the stages arrive in order.
- One open stream costs the node nothing while it works; polling asks three questions every half second.

A stream alone cannot prove the node rebooted (a replay after a reconnect still holds the old boot's
"running, ready"), so "back" is confirmed by separate reads: the boot id changed (``Read`` of
``/proc/sys/kernel/random/boot_id``, admin only) and, when asked, the Version tag. A role that may not read
the boot id relies instead on having seen the node go down: a stage other than running in an event newer
than those already seen, or the node not answering. ``MachineStatuses`` is read once between two failed
attempts to reopen the stream (Events may be what is broken while the node is back), and polled every half
second only when the Events stream cannot be read at all (PermissionDenied or Unimplemented).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ._cosi import get_resource, yaml_spec
from ._errors import TalosError

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
CALL_TIMEOUT = 5.0            # one call while waiting: a dead endpoint costs this much, not the whole wait
RECONNECT_PAUSE = 0.1         # constant between attempts, as talosctl's retry.Constant
CONFIRM_INTERVAL = 1.0        # how often a node that looks back, but is not confirmed yet, is asked again
POLL_INTERVAL = 0.5           # the polling fallback's pace
STALE_STREAM = 15.0           # a stream this quiet while the node is not back may be dead: reopen it
STREAM_LIFETIME = 24 * 3600.0  # gRPC deadline of the stream opened before the action, whose length is unknown
RUNNING = "running"
# Stream endings after which talosctl reconnects: EOF (end of stream), Unavailable, Canceled; a deadline
# here is one of our own short ones, so it is retried too.
RECONNECT_CODES = frozenset({"Unavailable", "DeadlineExceeded", "Canceled", "Cancelled"})
# The Events stream cannot be read at all: poll COSI instead.
NO_EVENTS_CODES = frozenset({"PermissionDenied", "Unimplemented"})


async def read_boot_id(client, node, *, timeout=CALL_TIMEOUT):
    """The node's current boot id, or None when the client's role may not read it (Read is admin only)."""
    try:
        chunks = [chunk.bytes async for chunk in client.stream("Read", {"path": BOOT_ID_PATH}, node=node,
                                                               timeout=timeout)]
    except TalosError as exc:
        if exc.code == "PermissionDenied":
            return None
        raise
    return b"".join(chunks).decode().strip() or None


def unpack_event(data):
    """The machine.* message inside an Event's google.protobuf.Any, or None for types this code does not know.

    Type URLs look like ``talos/runtime/machine.MachineStatusEvent``: the part after the last ``/`` names it.
    """
    from ._api.machine import machine_pb2

    package, _dot, name = data.type_url.rsplit("/", 1)[-1].rpartition(".")
    message_type = getattr(machine_pb2, name, None) if package == "machine" else None
    if message_type is None or not hasattr(message_type, "FromString"):
        return None
    return message_type.FromString(data.value)


def same_version(tag, target):
    """'v1.13.5' and '1.13.5' are the same version."""
    return tag is not None and str(tag).lstrip("v") == str(target).lstrip("v")


async def _next_message(stream):
    return await stream.__anext__()


class RebootWatch:
    """Watches one node from just before an action that reboots it until it is back (see the module docstring)."""

    def __init__(self, client, node):
        self.client = client
        self.node = node
        self.boot_id_before = None
        self.boot_id_after = None
        self.stage = None              # last known: "running", "rebooting", ... (lower case, as COSI shows it)
        self.ready = None
        self.version = None
        self.polling = False           # True when Events cannot be read and COSI is polled instead
        self._stream = None
        self._receiving = None         # the task waiting for the stream's next message
        self._event_ids = set()
        self._last_event_id = ""
        self._replayed_until = None    # on a reopened stream: the id after which its events are new
        self._state_current = False    # stage/ready learned during the wait, not only before the action
        self._went_down = False
        self._last_message = time.monotonic()
        self._last_error = None
        self._not_yet = None           # why a node that looks back is not accepted yet
        self._timeout = self._deadline = self._target_version = None

    @property
    def events_seen(self):
        return len(self._event_ids)

    @property
    def went_down(self):
        """Whether the node was seen going down, or answered with a new boot id: it did reboot."""
        return self._went_down or self.boot_id_after not in (None, self.boot_id_before)

    # --- before the action ----------------------------------------------------------------------------

    @classmethod
    async def start(cls, client, node, *, timeout=CALL_TIMEOUT):
        """Open the Events stream and read past its hello, then record the boot id; call before the action.

        Opening is retried for up to ``timeout`` seconds; TalosError when the node cannot be reached in that time.
        """
        watch = cls(client, node)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await watch._open_stream(tail_events=0, lifetime=STREAM_LIFETIME,
                                         first_message_timeout=max(0.1, deadline - time.monotonic()))
                break
            except TalosError as exc:
                if exc.code in NO_EVENTS_CODES:
                    watch.polling = True
                    break
                # a short burst of Unavailable must not cost the whole action; a node that stays away does
                if exc.code not in RECONNECT_CODES or time.monotonic() + RECONNECT_PAUSE >= deadline:
                    raise
            await asyncio.sleep(RECONNECT_PAUSE)
        try:
            watch.boot_id_before = await read_boot_id(client, node, timeout=timeout)
            with contextlib.suppress(TalosError):  # only for the timeout message: "last known stage"
                watch._take_machine_status(await watch._machine_status(timeout))
        except BaseException:
            await watch.close()
            raise
        watch._state_current = False
        return watch

    # --- after the action -----------------------------------------------------------------------------

    async def wait(self, *, timeout, target_version=None):
        """Return once the node is running and ready after a reboot (and on ``target_version`` when given).

        Raises TalosError(code DeadlineExceeded) naming the node's last known stage when ``timeout`` seconds
        pass first.
        """
        started = time.monotonic()
        self._timeout, self._target_version = timeout, target_version
        self._deadline = started + timeout
        # calls during the reboot go through other endpoints; the rebooting one would only cost time
        self.client.avoid_endpoint(self.node)
        try:
            if not self.polling:
                await self._follow_events()
            if self.polling:
                await self._poll()
        finally:
            await self.close()
        return {"boot_id_before": self.boot_id_before, "boot_id_after": self.boot_id_after, "stage": self.stage,
                "ready": self.ready, "version": self.version, "duration": round(time.monotonic() - started, 3),
                "events_seen": self.events_seen}

    async def close(self):
        """Drop the stream (wait does this itself; call it when the action failed and wait will not run)."""
        receiving, self._receiving = self._receiving, None
        if receiving is not None:
            receiving.cancel()
            await asyncio.wait({receiving})
            if not receiving.cancelled():
                receiving.exception()  # retrieved, so asyncio does not log it as never retrieved
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()

    # --- the Events stream ----------------------------------------------------------------------------

    async def _open_stream(self, *, tail_events, lifetime, first_message_timeout):
        # one round over the endpoints: this watch retries itself, at its own pace (the client's backoff
        # would sleep through the moment the node comes back)
        stream = self.client.stream("Events", {"tail_events": tail_events}, node=self.node, timeout=lifetime,
                                    rounds=1)
        try:
            first = await asyncio.wait_for(_next_message(stream), first_message_timeout)
        except asyncio.TimeoutError:
            await stream.aclose()
            raise TalosError(f"Events on node {self.node}: no answer within {first_message_timeout:g} s.",
                             code="DeadlineExceeded", node=self.node, rpc="MachineService/Events") from None
        except StopAsyncIteration:
            raise TalosError(f"Events on node {self.node}: the stream ended before it started.",
                             code="Unavailable", node=self.node, rpc="MachineService/Events") from None
        except BaseException:
            await stream.aclose()
            raise
        self._stream = stream
        self._last_message = time.monotonic()
        # a replay (tail_events=-1) starts with events already seen, up to the last one processed
        self._replayed_until = self._last_event_id if tail_events else None
        self._absorb(first)  # normally the empty hello, which tells nothing

    async def _follow_events(self):
        next_confirm = 0.0
        while True:
            if self._looks_back() and time.monotonic() >= next_confirm:
                if await self._confirm():
                    return
                next_confirm = time.monotonic() + CONFIRM_INTERVAL
            if time.monotonic() >= self._deadline:
                raise self._timeout_error()
            if self._stream is None:
                if not await self._reopen():
                    return  # no Events for this role or version: wait() polls instead
                continue
            if self._receiving is None:
                self._receiving = asyncio.ensure_future(_next_message(self._stream))
            wake_at = next_confirm if self._looks_back() else self._last_message + STALE_STREAM
            await asyncio.wait({self._receiving}, timeout=max(0.0, min(wake_at, self._deadline) - time.monotonic()))
            if not self._receiving.done():
                if not self._looks_back() and time.monotonic() - self._last_message >= STALE_STREAM:
                    await self.close()  # quiet too long: the connection may have died without an error
                continue
            receiving, self._receiving = self._receiving, None
            try:
                event = receiving.result()
            except StopAsyncIteration:
                await self.close()
                continue
            except TalosError as exc:
                await self.close()
                if exc.code in NO_EVENTS_CODES:
                    self.polling = True
                    return
                if exc.code not in RECONNECT_CODES:
                    raise
                self._last_error = exc
                continue
            self._last_message = time.monotonic()
            if self._absorb(event):
                next_confirm = 0.0  # a new state: check it now

    async def _reopen(self):
        """One attempt to reopen the stream with the whole buffer; False when Events cannot be read at all."""
        remaining = self._deadline - time.monotonic()
        try:
            await self._open_stream(tail_events=-1, lifetime=remaining,
                                    first_message_timeout=max(0.1, min(CALL_TIMEOUT, remaining)))
            return True
        except TalosError as exc:
            if exc.code in NO_EVENTS_CODES:
                self.polling = True
                return False
            if exc.code not in RECONNECT_CODES:
                raise
            self._last_error = exc
            if exc.code == "Unavailable":
                self._went_down = True  # the node did not answer: it is (or was) down
        # Events may be what is broken while the rest of the node is back: ask COSI once between attempts
        with contextlib.suppress(TalosError):
            self._take_machine_status(await self._machine_status(max(0.1, min(CALL_TIMEOUT, remaining))))
        await asyncio.sleep(max(0.0, min(RECONNECT_PAUSE, self._deadline - time.monotonic())))
        return True

    def _absorb(self, event):
        """Take in one Events message; True when it told the machine's stage or readiness."""
        if not event.data.type_url:
            return False  # the hello that opens every stream: no payload, and an id that is in no buffer
        fresh = self._replayed_until is None
        if event.id:
            self._event_ids.add(event.id)
            self._last_event_id = event.id
            if event.id == self._replayed_until:
                self._replayed_until = None  # caught up: what follows is new
        status = unpack_event(event.data) if event.HasField("data") else None
        if status is None or status.DESCRIPTOR.full_name != "machine.MachineStatusEvent":
            return False
        self.stage = type(status).MachineStage.Name(status.stage).lower()
        self.ready = status.status.ready
        self._state_current = True
        if fresh and self.stage != RUNNING:
            self._went_down = True
        return True

    # --- the polling fallback -------------------------------------------------------------------------

    async def _machine_status(self, timeout):
        resource = await get_resource(self.client, self.node, "runtime", "MachineStatuses.runtime.talos.dev",
                                      "machine", timeout=timeout, rounds=1)
        return yaml_spec(resource) or {}

    def _take_machine_status(self, spec):
        self.stage = str(spec.get("stage") or "").lower() or None
        self.ready = bool((spec.get("status") or {}).get("ready"))
        self._state_current = True

    async def _poll(self):
        while True:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error()
            try:
                self._take_machine_status(await self._machine_status(min(CALL_TIMEOUT, remaining)))
            except TalosError as exc:
                if exc.code not in RECONNECT_CODES:
                    raise
                self._last_error, self._went_down = exc, True
            else:
                self._went_down = self._went_down or self.stage != RUNNING
                if self._looks_back() and await self._confirm():
                    return
            await asyncio.sleep(max(0.0, min(POLL_INTERVAL, self._deadline - time.monotonic())))

    # --- deciding "back" ------------------------------------------------------------------------------

    def _looks_back(self):
        return self._state_current and self.stage == RUNNING and bool(self.ready)

    async def _confirm(self):
        """Ask the node itself: a new boot id (or seen going down), and the target version when given."""
        per_call = max(0.1, min(CALL_TIMEOUT, self._deadline - time.monotonic()))
        try:
            if self.boot_id_before is not None:
                self.boot_id_after = await read_boot_id(self.client, self.node, timeout=per_call)
                if self.boot_id_after in (None, self.boot_id_before):
                    self._not_yet = "its boot id has not changed: it has not rebooted yet"
                    return False
            elif not self._went_down:
                self._not_yet = "it has not been seen going down yet (the role cannot read the boot id)"
                return False
            try:
                self.version = (await self.client.version(self.node, timeout=per_call)).version.tag
            except TalosError:
                if self._target_version:
                    raise
                self.version = None  # only informative without a target
            if self._target_version and not same_version(self.version, self._target_version):
                self._not_yet = f"it runs {self.version}, not the target version {self._target_version}"
                return False
        except TalosError as exc:
            if exc.code not in RECONNECT_CODES:
                raise
            self._last_error = exc
            self._not_yet = f"it did not answer: {exc.detail or exc.code}"
            return False
        return True

    def _timeout_error(self):
        stage = f"last known stage {self.stage or 'unknown'}"
        known = [stage if self._state_current else f"{stage} (before the action)"]
        if self.ready is not None:
            known.append("ready" if self.ready else "not ready")
        if self.version:
            known.append(f"version {self.version}")
        reason = self._not_yet if self._looks_back() else None
        if reason is None and self._last_error is not None:
            reason = f"last error: {self._last_error.detail or self._last_error.code}"
        target = f" on version {self._target_version}" if self._target_version else ""
        return TalosError(
            f"Node {self.node} was not back{target} within {self._timeout:g} s ({', '.join(known)})"
            + (f"; {reason}." if reason else "."), code="DeadlineExceeded", node=self.node,
            hint="Check the node's console; raise the timeout if it is only slow.")
