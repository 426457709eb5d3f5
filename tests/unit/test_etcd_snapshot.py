"""The snapshot file logic of talos_etcd (_etcd_snapshot): writing dest, checking and reading src, encryption."""

import asyncio
import errno
import hashlib
import os
import pathlib
import signal
import struct
import subprocess
import time

import pytest

from ansible_collections.talos.linux.plugins.module_utils import _etcd_snapshot as snap
from ansible_collections.talos.linux.plugins.module_utils._errors import TalosError

PASSPHRASE = "correct horse battery staple"


def make_snapshot(database_size=3 * 512 * 1024, seed=b"etcd"):
    """A valid snapshot: a database whose size is a multiple of 512, then its SHA-256."""
    assert database_size % 512 == 0
    block = hashlib.sha512(seed).digest() * 8
    database = (block * (database_size // len(block) + 1))[:database_size]
    return database + hashlib.sha256(database).digest()


async def pieces(data, sizes=(1 << 20,)):
    """``data`` as an async stream of pieces of the given sizes (cycled)."""
    offset, index = 0, 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset:offset + size]
        offset += size
        index += 1
        await asyncio.sleep(0)


def write(data, dest, sizes=(1 << 20,), **options):
    return asyncio.run(snap.write_snapshot(pieces(data, sizes), str(dest), **options))


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


# --- writing dest -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(1 << 20,), (4096,), (7, 100, 33, 65536), (len(make_snapshot()) - 16, 16)],
                         ids=["1MiB", "4KiB", "uneven", "trailer-split"])
def test_a_good_snapshot_is_written_whole_with_its_checksum(tmp_path, sizes):
    data = make_snapshot()
    dest = tmp_path / "etcd.db"
    result = write(data, dest, sizes)
    assert dest.read_bytes() == data
    assert result == {"dest": str(dest), "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "encrypted": False, "removed_partials": []}
    assert os.stat(dest).st_mode & 0o7777 == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("cut", [1, 32, 511])
def test_a_snapshot_cut_short_is_refused_and_nothing_is_written(tmp_path, cut):
    data = make_snapshot()[:-cut]
    dest = tmp_path / "etcd.db"
    with pytest.raises(TalosError) as err:
        write(data, dest)
    assert err.value.code == "DataLoss"
    assert f"its {len(data)} bytes are not 32 more than a multiple of 512" in str(err.value)
    assert "nothing was written" in str(err.value)
    assert not dest.exists() and leftovers(tmp_path) == []


def test_an_empty_stream_is_refused(tmp_path):
    with pytest.raises(TalosError) as err:
        write(b"", tmp_path / "etcd.db")
    assert err.value.code == "DataLoss" and "its 0 bytes" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_trailer_leaves_an_existing_good_file_untouched(tmp_path):
    dest = tmp_path / "etcd.db"
    good = make_snapshot(seed=b"yesterday")
    write(good, dest)
    before = os.stat(dest)
    bad = bytearray(make_snapshot(seed=b"today"))
    bad[1000] ^= 0xFF                                        # one flipped bit in the database
    with pytest.raises(TalosError) as err:
        write(bytes(bad), dest)
    text = str(err.value)
    assert err.value.code == "DataLoss"
    assert "SHA-256 trailer does not match" in text and "checksum mismatch" in text
    assert f"{dest} was left as it was" in text
    assert dest.read_bytes() == good
    assert (os.stat(dest).st_ino, os.stat(dest).st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert leftovers(tmp_path) == []


def test_a_good_snapshot_replaces_an_existing_file(tmp_path):
    dest = tmp_path / "etcd.db"
    write(make_snapshot(seed=b"yesterday"), dest, mode="0640")
    fresh = make_snapshot(seed=b"today")
    write(fresh, dest)
    assert dest.read_bytes() == fresh and os.stat(dest).st_mode & 0o777 == 0o600


def finished_pid():
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_only_stale_partials_of_this_dest_and_host_are_removed(tmp_path):
    host, dead = snap.partial_host(), finished_pid()
    stale = tmp_path / f".etcd.{host}.{dead}.0a1b2c3d.partial"
    kept = [
        f".etcd.db.{host}.{dead}.0a1b2c3d.partial",          # dest etcd.db, not etcd
        f".etcd.{host}.{os.getpid()}.0a1b2c3d.partial",      # its writer is alive
        f".etcd.{host}.1.0a1b2c3d.partial",                  # pid 1 is alive, though not ours to signal
        f".etcd.{host}.0.0a1b2c3d.partial",                  # no pid
        f".etcd.{host}.{dead}.0A1B2C3D.partial",             # not the hex we write
        f".etcd.{host}x.{dead}.0a1b2c3d.partial",            # another host
        f".etcd.{host}.{dead}.0a1b2c3d.partial.bak",
    ]
    stale.write_bytes(b"plaintext etcd data")
    for name in kept:
        (tmp_path / name).write_bytes(b"keep")
    link = tmp_path / f".etcd.{host}.{dead}.ffffffff.partial"
    link.symlink_to(tmp_path / kept[0])                       # a link is never ours
    assert snap.remove_stale_partials(str(tmp_path / "etcd")) == [str(stale)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, link.name])


def test_a_partial_of_a_writer_that_exited_but_was_not_reaped_is_stale(tmp_path):
    exited = subprocess.Popen(["true"])         # not waited for: a zombie until the end of the test
    try:
        stat_file = pathlib.Path(f"/proc/{exited.pid}/stat")
        for _attempt in range(500):
            if stat_file.read_text().rpartition(")")[2].split()[0] == "Z":
                break
            time.sleep(0.01)
        stale = tmp_path / f".etcd.db.{snap.partial_host()}.{exited.pid}.0a1b2c3d.partial"
        stale.write_bytes(b"plaintext etcd data")
        assert snap.remove_stale_partials(str(tmp_path / "etcd.db")) == [str(stale)]
    finally:
        exited.wait()


def test_the_partial_file_carries_the_documented_name_and_is_gone_after_a_failure(tmp_path):
    dest = tmp_path / "etcd.db"
    seen = []

    async def stream():
        seen.extend(p.name for p in tmp_path.iterdir())
        yield b"not a snapshot"

    handlers = [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)]
    with pytest.raises(TalosError):
        asyncio.run(snap.write_snapshot(stream(), str(dest)))
    assert [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)] == handlers, "handed back"
    assert len(seen) == 1 and snap.partial_pattern(str(dest)).fullmatch(seen[0])
    assert seen[0].split(".")[-3] == str(os.getpid())
    assert list(tmp_path.iterdir()) == []


def test_cancellation_mid_stream_leaves_no_temporary_file(tmp_path):
    dest = tmp_path / "etcd.db"
    good = make_snapshot(seed=b"yesterday")
    write(good, dest)
    data = make_snapshot(database_size=8 << 20)

    async def scenario():
        halfway = asyncio.Event()

        async def stalls_after_half():
            for start in range(0, len(data) // 2, 1 << 20):
                yield data[start:start + (1 << 20)]
            halfway.set()
            await asyncio.Event().wait()                     # the node goes quiet

        task = asyncio.ensure_future(snap.write_snapshot(stalls_after_half(), str(dest)))
        await halfway.wait()
        await asyncio.sleep(0.05)
        assert len(leftovers(tmp_path)) == 1, "the snapshot streams into a temporary file beside dest"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert leftovers(tmp_path) == []
    assert dest.read_bytes() == good


def test_a_failing_stream_says_dest_was_left_as_it_was(tmp_path):
    dest = tmp_path / "etcd.db"
    data = make_snapshot()

    async def breaks():
        yield data[:1 << 20]
        raise TalosError("EtcdSnapshot on node 10.5.0.2: the connection to endpoint 10.5.0.2:50000 was lost after "
                         "1 message.", code="Unavailable", node="10.5.0.2", rpc="MachineService/EtcdSnapshot")

    with pytest.raises(TalosError) as err:
        asyncio.run(snap.write_snapshot(breaks(), str(dest)))
    assert err.value.code == "Unavailable" and err.value.node == "10.5.0.2"
    assert str(err.value).endswith(f"The snapshot was not written: nothing was written to {dest}.")
    assert list(tmp_path.iterdir()) == []


def test_the_page_cache_path_writes_the_same_file(tmp_path, monkeypatch):
    monkeypatch.setattr(snap, "_set_direct", lambda fd, on: False)     # a filesystem without O_DIRECT
    data = make_snapshot(database_size=5 << 20)
    dest = tmp_path / "etcd.db"
    write(data, dest, sizes=(1 << 20, 3000, 2 << 20))
    assert dest.read_bytes() == data
    write(data, dest, passphrase=PASSPHRASE)
    assert b"".join(snap.snapshot_chunks(str(dest), passphrase=PASSPHRASE)) == data


def test_a_direct_write_the_filesystem_refuses_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    real_write, refused = os.write, []

    def write_refusing_the_first_block(fd, data):
        if len(data) == snap.BLOCK_SIZE and not refused:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(snap.os, "write", write_refusing_the_first_block)
    data = make_snapshot(database_size=3 << 20)
    dest = tmp_path / "etcd.db"
    write(data, dest)
    assert refused and dest.read_bytes() == data


def test_a_file_that_cannot_be_created_is_a_file_error(tmp_path):
    dest = tmp_path / "missing" / "etcd.db"
    with pytest.raises(TalosError) as err:
        write(make_snapshot(), dest)
    assert err.value.code == "FileError" and str(dest) in str(err.value)


@pytest.mark.parametrize("mode,expected", [("0640", 0o640), ("600", 0o600), ("0o400", 0o400), (0o440, 0o440),
                                           (384, 0o600), ("0750", 0o750)])
def test_mode_is_applied(tmp_path, mode, expected):
    dest = tmp_path / "etcd.db"
    write(make_snapshot(), dest, mode=mode)
    assert os.stat(dest).st_mode & 0o7777 == expected


@pytest.mark.parametrize("mode,words", [
    (600, "octal 1130"), ("u=rw", "not an octal file mode"), ("01777", "0 to 0777"), ("0800", "not an octal"),
    (True, "not an octal"), (-1, "0 to 0777"), ("", "not an octal")])
def test_a_bad_mode_is_refused_naming_it(mode, words):
    with pytest.raises(TalosError) as err:
        snap.parse_mode(mode)
    assert err.value.code == "InvalidOption"
    assert f"mode {mode!r}" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize("mode,octal,words", [
    ("0777", "0777", "lets the group write it and gives other users access"),
    (0o644, "0644", "gives other users access"), ("0604", "0604", "gives other users access"),
    ("0601", "0601", "gives other users access"), ("0620", "0620", "lets the group write it"),
    ("0200", "0200", "does not let its owner read it"), ("0", "0000", "does not let its owner read it"),
    ("0066", "0066", "lets the group write it and gives other users access and does not let its owner read it")])
def test_a_mode_that_exposes_or_loses_the_snapshot_is_refused(tmp_path, mode, octal, words):
    with pytest.raises(TalosError) as err:
        snap.parse_mode(mode)
    assert err.value.code == "InvalidOption"
    text = str(err.value)
    assert f"mode {mode!r} (octal {octal}) {words}: an etcd snapshot holds every secret of the cluster" in text
    assert "Use mode '0600'" in text
    with pytest.raises(TalosError):
        write(make_snapshot(), tmp_path / "etcd.db", mode=mode)
    assert list(tmp_path.iterdir()) == []


# --- dest checks --------------------------------------------------------------------------------------------

def test_check_destination(tmp_path):
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    cases = {
        "": "dest is required",
        str(tmp_path): "is a directory",
        str(tmp_path / "nowhere" / "etcd.db"): f"The directory {tmp_path / 'nowhere'} of dest",
        str(tmp_path / "afile" / "etcd.db"): "is not a directory",
        str(tmp_path / "fifo"): "is not a regular file",
        str(tmp_path / ("e" * 240)): "is too long for its partial file",
    }
    for dest, words in cases.items():
        with pytest.raises(TalosError) as err:
            snap.check_destination(dest)
        assert err.value.code == "InvalidOption" and words in str(err.value), (dest, str(err.value))
        assert dest in str(err.value)
    snap.check_destination(str(tmp_path / "etcd.db"))
    snap.check_destination(str(tmp_path / "afile"))              # an existing file is replaced
    longest = "e" * (255 - len(snap.partial_name("", 2 ** 22)))
    snap.check_destination(str(tmp_path / longest))
    write(make_snapshot(), tmp_path / longest)                     # the longest name that fits is written
    assert (tmp_path / longest).exists() and leftovers(tmp_path) == []


# --- encryption ---------------------------------------------------------------------------------------------

def test_encryption_round_trip(tmp_path):
    data = make_snapshot(database_size=5 << 20)                  # more than one encrypted chunk
    dest = tmp_path / "etcd.db.enc"
    result = write(data, dest, sizes=(65536, 1 << 20), passphrase=PASSPHRASE)
    sealed = dest.read_bytes()
    assert sealed.startswith(snap.MAGIC) and data[:4096] not in sealed
    assert result == {"dest": str(dest), "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "encrypted": True, "removed_partials": []}
    chunks = -(-len(data) // snap.ENCRYPTED_CHUNK)
    assert len(sealed) == snap.HEADER_SIZE + len(data) + chunks * snap.TAG_SIZE
    assert snap.verify_snapshot_file(str(dest), passphrase=PASSPHRASE) == {
        "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "encrypted": True}
    assert b"".join(snap.snapshot_chunks(str(dest), passphrase=PASSPHRASE)) == data
    assert max(len(c) for c in snap.snapshot_chunks(str(dest), passphrase=PASSPHRASE, chunk_size=4096)) == 4096


def sealed_by_hand(data, chunk_size):
    """An encrypted file written with the module's own encryptor, with a small chunk size."""
    encryptor = snap._Encryptor(PASSPHRASE, chunk_size=chunk_size)  # pylint: disable=protected-access
    return encryptor.header + b"".join(encryptor.update(data)) + encryptor.finish()


def test_a_plaintext_of_whole_chunks_ends_with_a_full_last_chunk(tmp_path):
    data = make_snapshot(database_size=1024)                     # 1056 bytes: exactly two chunks of 528
    src = tmp_path / "etcd.db.enc"
    src.write_bytes(sealed_by_hand(data, 528))
    assert len(src.read_bytes()) == snap.HEADER_SIZE + 2 * (528 + snap.TAG_SIZE)
    assert b"".join(snap.snapshot_chunks(str(src), passphrase=PASSPHRASE)) == data


@pytest.mark.parametrize("cut", ["last-chunk", "mid-chunk", "to-header", "inside-header"])
def test_truncation_of_an_encrypted_file_is_detected(tmp_path, cut):
    data = make_snapshot(database_size=2048)
    sealed = sealed_by_hand(data, 600)                            # chunks of 600, 600, 600, 280
    length = {"last-chunk": len(sealed) - (280 + snap.TAG_SIZE), "mid-chunk": len(sealed) - 100,
              "to-header": snap.HEADER_SIZE, "inside-header": snap.HEADER_SIZE - 10}[cut]
    src = tmp_path / "etcd.db.enc"
    src.write_bytes(sealed[:length])
    with pytest.raises(TalosError) as err:
        snap.verify_snapshot_file(str(src), passphrase=PASSPHRASE)
    assert err.value.code == "InvalidOption" and f"src {str(src)!r}" in str(err.value)
    assert "cut short" in str(err.value)
    if cut == "last-chunk":
        assert "encrypted chunk 3 of 3 fails its authentication" in str(err.value)
    with pytest.raises(TalosError):
        b"".join(snap.snapshot_chunks(str(src), passphrase=PASSPHRASE))


def test_a_damaged_or_reordered_encrypted_file_is_detected(tmp_path):
    data = make_snapshot(database_size=2048)
    sealed = bytearray(sealed_by_hand(data, 600))
    src = tmp_path / "etcd.db.enc"
    damaged = bytes(sealed[:snap.HEADER_SIZE + 700]) + bytes([sealed[snap.HEADER_SIZE + 700] ^ 1]) + bytes(
        sealed[snap.HEADER_SIZE + 701:])
    src.write_bytes(damaged)
    with pytest.raises(TalosError) as err:
        snap.verify_snapshot_file(str(src), passphrase=PASSPHRASE)
    assert "encrypted chunk 2 of 4 fails its authentication" in str(err.value)
    body = sealed[snap.HEADER_SIZE:]
    first, second = body[:616], body[616:1232]
    src.write_bytes(bytes(sealed[:snap.HEADER_SIZE]) + second + first + bytes(body[1232:]))
    with pytest.raises(TalosError) as err:
        snap.verify_snapshot_file(str(src), passphrase=PASSPHRASE)
    assert "encrypted chunk 1 of 4 fails" in str(err.value)


def test_a_wrong_passphrase_is_told_apart_from_damage(tmp_path):
    src = tmp_path / "etcd.db.enc"
    write(make_snapshot(), src, passphrase=PASSPHRASE)
    with pytest.raises(TalosError) as err:
        snap.verify_snapshot_file(str(src), passphrase="Correct horse battery staple")
    assert err.value.code == "InvalidOption"
    assert "cannot be decrypted with this passphrase" in str(err.value)
    assert "Correct horse" not in str(err.value) and PASSPHRASE not in str(err.value)


def test_an_encrypted_file_without_a_passphrase_asks_for_it(tmp_path):
    src = tmp_path / "etcd.db.enc"
    write(make_snapshot(), src, passphrase=PASSPHRASE)
    for read in (snap.verify_snapshot_file, lambda path: list(snap.snapshot_chunks(path))):
        with pytest.raises(TalosError) as err:
            read(str(src))
        assert err.value.code == "InvalidOption"
        assert str(err.value) == (f"src {str(src)!r} is an encrypted talos.linux etcd snapshot. Give its "
                                  "passphrase.")


def test_a_header_asking_for_absurd_scrypt_work_is_refused_before_deriving(tmp_path):
    fields = snap.MAGIC + struct.pack(">BBBB16sI", 1, 30, 8, 1, b"\0" * 16, 1 << 20)
    src = tmp_path / "etcd.db.enc"
    src.write_bytes(fields + b"\0" * 32 + b"\0" * 64)
    with pytest.raises(TalosError) as err:
        snap.verify_snapshot_file(str(src), passphrase=PASSPHRASE)
    assert "unsupported or damaged encryption header" in str(err.value) and "scrypt 2^30" in str(err.value)


def test_an_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(TalosError) as err:
        write(make_snapshot(), tmp_path / "etcd.db", passphrase="")
    assert err.value.code == "InvalidOption" and "passphrase is empty" in str(err.value)
    assert list(tmp_path.iterdir()) == []


# --- checking src -------------------------------------------------------------------------------------------

def test_a_plain_snapshot_verifies_and_uploads_as_it_is(tmp_path):
    data = make_snapshot()
    src = tmp_path / "etcd.db"
    src.write_bytes(data)
    expected = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "encrypted": False}
    assert snap.verify_snapshot_file(str(src)) == expected
    assert snap.verify_snapshot_file(str(src), passphrase=PASSPHRASE) == expected  # a plain file needs none
    chunks = list(snap.snapshot_chunks(str(src), chunk_size=100_000))
    assert b"".join(chunks) == data and max(map(len, chunks)) == 100_000


def test_src_problems_are_named(tmp_path):
    good = make_snapshot()
    (tmp_path / "cut.db").write_bytes(good[:-1])
    (tmp_path / "empty.db").write_bytes(b"")
    corrupt = bytearray(good)
    corrupt[-1] ^= 1
    (tmp_path / "corrupt.db").write_bytes(bytes(corrupt))
    cases = {
        tmp_path / "missing.db": "does not exist",
        tmp_path: "is a directory",
        tmp_path / "cut.db": f"its size, {len(good) - 1} bytes, is not 32 more than a multiple of 512",
        tmp_path / "empty.db": "its size, 0 bytes",
        tmp_path / "corrupt.db": "its SHA-256 trailer does not match",
    }
    for src, words in cases.items():
        with pytest.raises(TalosError) as err:
            snap.verify_snapshot_file(str(src))
        assert err.value.code == "InvalidOption" and str(err.value).startswith(f"src {str(src)!r} "), str(err.value)
        assert words in str(err.value), str(err.value)


def test_the_end_of_a_corrupt_snapshot_is_never_given_for_upload(tmp_path):
    corrupt = bytearray(make_snapshot())
    corrupt[10] ^= 1
    src = tmp_path / "corrupt.db"
    src.write_bytes(bytes(corrupt))
    given = []
    with pytest.raises(TalosError) as err:
        for chunk in snap.snapshot_chunks(str(src), chunk_size=4096):
            given.append(chunk)
    assert "does not match" in str(err.value)
    assert sum(map(len, given)) < len(corrupt) - 32, "the last block (and the trailer) was held back"


def test_the_digest_holds_back_only_the_trailer():
    data = make_snapshot(database_size=4096)
    whole, pieces_ = snap.SnapshotDigest(), snap.SnapshotDigest()
    whole.update(data)
    for start in range(0, len(data), 7):
        pieces_.update(data[start:start + 7])
        assert len(pieces_.tail) <= snap.TRAILER
    for digest in (whole, pieces_):
        assert digest.problem() is None and digest.size == len(data)
        assert digest.sha256() == hashlib.sha256(data).hexdigest()
        assert digest.tail == data[-32:]


# --- docs/etcd-snapshot-format.md -----------------------------------------------------------------------------

FORMAT_DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "etcd-snapshot-format.md"


def doc_block(language):
    text = FORMAT_DOC.read_text()
    start = text.index(f"```{language}\n") + len(language) + 4
    return text[start:text.index("```", start)]


def test_the_documented_decryption_reads_a_file_the_module_wrote(tmp_path):
    data = make_snapshot(database_size=(2 << 20) + 4096)
    src, plain = tmp_path / "etcd.db.enc", tmp_path / "etcd.db"
    write(data, src, passphrase=PASSPHRASE)
    namespace = {"__name__": "documented"}
    exec(compile(doc_block("python"), str(FORMAT_DOC), "exec"), namespace)  # pylint: disable=exec-used
    namespace["decrypt"](str(src), str(plain), PASSPHRASE)
    assert plain.read_bytes() == data
    with pytest.raises(SystemExit, match="wrong passphrase"):
        namespace["decrypt"](str(src), str(tmp_path / "other.db"), "not it")


def test_the_documented_shell_check_prints_the_trailer_twice(tmp_path):
    (tmp_path / "etcd.snapshot").write_bytes(make_snapshot())
    shown = subprocess.run(["bash", "-c", doc_block("sh")], cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.split()
    assert shown[0] == "32" and shown[1] == shown[3] and len(shown[1]) == 64
