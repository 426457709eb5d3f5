"""Machine lifecycle: Reboot, Shutdown, Reset, Rollback, legacy Upgrade, LifecycleService, ImageService."""
import asyncio
import hashlib
import time

from google.protobuf import duration_pb2, timestamp_pb2
from grpclib.const import Status

from .. import sequences
from ..api import common_pb2, image_pb2, lifecycle_pb2, machine_pb2
from ..etcd import format_member_id
from ..node import ImageRecord
from ..versions import version_from_image
from .base import fail, rpc

M = "machine.MachineService"
_LAYER = image_pb2.ImageServicePullLayerProgress
PROGRESS_PAUSE = 0.005           # between streamed progress messages


def answer_lost(call):
    """An injected lost answer: the node already acted, then the connection dropped before the reply."""
    rule = call.cluster.faults.take_lost_answer(call.node.address, call.method.path)
    if rule is not None:
        fail(rule.code, rule.message)


@rpc(M, "Reboot")
async def reboot(call, request):
    actor_id = sequences.new_actor_id()
    sequences.run_in_background(call.node, sequences.reboot(call.node, actor_id))
    answer_lost(call)
    return machine_pb2.RebootResponse(messages=[machine_pb2.Reboot(actor_id=actor_id)])


@rpc(M, "Shutdown")
async def shutdown(call, request):
    actor_id = sequences.new_actor_id()
    sequences.run_in_background(call.node, sequences.shutdown(call.node, actor_id))
    return machine_pb2.ShutdownResponse(messages=[machine_pb2.Shutdown(actor_id=actor_id)])


def validate_etcd_for_upgrade(cluster, node):
    """ValidateForUpgrade: refuse a 2-member cluster, members not started and unhealthy members."""
    etcd = cluster.etcd
    prefix = "error validating etcd for upgrade: "
    if len(etcd.members) == 2:
        fail(Status.UNKNOWN, prefix + "etcd member count(2) is insufficient to maintain quorum if upgrade commences")
    for member in sorted(etcd.members.values(), key=lambda m: m.hostname):
        member_id = format_member_id(member.id)
        if not etcd.is_member_running(member) or member.is_learner:
            fail(Status.UNKNOWN, prefix + f"etcd member {member_id} is not started, "
                                          "all members must be running to perform an upgrade")
        if member.errors:
            fail(Status.UNKNOWN, prefix + f"etcd member {member_id} is not healthy; all members "
                                          f"must be healthy to perform an upgrade: {'; '.join(member.errors)}")


@rpc(M, "Reset")
async def reset(call, request):
    node, cluster = call.node, call.cluster
    Wipe = machine_pb2.ResetRequest.WipeMode
    if request.graceful and node.is_control_plane and cluster.etcd.bootstrapped:
        validate_etcd_for_upgrade(cluster, node)
        member = cluster.etcd.member_at(node.address)
        if member is not None:
            cluster.etcd.remove_member(member.id)
    labels = {p.label for p in request.system_partitions_to_wipe if p.wipe}
    if labels:
        wipe_state = "STATE" in labels
    else:
        wipe_state = request.mode in (Wipe.ALL, Wipe.SYSTEM_DISK)
    actor_id = sequences.new_actor_id()
    sequences.run_in_background(node, sequences.reset(node, actor_id, request.reboot, wipe_state))
    return machine_pb2.ResetResponse(messages=[machine_pb2.Reset(actor_id=actor_id)])


@rpc(M, "Rollback")
async def rollback(call, request):
    node = call.node
    if node.previous_version is None:
        # GRUB's Revert with no previous entry (a plain error, so Unknown)
        fail(Status.UNKNOWN, 'cannot rollback to "", label does not exist')
    node.pending_version = node.previous_version
    sequences.run_in_background(node, sequences.reboot(node, sequences.new_actor_id()))
    answer_lost(call)
    return machine_pb2.RollbackResponse(messages=[machine_pb2.Rollback()])


def _check_installer_pull(call, image):
    failure = call.cluster.faults.image_pull_failures.get(image)
    if failure is not None:
        fail(Status.UNKNOWN, f"error pulling installer image {image!r}: {failure}")


@rpc(M, "Upgrade")
async def legacy_upgrade(call, request):
    """Accept, check, answer at once; pull, install and reboot happen afterwards (§4.3)."""
    node, cluster = call.node, call.cluster
    if not node.installed and node.version.at_least(13):
        fail(Status.FAILED_PRECONDITION, "Talos is not installed")
    if not request.image:
        fail(Status.INVALID_ARGUMENT, "image is required")
    _check_installer_pull(call, request.image)
    if node.is_control_plane and not request.force and not request.preserve and cluster.etcd.bootstrapped:
        validate_etcd_for_upgrade(cluster, node)
    actor_id = sequences.new_actor_id()
    target = version_from_image(request.image)
    sequences.run_in_background(node, sequences.upgrade_and_reboot(node, target, actor_id))
    answer_lost(call)
    return machine_pb2.UpgradeResponse(messages=[machine_pb2.Upgrade(ack="Upgrade request received",
                                                                     actor_id=actor_id)])


def containerd_namespace(containerd):
    return "cri" if containerd.namespace == common_pb2.NS_CRI else "system"


async def _run_installer(call, image, verb):
    """Shared by LifecycleService Install/Upgrade: progress messages, then the exit code."""
    node = call.node
    Response = lifecycle_pb2.LifecycleServiceUpgradeResponse if verb == "upgrade" else \
        lifecycle_pb2.LifecycleServiceInstallResponse

    def progress(**fields):
        return Response(progress=lifecycle_pb2.LifecycleServiceInstallProgress(**fields))

    target = version_from_image(image)
    node.lifecycle_busy = True
    try:
        for message in (f"using installer image {image}", "validating installer image",
                        f"running installer for {verb}", f"installing Talos {target.tag if target else image}"):
            yield progress(message=message)
            await asyncio.sleep(PROGRESS_PAUSE)
        exit_code = call.cluster.faults.upgrade_failures.get(image)
        if exit_code:
            yield progress(message=f"installer failed: exit status {exit_code}")
            yield progress(exit_code=exit_code)
            return
        if target is not None:
            node.pending_version = target
        node.installed = True
        yield progress(message=f"{verb} completed successfully, reboot to apply")
        yield progress(exit_code=0)
    finally:
        node.lifecycle_busy = False


def _lifecycle_preconditions(call, request, verb):
    """internal/app/lifecycle, in its order: busy, installed or not, then the image."""
    node = call.node
    image = request.source.image_name
    if node.lifecycle_busy:
        fail(Status.FAILED_PRECONDITION, "another installation/upgrade is already in progress")
    if verb == "upgrade" and not node.installed:
        fail(Status.FAILED_PRECONDITION, "machine is not installed")
    if verb == "install" and node.installed:
        fail(Status.ALREADY_EXISTS, "machine is already installed")
    if not image:
        fail(Status.INVALID_ARGUMENT, "installer image name is required")
    if image not in node.images[containerd_namespace(request.containerd)]:
        fail(Status.INTERNAL, f"installer image {image!r} not found in containerd store")
    return image


@rpc("machine.LifecycleService", "Upgrade", since_minor=13)
async def lifecycle_upgrade(call, request):
    image = _lifecycle_preconditions(call, request, "upgrade")
    async for message in _run_installer(call, image, "upgrade"):
        yield message


@rpc("machine.LifecycleService", "Install", since_minor=13)
async def lifecycle_install(call, request):
    image = _lifecycle_preconditions(call, request, "install")
    async for message in _run_installer(call, image, "install"):
        yield message


def normalise_reference(reference):
    """containerd's normalisation: bare names live on docker.io/library, tags default to latest."""
    name = reference
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def _timestamp(seconds):
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


@rpc("machine.ImageService", "Pull", since_minor=13)
async def image_pull(call, request):
    reference = request.image_ref
    if not reference:
        fail(Status.INVALID_ARGUMENT, "image reference is required")
    failure = call.cluster.faults.image_pull_failures.get(reference)
    if failure is not None:
        fail(Status.UNKNOWN, f"failed to pull image {reference!r}: {failure}")
    name = normalise_reference(reference)
    digest = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
    for layer in range(2):
        layer_id = hashlib.sha256(f"{name}/{layer}".encode()).hexdigest()[:12]
        total = 30_000_000 + layer * 1_000_000
        for status, offset in ((_LAYER.DOWNLOADING, total // 2), (_LAYER.DOWNLOAD_COMPLETE, total),
                               (_LAYER.EXTRACTING, total // 2), (_LAYER.EXTRACT_COMPLETE, total)):
            yield image_pb2.ImageServicePullResponse(pull_progress=image_pb2.ImageServicePullProgress(
                layer_id=layer_id, progress=_LAYER(status=status, elapsed=duration_pb2.Duration(nanos=5_000_000),
                                                   offset=offset, total=total)))
        await asyncio.sleep(PROGRESS_PAUSE)
    store = call.node.images[containerd_namespace(request.containerd)]
    record = ImageRecord(name, digest, 61_000_000, time.time())
    store[name] = record
    store[reference] = record
    yield image_pb2.ImageServicePullResponse(name=name)


@rpc("machine.ImageService", "List", since_minor=13)
async def image_list(call, request):
    store = call.node.images[containerd_namespace(request.containerd)]
    seen = set()
    for record in sorted(store.values(), key=lambda r: r.name):
        if record.name in seen:
            continue
        seen.add(record.name)
        yield image_pb2.ImageServiceListResponse(name=record.name, digest=record.digest, size=record.size,
                                                 created_at=_timestamp(record.created))
