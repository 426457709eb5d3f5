"""Read, List, Copy and DiskUsage over the node's file tree (filesystem.py), as v1alpha1_server.go does."""
import posixpath

from grpclib.const import Status

from .. import filesystem
from ..api import common_pb2, machine_pb2
from .base import fail, rpc

M = "machine.MachineService"


@rpc(M, "Read")
async def read(call, request):
    _path, entry = filesystem.resolve(filesystem.tree(call.node), request.path)
    if entry is None:
        fail(Status.NOT_FOUND, filesystem.not_found("stat", request.path))
    if entry.kind != "file":
        fail(Status.UNKNOWN, "path must be a regular file")
    for chunk in filesystem.chunks(entry.data):
        yield common_pb2.Data(bytes=chunk)


def _walk_root(entries, root):
    """Walker's start: Lstat the root (an error ends the call), follow a symlink root."""
    if root not in entries:
        fail(Status.UNKNOWN, filesystem.not_found("lstat", root))
    if entries[root].kind == "link":
        root, entry = filesystem.resolve(entries, root)
        if entry is None:
            fail(Status.UNKNOWN, filesystem.not_found("lstat", root))
    return root


_LIST_TYPES = {machine_pb2.ListRequest.REGULAR: "file", machine_pb2.ListRequest.DIRECTORY: "dir",
               machine_pb2.ListRequest.SYMLINK: "link"}


@rpc(M, "List")
async def list_files(call, request):
    root = request.root if request.root.startswith("/") else "/" + request.root
    root = root.rstrip("/") or "/"
    depth = (request.recursion_depth or -1) if request.recurse else 0
    kinds = {_LIST_TYPES[t] for t in request.types if t in _LIST_TYPES}
    entries = filesystem.tree(call.node)
    root = _walk_root(entries, root)
    accept = (lambda entry: entry.kind in kinds) if request.types else None
    for path, relative, entry in filesystem.walk(entries, root, depth, accept):
        yield machine_pb2.FileInfo(name=path, relative_name=relative, size=entry.size, mode=entry.go_mode,
                                   modified=entry.mtime, is_dir=entry.kind == "dir", link=entry.target)


@rpc(M, "Copy")
async def copy(call, request):
    """A .tar.gz of the path in 1024-byte chunks; an absent root ends with the Walker's error."""
    path = posixpath.normpath(request.root_path) if request.root_path else "."
    if not path.startswith("/"):
        fail(Status.UNKNOWN, f"path is not absolute {path}")
    entries = filesystem.tree(call.node)
    root = _walk_root(entries, path)
    for chunk in filesystem.chunks(filesystem.tar_gz(entries, root)):
        yield common_pb2.Data(bytes=chunk)


def _usage(entries, root, path, sizes):
    """Post-order: every entry's size, a directory's own plus all below it."""
    entry = entries[path]
    total = max(entry.size, 0)
    if entry.kind == "dir":
        for child in filesystem.children(entries, path):
            total += _usage(entries, root, child, sizes)
    sizes.append((path, entry, total))
    return total


@rpc(M, "DiskUsage")
async def disk_usage(call, request):
    """Only the first path is processed (upstream returns inside its loop); errors arrive in-band."""
    for path in request.paths[:1]:
        path = path if path.startswith("/") else "/" + path
        path = path.rstrip("/") or "/"
        entries = filesystem.tree(call.node)
        if path not in entries:
            yield machine_pb2.DiskUsageInfo(name=path, relative_name=path,
                                            error=filesystem.not_found("lstat", path))
            return
        root, entry = filesystem.resolve(entries, path) if entries[path].kind == "link" else (path, entries[path])
        root_depth = root.count("/")
        sizes = []
        _usage(entries, root, root, sizes)
        for full, entry, size in sizes:
            depth = 0 if full == root else full.count("/") - root_depth
            is_dir = entry.kind == "dir"
            too_deep = 0 < request.recursion_depth <= depth
            outside = (request.threshold > 0 and size < request.threshold) or \
                (request.threshold < 0 and size > -request.threshold)
            if too_deep or outside or (not is_dir and not request.all):
                continue
            relative = posixpath.basename(full) if full == root and not is_dir else posixpath.relpath(full, root)
            yield machine_pb2.DiskUsageInfo(name=full, relative_name=relative, size=size)
