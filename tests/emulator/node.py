"""One emulated Talos node: identity, boot state, configuration, services, images and buffers.

This file holds state and the small transitions on it; the RPCs (rpcs/) and the multi-step sequences
(sequences.py) act on it. Everything here runs on the emulator's event loop.
"""
import collections
import dataclasses
import secrets
import string
import time
import uuid

from . import machine_config, node_logs
from .api import machine_pb2
from .events import EventLog
from .resources import ResourceStore

CONTROL_PLANE = "controlplane"
WORKER = "worker"

_STAGES = machine_pb2.MachineStatusEvent.MachineStage

# Services machined runs, by machine type (ServiceList ids).
_COMMON_SERVICES = ("apid", "auditd", "containerd", "cri", "dashboard", "kubelet", "machined", "syslogd", "udevd")
_CONTROL_PLANE_SERVICES = ("etcd", "trustd")
_MAINTENANCE_SERVICES = ("apid", "machined", "udevd")


@dataclasses.dataclass
class ServiceState:
    id: str
    state: str = "Running"
    healthy: bool = True
    health_unknown: bool = False
    last_message: str = "Health check successful"
    last_change: float = dataclasses.field(default_factory=time.time)
    events: list = dataclasses.field(default_factory=list)     # (message, state, timestamp)

    def transition(self, state, message, healthy=None, unknown=False):
        now = time.time()
        self.state = state
        self.events.append((message, state, now))
        del self.events[:-10]
        if healthy is not None or unknown:
            self.healthy = bool(healthy)
            self.health_unknown = unknown
            self.last_message = message
            self.last_change = now

    @property
    def running(self):
        return self.state == "Running"


@dataclasses.dataclass
class ImageRecord:
    name: str
    digest: str
    size: int
    created: float


def seed_images(version):
    """What containerd holds on a fresh node: etcd and kubelet in system, Kubernetes images in CRI."""
    now = time.time()

    def record(name, size):
        digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex * 2
        return ImageRecord(name, digest, size, now)

    kubernetes = machine_config.KUBERNETES_VERSION
    system = [record("gcr.io/etcd-development/etcd:v3.6.5", 23_000_000),
              record(f"ghcr.io/siderolabs/kubelet:v{kubernetes}", 105_000_000)]
    cri = [record(f"registry.k8s.io/{name}:v{kubernetes}", 30_000_000)
           for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    cri += [record("registry.k8s.io/coredns/coredns:v1.12.4", 22_000_000),
            record("registry.k8s.io/pause:3.10", 320_000)]
    return {"system": {r.name: r for r in system}, "cri": {r.name: r for r in cri}}


def _node_id():
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _index in range(43))


class Node:
    def __init__(self, cluster, *, index, address, hostname, machine_type, version, maintenance=False):
        self.cluster = cluster
        self.index = index
        self.address = address
        self.hostname = hostname
        self.version = version
        self.previous_version = None
        self.pending_version = None          # installed by an upgrade, booted into on the next boot
        self.planned_machine_type = machine_type
        self.maintenance = maintenance
        self.installed = True
        self.node_id = _node_id()
        self.mac = "52:54:00:%02x:%02x:%02x" % (index >> 16 & 0xFF, index >> 8 & 0xFF, index & 0xFF)
        self.config = None                   # active machine config (bytes)
        self.persistent_config = None        # saved to STATE; applied at the next boot
        self.config_before_try = None
        self.try_rollback = None             # asyncio.TimerHandle of a pending TRY rollback
        self.applying = False                # v1.14 apply concurrency guard
        self.lifecycle_busy = False          # LifecycleService install/upgrade in progress
        self.up = False
        self.stage = "booting"
        self.ready = False
        self.boot_id = ""
        self.boot_time = 0.0
        self.generation = 0                  # bumped each time the node goes away
        self.events = EventLog()
        self.resources = ResourceStore()
        self.services = {}
        self.images = seed_images(version)
        self.meta = {}                       # META partition: key (0-255) -> value bytes; survives reboots
        self.logs = {}                       # machined's service logs (node_logs.LineLog), lost at boot
        self.container_logs = {}             # CRI container logs by "<ns>/<pod>:<container>"
        self.kmsg = node_logs.LineLog()      # the kernel ring buffer
        self.container_restarts = collections.Counter()   # Restart (SIGTERM) count per container
        self.wiped_devices = []              # BlockDeviceWipe: (device, method name) in order
        self.listener = None                 # transport.NodeListener, set by the cluster
        self.tasks = set()                   # background sequences (reboots, rollbacks)

    # Identity -------------------------------------------------------------------------------------
    @property
    def addresses(self):
        return [self.address]

    @property
    def machine_type(self):
        if self.config is None:
            return "unknown"
        found = machine_config.machine_type_of(self.config) or self.planned_machine_type
        return CONTROL_PLANE if found == "init" else found

    @property
    def is_control_plane(self):
        return self.machine_type == CONTROL_PLANE

    @property
    def can_forward(self):
        """Only control planes hold the os:impersonator certificate apid forwards with."""
        return self.is_control_plane and not self.maintenance

    def owns_target(self, target):
        return target in self.addresses or target == self.hostname

    def describe(self):
        return {
            "address": self.address, "hostname": self.hostname, "type": self.machine_type,
            "version": self.version.text, "up": self.up, "boot_id": self.boot_id, "stage": self.stage,
            "ready": self.ready, "maintenance": self.maintenance,
        }

    # Services -------------------------------------------------------------------------------------
    def service_ids(self):
        if self.maintenance:
            return _MAINTENANCE_SERVICES
        ids = _COMMON_SERVICES + (_CONTROL_PLANE_SERVICES if self.is_control_plane else ())
        return tuple(sorted(ids))

    def start_services(self):
        self.services = {}
        self.logs = {}
        for service_id in self.service_ids():
            service = ServiceState(service_id)
            service.transition("Preparing", "Running pre state")
            service.transition("Running", "Health check successful", healthy=True)
            if service_id == "etcd" and not self.cluster.etcd.bootstrapped:
                service.transition("Preparing", "Waiting for bootstrap", unknown=True)
            self.services[service_id] = service
            self.logs[service_id] = node_logs.service_log(service_id, self.hostname, service.last_change)

    @property
    def etcd_running(self):
        service = self.services.get("etcd")
        return self.up and service is not None and service.running

    # Boot state -----------------------------------------------------------------------------------
    def mark_booted(self):
        """Called when the node starts serving after a (re)boot."""
        self.boot_id = str(uuid.uuid4())
        self.boot_time = time.time()
        self.up = True
        self.events = EventLog()
        self.kmsg = node_logs.boot_kmsg(self.hostname, self.boot_time)
        self.container_logs = {}

    def machine_stage(self):
        return getattr(_STAGES, self.stage.upper())
