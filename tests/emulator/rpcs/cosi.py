"""COSI `cosi.resource.State`: Get, List, Watch, and the writes Talos refuses (talos-api.md §5).

Talos's access filter runs after RBAC: writes are refused, unregistered types or namespaces are
"not supported", and Sensitive types need os:admin.
"""
import asyncio
import re

from grpclib.const import Status

from .. import rbac
from ..api import resource_pb2, state_pb2
from ..resources import NAMESPACES, RESOURCE_TYPES, tombstone
from .base import fail, rpc

S = "cosi.resource.State"


def _check_access(call, namespace, type_):
    if namespace not in NAMESPACES:
        fail(Status.PERMISSION_DENIED, f"namespace {namespace!r} is not supported")
    definition = RESOURCE_TYPES.get(type_)
    if definition is None:
        fail(Status.PERMISSION_DENIED, f"resource type {type_!r} is not supported")
    if definition.sensitive and rbac.ADMIN not in call.roles:
        fail(Status.PERMISSION_DENIED, rbac.NOT_AUTHORIZED)


async def _refuse_write(call, request):
    fail(Status.PERMISSION_DENIED, "write access is not allowed")


for _name in ("Create", "Update", "Destroy", "Teardown", "TeardownAndDestroy"):
    rpc(S, _name)(_refuse_write)


@rpc(S, "Get")
async def get(call, request):
    _check_access(call, request.namespace, request.type)
    stored = call.node.resources.get(request.namespace, request.type, request.id)
    if stored is None:
        fail(Status.NOT_FOUND, f"resource {request.type}({request.namespace}/{request.id}@undefined) doesn't exist")
    return state_pb2.GetResponse(resource=stored.to_proto())


def _label_term_matches(term, labels):
    op = resource_pb2.LabelTerm
    present = term.key in labels
    value = labels.get(term.key)
    if term.op == op.EXISTS:
        result = present
    elif term.op == op.NOT_EXISTS:
        result = not present
    elif term.op == op.EQUAL:
        result = present and value == (term.value[0] if term.value else "")
    elif term.op == op.IN:
        result = present and value in term.value
    elif term.op in (op.LT, op.LTE):
        bound = term.value[0] if term.value else ""
        result = present and (value < bound or (term.op == op.LTE and value == bound))
    else:   # LT_NUMERIC, LTE_NUMERIC
        try:
            number, bound = float(value), float(term.value[0])
        except (TypeError, ValueError, IndexError):
            result = False
        else:
            result = number < bound or (term.op == op.LTE_NUMERIC and number == bound)
    return result != term.invert


def _filter(label_queries, id_query):
    pattern = re.compile(id_query.regexp) if id_query is not None and id_query.regexp else None

    def matches(stored):
        if pattern is not None and not pattern.search(stored.id):
            return False
        labels = stored.data.labels or {}
        # Several label queries are OR-ed; terms inside one query are AND-ed.
        if label_queries and not any(all(_label_term_matches(t, labels) for t in q.terms) for q in label_queries):
            return False
        return True
    return matches


def _id_filter(resource_id):
    def matches(stored):
        return stored.id == resource_id
    return matches


@rpc(S, "List")
async def list_(call, request):
    _check_access(call, request.namespace, request.type)
    options = request.options
    matches = _filter(list(options.label_query), options.id_query if options.HasField("id_query") else None)
    for stored in call.node.resources.list(request.namespace, request.type):
        if matches(stored):
            yield state_pb2.ListResponse(resource=stored.to_proto())


def _event(event_type, resource, old=None):
    event = resource_pb2.Event(event_type=event_type)
    if resource is not None:
        event.resource.CopyFrom(resource)
    if old is not None:
        event.old.CopyFrom(old)
    return event


def _store_event(store_event):
    if store_event.event_type == resource_pb2.DESTROYED:
        return _event(resource_pb2.DESTROYED, store_event.resource.to_proto())
    old = store_event.old.to_proto() if store_event.old is not None else None
    return _event(store_event.event_type, store_event.resource.to_proto(), old)


@rpc(S, "Watch")
async def watch(call, request):
    """Single resource (id set): the current state first. Kind: bootstrap contents, then changes."""
    _check_access(call, request.namespace, request.type)
    node, options = call.node, request.options
    store = node.resources
    queue = store.subscribe(request.namespace, request.type)
    try:
        if request.id:
            matches = _id_filter(request.id)
            current = store.get(request.namespace, request.type, request.id)
            if options.tail_events > 0:
                history = [e for e in store.history(request.namespace, request.type)
                           if e.resource.id == request.id][-options.tail_events:]
                for store_event in history:
                    yield state_pb2.WatchResponse(event=[_store_event(store_event)])
            elif current is not None:
                yield state_pb2.WatchResponse(event=[_event(resource_pb2.CREATED, current.to_proto())])
            else:
                yield state_pb2.WatchResponse(event=[_event(
                    resource_pb2.DESTROYED, tombstone(request.namespace, request.type, request.id))])
        else:
            matches = _filter(list(options.label_query), options.id_query if options.HasField("id_query") else None)
            if options.tail_events > 0:
                history = [e for e in store.history(request.namespace, request.type) if matches(e.resource)]
                for store_event in history[-options.tail_events:]:
                    yield state_pb2.WatchResponse(event=[_store_event(store_event)])
            elif options.bootstrap_contents:
                initial = [_event(resource_pb2.CREATED, stored.to_proto())
                           for stored in store.list(request.namespace, request.type) if matches(stored)]
                if request.api_version >= 1:
                    initial.append(resource_pb2.Event(event_type=resource_pb2.BOOTSTRAPPED))
                if options.aggregated:
                    if initial:
                        yield state_pb2.WatchResponse(event=initial)
                else:
                    for event in initial:
                        yield state_pb2.WatchResponse(event=[event])
        while True:
            store_event = await queue.get()
            if store_event is None:          # the node went away
                return
            batch = [store_event]
            if options.aggregated:
                while not queue.empty():
                    batch.append(queue.get_nowait())
            events = [_store_event(e) for e in batch if e is not None and matches(e.resource)]
            if events:
                yield state_pb2.WatchResponse(event=events)
            if None in batch:
                return
            await asyncio.sleep(0)
    finally:
        store.unsubscribe(request.namespace, request.type, queue)
