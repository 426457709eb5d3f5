"""A node's machined event buffer (what MachineService/Events streams).

Payloads are packed into google.protobuf.Any with the type URL prefix "talos/runtime", e.g.
"talos/runtime/machine.MachineStatusEvent". The buffer lives in memory and starts empty on every boot.
"""
import asyncio
import base64
import collections
import dataclasses
import os
import threading
import time

from google.protobuf import any_pb2

TYPE_URL_PREFIX = "talos/runtime/"
BUFFER_SIZE = 1000

_counter_lock = threading.Lock()
_counter = int.from_bytes(os.urandom(3), "big")
_machine_id = os.urandom(5)
_BASE32HEX = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUV", b"abcdefghijklmnopqrstuv")


def new_event_id():
    """A 20-character, time-ordered id in the style of the xid ids Talos uses."""
    global _counter
    with _counter_lock:
        _counter = (_counter + 1) & 0xFFFFFF
        counter = _counter
    raw = int(time.time()).to_bytes(4, "big") + _machine_id + \
        counter.to_bytes(3, "big")
    return base64.b32hexencode(raw).rstrip(b"=").translate(_BASE32HEX).decode()[:20]


def pack(message):
    return any_pb2.Any(type_url=TYPE_URL_PREFIX + message.DESCRIPTOR.full_name, value=message.SerializeToString())


@dataclasses.dataclass(frozen=True)
class RecordedEvent:
    id: str
    timestamp: float
    actor_id: str
    payload: object      # a machine.* event message


class EventLog:
    def __init__(self):
        self.events = collections.deque(maxlen=BUFFER_SIZE)
        self._changed = asyncio.Event()

    def publish(self, payload, actor_id=""):
        event = RecordedEvent(new_event_id(), time.time(), actor_id, payload)
        self.events.append(event)
        self.wake()
        return event

    def wake(self):
        """Wake every waiting stream (new event, or the node going away)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self):
        await self._changed.wait()

    def backlog(self, tail_events=0, tail_id="", tail_seconds=0):
        """Buffered events a new stream starts with: tail_events (-1 = all), tail_id or tail_seconds."""
        events = list(self.events)
        if tail_id:
            ids = [e.id for e in events]
            return events[ids.index(tail_id) + 1:] if tail_id in ids else events
        if tail_seconds > 0:
            cutoff = time.time() - tail_seconds
            return [e for e in events if e.timestamp >= cutoff]
        if tail_events < 0:
            return events
        return events[len(events) - tail_events:] if tail_events else []
