"""Injected faults: failing calls, latency, broken or stalled streams, lost answers, failing image pulls,
upgrades and boots.

Tests change faults from their own thread while the emulator's event loop reads them, so every
access goes through one lock. Rules match on the full RPC path and, optionally, one node address.
"""
import dataclasses
import threading

from grpclib.const import Status


@dataclasses.dataclass
class FailRule:
    path: str
    code: Status
    message: str
    remaining: int          # < 0: forever
    node: str = None


@dataclasses.dataclass
class LatencyRule:
    seconds: float
    path: str = None
    node: str = None


@dataclasses.dataclass
class StreamInterruptRule:
    """A stream cut after ``after_messages`` answers; on a unary call the call runs and its answer is lost."""

    path: str
    after_messages: int
    remaining: int
    node: str = None
    code: Status = None      # None: reset the HTTP/2 stream; else end it with this status
    message: str = "stream interrupted"
    stall: float = 0.0       # > 0: pause the stream this many seconds there instead, then go on


# What a failed boot does: the node stays off (a hung boot), or the bootloader boots the previous version.
BOOT_FAILURES = ("stay_down", "roll_back")


def _matches(rule, address, path):
    return (rule.path is None or rule.path == path) and (rule.node is None or rule.node == address)


class FaultInjector:
    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self._failures = []
            self._latencies = []
            self._interrupts = []
            self.image_pull_failures = {}     # image ref -> message
            self.upgrade_failures = {}        # image ref -> installer exit code
            self.boot_failures = {}           # address -> BOOT_FAILURES outcome of its next reboot
            self._lost_answers = []

    def fail_next_boot(self, address, outcome="stay_down"):
        """The node's next reboot does not bring up the new boot: it stays off, or the bootloader rolls back."""
        if outcome not in BOOT_FAILURES:
            raise ValueError(f"outcome must be one of {', '.join(BOOT_FAILURES)}, not {outcome!r}")
        with self._lock:
            self.boot_failures[address] = outcome

    def take_boot_failure(self, address):
        with self._lock:
            return self.boot_failures.pop(address, None)

    def lose_answer(self, path, node=None, count=1):
        """The next `count` calls of `path` act on the node, then their answer is lost (apid: backend EOF)."""
        with self._lock:
            self._lost_answers.append(FailRule(path, Status.UNAVAILABLE, "error reading from server: EOF", count,
                                               node))

    def take_lost_answer(self, address, path):
        """The rule whose answer to this call is lost (consuming one count), or None."""
        if not self._lost_answers:
            return None
        with self._lock:
            for rule in self._lost_answers:
                if _matches(rule, address, path):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._lost_answers.remove(rule)
                    return rule
        return None

    @property
    def active(self):
        return bool(self._failures or self._latencies or self._interrupts)

    def fail(self, path, code, count=1, node=None, message=None):
        rule = FailRule(path, code, message or f"injected failure: {code.name}", count, node)
        with self._lock:
            self._failures.append(rule)
        return rule

    def add_latency(self, seconds, path=None, node=None):
        with self._lock:
            self._latencies.append(LatencyRule(seconds, path, node))

    def interrupt_stream(self, path, after_messages, node=None, count=1, code=None, message=None, stall=0.0):
        rule = StreamInterruptRule(path, after_messages, count, node, code, message or "stream interrupted", stall)
        with self._lock:
            self._interrupts.append(rule)

    def fail_image_pull(self, image, message=None):
        with self._lock:
            self.image_pull_failures[image] = message or f"failed to resolve reference \"{image}\": not found"

    def fail_upgrade(self, image, exit_code=1):
        with self._lock:
            self.upgrade_failures[image] = exit_code

    def latency_for(self, address, path):
        """Total added latency; global, per-node and per-RPC rules add up."""
        if not self._latencies:
            return 0.0
        with self._lock:
            return sum(rule.seconds for rule in self._latencies if _matches(rule, address, path))

    def take_failure(self, address, path):
        """The failure to answer this call with (consuming one count), or None."""
        if not self._failures:
            return None
        with self._lock:
            for rule in self._failures:
                if _matches(rule, address, path):
                    if rule.remaining > 0:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._failures.remove(rule)
                    return rule
        return None

    def take_stream_interrupt(self, address, path):
        if not self._interrupts:
            return None
        with self._lock:
            for rule in self._interrupts:
                if _matches(rule, address, path):
                    if rule.remaining > 0:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._interrupts.remove(rule)
                    return rule
        return None

    def describe(self):
        with self._lock:
            return {
                "failures": [dict(rpc=r.path, code=r.code.name, message=r.message, remaining=r.remaining, node=r.node)
                             for r in self._failures],
                "latencies": [dataclasses.asdict(r) for r in self._latencies],
                "stream_interrupts": [dict(rpc=r.path, after_messages=r.after_messages, remaining=r.remaining,
                                           node=r.node, stall=r.stall) for r in self._interrupts],
                "image_pull_failures": dict(self.image_pull_failures),
                "upgrade_failures": dict(self.upgrade_failures),
                "boot_failures": dict(self.boot_failures),
                "lost_answers": [dict(rpc=r.path, remaining=r.remaining, node=r.node) for r in self._lost_answers],
            }
