"""A node's file tree, as Read, List, Copy and DiskUsage see it: built from the node's state on every call.

Paths are absolute; directories are implied by the files under them. /proc files report size 0 (as procfs
does) but read their content. Modes follow Go's os.FileMode, which is what List sends on the wire.
"""
import dataclasses
import io
import posixpath
import tarfile

from . import hardware

BUILD_TIME = 1768471200                 # 2026-01-15T10:00:00Z, the image build (facts.BUILD_DATE)
GO_MODE_DIR = 1 << 31                   # os.ModeDir
GO_MODE_SYMLINK = 1 << 27               # os.ModeSymlink
DIRECTORY_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str                           # "file", "dir" or "link"
    mode: int                           # permission bits
    mtime: int
    data: bytes = b""
    target: str = ""                    # symlink target
    procfs: bool = False                # stat size 0, content on read

    @property
    def size(self):
        if self.kind == "dir":
            return DIRECTORY_SIZE
        if self.kind == "link":
            return len(self.target)
        return 0 if self.procfs else len(self.data)

    @property
    def go_mode(self):
        return self.mode | {"dir": GO_MODE_DIR, "link": GO_MODE_SYMLINK}.get(self.kind, 0)


def _file(data, mode=0o644, mtime=BUILD_TIME):
    return Entry("file", mode, mtime, data=data)


def _proc(text, mtime):
    return Entry("file", 0o444, mtime, data=text.encode(), procfs=True)


def tree(node):
    """Every entry of the node's tree by absolute path (directories included)."""
    booted = int(node.boot_time)
    files = {
        "/etc/os-release": _file(f'NAME="Talos"\nID=talos\nVERSION_ID={node.version.tag}\n'
                                 f'PRETTY_NAME="Talos ({node.version.tag})"\n'.encode()),
        "/etc/resolv.conf": _file(b"nameserver 127.0.0.53\n", mtime=booted),
        "/etc/localtime": Entry("link", 0o777, BUILD_TIME, target="/usr/share/zoneinfo/UTC"),
        "/usr/share/zoneinfo/UTC": _file(b"TZif2\x00UTC\n"),
        "/proc/sys/kernel/random/boot_id": _proc(node.boot_id + "\n", booted),
        "/proc/sys/kernel/hostname": _proc(node.hostname + "\n", booted),
        "/proc/loadavg": _proc("%.2f %.2f %.2f 1/300 1234\n" % hardware.LOAD_AVERAGE, booted),
        "/proc/cmdline": _proc("talos.platform=metal console=ttyS0 init_on_alloc=1\n", booted),
        "/var/log/audit/audit.log": _file(b'type=DAEMON_START msg=audit(0.0:1): op=start ver=3.1 res=success\n',
                                          mode=0o600, mtime=booted),
        "/var/lib/kubelet/config.yaml": _file(b"apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                              b"kind: KubeletConfiguration\n", mode=0o600, mtime=booted),
    }
    if node.persistent_config is not None:
        files["/system/state/config.yaml"] = _file(node.persistent_config, mode=0o600, mtime=booted)
    entries = {"/": Entry("dir", 0o755, BUILD_TIME)}
    for path, entry in files.items():
        entries[path] = entry
        parent = posixpath.dirname(path)
        while parent not in entries:
            entries[parent] = Entry("dir", 0o755, BUILD_TIME)
            parent = posixpath.dirname(parent)
    return entries


def children(entries, directory):
    return sorted(p for p in entries if p != "/" and posixpath.dirname(p) == directory)


def resolve(entries, path, hops=8):
    """os.Stat: follow symlinks; None when the path (or a link's target) does not exist."""
    entry = entries.get(path)
    while entry is not None and entry.kind == "link" and hops:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.target))
        entry, hops = entries.get(path), hops - 1
    return path, entry


def not_found(op, path):
    return f"{op} {path}: no such file or directory"


def _at_max_depth(maximum, root, current):
    """archiver.atMaxDepth, separator counting and all (so depth 1 below "/" differs from below "/etc")."""
    if maximum < 0 or root == current:
        return False
    return current.count("/") - root.count("/") >= maximum


def walk(entries, root, max_depth=-1, accept=None):
    """archiver.Walker over the tree: (full path, relative name, entry) in filepath.Walk's lexical order.

    `accept(entry)` filters what is yielded; like upstream, a directory it refuses is still descended
    into, without the depth limit applying to it.
    """
    entry = entries[root]

    def visit(path, entry):
        relative = posixpath.basename(path) if path == root and entry.kind != "dir" else \
            posixpath.relpath(path, root)
        if accept is not None and not accept(entry):
            descend = True
        else:
            yield path, relative, entry
            descend = not (entry.kind == "dir" and _at_max_depth(max_depth, root, path))
        if entry.kind == "dir" and descend:
            for child in children(entries, path):
                yield from visit(child, entries[child])
    yield from visit(root, entry)


def tar_gz(entries, root):
    """archiver.TarGz with WithSkipRoot: a file root under its base name, a directory's entries relative to it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as archive:
        for path, relative, entry in walk(entries, root):
            if path == root and entry.kind == "dir":
                continue
            info = tarfile.TarInfo(relative + ("/" if entry.kind == "dir" else ""))
            info.mode, info.mtime = entry.mode, entry.mtime
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif entry.kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                archive.addfile(info)
            else:
                info.size = len(entry.data)          # /proc files: the bytes read (< 4096) give the size
                archive.addfile(info, io.BytesIO(entry.data))
    return raw.getvalue()


def chunks(data, size=1024):
    """stream.NewChunker's default: 1024-byte messages."""
    return [data[i:i + size] for i in range(0, len(data), size)]
