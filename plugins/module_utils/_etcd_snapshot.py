# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The file side of talos_etcd: ``state: snapshot`` writes an etcd snapshot to ``dest``; ``src`` is checked
before ``state: recovered`` uploads it.

Private to the talos.linux collection: it may change in any release. No Ansible import here.

What ``dest`` holds. Without ``passphrase``: exactly the bytes the node streamed (EtcdSnapshot,
talos-api.md §4.4), the etcd database followed by the SHA-256 of it (a 32-byte trailer), so that
``size % 512 == 32``; the same file ``talosctl etcd snapshot`` writes, which ``talosctl bootstrap
--recover-from`` also takes. With ``passphrase``: that file encrypted in the format below.

How it is written. The stream goes into a partial file beside ``dest`` (created 0600, named as PartialFile
says), its SHA-256 computed on the way while only the last 32 bytes are held back, so memory stays the same
whatever the snapshot size.
When the stream ends, the size and the trailer are checked; only a good snapshot is synced to disk, given its
``mode`` and renamed onto ``dest`` in one step (then the directory is synced). Anything else (an interrupted
stream, a bad trailer, a full disk, a cancelled task, SIGINT or SIGTERM) removes the partial file, and the next
run removes those of killed writers: ``dest`` is never partial,
never corrupt, and an existing ``dest`` is replaced only by a good snapshot. Hashing, encryption and writing
run in one helper thread while the event loop receives the next messages; the file is written in 1 MiB blocks
with O_DIRECT where the filesystem allows it (see BLOCK_SIZE), through the page cache elsewhere.

Encrypted file format, version 1 (AES-256-GCM in chunks, after age's STREAM construction)::

    magic        41 bytes  "talos.linux etcd snapshot, encrypted, v1\\n"  (makes the file recognisable)
    kdf          1 byte    1 = scrypt
    log2 N       1 byte    scrypt cost (17 when written: 128 MiB and about half a second, once per file)
    r, p         1 byte each  scrypt block size and parallelism (8, 1)
    salt         16 bytes  random per file
    chunk size   4 bytes   big-endian plaintext bytes per chunk (1 MiB when written)
    header MAC   32 bytes  HMAC-SHA256 with the header key over every byte above
    chunks       each chunk-size plaintext bytes sealed with AES-256-GCM (ciphertext + 16-byte tag); only the
                 last may be shorter, and it is never empty unless the plaintext is

The 64 bytes scrypt derives from the passphrase (UTF-8) and the salt are the header key (first 32) and the
payload key. Chunk ``i`` (from 0) uses the 12-byte nonce ``i`` as 11 big-endian bytes followed by 1 for the
last chunk and 0 for the others, so reordering, dropping, truncating at a chunk boundary or appending are
all detected; the random salt gives every file its own keys, so counter nonces never repeat under one key.
A wrong passphrase shows as a header MAC mismatch, told apart from damaged data. docs/etcd-snapshot-format.md
describes it for people who need to read such files without this collection.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time

from ._errors import TalosError, allowed_roles

OPTIONS_SNAPSHOT = {
    "dest": {"type": "path"},
    "src": {"type": "path"},
    "mode": {"type": "raw", "default": "0600"},
    "passphrase": {"type": "str", "no_log": True},
}

SNAPSHOT_RPC = "MachineService/EtcdSnapshot"
ALIGNMENT = 512
TRAILER = 32                        # SHA-256 of everything before it
# Messages are handed to the helper thread in batches of about this many bytes (references, not copies): the
# node may stream messages of a few KiB, and each hand-over wakes a thread.
HANDOFF_SIZE = 2 << 20
# Batches queued for the helper thread: a few absorb the disk's hiccups without the stream stalling behind them,
# and memory stays at a few batches whatever the snapshot size.
IN_FLIGHT = 4
# The file is written in blocks of this size from one page-aligned buffer, with O_DIRECT where the filesystem
# takes it: no copy into the page cache (most of the CPU a buffered write costs), the disk writes while the
# stream goes on instead of all at the final fsync, and a backup read by nobody soon evicts no cached data.
BLOCK_SIZE = 1 << 20
# EtcdRecover messages: talosctl sends 4 KiB. 1 MiB costs 256 times fewer messages (each is a protobuf object,
# a send_message and a flow-control wait in grpclib, which dominate at 4 KiB), stays far below Talos's
# 32 MiB message limit, and holds about 2 MiB in memory.
UPLOAD_CHUNK = 1 << 20
# A transfer may take long (etcd's largest quota, 8 GiB, at 1 MB/s is over two hours): it has this overall
# deadline, and fails sooner when the node sends nothing for the task's ``timeout`` seconds.
TRANSFER_DEADLINE = 6 * 3600.0
DEFAULT_IDLE_TIMEOUT = 30.0

MAGIC = b"talos.linux etcd snapshot, encrypted, v1\n"
KDF_SCRYPT = 1
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 17, 8, 1
SCRYPT_MAX_MEMORY = 1 << 30         # a header asking more than this is refused, not obeyed
SALT_SIZE = 16
MAC_SIZE = 32
TAG_SIZE = 16
ENCRYPTED_CHUNK = 1 << 20
MAX_ENCRYPTED_CHUNK = 16 << 20
_FIELDS = ">BBBB16sI"               # kdf, log2 N, r, p, salt, chunk size
_FIELDS_SIZE = 24                   # struct.calcsize(_FIELDS)
HEADER_SIZE = len(MAGIC) + _FIELDS_SIZE + MAC_SIZE

_OCTAL_MODE = re.compile(r"(?:0o?)?([0-7]{1,4})")


# --- options -------------------------------------------------------------------------------------------------

# A snapshot holds every secret of the cluster (encrypted, it still invites offline guessing of the passphrase),
# and a backup anyone may overwrite is no backup: the group may at most read it, others get nothing, and its
# owner must be able to read it back.


def parse_mode(value):
    """The file mode of ``dest`` from the ``mode`` option: an octal string ('0600', '640', '0o600') or an int
    (a YAML 0600 arrives as the int 384). Special bits are refused; so is a decimal int such as 600, and a mode
    that lets the group write or others do anything, or keeps the owner from reading the file."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and _OCTAL_MODE.fullmatch(value.strip()):
        mode = int(_OCTAL_MODE.fullmatch(value.strip()).group(1), 8)
    else:
        raise TalosError(f"mode {value!r} is not an octal file mode.", code="InvalidOption",
                         hint="Give it quoted, such as mode: '0600' (symbolic modes like u=rw are not accepted).")
    if not 0 <= mode <= 0o777:
        octal = f" (octal {mode:o})" if mode > 0 else ""
        raise TalosError(f"mode {value!r}{octal} is not a permission mode of 0 to 0777.", code="InvalidOption",
                         hint="Quote the octal digits, such as mode: '0600': an unquoted 600 is the decimal number "
                              "600. Setuid, setgid and sticky bits have no use on a snapshot file.")
    wrong = []
    if mode & 0o020:
        wrong.append("lets the group write it")
    if mode & 0o007:
        wrong.append("gives other users access")
    if not mode & 0o400:
        wrong.append("does not let its owner read it")
    if wrong:
        raise TalosError(f"mode {value!r} (octal {format_mode(mode)}) {' and '.join(wrong)}: an etcd snapshot holds "
                         "every secret of the cluster, and a backup others may change or its owner cannot read is "
                         "no backup.", code="InvalidOption",
                         hint="Use mode '0600' (the default), '0400', or '0640' to let one group read it. Nothing "
                              "was sent.")
    return mode


def format_mode(mode):
    return f"{mode:04o}"


def check_passphrase(passphrase):
    """None (no encryption) or the passphrase, refusing an empty one (it would look like encryption)."""
    if passphrase is None:
        return None
    if not isinstance(passphrase, str) or not passphrase:
        raise TalosError("passphrase is empty.", code="InvalidOption",
                         hint="Give a non-empty passphrase, or leave passphrase unset to write an unencrypted file.")
    return passphrase


def check_destination(dest):
    """Fail before any streaming when ``dest`` cannot become the snapshot file."""
    if not dest:
        raise TalosError("dest is required for state=snapshot.", code="InvalidOption",
                         hint="Give the path on the controller to write the etcd snapshot to, such as "
                              "dest: /var/backups/talos/etcd.snapshot (a relative path starts from the directory "
                              "ansible-playbook runs in).")
    path = os.path.abspath(dest)
    if os.path.isdir(path):
        raise TalosError(f"dest {dest!r} is a directory.", code="InvalidOption",
                         hint=f"Give a file path inside it, such as {os.path.join(dest, 'etcd.snapshot')}.")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise TalosError(f"dest {dest!r} exists and is not a regular file.", code="InvalidOption",
                         hint="Give the path of a regular file (it is replaced) or of a file that does not exist.")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.lexists(directory) else "does not exist"
        raise TalosError(f"The directory {directory} of dest {dest!r} {what}.", code="InvalidOption",
                         hint="Create it first (ansible.builtin.file with state=directory), or choose another dest.")
    longest = len(partial_name(path, 2 ** 22))     # the largest pid Linux gives
    if longest > _name_max(directory):
        raise TalosError(f"The file name of dest {dest!r} is too long for its partial file ({longest} characters "
                         f"with the hidden prefix and suffix; the filesystem allows {_name_max(directory)}).",
                         code="InvalidOption", hint="Choose a shorter file name. Nothing was sent.")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TalosError(f"The directory {directory} of dest {dest!r} is not writable by this user.",
                         code="InvalidOption",
                         hint="Choose a dest in a directory this user may write to, or change its permissions "
                              "(the snapshot is written beside dest, then renamed onto it).")


# --- state: snapshot ----------------------------------------------------------------------------------------

async def take_snapshot(params, client, node, *, check_mode):
    """The whole ``state: snapshot`` for one node: EtcdSnapshot streamed into ``dest``, verified.

    A snapshot is always a change (a new backup file is written), so ``changed`` is always true.
    ``sha256`` is the SHA-256 of the snapshot bytes as the node sent them, trailer included, before any
    encryption: for an unencrypted dest it is what ``sha256sum dest`` prints; for an encrypted one, what it
    prints for the decrypted file. ``size`` counts those same bytes.
    """
    started = time.monotonic()
    where = f"node {node}" if node else "the endpoint"
    _require_snapshot_role(client, node)
    dest = params.get("dest")
    check_destination(dest)
    dest = os.path.abspath(dest)
    mode = parse_mode(params.get("mode", "0600"))
    passphrase = check_passphrase(params.get("passphrase"))
    result = {"changed": True, "node": node, "dest": dest, "encrypted": passphrase is not None,
              "mode": format_mode(mode)}
    warnings = []
    if passphrase is None and mode & 0o070:     # the group may read it (parse_mode refuses anything wider)
        warnings.append(f"dest {dest} is readable by its group (mode {format_mode(mode)}) and holds every "
                        "Kubernetes secret of the cluster unencrypted; use mode '0600' or a passphrase.")

    # read-only, so it runs in check mode too: a worker, a stopped etcd or a bad node fails here, before any file,
    # and so does a dest without room for the snapshot
    expected = await _expected_size(client, node)
    _check_free_space(dest, expected, passphrase is not None)
    if check_mode:
        result.update(expected_size=expected,
                      msg=f"Check mode: the etcd snapshot of {where} would be written to {dest}; nothing was "
                          "written and no RPC was sent except the read-only EtcdStatus.")
    else:
        chunks = _snapshot_stream(client, node, params.get("timeout") or DEFAULT_IDLE_TIMEOUT)
        try:
            written = await write_snapshot(chunks, dest, mode=mode, passphrase=passphrase)
        except TalosError as exc:
            raise _about_node(exc, node) from None
        finally:
            await chunks.aclose()
        result.update(size=written["size"], sha256=written["sha256"])
        warnings += [f"Removed {path}, the partial snapshot file of an earlier run that was killed before it "
                     "could clean up." for path in written["removed_partials"]]
    if warnings:
        result["warnings"] = warnings
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def _require_snapshot_role(client, node):
    need = allowed_roles(SNAPSHOT_RPC)
    if client.certificate is not None and not set(client.roles) & set(need):
        raise TalosError(f"state=snapshot needs one of the roles {', '.join(need)}; the client certificate has "
                         f"{', '.join(client.roles) or 'no role'}.", code="PermissionDenied", node=node,
                         rpc=SNAPSHOT_RPC, hint="Use a talosconfig whose certificate carries os:etcd:backup (made "
                                                "for backups) or os:admin. Nothing was sent.")


async def _expected_size(client, node):
    """The snapshot's size from EtcdStatus (the database plus the trailer), or None when the role may not ask
    (os:etcd:backup before Talos 1.11)."""
    try:
        reply = await client.call("EtcdStatus", node=node)
    except TalosError as exc:
        if exc.code == "PermissionDenied" and "not authorized" in (exc.detail or ""):
            return None
        raise
    return reply.messages[0].member_status.db_size + TRAILER


def _check_free_space(dest, expected, encrypted):
    if not expected:
        return
    need = expected + (HEADER_SIZE + TAG_SIZE * (expected // ENCRYPTED_CHUNK + 1) if encrypted else 0)
    directory = os.path.dirname(dest)
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    if free < need:
        raise TalosError(f"The directory {directory} of dest {dest} has {_mib(free)} free; the etcd snapshot needs "
                         f"about {_mib(need)}.", code="InvalidOption",
                         hint="Free some space or choose a dest on another filesystem. Nothing was written.")


async def _snapshot_stream(client, node, idle_timeout):
    """The EtcdSnapshot bytes, message by message; fails when the node sends nothing for ``idle_timeout``
    seconds, however long the whole transfer takes. Time spent writing to disk does not count as idle."""
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    waiting = [loop.time()]             # since when a message is awaited; None while one is being written
    expired = []
    received = [0]
    period = min(1.0, idle_timeout / 4)

    def watch():
        if waiting[0] is not None and loop.time() - waiting[0] >= idle_timeout:
            expired.append(True)
            task.cancel()
        else:
            timer[0] = loop.call_later(period, watch)

    replies = client.stream("EtcdSnapshot", node=node, timeout=TRANSFER_DEADLINE)
    timer = [loop.call_later(period, watch)]
    try:
        while True:
            waiting[0] = loop.time()
            try:
                reply = await replies.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not expired:
                    raise
                if hasattr(task, "uncancel"):
                    task.uncancel()
                raise TalosError(
                    f"EtcdSnapshot on node {node or 'the endpoint'} sent nothing for {idle_timeout:g} s after "
                    f"{received[0]} bytes.", code="DeadlineExceeded", node=node, rpc=SNAPSHOT_RPC,
                    hint="Check the node's etcd; raise timeout if the node is slow to answer.") from None
            waiting[0] = None
            data = reply.bytes              # each read of a bytes field copies it
            received[0] += len(data)
            yield data
    finally:
        timer[0].cancel()
        await replies.aclose()


def _about_node(exc, node):
    if exc.node is not None or node is None:
        return exc
    return TalosError(exc.message, code=exc.code, node=node, endpoint=exc.endpoint, rpc=exc.rpc, detail=exc.detail)


# --- writing dest --------------------------------------------------------------------------------------------

async def write_snapshot(chunks, dest, *, mode=0o600, passphrase=None):
    """Write the snapshot bytes from the async iterator ``chunks`` to ``dest``, verified, atomically.

    Returns ``dest``, ``size`` and ``sha256`` (of the plaintext snapshot, trailer included), ``encrypted`` and
    ``removed_partials`` (stale partial files of earlier, killed runs removed first, see PartialFile).
    Raises TalosError(DataLoss) for a snapshot that fails its checks and TalosError(FileError) when the file
    cannot be written; either way, and on cancellation or SIGINT/SIGTERM, the partial file is gone and ``dest``
    is untouched.
    """
    mode = parse_mode(mode)
    passphrase = check_passphrase(passphrase)
    dest = os.path.abspath(dest)
    removed = remove_stale_partials(dest)
    with PartialFile(dest) as partial:
        written = await _write_partial(chunks, partial, dest, mode, passphrase)
    return {"dest": dest, **written, "encrypted": passphrase is not None, "removed_partials": removed}


async def _write_partial(chunks, partial, dest, mode, passphrase):
    import asyncio
    import collections
    import concurrent.futures

    directory = os.path.dirname(dest)
    try:
        target = _SnapshotFile(partial.fd, dest, passphrase)
    except BaseException:
        partial.discard()
        raise
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="talos-etcd-snapshot")
    jobs = collections.deque([executor.submit(target.start)])  # scrypt, if any, runs as the first messages arrive

    async def settle(pending):
        """Wait until at most ``pending`` jobs are left, raising the first error of a finished one."""
        while len(jobs) > pending:
            if not jobs[0].done():
                await asyncio.wrap_future(jobs[0])
            jobs.popleft().result()

    batch, gathered = [], 0
    try:
        async for data in chunks:
            batch.append(data)
            gathered += len(data)
            if gathered >= HANDOFF_SIZE:
                await settle(IN_FLIGHT - 1)
                jobs.append(executor.submit(target.add, batch))
                batch, gathered = [], 0
        if batch:
            await settle(IN_FLIGHT - 1)
            jobs.append(executor.submit(target.add, batch))
        jobs.append(executor.submit(target.finish, mode))
        await settle(0)
        partial.commit()
        _sync_directory(directory)
    except BaseException as exc:
        concurrent.futures.wait(jobs)       # the writer thread must be done with fd before it is closed
        partial.discard()
        if isinstance(exc, OSError):
            raise _file_error(dest, "write", exc) from None
        if isinstance(exc, TalosError) and exc.code not in ("DataLoss", "FileError"):
            raise _noting_dest(exc, dest) from None  # the stream failed: say that dest is still as it was
        raise
    finally:
        executor.shutdown(wait=True)
        target.close()
    return {"size": target.digest.size, "sha256": target.digest.sha256()}


# --- the partial file ------------------------------------------------------------------------------------------
# The snapshot is written to ".<dest name>.<host>.<pid>.<8 hex digits>.partial" beside dest: the controller's
# hostname and the writer's process id say who owns it, so a later run can tell a partial file left by a killed
# writer (SIGKILL, a power cut) from one another task is still writing.

PARTIAL_SIGNALS = ("SIGINT", "SIGTERM")


def partial_host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "localhost"


def partial_pattern(dest: str) -> re.Pattern:
    """The names of this host's partial files of ``dest``; group 1 is the writer's pid."""
    name = os.path.basename(dest)
    return re.compile(rf"\.{re.escape(name)}\.{re.escape(partial_host())}\.([1-9][0-9]{{0,9}})\.[0-9a-f]{{8}}\.partial")


def partial_name(dest: str, pid: int, suffix: str = "0" * 8) -> str:
    """The name of a partial file of ``dest`` written by ``pid`` on this host (``suffix``: 8 random hex digits)."""
    return f".{os.path.basename(dest)}.{partial_host()}.{pid}.{suffix}.partial"


def _name_max(directory):
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True                         # someone else's process, or no pid at all: not ours to judge
    return not _zombie(pid)


def _zombie(pid):
    """Whether ``pid`` has exited and waits to be reaped (Linux; elsewhere it counts as running)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] == ["Z"]
    except OSError:
        return False


def remove_stale_partials(dest: str) -> list:
    """Remove the partial files of ``dest`` that earlier writers on this host left when they were killed.

    Only names of exactly our pattern for this dest and this host, regular files of this user, whose writer's
    process is gone; a partial file whose pid is alive (a task writing it now, or a reused pid) stays.
    Returns the paths removed.
    """
    directory = os.path.dirname(os.path.abspath(dest))
    pattern = partial_pattern(dest)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if not match or int(match.group(1)) == os.getpid() or _process_alive(int(match.group(1))):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
                os.unlink(path)
                removed.append(path)
        except OSError:
            continue                        # gone meanwhile, or not ours to remove
    return removed


class PartialFile:
    """The temporary file of one snapshot, removed on every way out but a committed rename: an exception, a
    cancelled task, and SIGINT or SIGTERM (Ctrl-C reaches an Ansible worker as SIGINT, which Ansible's own
    handler turns into an immediate exit; a module process may get SIGTERM). The signal handler removes the
    file, then hands the signal to the handler that was there before."""

    def __init__(self, dest):
        self.dest = dest
        self.path = None
        self.fd = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():   # signal handlers live in the main thread
            import signal

            for name in PARTIAL_SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.getsignal(number)
                signal.signal(number, self._on_signal)
        try:
            self._create()
        except BaseException:
            self._restore_handlers()
            raise
        return self

    def __exit__(self, *exc_info):
        self.discard()
        self._restore_handlers()

    def _create(self):
        import secrets

        directory = os.path.dirname(self.dest)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        while True:
            path = os.path.join(directory, partial_name(self.dest, os.getpid(), secrets.token_hex(4)))
            self.path = path                # before it exists: a signal right after the open still finds it
            try:
                self.fd = os.open(path, flags, 0o600)
                return
            except FileExistsError:
                self.path = None
                continue
            except OSError as exc:
                self.path = None
                raise _file_error(self.dest, "create a temporary file beside", exc) from None

    def commit(self):
        """Close the file and rename it onto dest."""
        os.close(self.fd)
        self.fd = None
        os.replace(self.path, self.dest)
        self.path = None

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self._unlink()

    def _unlink(self):
        path, self.path = self.path, None
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _on_signal(self, number, frame):
        import signal

        self._unlink()                      # the writer thread may still hold fd: the data goes with the last close
        previous = self._previous.get(number)
        if callable(previous):
            previous(number, frame)
        elif previous != signal.SIG_IGN:    # the default action, as if this handler had never been here
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)

    def _restore_handlers(self):
        import signal

        for number, previous in self._previous.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


class _SnapshotFile:
    """The temporary file and what goes into it. Its methods run in the writer thread, one at a time."""

    def __init__(self, fd, dest, passphrase):
        self.dest, self.passphrase = dest, passphrase
        self.file = _BlockWriter(fd)
        self.digest = SnapshotDigest()
        self.encryptor = None

    def start(self):
        if self.passphrase is not None:
            self.encryptor = _Encryptor(self.passphrase)
            self.file.write(self.encryptor.header)

    def add(self, batch):
        for data in batch:
            self.digest.update(data)
            if self.encryptor is None:
                self.file.write(data)
            else:
                for sealed in self.encryptor.update(data):
                    self.file.write(sealed)

    def finish(self, mode):
        problem = self.digest.problem()
        if problem:
            kept = f"{self.dest} was left as it was" if os.path.lexists(self.dest) else "nothing was written"
            raise TalosError(f"The etcd snapshot received for {self.dest} is not valid: {problem}; {kept}.",
                             code="DataLoss", rpc=SNAPSHOT_RPC,
                             hint="Take the snapshot again; if it fails again, check the node's etcd.")
        if self.encryptor is not None:
            self.file.write(self.encryptor.finish())
        self.file.finish(mode)

    def close(self):
        self.file.close()


class _BlockWriter:
    """Writes a file in whole blocks from one page-aligned buffer, with O_DIRECT while the filesystem takes it
    (see BLOCK_SIZE); the tail, or everything where O_DIRECT is refused, goes through the page cache."""

    def __init__(self, fd):
        import mmap

        self.fd = fd
        self.direct = _set_direct(fd, True)
        self.buffer = mmap.mmap(-1, BLOCK_SIZE)     # anonymous memory: page-aligned, as O_DIRECT needs
        self.filled = 0

    def write(self, data):
        if not self.filled and len(data) >= BLOCK_SIZE and not self.direct:
            _write_all(self.fd, data)               # nothing to gather: no copy
            return
        with memoryview(data) as view:
            while view:
                take = min(BLOCK_SIZE - self.filled, len(view))
                self.buffer[self.filled:self.filled + take] = view[:take]
                self.filled += take
                view = view[take:]
                if self.filled == BLOCK_SIZE:
                    self._write_block()

    def _write_block(self):
        if self.direct:
            try:
                written = os.write(self.fd, self.buffer)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                written = 0                          # the filesystem takes no direct writes after all
            if written == BLOCK_SIZE:
                self.filled = 0
                return
            self.direct = _set_direct(self.fd, False)
            self._write_buffered(written)
        else:
            self._write_buffered(0)

    def _write_buffered(self, start):
        with memoryview(self.buffer) as view:
            _write_all(self.fd, view[start:self.filled])
        self.filled = 0

    def finish(self, mode):
        if self.filled:
            self.direct = _set_direct(self.fd, False)   # the tail is not a whole block
            self._write_buffered(0)
        os.fchmod(self.fd, mode)
        os.fsync(self.fd)

    def close(self):
        self.buffer.close()


def _set_direct(fd, on):
    """Turn O_DIRECT on or off for fd; whether it is on (never, where the platform or filesystem lacks it)."""
    import fcntl

    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | flag) if on else (flags & ~flag))
    except OSError:
        return False
    return on


def _write_all(fd, data):
    with memoryview(data) as view:
        while view:
            view = view[os.write(fd, view):]


def _sync_directory(directory):
    """Make the rename itself durable; some filesystems cannot sync a directory, which is not an error."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_error(dest, action, exc):
    reason = exc.strerror or str(exc)
    kept = f"{dest} was left as it was" if os.path.lexists(dest) else "nothing was written"
    return TalosError(f"Cannot {action} dest {dest}: {reason}; {kept}.", code="FileError", detail=reason,
                      hint="Check the free space and permissions of its directory.")


def _noting_dest(exc, dest):
    kept = f"{dest} was left as it was" if os.path.lexists(dest) else f"nothing was written to {dest}"
    return TalosError(f"{exc.message} The snapshot was not written: {kept}.", code=exc.code, node=exc.node,
                      endpoint=exc.endpoint, rpc=exc.rpc, detail=exc.detail)


def _mib(size):
    return f"{size / (1 << 20):.1f} MiB"


class SnapshotDigest:
    """The checks of an etcd snapshot as it streams: SHA-256 of all but the last 32 bytes (held back, the only
    bytes kept), compared with those 32 bytes at the end; and the SHA-256 of the whole."""

    def __init__(self):
        import hashlib

        self.body = hashlib.sha256()
        self.tail = b""
        self.size = 0

    def update(self, data):
        count = len(data)
        self.size += count
        if count >= TRAILER:
            self.body.update(self.tail)
            with memoryview(data) as view:
                self.body.update(view[:count - TRAILER])  # no copy; hashlib drops the GIL for large data
                self.tail = bytes(view[count - TRAILER:])
        else:
            joined = self.tail + bytes(data)
            cut = max(0, len(joined) - TRAILER)
            self.body.update(joined[:cut])
            self.tail = joined[cut:]

    def problem(self):
        """What is wrong with the snapshot so far, or None."""
        if self.size % ALIGNMENT != TRAILER:
            return (f"its {self.size} bytes are not 32 more than a multiple of 512 (a database and its SHA-256 "
                    "trailer): it is cut short or not a snapshot")
        if self.body.digest() != self.tail:
            return f"its SHA-256 trailer does not match the {self.size - TRAILER} bytes before it (checksum mismatch)"
        return None

    def sha256(self):
        whole = self.body.copy()
        whole.update(self.tail)
        return whole.hexdigest()


# --- encryption ----------------------------------------------------------------------------------------------

def _derive_keys(passphrase, salt, log2_n, r, p):
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    keys = Scrypt(salt=salt, length=64, n=1 << log2_n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return keys[:32], keys[32:]


def _header_mac(key, data):
    import hashlib
    import hmac

    return hmac.new(key, data, hashlib.sha256).digest()


def _nonce(counter, last):
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class _Encryptor:
    """Plaintext in, sealed chunks out. A full chunk is held until more data shows it is not the last."""

    def __init__(self, passphrase, chunk_size=ENCRYPTED_CHUNK):
        import struct

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt = os.urandom(SALT_SIZE)
        fields = MAGIC + struct.pack(_FIELDS, KDF_SCRYPT, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, salt, chunk_size)
        header_key, payload_key = _derive_keys(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
        self.header = fields + _header_mac(header_key, fields)
        self.aead = AESGCM(payload_key)
        self.chunk_size = chunk_size
        self.counter = 0
        self.pending = bytearray()

    def update(self, data):
        self.pending += data
        sealed = []
        while len(self.pending) > self.chunk_size:
            sealed.append(self._seal(self.chunk_size, last=False))
            del self.pending[:self.chunk_size]          # O(1) at the front of a bytearray
        return sealed

    def finish(self):
        return self._seal(len(self.pending), last=True)

    def _seal(self, size, last):
        with memoryview(self.pending) as view:
            sealed = self.aead.encrypt(_nonce(self.counter, last), view[:size], None)
        self.counter += 1
        return sealed


# --- reading src ---------------------------------------------------------------------------------------------

def verify_snapshot_file(src, *, passphrase=None):
    """Check that ``src`` is a whole, uncorrupted etcd snapshot (decrypting it with ``passphrase`` when it is
    encrypted), reading it once in chunks. Returns ``size`` and ``sha256`` of the plaintext snapshot and
    ``encrypted``; raises TalosError(InvalidOption) naming src and what is wrong."""
    reader = _SnapshotReader(src, check_passphrase(passphrase))
    for _block in reader:
        pass
    return {"size": reader.digest.size, "sha256": reader.digest.sha256(), "encrypted": reader.encrypted}


def snapshot_chunks(src, *, passphrase=None, chunk_size=UPLOAD_CHUNK):
    """The plaintext snapshot bytes of ``src``, at most ``chunk_size`` at a time, for EtcdRecover.

    The file is verified on the way: a snapshot that fails its checks (for example a file changed since
    verify_snapshot_file) raises before its last bytes are given, so the upload never completes.
    """
    for block in _SnapshotReader(src, check_passphrase(passphrase)):
        if len(block) <= chunk_size:
            yield bytes(block)
            continue
        with memoryview(block) as view:
            for start in range(0, len(block), chunk_size):
                yield bytes(view[start:start + chunk_size])


class _SnapshotReader:
    """Iterates the plaintext of a snapshot file in blocks, checking it; the last block is given only once the
    whole snapshot has passed, so a consumer never sends the end of a bad snapshot."""

    def __init__(self, src, passphrase, block_size=UPLOAD_CHUNK):
        self.src, self.passphrase, self.block_size = src, passphrase, block_size
        self.digest = SnapshotDigest()
        self.encrypted = False

    def __iter__(self):
        handle = self._open()
        with handle:
            size = os.fstat(handle.fileno()).st_size
            self.encrypted = handle.read(len(MAGIC)) == MAGIC
            if self.encrypted:
                blocks = self._decrypted(handle, size)
            else:
                handle.seek(0)
                blocks = self._plain(handle, size)
            held = None
            for block in blocks:
                self.digest.update(block)
                if held is not None:
                    yield held
                held = block
            problem = self.digest.problem()
            if problem:
                raise self._invalid(f"is not a usable etcd snapshot: {problem}",
                                    "Give a complete snapshot, as written by state=snapshot or talosctl etcd snapshot.")
            if held is not None:
                yield held

    def _open(self):
        if not self.src:
            raise TalosError("src is required for state=recovered.", code="InvalidOption",
                             hint="Give the path on the controller of an etcd snapshot.")
        try:
            handle = open(self.src, "rb")  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise self._invalid("does not exist", "Give the path on the controller of an etcd snapshot taken "
                                                  "with state=snapshot or talosctl etcd snapshot.") from None
        except IsADirectoryError:
            raise self._invalid("is a directory", "Give the snapshot file inside it.") from None
        except OSError as exc:
            raise self._invalid(f"cannot be read ({exc.strerror or exc})", "Check its permissions.") from None
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            handle.close()
            raise self._invalid("is not a regular file", "Give the path of a snapshot file.")
        return handle

    def _invalid(self, what, hint=None):
        return TalosError(f"src {self.src!r} {what}.", code="InvalidOption", hint=hint)

    def _read(self, handle, count):
        try:
            data = handle.read(count)
        except OSError as exc:
            raise self._invalid(f"cannot be read ({exc.strerror or exc})") from None
        if len(data) != count:
            raise self._invalid("changed while it was read", "Leave it alone during the task.")
        return data

    def _plain(self, handle, size):
        if size % ALIGNMENT != TRAILER:
            raise self._invalid(f"is not an etcd snapshot: its size, {size} bytes, is not 32 more than a multiple "
                                "of 512 (a database and its SHA-256 trailer)",
                                "Give a complete snapshot; a cut-short copy cannot be restored.")
        for start in range(0, size, self.block_size):
            yield self._read(handle, min(self.block_size, size - start))

    def _decrypted(self, handle, size):
        import struct

        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self.passphrase is None:
            raise self._invalid("is an encrypted talos.linux etcd snapshot", "Give its passphrase.")
        damaged = "Restore from another copy of the snapshot."
        if size < HEADER_SIZE:
            raise self._invalid("is an encrypted snapshot cut short inside its header", damaged)
        fields = self._read(handle, _FIELDS_SIZE)
        kdf, log2_n, r, p, salt, chunk_size = struct.unpack(_FIELDS, fields)
        if (kdf != KDF_SCRYPT or not 1 <= log2_n <= 30 or not r or not p or (128 * r * p << log2_n) > SCRYPT_MAX_MEMORY
                or not 0 < chunk_size <= MAX_ENCRYPTED_CHUNK):
            raise self._invalid(f"has an unsupported or damaged encryption header (kdf {kdf}, scrypt 2^{log2_n} "
                                f"r={r} p={p}, chunks of {chunk_size} bytes)", damaged)
        header_key, payload_key = _derive_keys(self.passphrase, salt, log2_n, r, p)
        if _header_mac(header_key, MAGIC + fields) != self._read(handle, MAC_SIZE):
            raise self._invalid("cannot be decrypted with this passphrase (a wrong passphrase, or a damaged "
                                "header)", "Give the passphrase the snapshot was written with.")
        body = size - HEADER_SIZE
        sealed_size = chunk_size + TAG_SIZE
        count = max(1, -(-body // sealed_size))
        if body < TAG_SIZE or 0 < body % sealed_size < TAG_SIZE:
            raise self._invalid("is an encrypted snapshot that was cut short", damaged)
        aead = AESGCM(payload_key)
        for index in range(count):
            last = index == count - 1
            sealed = self._read(handle, body - index * sealed_size if last else sealed_size)
            try:
                yield aead.decrypt(_nonce(index, last), sealed, None)
            except InvalidTag:
                raise self._invalid(f"is damaged or cut short: encrypted chunk {index + 1} of {count} fails its "
                                    "authentication", damaged) from None
