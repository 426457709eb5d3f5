"""talos_config's change check on a ~200 KiB machine configuration, against one YAML parse of the same text.

What the module does on every run: parse the node's current config text, normalise it and the desired
documents, and compare the two texts. The baseline is the least any YAML-reading check can do: one
``yaml.load`` of the same text with PyYAML's fastest safe loader. Goal: <= 4x.

Both sides run in alternating rounds in one process; each figure is the median.
"""

import pathlib
import statistics
import sys
import time

if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    from tests.emulator._import_path import ensure_collection_importable

    ensure_collection_importable()

import yaml  # noqa: E402

from bench._harness import publish  # noqa: E402

ROUNDS = 31
GOAL = 4.0
TARGET_BYTES = 200 * 1024


def machine_config(scale):
    """A control-plane config in the shape Talos generates, grown with many sysctls, files, manifests and
    interfaces, followed by many small documents of other kinds."""
    crt = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJQekNCOHFBREFnRUNBaEVBCg==" * 4
    key = "LS0tLS1CRUdJTiBFRDI1NTE5IFBSSVZBVEUgS0VZLS0tLS0KTUM0Q0FRQXdCUVlESzJWd0JDSUVJSGJj" * 2
    v1alpha1 = {
        "version": "v1alpha1",
        "debug": False,
        "machine": {
            "type": "controlplane",
            "token": "3qf6yb.ho8sgz3gfbmu4a4l",
            "ca": {"crt": crt, "key": key},
            "certSANs": [f"10.0.{i // 250}.{i % 250}" for i in range(scale)],
            "kubelet": {"image": "ghcr.io/siderolabs/kubelet:v1.33.1", "defaultRuntimeSeccompProfileEnabled": True,
                        "extraArgs": {f"feature-{i}": f"value-{i}" for i in range(scale // 4)},
                        "nodeIP": {"validSubnets": ["10.0.0.0/8", "!10.0.0.3/32"]}},
            "network": {
                "hostname": "cp-1",
                "interfaces": [{"interface": f"eth{i}", "addresses": [f"10.{i}.0.2/24"], "mtu": 1500,
                                "routes": [{"network": "0.0.0.0/0", "gateway": f"10.{i}.0.1", "metric": 1024}],
                                "vlans": [{"vlanId": 100 + j, "addresses": [f"192.168.{j}.{i}/24"], "mtu": 1400}
                                          for j in range(4)],
                                "deviceSelector": {"hardwareAddr": f"52:54:00:12:{i % 100:02d}:56"}}
                               for i in range(scale // 4)],
                "nameservers": ["1.1.1.1", "8.8.8.8"],
            },
            "install": {"disk": "/dev/sda", "image": "ghcr.io/siderolabs/installer:v1.10.3", "wipe": False},
            "sysctls": {f"net.ipv4.conf.eth{i}.rp_filter": str(i % 3) for i in range(scale)},
            "files": [{"content": f"[plugins.\"io.containerd.cri.v1.runtime\"]\n  option_{i} = true\n" * 4,
                       "permissions": 0o644, "path": f"/etc/cri/conf.d/{i:03d}.part", "op": "create"}
                      for i in range(scale // 4)],
            "features": {"rbac": True, "stableHostname": True, "apidCheckExtKeyUsage": True,
                         "kubePrism": {"enabled": True, "port": 7445}},
        },
        "cluster": {
            "id": "9d3zV0B1Cg5k5Lq8c0nQ1dUaI2vI9fC3b2g1Q4sXy7k=",
            "secret": "Wl0Kx4b4y7s2V1mQ2k8r1pB9uS0mA3eN6cD8fG5hJ1k=",
            "controlPlane": {"endpoint": "https://10.0.0.10:6443"},
            "clusterName": "bench",
            "network": {"dnsDomain": "cluster.local", "podSubnets": ["10.244.0.0/16"],
                        "serviceSubnets": ["10.96.0.0/12"]},
            "token": "ed454d.o4jgdzkfxkvkcrlq",
            "secretboxEncryptionSecret": "z01mye6j16bspJYtTB/5SFX8j7Ph4JXxM2Xuu4vsBPM=",
            "ca": {"crt": crt, "key": key},
            "extraManifests": [f"https://example.com/manifests/{i}.yaml" for i in range(scale // 2)],
            "inlineManifests": [{"name": f"manifest-{i}", "contents": "apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                 f"  name: ns-{i}\n  labels:\n    team: t{i % 7}\n"} for i in range(scale // 4)],
        },
    }
    others = []
    for i in range(scale // 2):
        others.append({"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": f"ext-{i}",
                       "configFiles": [{"content": f"setting = {i}\n", "mountPath": f"/etc/ext/{i}.conf"}],
                       "environment": [f"VAR_{i}=value-{i}"]})
        others.append({"apiVersion": "v1alpha1", "kind": "NetworkRuleConfig", "name": f"rule-{i}",
                       "portSelector": {"ports": [50000 + i], "protocol": "tcp"},
                       "ingress": [{"subnet": f"10.{i % 250}.0.0/16"}]})
    others.append({"apiVersion": "v1alpha1", "kind": "HostnameConfig", "hostname": "cp-1", "auto": "off"})
    return [v1alpha1, *others]


def sized_config():
    """Documents and their YAML text, scaled until the text is about TARGET_BYTES."""
    dump = yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper
    scale = 40
    while True:
        documents = machine_config(scale)
        text = yaml.dump_all(documents, Dumper=dump, sort_keys=False)
        if len(text) >= TARGET_BYTES:
            return documents, text
        scale += 8


def measure():
    """The benchmark's rows, without publishing them."""
    from ansible_collections.talos.linux.plugins.module_utils._config import normalise_config, parse_documents

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    desired, current_text = sized_config()
    # The desired side as the module holds it: documents already rendered, in another key and document order.
    desired = list(reversed([dict(reversed(list(document.items()))) for document in desired]))

    def check():
        return normalise_config(parse_documents(current_text)) == normalise_config(desired)

    def baseline():
        return yaml.load_all(current_text, Loader=loader)

    assert check(), "the two configs must compare equal, or the benchmark measures the wrong path"
    times = {"check": [], "parse": []}
    for _round in range(ROUNDS):
        for name, side in (("check", check), ("parse", lambda: list(baseline()))):
            started = time.perf_counter()
            side()
            times[name].append(time.perf_counter() - started)
    measured, base = statistics.median(times["check"]), statistics.median(times["parse"])
    ratio = measured / base
    rows = [{
        "name": f"change check of a {len(current_text) // 1024} KiB config ({len(desired)} documents): parse the "
                "current text, normalise it and the desired documents, compare; vs one CSafeLoader parse",
        "measured": f"{measured * 1000:.1f} ms",
        "baseline": f"{base * 1000:.1f} ms",
        "ratio": f"{ratio:.2f}x",
        "goal": "<= 4x",
        "met": ratio <= GOAL,
    }]
    return rows


def main():
    rows = measure()
    publish("config", "make bench", rows)
    return rows


if __name__ == "__main__":
    sys.exit(0 if all(row["met"] for row in main()) else 1)
