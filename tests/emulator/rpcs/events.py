"""MachineService.Events: a hello event, the requested backlog, then live events."""
from google.protobuf import any_pb2

from ..api import machine_pb2
from ..events import new_event_id, pack
from .base import rpc


def _to_proto(recorded):
    return machine_pb2.Event(data=pack(recorded.payload), id=recorded.id, actor_id=recorded.actor_id)


def _hello(actor_id):
    """machined's sendEmptyEvent: an Event with no payload, so `data` is an empty Any that is on the wire,
    with a fresh id and the requested actor id; it tells the client the stream is established."""
    hello = machine_pb2.Event(id=new_event_id(), actor_id=actor_id)
    hello.data.CopyFrom(any_pb2.Any())
    hello.data.SetInParent()
    return hello


@rpc("machine.MachineService", "Events")
async def events(call, request):
    node = call.node
    log = node.events
    actor = request.with_actor_id

    def wanted(recorded):
        return not actor or recorded.actor_id == actor

    yield _hello(actor)
    backlog = log.backlog(request.tail_events, request.tail_id, request.tail_seconds)
    seen = {e.id for e in log.events}
    for recorded in backlog:
        if wanted(recorded):
            yield _to_proto(recorded)
    while node.generation == call.generation:
        fresh = [recorded for recorded in log.events if recorded.id not in seen]
        if not fresh:
            await log.wait()
            continue
        for recorded in fresh:
            seen.add(recorded.id)
            if wanted(recorded):
                yield _to_proto(recorded)
