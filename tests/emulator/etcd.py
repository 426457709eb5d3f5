"""The etcd cluster the control planes share: members, leader, raft progress, alarms, data and snapshots.

Health is derived, not stored: a member is healthy when its node is up, its etcd service runs and no
error was injected. The cluster object never touches the network; the RPCs in rpcs/etcd.py read it.

The data is a small key/value store with a revision. A snapshot carries it in a JSON header at the
start of its bytes (the rest is filler up to the member's database size, then the SHA-256 trailer), so a
recovery from that snapshot brings the data back; each member has its own database size, which
EtcdDefragment shrinks to the size in use.
"""
import base64
import dataclasses
import hashlib
import json
import os
import time

SNAPSHOT_ALIGNMENT = 512
SNAPSHOT_TRAILER = 32            # SHA-256 of everything before it
SNAPSHOT_CHUNK = 1 << 20         # bytes per streamed common.Data message
ETCD_VERSION = "3.6.5"
ETCD_CLUSTER_VERSION = "3.6.0"

ALARMS = ("NONE", "NOSPACE", "CORRUPT")
SNAPSHOT_MAGIC = b"emulated etcd snapshot v1\n"
SNAPSHOT_HEADER_LIMIT = 1 << 20  # bytes of an upload kept to read its header back


def format_member_id(member_id):
    """etcd member IDs are shown as 16 hex digits (resources/etcd/etcd.go)."""
    return f"{member_id:016x}"


@dataclasses.dataclass
class EtcdMember:
    id: int
    address: str
    hostname: str
    is_learner: bool = False
    errors: list = dataclasses.field(default_factory=list)   # injected EtcdStatus errors
    db_size: int = SNAPSHOT_ALIGNMENT                        # this member's database file
    db_size_in_use: int = SNAPSHOT_ALIGNMENT

    @property
    def peer_urls(self):
        return [f"https://{self.address}:2380"]

    @property
    def client_urls(self):
        return [f"https://{self.address}:2379"]


class EtcdCluster:
    def __init__(self, snapshot_size=1 << 20, bootstrapped=True):
        self.bootstrapped = bootstrapped
        self.members = {}                   # id -> EtcdMember
        self.leader_id = 0
        self.raft_term = 2
        self._raft_base = 1000
        self._started = time.monotonic()
        self.alarms = {}                    # member id -> set of alarm names
        self.downgrade_target = None
        self.db_size = self._aligned(snapshot_size)      # a new member's database size
        self.db_size_in_use = self.db_size * 3 // 5
        self.data = {}                      # key -> value (str): what a snapshot carries and a recovery restores
        self.revision = 1 if bootstrapped else 0
        self.recovery_snapshots = {}        # node address -> SnapshotVerifier of its last EtcdRecover upload
        # Bootstrap/EtcdRecover holds, node address -> time.monotonic() they end (cluster.hold_bootstrap)
        self.not_ready_until = {}
        self.time_unsynced_until = {}
        self.is_member_running = lambda member: True   # wired by the cluster: node up and etcd running
        self._pattern = os.urandom(SNAPSHOT_CHUNK)

    @staticmethod
    def _aligned(size):
        return max(SNAPSHOT_ALIGNMENT, (int(size) // SNAPSHOT_ALIGNMENT) * SNAPSHOT_ALIGNMENT)

    @property
    def snapshot_size(self):
        """Total bytes an EtcdSnapshot of a new member streams: the database plus the 32-byte hash trailer."""
        return self.db_size + SNAPSHOT_TRAILER

    def set_snapshot_size(self, size):
        """Every member's database (and a new member's) becomes ``size`` bytes, 60 % of it in use."""
        self.db_size = self._aligned(size)
        self.db_size_in_use = self.db_size * 3 // 5
        for member in self.members.values():
            member.db_size, member.db_size_in_use = self.db_size, self.db_size_in_use

    def defragment(self, member):
        """The member's database file shrinks to what is in use."""
        member.db_size = -(-member.db_size_in_use // SNAPSHOT_ALIGNMENT) * SNAPSHOT_ALIGNMENT

    # Raft progress advances with time, so consecutive status calls look like a live cluster.
    @property
    def raft_index(self):
        return self._raft_base + int((time.monotonic() - self._started) * 20)

    def bump(self, entries=1):
        self._raft_base += entries

    # Membership
    def _new_id(self):
        while True:
            member_id = int.from_bytes(os.urandom(8), "big") or 1
            if member_id not in self.members:
                return member_id

    def add_member(self, address, hostname):
        member = EtcdMember(self._new_id(), address, hostname, db_size=self.db_size,
                            db_size_in_use=self.db_size_in_use)
        self.members[member.id] = member
        if not self.leader_id:
            self.leader_id = member.id
        self.bump(3)
        return member

    def member_at(self, address):
        for member in self.members.values():
            if member.address == address:
                return member
        return None

    def remove_member(self, member_id):
        member = self.members.pop(member_id)
        self.alarms.pop(member_id, None)
        if self.leader_id == member_id:
            self.leader_id = 0
            self.elect_leader()
        self.bump(3)
        return member

    def healthy(self, member):
        return self.is_member_running(member) and not member.errors

    def elect_leader(self, exclude=None):
        """Keep a running leader; otherwise the first running member (new term) takes over."""
        current = self.members.get(self.leader_id)
        if current is not None and current.id != exclude and self.is_member_running(current):
            return current
        for member in sorted(self.members.values(), key=lambda m: m.id):
            if member.id != exclude and self.is_member_running(member) and not member.is_learner:
                self.leader_id = member.id
                self.raft_term += 1
                return member
        self.leader_id = 0
        return None

    @property
    def leader(self):
        return self.members.get(self.leader_id)

    def wipe(self):
        """Every member's data directory is gone: no members, no data; Bootstrap (or a recovery) is needed."""
        self.bootstrapped = False
        self.members.clear()
        self.alarms.clear()
        self.leader_id = 0
        self.data.clear()
        self.revision = 0
        self.recovery_snapshots.clear()
        self.downgrade_target = None

    # Bootstrap holds
    def hold(self, address, seconds, reason):
        until = time.monotonic() + seconds
        if reason == "not-ready":
            self.not_ready_until[address] = until
        elif reason == "time-sync":
            self.time_unsynced_until[address] = until
        else:
            raise ValueError(f"reason must be 'not-ready' or 'time-sync', not {reason!r}")

    def not_ready(self, address):
        return time.monotonic() < self.not_ready_until.get(address, 0.0)

    def time_unsynced(self, address):
        return time.monotonic() < self.time_unsynced_until.get(address, 0.0)

    # Data
    def put(self, key, value):
        self.data[str(key)] = str(value)
        self.revision += 1
        self.bump()

    def delete(self, key):
        if self.data.pop(str(key), None) is not None:
            self.revision += 1
            self.bump()

    # Alarms
    def raise_alarm(self, member_id, alarm):
        self.alarms.setdefault(member_id, set()).add(alarm)

    def alarm_list(self):
        return [(member_id, alarm) for member_id, alarms in sorted(self.alarms.items()) for alarm in sorted(alarms)]

    def disarm_all(self):
        disarmed = self.alarm_list()
        self.alarms.clear()
        return disarmed

    # Snapshots
    def snapshot_header(self):
        """What the snapshot says about the cluster: revision, raft position, members and every key."""
        state = {"revision": self.revision, "raft_term": self.raft_term, "raft_index": self.raft_index,
                 "members": sorted(m.hostname for m in self.members.values()),
                 "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(self.data.items())}}
        return SNAPSHOT_MAGIC + json.dumps(state, separators=(",", ":")).encode() + b"\n"

    def _filler(self, size):
        if size <= len(self._pattern):
            return self._pattern[:size]
        return (self._pattern * (size // len(self._pattern) + 1))[:size]

    def snapshot_chunks(self, member=None, chunk_size=SNAPSHOT_CHUNK):
        """The snapshot of ``member``'s database, lazily, in chunks; the SHA-256 trailer is computed on the way.

        The header with the data comes first; filler makes up the member's database size (grown to hold
        the header when the data outgrew it).
        """
        header = self.snapshot_header()
        db_size = member.db_size if member is not None else self.db_size
        total = max(db_size, -(-len(header) // SNAPSHOT_ALIGNMENT) * SNAPSHOT_ALIGNMENT)
        digest = hashlib.sha256()
        sent = 0
        while sent < total:
            size = min(chunk_size, total - sent)
            if sent < len(header):
                chunk = header[sent:sent + size]
                chunk += self._filler(size - len(chunk))
            else:
                chunk = self._filler(size)
            digest.update(chunk)
            sent += size
            if sent == total and size + SNAPSHOT_TRAILER <= chunk_size:
                yield chunk + digest.digest()
                return
            yield chunk
        yield digest.digest()

    def restore(self, uploaded, node_address, hostname):
        """Bootstrap{recover_etcd}: a one-member cluster on ``node_address`` from the uploaded snapshot.

        Returns None, or why the snapshot cannot be restored (etcd would fail to open it).
        """
        state = uploaded.header()
        if state is None:
            return "the snapshot is not an etcd database"
        self.wipe()
        self.data = {k: base64.b64decode(v).decode() for k, v in state.get("data", {}).items()}
        self.revision = int(state.get("revision", 1))
        self.raft_term += 1
        self.set_snapshot_size(max(uploaded.size - SNAPSHOT_TRAILER, SNAPSHOT_ALIGNMENT))
        self.bootstrapped = True
        self.leader_id = self.add_member(node_address, hostname).id
        return None


class SnapshotVerifier:
    """Incremental check of an uploaded snapshot: size % 512 == 32 and a valid SHA-256 trailer.

    Keeps the first bytes, where an emulated snapshot carries its header.
    """

    def __init__(self):
        self._digest = hashlib.sha256()
        self._tail = b""
        self._head = bytearray()
        self.size = 0

    def update(self, data):
        self.size += len(data)
        if len(self._head) < SNAPSHOT_HEADER_LIMIT:
            self._head += data[:SNAPSHOT_HEADER_LIMIT - len(self._head)]
        buffered = self._tail + data
        self._digest.update(buffered[:-SNAPSHOT_TRAILER] if len(buffered) > SNAPSHOT_TRAILER else b"")
        self._tail = buffered[-SNAPSHOT_TRAILER:]

    @property
    def valid(self):
        return (self.size % SNAPSHOT_ALIGNMENT == SNAPSHOT_TRAILER
                and len(self._tail) == SNAPSHOT_TRAILER and self._digest.digest() == self._tail)

    def header(self):
        """The state an emulated snapshot carries, or None when the bytes are not one."""
        if not self._head.startswith(SNAPSHOT_MAGIC):
            return None
        line, newline, _rest = bytes(self._head[len(SNAPSHOT_MAGIC):]).partition(b"\n")
        if not newline:
            return None
        try:
            state = json.loads(line)
        except ValueError:
            return None
        return state if isinstance(state, dict) else None
