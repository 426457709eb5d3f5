"""The emulated cluster as the event loop sees it: nodes, shared etcd, PKI, faults and call counts.

Everything here runs on the emulator's event loop thread; cluster.py wraps it for other threads.
"""
import asyncio
import collections
import os
import pathlib
import random

from . import machine_config, node_resources, pki, sequences, tls
from .dispatch import Dispatcher
from .etcd import EtcdCluster
from .faults import FaultInjector
from .node import CONTROL_PLANE, WORKER, Node
from .transport import NodeListener, address_in_use, bind_socket
from .versions import TalosVersion

MAX_NODES = 250


class AddressBlockUnavailable(RuntimeError):
    pass


def allocate_address_block(count, attempts=64):
    """A random 127.A.B.0/24 whose first `count` host addresses (from .2) are free on port 50000.

    Returns the prefix and the bound listening sockets, so no other cluster can take them meanwhile.
    """
    rng = random.SystemRandom()
    for _attempt in range(attempts):
        prefix = f"127.{rng.randint(1, 254)}.{rng.randint(0, 255)}"
        sockets = []
        try:
            for host in range(2, count + 2):
                sockets.append(bind_socket(f"{prefix}.{host}"))
        except OSError as error:
            for sock in sockets:
                sock.close()
            if address_in_use(error):
                continue
            raise
        return prefix, sockets
    raise AddressBlockUnavailable(f"no free 127.x.y.0/24 block for {count} nodes after {attempts} attempts")


class ClusterRuntime:
    def __init__(self, *, name, state_dir, control_planes, workers, talos_version, node_versions=None,
                 reboot_seconds=1.0, snapshot_size=1 << 20, boot_seconds=0.0, bootstrapped=True,
                 maintenance_nodes=()):
        if control_planes + workers < 1 or control_planes + workers > MAX_NODES:
            raise ValueError(f"between 1 and {MAX_NODES} nodes, got {control_planes + workers}")
        self.name = name
        self.state_dir = pathlib.Path(state_dir)
        self.control_plane_count = control_planes
        self.worker_count = workers
        self.default_version = TalosVersion(talos_version)
        self.node_versions = dict(node_versions or {})
        self.maintenance_requests = set(maintenance_nodes or ())
        self.reboot_seconds = reboot_seconds
        self.boot_seconds = boot_seconds
        self.apply_delay = 0.0                 # seconds an ApplyConfiguration holds the apply lock
        self.pki_ca = pki.CertificateAuthority()
        self.secrets = machine_config.ClusterSecrets(self.pki_ca)
        self.etcd = EtcdCluster(snapshot_size, bootstrapped)
        self.etcd.is_member_running = self._member_running
        self.faults = FaultInjector()
        self.calls = collections.Counter()
        self.dispatcher = Dispatcher(self)
        self.nodes = []
        self._by_address = {}
        self.control_planes_down = set()
        self.max_control_planes_down = 0
        self._contexts = {}                    # (address, maintenance) -> SSLContext
        self._initial_sockets = {}
        self._starting = False

    # Lookup ----------------------------------------------------------------------------------------
    def node_at(self, address):
        return self._by_address.get(address)

    @property
    def control_planes(self):
        return [n for n in self.nodes if n.planned_machine_type == CONTROL_PLANE]

    @property
    def workers(self):
        return [n for n in self.nodes if n.planned_machine_type == WORKER]

    def _version_for(self, index, address):
        for key in (index, str(index), address):
            if key in self.node_versions:
                return TalosVersion(self.node_versions[key])
        return self.default_version

    def _member_running(self, member):
        node = self.node_at(member.address)
        return node is not None and node.etcd_running

    # Start and stop ----------------------------------------------------------------------------------
    async def start(self):
        count = self.control_plane_count + self.worker_count
        prefix, sockets = allocate_address_block(count)
        pki_dir = self.state_dir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        endpoint = f"https://{prefix}.2:6443"
        for index in range(count):
            address = f"{prefix}.{index + 2}"
            control_plane = index < self.control_plane_count
            number = index + 1 if control_plane else index - self.control_plane_count + 1
            hostname = f"talos-cp-{number}" if control_plane else f"talos-w-{number}"
            machine_type = CONTROL_PLANE if control_plane else WORKER
            maintenance = any(key in self.maintenance_requests for key in (index, str(index), address))
            node = Node(self, index=index, address=address, hostname=hostname, machine_type=machine_type,
                        version=self._version_for(index, address), maintenance=maintenance)
            node.listener = NodeListener(node, self.dispatcher)
            if not maintenance:
                node.config = machine_config.render_initial_config(
                    self.secrets, machine_type=machine_type, hostname=hostname, version=node.version,
                    cluster_name=self.name, endpoint=endpoint)
                node.persistent_config = node.config
                if control_plane and self.etcd.bootstrapped:
                    self.etcd.add_member(address, hostname)
            self.nodes.append(node)
            self._by_address[address] = node
            self._initial_sockets[address] = sockets[index]
            self._write_server_certificate(node, pki_dir)
        self._starting = True
        try:
            await asyncio.gather(*(sequences.power_on(node) for node in self.nodes))
        finally:
            self._starting = False
        node_resources.publish_members(self)

    def _write_server_certificate(self, node, pki_dir):
        cert, key = self.pki_ca.issue_server_certificate(node.hostname, node.addresses)
        node.cert_path = pki_dir / f"{node.address}.crt"
        node.key_path = pki_dir / f"{node.address}.key"
        node.cert_path.write_bytes(pki.certificate_pem(cert))
        node.key_path.write_bytes(pki.private_key_pem(key))
        os.chmod(node.key_path, 0o600)

    def _ssl_context(self, node):
        key = (node.address, node.maintenance)
        context = self._contexts.get(key)
        if context is None:
            if node.maintenance:
                cert, private_key = pki.self_signed_server_certificate(node.hostname, node.addresses)
                cert_path = self.state_dir / "pki" / f"{node.address}-maintenance.crt"
                key_path = self.state_dir / "pki" / f"{node.address}-maintenance.key"
                cert_path.write_bytes(pki.certificate_pem(cert))
                key_path.write_bytes(pki.private_key_pem(private_key))
                context = tls.server_context(cert_path, key_path)
            else:
                context = tls.server_context(node.cert_path, node.key_path, self.pki_ca.cert_pem)
            self._contexts[key] = context
        return context

    async def start_listener(self, node):
        sock = self._initial_sockets.pop(node.address, None)
        await node.listener.start(self._ssl_context(node), sock=sock,
                                  require_client_certificate=not node.maintenance)

    async def restart_listener(self, node):
        """Switch TLS mode (maintenance -> normal) without a reboot, as v1.13+ apid does."""
        await node.listener.stop()
        await self.start_listener(node)

    async def stop(self):
        for node in self.nodes:
            for task in list(node.tasks):
                task.cancel()
            if node.try_rollback is not None:
                node.try_rollback.cancel()
        for node in self.nodes:
            node.up = False
            node.generation += 1
            node.events.wake()
            node.resources.close_watchers()
        await asyncio.gather(*(node.listener.stop() for node in self.nodes))
        for sock in self._initial_sockets.values():
            sock.close()

    # Node state changes --------------------------------------------------------------------------------
    def note_down(self, node):
        if node.planned_machine_type == CONTROL_PLANE or node.is_control_plane:
            self.control_planes_down.add(node.address)
            self.max_control_planes_down = max(self.max_control_planes_down, len(self.control_planes_down))
        member = self.etcd.member_at(node.address)
        if member is not None and member.id == self.etcd.leader_id:
            self.etcd.elect_leader()

    def note_up(self, node):
        self.control_planes_down.discard(node.address)

    def after_boot(self, node):
        """A node finished booting: rejoin etcd if needed, refresh the shared views."""
        if node.is_control_plane and self.etcd.bootstrapped and self.etcd.member_at(node.address) is None:
            self.etcd.add_member(node.address, node.hostname)
        if not self.etcd.leader_id or self.etcd.leader is None:
            self.etcd.elect_leader()
        if not self._starting:
            node_resources.publish_members(self)
            node_resources.publish(node)

    def forget_node(self, node):
        """A reset wiped the node: it leaves etcd and cluster discovery."""
        member = self.etcd.member_at(node.address)
        if member is not None:
            self.etcd.remove_member(member.id)
        node_resources.publish_members(self)

    def describe(self):
        return {
            "name": self.name,
            "nodes": [node.describe() for node in self.nodes],
            "etcd": {
                "bootstrapped": self.etcd.bootstrapped,
                "leader": f"{self.etcd.leader_id:016x}" if self.etcd.leader_id else None,
                "members": [{"id": f"{m.id:016x}", "hostname": m.hostname, "address": m.address,
                             "healthy": self.etcd.healthy(m)} for m in self.etcd.members.values()],
                "alarms": [{"member_id": f"{mid:016x}", "alarm": alarm} for mid, alarm in self.etcd.alarm_list()],
            },
            "max_control_planes_down": self.max_control_planes_down,
            "faults": self.faults.describe(),
        }
