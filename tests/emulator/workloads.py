"""The containers a node runs, as the containerd (system namespace) and CRI (k8s.io) inspectors see them.

System containers are Talos services; CRI pods are the static control-plane pods and kube-proxy. A
container's pid changes each time Restart (SIGTERM) makes its supervisor start it again.
"""
import dataclasses
import hashlib
import uuid

from . import machine_config

SYSTEM = "system"
K8S = "k8s.io"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
_SYSTEM_IMAGES = {"apid": "ghcr.io/siderolabs/apid", "trustd": "ghcr.io/siderolabs/trustd",
                  "etcd": "gcr.io/etcd-development/etcd:v3.6.5", "kubelet": "ghcr.io/siderolabs/kubelet"}
_CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


@dataclasses.dataclass(frozen=True)
class Container:
    namespace: str
    display_id: str          # ContainerInfo.id: what Logs and Restart accept
    internal_id: str
    pod_id: str
    name: str
    image: str
    pid: int
    status: str
    uid: str = ""
    network_namespace: str = ""

    @property
    def short_id(self):
        """A CRI id without its ":<12 hex>" suffix, which Logs and Restart also accept."""
        return self.display_id.rsplit(":", 1)[0] if self.display_id.count(":") == 2 else self.display_id

    @property
    def sandbox(self):
        return self.display_id == self.pod_id


def _hex(*parts):
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def containers(node, namespace):
    """Every container of `namespace` on the node, pods' sandboxes first ("system" or "k8s.io")."""
    base = 2000 + node.index * 100
    found = []
    if namespace == SYSTEM:
        for offset, service_id in enumerate(sorted(node.services)):
            if service_id not in _SYSTEM_IMAGES or not node.services[service_id].running:
                continue
            image = _SYSTEM_IMAGES[service_id]
            if ":" not in image.rsplit("/", 1)[-1]:
                tag = f"v{machine_config.KUBERNETES_VERSION}" if service_id == "kubelet" else node.version.tag
                image += ":" + tag
            pid = base + offset + 7919 * node.container_restarts[service_id]
            found.append(Container(SYSTEM, service_id, service_id, service_id, service_id, image, pid, "RUNNING"))
        return found
    if namespace != K8S:
        return found
    pods = [("kube-system", f"kube-proxy-{_hex(node.hostname)[:5]}", "kube-proxy")]
    if node.is_control_plane:
        pods += [("kube-system", f"{name}-{node.hostname}", name) for name in _CONTROL_PLANE_PODS]
    for number, (k8s_namespace, pod, container_name) in enumerate(sorted(pods)):
        pod_id = f"{k8s_namespace}/{pod}"
        uid = str(_uuid(node.hostname, pod))
        sandbox_id = _hex(node.hostname, pod, "sandbox")
        netns = "" if container_name != "kube-proxy" else f"/var/run/netns/cni-{uid}"
        found.append(Container(K8S, pod_id, sandbox_id, pod_id, pod, PAUSE_IMAGE, base + 40 + number * 2,
                               "SANDBOX_READY", uid, netns))
        restarts = node.container_restarts[f"{pod_id}:{container_name}"]
        internal = _hex(node.hostname, pod, container_name, str(restarts))
        image = f"registry.k8s.io/{container_name}:v{machine_config.KUBERNETES_VERSION}"
        found.append(Container(K8S, f"{pod_id}:{container_name}:{internal[:12]}", internal, pod_id, container_name,
                               image, base + 41 + number * 2 + 7919 * restarts, "CONTAINER_RUNNING", uid, netns))
    return found


def _uuid(*parts):
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts))


def find(node, namespace, container_id):
    """inspector.Container: the display id, or a CRI id without its suffix (first match)."""
    for container in containers(node, namespace):
        if container_id in (container.display_id, container.short_id) and not (
                namespace == K8S and container.sandbox):
            return container
    return None
