"""Legacy MachineService ImageList/ImagePull (deprecated in 1.13) and ImageService Import/Remove/Verify (1.13+)."""
import hashlib
import io
import json
import tarfile
import time

from google.protobuf import empty_pb2
from grpclib.const import Status

from ..api import common_pb2, image_pb2, machine_pb2
from ..node import ImageRecord
from .base import fail, rpc
from .lifecycle import _timestamp, containerd_namespace, normalise_reference

M = "machine.MachineService"
I = "machine.ImageService"
_STORES = {common_pb2.NS_SYSTEM: "system", common_pb2.NS_CRI: "cri"}


def _legacy_store(call, namespace):
    """containerdNamespaceHelper: NS_UNKNOWN (the proto default) is refused."""
    if namespace not in _STORES:
        fail(Status.INVALID_ARGUMENT, f"invalid namespace {common_pb2.ContainerdNamespace.Name(namespace)}")
    return call.node.images[_STORES[namespace]]


@rpc(M, "ImageList")
async def image_list(call, request):
    store = _legacy_store(call, request.namespace)
    seen = set()
    for record in sorted(store.values(), key=lambda r: r.name):
        if record.name not in seen:
            seen.add(record.name)
            yield machine_pb2.ImageListResponse(name=record.name, digest=record.digest, size=record.size,
                                                created_at=_timestamp(record.created))


def store_pulled(store, reference):
    name = normalise_reference(reference)
    record = store.get(name) or ImageRecord(name, "sha256:" + hashlib.sha256(name.encode()).hexdigest(),
                                            61_000_000, time.time())
    store[name] = store[reference] = record
    return record


@rpc(M, "ImagePull")
async def image_pull(call, request):
    store = _legacy_store(call, request.namespace)
    failure = call.cluster.faults.image_pull_failures.get(request.reference)
    if failure is not None:
        fail(Status.NOT_FOUND, f"error pulling image: {failure}")
    store_pulled(store, request.reference)          # WithSkipIfAlreadyPulled
    return machine_pb2.ImagePullResponse(messages=[machine_pb2.ImagePull()])


def _archive_image_names(data):
    """Image names an OCI or docker-save tarball declares (index.json annotations, manifest.json RepoTags)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = {m.name.lstrip("./"): m for m in archive.getmembers() if m.isfile()}
            if "index.json" in members:
                index = json.load(archive.extractfile(members["index.json"]))
                return [m.get("annotations", {}).get("io.containerd.image.name")
                        or m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                        for m in index.get("manifests", []) if m.get("annotations")]
            if "manifest.json" in members:
                return [tag for entry in json.load(archive.extractfile(members["manifest.json"]))
                        for tag in entry.get("RepoTags") or []]
    except (tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        fail(Status.INTERNAL, f"failed to import image: {exc}")
    fail(Status.INTERNAL, "failed to import image: unrecognized image format")


@rpc(I, "Import", since_minor=13)
async def image_import(call, requests):
    first = await requests.recv_message()
    if first is None or not first.HasField("containerd"):
        fail(Status.INVALID_ARGUMENT, "containerd instance is required")
    chunks = []
    async for message in requests:
        if not message.HasField("image_chunk"):
            fail(Status.INTERNAL, "failed to import image: no image chunk")
        chunks.append(message.image_chunk.bytes)
    names = [n for n in _archive_image_names(b"".join(chunks)) if n]
    if not names:
        fail(Status.INVALID_ARGUMENT, "no images imported from archive")
    store = call.node.images[containerd_namespace(first.containerd)]
    for name in names:
        store_pulled(store, name)
    return image_pb2.ImageServiceImportResponse(name=normalise_reference(names[0]))


@rpc(I, "Remove", since_minor=13)
async def image_remove(call, request):
    store = call.node.images[containerd_namespace(request.containerd)]
    record = store.get(request.image_ref)
    if record is None:
        fail(Status.NOT_FOUND, f"image {request.image_ref} not found")
    for key in [k for k, v in store.items() if v is record]:
        del store[key]
    return empty_pb2.Empty()


@rpc(I, "Verify", since_minor=13)
async def image_verify(call, request):
    """No ImageVerificationConfig in the emulated configs: every valid reference is allowed unverified."""
    reference = request.image_ref
    repository = reference.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    if not repository or any(c.isspace() for c in reference) or repository != repository.lower():
        fail(Status.INVALID_ARGUMENT, f"image reference is invalid: could not parse reference: {reference}")
    return image_pb2.ImageServiceVerifyResponse(verified=False, message="no matched rule")
