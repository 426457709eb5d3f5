"""The etcd cluster the control planes share: members, leader, raft progress, alarms and snapshots.

Health is derived, not stored: a member is healthy when its node is up, its etcd service runs and no
error was injected. The cluster object never touches the network; the RPCs in rpcs/etcd.py read it.
"""
import dataclasses
import hashlib
import os
import time

SNAPSHOT_ALIGNMENT = 512
SNAPSHOT_TRAILER = 32            # SHA-256 of everything before it
SNAPSHOT_CHUNK = 1 << 20         # bytes per streamed common.Data message
ETCD_VERSION = "3.6.5"
ETCD_CLUSTER_VERSION = "3.6.0"

ALARMS = ("NONE", "NOSPACE", "CORRUPT")


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
        self.db_size = self._aligned(snapshot_size)
        self.db_size_in_use = self.db_size * 3 // 5
        self.recovery_snapshots = {}        # node address -> (size, valid trailer)
        self.is_member_running = lambda member: True   # wired by the cluster: node up and etcd running
        self._pattern = os.urandom(SNAPSHOT_CHUNK)

    @staticmethod
    def _aligned(size):
        return max(SNAPSHOT_ALIGNMENT, (int(size) // SNAPSHOT_ALIGNMENT) * SNAPSHOT_ALIGNMENT)

    @property
    def snapshot_size(self):
        """Total bytes an EtcdSnapshot streams: the database plus the 32-byte hash trailer."""
        return self.db_size + SNAPSHOT_TRAILER

    def set_snapshot_size(self, size):
        self.db_size = self._aligned(size)
        self.db_size_in_use = self.db_size * 3 // 5

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
        member = EtcdMember(self._new_id(), address, hostname)
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
    def snapshot_chunks(self, chunk_size=SNAPSHOT_CHUNK):
        """The snapshot bytes, lazily, in chunks; the SHA-256 trailer is computed on the way."""
        digest = hashlib.sha256()
        header = (f"emulated etcd snapshot term={self.raft_term} index={self.raft_index} "
                  f"members={len(self.members)}\n").encode()
        remaining = self.db_size
        first = True
        while remaining > 0:
            size = min(chunk_size, remaining)
            chunk = self._pattern[:size] if size <= len(self._pattern) else (
                self._pattern * (size // len(self._pattern) + 1))[:size]
            if first:
                chunk = (header + chunk[len(header):])[:size]
                first = False
            digest.update(chunk)
            remaining -= size
            if remaining == 0 and size + SNAPSHOT_TRAILER <= chunk_size:
                yield chunk + digest.digest()
                return
            yield chunk
        yield digest.digest()


class SnapshotVerifier:
    """Incremental check of an uploaded snapshot: size % 512 == 32 and a valid SHA-256 trailer."""

    def __init__(self):
        self._digest = hashlib.sha256()
        self._tail = b""
        self.size = 0

    def update(self, data):
        self.size += len(data)
        buffered = self._tail + data
        self._digest.update(buffered[:-SNAPSHOT_TRAILER] if len(buffered) > SNAPSHOT_TRAILER else b"")
        self._tail = buffered[-SNAPSHOT_TRAILER:]

    @property
    def valid(self):
        return (self.size % SNAPSHOT_ALIGNMENT == SNAPSHOT_TRAILER
                and len(self._tail) == SNAPSHOT_TRAILER and self._digest.digest() == self._tail)
