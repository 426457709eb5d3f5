"""ServiceList, ServiceStart, ServiceStop, ServiceRestart."""
from google.protobuf import timestamp_pb2
from grpclib.const import Status

from ..api import machine_pb2
from .base import fail, rpc

M = "machine.MachineService"


def _timestamp(seconds):
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def service_info(service):
    return machine_pb2.ServiceInfo(
        id=service.id, state=service.state,
        events=machine_pb2.ServiceEvents(events=[
            machine_pb2.ServiceEvent(msg=msg, state=state, ts=_timestamp(ts)) for msg, state, ts in service.events]),
        health=machine_pb2.ServiceHealth(unknown=service.health_unknown, healthy=service.healthy,
                                         last_message=service.last_message,
                                         last_change=_timestamp(service.last_change)),
    )


@rpc(M, "ServiceList")
async def service_list(call, request):
    services = [service_info(s) for _name, s in sorted(call.node.services.items())]
    return machine_pb2.ServiceListResponse(messages=[machine_pb2.ServiceList(services=services)])


def _service(call, service_id):
    service = call.node.services.get(service_id)
    if service is None:
        fail(Status.UNKNOWN, f'service "{service_id}" not defined')
    return service


def _publish(call, service, action):
    call.node.events.publish(machine_pb2.ServiceStateEvent(
        service=service.id, action=action, message=service.last_message,
        health=machine_pb2.ServiceHealth(healthy=service.healthy, unknown=service.health_unknown)))


@rpc(M, "ServiceStart")
async def service_start(call, request):
    service = _service(call, request.id)
    if not service.running:
        service.transition("Running", "Health check successful", healthy=True)
        _publish(call, service, machine_pb2.ServiceStateEvent.RUNNING)
    return machine_pb2.ServiceStartResponse(messages=[
        machine_pb2.ServiceStart(resp=f'Service "{request.id}" started')])


@rpc(M, "ServiceStop")
async def service_stop(call, request):
    service = _service(call, request.id)
    service.transition("Finished", "Service finished successfully", healthy=False)
    _publish(call, service, machine_pb2.ServiceStateEvent.FINISHED)
    if request.id == "etcd":
        call.cluster.etcd.elect_leader()
    return machine_pb2.ServiceStopResponse(messages=[machine_pb2.ServiceStop(resp=f'Service "{request.id}" stopped')])


@rpc(M, "ServiceRestart")
async def service_restart(call, request):
    service = _service(call, request.id)
    service.transition("Running", "Health check successful", healthy=True)
    _publish(call, service, machine_pb2.ServiceStateEvent.RUNNING)
    return machine_pb2.ServiceRestartResponse(messages=[
        machine_pb2.ServiceRestart(resp=f'Service "{request.id}" restarted')])
