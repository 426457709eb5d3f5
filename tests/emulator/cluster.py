"""EmulatedCluster: the public, thread-safe face of the emulator.

It runs the cluster's event loop in a background thread, writes talosconfig files into the state
directory, and turns test calls (faults, reboots, etcd trouble) into work on that loop.
"""
import asyncio
import datetime
import os
import pathlib
import shutil
import tempfile
import threading
import time

from grpclib.const import Status

from . import node_logs, pki, rbac, sequences
from .api import method_by_name
from .rpcs.etcd import publish_etcd_members
from .runtime import ClusterRuntime

START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0

TALOSCONFIG_ROLES = {
    "admin": [rbac.ADMIN],
    "operator": [rbac.OPERATOR],
    "reader": [rbac.READER],
    "etcd-backup": [rbac.ETCD_BACKUP],
    "expired": [rbac.ADMIN],
}


def _status(code):
    if isinstance(code, Status):
        return code
    if isinstance(code, int):
        return Status(code)
    return Status[str(code).upper()]


class NodeHandle:
    """A live, read-only view of one node for tests (plain strings, not emulator internals)."""

    def __init__(self, node):
        self._node = node

    address = property(lambda self: self._node.address)
    hostname = property(lambda self: self._node.hostname)
    machine_type = property(lambda self: self._node.machine_type)
    version = property(lambda self: self._node.version.text)
    boot_id = property(lambda self: self._node.boot_id)
    up = property(lambda self: self._node.up)
    stage = property(lambda self: self._node.stage)
    ready = property(lambda self: self._node.ready)
    maintenance = property(lambda self: self._node.maintenance)
    config = property(lambda self: self._node.config)
    persistent_config = property(lambda self: self._node.persistent_config)

    @property
    def raw(self):
        """The emulator's Node (state lives on the emulator thread; read, don't write)."""
        return self._node

    def __repr__(self):
        return f"<node {self.address} {self.hostname} {self.machine_type} v{self.version} up={self.up}>"


class EmulatedCluster:
    def __init__(self, control_planes=1, workers=0, talos_version="1.13.5", state_dir=None, node_versions=None,
                 reboot_seconds=1.0, snapshot_size=1 << 20, *, name="emulated", boot_seconds=0.0,
                 bootstrapped=True, maintenance_nodes=()):
        self._own_state_dir = state_dir is None
        self.state_dir = pathlib.Path(state_dir or tempfile.mkdtemp(prefix="talos-emulator-"))
        self.name = name
        self._options = dict(
            name=name, state_dir=self.state_dir, control_planes=control_planes, workers=workers,
            talos_version=talos_version, node_versions=node_versions, reboot_seconds=reboot_seconds,
            snapshot_size=snapshot_size, boot_seconds=boot_seconds, bootstrapped=bootstrapped,
            maintenance_nodes=maintenance_nodes,
        )
        self.runtime = None
        self._loop = None
        self._thread = None

    # Lifecycle --------------------------------------------------------------------------------------
    def start(self):
        """Start every node; returns once all listeners are serving."""
        if self._thread is not None:
            raise RuntimeError("cluster already started")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        loop_ready = threading.Event()

        def run_loop():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            loop_ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run_loop, name=f"talos-emulator-{self.name}", daemon=True)
        self._thread.start()
        loop_ready.wait()

        async def start_runtime():
            self.runtime = ClusterRuntime(**self._options)
            await self.runtime.start()

        try:
            self._await(start_runtime(), timeout=START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self._write_talosconfigs()
        return self

    def stop(self):
        """Close every listener and connection (within about a second) and end the loop thread."""
        if self._thread is None:
            return
        try:
            if self.runtime is not None:
                self._await(self.runtime.stop(), timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._thread = None
            if self._own_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # Running work on the emulator's loop -----------------------------------------------------------
    def _await(self, coroutine, timeout=CALL_TIMEOUT):
        if threading.current_thread() is self._thread:
            raise RuntimeError("EmulatedCluster methods must not be called from the emulator's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _on_loop(self, function, *args, **kwargs):
        async def run():
            return function(*args, **kwargs)
        return self._await(run())

    def _node(self, address):
        node = self.runtime.node_at(address)
        if node is None:
            raise KeyError(f"no emulated node at {address!r}")
        return node

    # Credentials ------------------------------------------------------------------------------------
    @property
    def ca_pem(self):
        return self.runtime.pki_ca.cert_pem

    @property
    def pki(self):
        """The Talos OS CA (CertificateAuthority): issue your own client certificates in tests."""
        return self.runtime.pki_ca

    def talosconfig_path(self, kind="admin"):
        if kind not in TALOSCONFIG_ROLES:
            raise KeyError(f"unknown talosconfig {kind!r}; one of {sorted(TALOSCONFIG_ROLES)}")
        return self.state_dir / ("talosconfig" if kind == "admin" else f"talosconfig-{kind}")

    def write_talosconfig(self, filename, roles, **certificate_options):
        """Write a talosconfig with a client certificate for `roles` (options go to the CA's issuer)."""
        cert, key = self.pki.issue_client_certificate(roles, **certificate_options)
        path = self.state_dir / filename
        path.write_text(pki.render_talosconfig(self.name, self.control_planes, self.addresses, self.ca_pem, cert, key))
        os.chmod(path, 0o600)
        return path

    def _write_talosconfigs(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        for kind, roles in TALOSCONFIG_ROLES.items():
            options = {}
            if kind == "expired":
                options = dict(not_before=now - datetime.timedelta(days=366), not_after=now - datetime.timedelta(days=1))
            self.write_talosconfig(self.talosconfig_path(kind).name, roles, **options)

    # Topology ---------------------------------------------------------------------------------------
    @property
    def control_planes(self):
        return [n.address for n in self.runtime.control_planes]

    @property
    def workers(self):
        return [n.address for n in self.runtime.workers]

    @property
    def addresses(self):
        return [n.address for n in self.runtime.nodes]

    def node(self, address):
        return NodeHandle(self._node(address))

    @property
    def nodes(self):
        return [NodeHandle(n) for n in self.runtime.nodes]

    @property
    def calls(self):
        """Counter[(address, "/service.Name/Method")] of calls each node served (RBAC refusals included)."""
        return self.runtime.calls

    def reset_calls(self):
        self._on_loop(self.runtime.calls.clear)

    @property
    def max_control_planes_down(self):
        return self.runtime.max_control_planes_down

    def reset_max_control_planes_down(self):
        def reset():
            self.runtime.max_control_planes_down = len(self.runtime.control_planes_down)
        self._on_loop(reset)

    def status(self):
        status = self._on_loop(self.runtime.describe)
        status["calls"] = self.calls_json()
        return status

    def calls_json(self):
        counts = self._on_loop(lambda: dict(self.runtime.calls))
        result = {}
        for (address, path), count in sorted(counts.items()):
            result.setdefault(address, {})[path] = count
        return result

    # Faults -----------------------------------------------------------------------------------------
    def fail(self, rpc, code=Status.UNAVAILABLE, count=1, node=None, message=None):
        """Fail the next `count` calls of `rpc` (on `node` only, if given); count < 0 means forever."""
        return self.runtime.faults.fail(method_by_name(rpc), _status(code), count, node, message)

    def add_latency(self, seconds, rpc=None, node=None):
        self.runtime.faults.add_latency(seconds, method_by_name(rpc) if rpc else None, node)

    def interrupt_stream(self, rpc, after_messages, node=None, count=1, code=None, message=None):
        """Break the next `count` streams of `rpc` after `after_messages` messages (RST_STREAM, or `code`)."""
        self.runtime.faults.interrupt_stream(method_by_name(rpc), after_messages, node, count,
                                             _status(code) if code is not None else None, message)

    def stall_stream(self, rpc, after_messages, seconds, node=None, count=1):
        """Pause the next `count` streams of `rpc` for `seconds` after `after_messages` messages, then go on."""
        self.runtime.faults.interrupt_stream(method_by_name(rpc), after_messages, node, count, stall=seconds)

    def fail_image_pull(self, image, message=None):
        self.runtime.faults.fail_image_pull(image, message)

    def fail_upgrade(self, image, exit_code=1):
        """LifecycleService.Upgrade with this installer image ends with a non-zero exit code."""
        self.runtime.faults.fail_upgrade(image, exit_code)

    def fail_next_boot(self, address, outcome="stay_down"):
        """The node's next reboot fails to boot: "stay_down" (it never comes back) or "roll_back" (it comes
        back on the version it ran before, as Talos's bootloader does with an upgrade that does not boot)."""
        self._node(address)
        self.runtime.faults.fail_next_boot(address, outcome)

    def lose_answer(self, rpc, node=None, count=1):
        """The next `count` Upgrade/Reboot/Rollback calls act on the node, then answer Unavailable (lost)."""
        self.runtime.faults.lose_answer(method_by_name(rpc), node, count)

    def clear_faults(self):
        """Remove every injected fault, etcd error, alarm and bootstrap hold (nodes taken down stay down)."""
        self.runtime.faults.clear()

        def clear_etcd():
            for member in self.runtime.etcd.members.values():
                member.errors = []
            self.runtime.etcd.alarms.clear()
            self.runtime.etcd.not_ready_until.clear()
            self.runtime.etcd.time_unsynced_until.clear()
        self._on_loop(clear_etcd)

    def set_apply_delay(self, seconds):
        """Hold the apply lock this long inside ApplyConfiguration (to provoke v1.14's concurrency guard)."""
        self.runtime.apply_delay = seconds

    def set_installed(self, address, installed):
        """Mark Talos as (not) installed on a node: Upgrade then answers FailedPrecondition."""
        node = self._node(address)
        self._on_loop(setattr, node, "installed", installed)

    def set_snapshot_size(self, size):
        self._on_loop(self.runtime.etcd.set_snapshot_size, size)

    # Power ------------------------------------------------------------------------------------------
    def take_down(self, address):
        node = self._node(address)
        self._await(sequences.power_off(node, "shutting_down"))

    def bring_up(self, address):
        """Boot a node that was taken down or shut down (new boot id); returns once it serves."""
        node = self._node(address)
        self._await(sequences.power_on(node))

    def reboot(self, address, seconds=None):
        """Reboot a node: returns once it is unreachable; it comes back after `seconds`."""
        node = self._node(address)

        async def reboot():
            actor_id = sequences.new_actor_id()
            generation = node.generation
            sequences.run_in_background(node, sequences.reboot(node, actor_id, downtime=seconds))
            while node.generation == generation:
                await asyncio.sleep(0.005)
            return actor_id
        return self._await(reboot())

    def wait_until_up(self, address, timeout=10.0):
        node = self._node(address)

        async def wait():
            while not (node.up and node.ready or node.up and node.maintenance):
                await asyncio.sleep(0.01)
        self._await(asyncio.wait_for(wait(), timeout), timeout=timeout + 1)

    # etcd trouble -----------------------------------------------------------------------------------
    def _member(self, address):
        member = self.runtime.etcd.member_at(address)
        if member is None:
            raise KeyError(f"{address} is not an etcd member")
        return member

    def set_etcd_unhealthy(self, address, error="etcdserver: request timed out"):
        def mark():
            self._member(address).errors = [error]
        self._on_loop(mark)

    def set_etcd_healthy(self, address):
        def mark():
            self._member(address).errors = []
        self._on_loop(mark)

    def raise_alarm(self, address, alarm="NOSPACE"):
        alarm = alarm.upper()
        if alarm not in ("NOSPACE", "CORRUPT"):
            raise ValueError(f"alarm must be NOSPACE or CORRUPT, not {alarm!r}")
        self._on_loop(lambda: self.runtime.etcd.raise_alarm(self._member(address).id, alarm))

    def hold_bootstrap(self, address, seconds, reason="not-ready"):
        """For `seconds`, the node is not yet where its boot lets etcd start.

        reason "not-ready": Bootstrap answers FailedPrecondition "bootstrap is not available yet" and
        EtcdRecover "etcd service is not ready for recovery yet"; "time-sync": Bootstrap answers
        FailedPrecondition "time is not in sync yet".
        """
        self._node(address)
        self._on_loop(self.runtime.etcd.hold, address, seconds, reason)

    def wipe_etcd(self):
        """Lose etcd: every member's data directory is gone. The control planes' etcd services wait for
        Bootstrap again (a recovery from a snapshot, or a fresh cluster); the data is gone too."""
        def wipe():
            self.runtime.etcd.wipe()
            for node in self.runtime.nodes:
                service = node.services.get("etcd")
                if service is not None:
                    service.transition("Preparing", "Waiting for bootstrap", unknown=True)
            publish_etcd_members(self.runtime)
        self._on_loop(wipe)

    def write_etcd(self, key, value):
        """Store `key` = `value` (strings) in the emulated etcd, as a Kubernetes write would."""
        def put():
            if not self.runtime.etcd.bootstrapped:
                raise RuntimeError("etcd is not running: the cluster has not been bootstrapped")
            self.runtime.etcd.put(key, value)
        self._on_loop(put)

    def read_etcd(self):
        """{key: value} of everything the emulated etcd holds ({} when wiped or never bootstrapped)."""
        return self._on_loop(lambda: dict(self.runtime.etcd.data))

    def etcd_members(self):
        """{hostname: member id (16 hex digits)} of the current etcd members."""
        return self._on_loop(lambda: {m.hostname: f"{m.id:016x}" for m in self.runtime.etcd.members.values()})

    # Day-2 node state (logs, kernel ring, META, wiped devices) ------------------------------------
    def append_log(self, address, service, line):
        """A line in machined's log of `service` (Logs follows it; lost at the next boot)."""
        def append():
            node = self._node(address)
            node.logs.setdefault(service, node_logs.LineLog()).append(line)
        self._on_loop(append)

    def kernel_message(self, address, message, facility="kern", priority="info"):
        """A message in the node's kernel ring (Dmesg follows it)."""
        self._on_loop(lambda: self._node(address).kmsg.append(
            node_logs.kmsg_line(facility, priority, time.time(), message)))

    def meta(self, address):
        """{key: value bytes} of the node's META partition."""
        return self._on_loop(lambda: dict(self._node(address).meta))

    def wiped_devices(self, address):
        """[(device, method)] BlockDeviceWipe has wiped on the node, in order."""
        return self._on_loop(lambda: list(self._node(address).wiped_devices))

    def __repr__(self):
        state = "running" if self._thread else "stopped"
        return f"<EmulatedCluster {self.name} {state} state_dir={self.state_dir}>"
