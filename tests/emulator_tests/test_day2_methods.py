"""Every method of the emulated Talos version answers (issue 11, point 10), through real gRPC and mTLS:
roles per Appendix A of talos-api-day2.md, streams that stream, files, credentials, META, images, wipes."""
import base64
import datetime
import gzip
import io
import json
import struct
import tarfile

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf import duration_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from tests.emulator.api import common_pb2, image_pb2, inspect_pb2, machine_pb2, storage_pb2, time_pb2
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.day2_calls import K8S, REQUESTS, call_once, first_messages

GO_MODE_DIR, GO_MODE_SYMLINK = 1 << 31, 1 << 27
IMAGE_SERVICE_SINCE_13 = {"ImageService/Import", "ImageService/Remove", "ImageService/Verify"}
# Appendix A, v1.13+: who may call each method (A = admin, O = operator, R = reader).
ROLES_13 = {
    # BlockDeviceWipe's rule is A R, but the handler admits readers in maintenance only (test_special_roles).
    "A": {"Read", "Copy", "Kubeconfig", "GenerateClientConfiguration", "ImageService/Import", "ImageService/Remove",
          "StorageService/BlockDeviceWipe"},
    "AO": {"Restart", "PacketCapture", "ImagePull"},
    "AM": {"MetaWrite", "MetaDelete"},
}


def _short(rpc):
    return rpc.split("/", 1)[1] if rpc.startswith("MachineService/") else rpc


def _allowed(rpc, kind):
    for letters, names in ROLES_13.items():
        if _short(rpc) in names:
            return {"admin": "A", "operator": "O", "reader": "R"}[kind] in letters
    return True     # A O R


def _status(caller, rpc, node=None):
    try:
        call_once(caller, rpc, node=node)
    except GRPCError as error:
        return error.status, error.message
    return Status.OK, ""


@pytest.fixture(scope="module")
def versions_cluster(tmp_path_factory):
    from tests.emulator import EmulatedCluster
    cluster = EmulatedCluster(control_planes=4, workers=2, state_dir=tmp_path_factory.mktemp("day2"),
                              talos_version="1.13.5", reboot_seconds=0.3,
                              node_versions={0: "1.11.6", 1: "1.12.4", 3: "1.14.1", 5: "1.12.4"})
    cluster.start()
    yield cluster
    cluster.stop()


def test_every_method_answers_on_every_version(versions_cluster):
    admin = Caller(versions_cluster)
    for address in versions_cluster.control_planes:
        version = versions_cluster.node(address).version
        minor = int(version.split(".")[1])
        for rpc in REQUESTS:
            status, message = _status(admin, rpc, node=address)
            if rpc in IMAGE_SERVICE_SINCE_13 and minor < 13:
                assert (status, message) == (Status.UNIMPLEMENTED, "unknown service machine.ImageService"), rpc
            else:
                assert status != Status.UNIMPLEMENTED, (version, rpc, message)


def test_a_worker_answers_as_a_worker(versions_cluster):
    admin = Caller(versions_cluster)
    new_worker, old_worker = versions_cluster.workers           # v1.13.5, v1.12.4
    assert _status(admin, "MachineService/Kubeconfig", node=new_worker) == (
        Status.UNIMPLEMENTED, "kubeconfig is only available on control plane nodes")
    assert _status(admin, "MachineService/GenerateClientConfiguration", node=new_worker) == (
        Status.UNIMPLEMENTED, "generate client configuration is only available on control plane nodes")
    assert _status(admin, "MachineService/GenerateClientConfiguration", node=old_worker) == (
        Status.FAILED_PRECONDITION, "client configuration (talosconfig) can't be generated on worker nodes")
    for rpc in ("MachineService/Logs", "MachineService/Containers", "MachineService/List", "TimeService/Time"):
        assert _status(admin, rpc, node=new_worker)[0] == Status.OK, rpc


@pytest.mark.parametrize("kind", ["reader", "operator", "admin"])
def test_roles_per_method(cluster, kind):
    caller = Caller(cluster, kind)
    for rpc in REQUESTS:
        status, message = _status(caller, rpc)
        if _allowed(rpc, kind):
            assert status != Status.PERMISSION_DENIED, (kind, rpc, message)
        else:
            assert (status, message) == (Status.PERMISSION_DENIED, "not authorized"), (kind, rpc)


def test_special_roles(versions_cluster):
    writer = Caller(versions_cluster, talosconfig=versions_cluster.write_talosconfig("meta", ["os:meta:writer"]))
    verifier = Caller(versions_cluster, talosconfig=versions_cluster.write_talosconfig("iv", ["os:image:verifier"]))
    v11, v12, v13, v14 = versions_cluster.control_planes
    for node in (v13, v14):
        assert _status(writer, "MachineService/MetaWrite", node=node) == (Status.OK, "")
        assert _status(verifier, "ImageService/Verify", node=node) == (Status.OK, "")
        assert _status(writer, "MachineService/Logs", node=node)[0] == Status.PERMISSION_DENIED
    for node in (v11, v12):     # os:meta:writer arrived with v1.13
        assert _status(writer, "MachineService/MetaWrite", node=node) == (Status.PERMISSION_DENIED, "not authorized")
    reader = Caller(versions_cluster, "reader")
    wipe = storage_pb2.BlockDeviceWipeRequest(devices=[storage_pb2.BlockDeviceWipeDescriptor(device="sdb")])
    with pytest.raises(GRPCError) as caught:        # the v1.13 rule admits readers; the handler, outside
        first_messages(reader, "StorageService/BlockDeviceWipe", wipe, node=v13)     # maintenance, does not
    assert caught.value.status == Status.PERMISSION_DENIED
    assert versions_cluster.wiped_devices(v13) == []


# Logs and Dmesg -------------------------------------------------------------------------------------
def _text(messages):
    return b"".join(m.bytes for m in messages).decode()


def test_logs_tail_lines(cluster, admin):
    def logs(tail):
        return _text(admin("Logs", machine_pb2.LogsRequest(namespace="system", id="apid", tail_lines=tail)))
    everything = logs(-1).splitlines()
    assert len(everything) >= 4 and all("apid" in line for line in everything)
    assert logs(2).splitlines() == everything[-2:]
    assert logs(0) == ""                                 # the proto default sends no history
    assert _text(admin("Logs", machine_pb2.LogsRequest(id="kubelet", tail_lines=1))).count("\n") == 1
    error = admin.error("Logs", machine_pb2.LogsRequest(namespace="system", id="ext-missing", tail_lines=-1))
    assert (error.status, error.message) == (Status.UNKNOWN, 'log "ext-missing" was not registered')
    ids = admin("LogsContainers").messages[0].ids
    assert "apid" in ids and "etcd" in ids and "kubelet" in ids


def test_logs_follow_delivers_new_lines(cluster, admin):
    node = cluster.control_planes[0]
    request = machine_pb2.LogsRequest(namespace="system", id="machined", tail_lines=1, follow=True)
    messages = first_messages(admin, "Logs", request, limit=3, timeout=10,
                              during=lambda: [cluster.append_log(node, "machined", f"new line {i}") for i in (1, 2)])
    lines = _text(messages).splitlines()
    assert len(lines) == 3 and lines[1:] == ["new line 1", "new line 2"]


def test_container_logs_and_refusals(cluster, admin):
    apiserver = "kube-system/kube-apiserver-talos-cp-1:kube-apiserver"
    text = _text(admin("Logs", machine_pb2.LogsRequest(id=apiserver, tail_lines=-1, **K8S)))
    assert " stderr F " in text and "kube-apiserver" in text
    error = admin.error("Logs", machine_pb2.LogsRequest(id="kube-apiserver", tail_lines=-1))
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "namespace can't be empty")
    error = admin.error("Logs", machine_pb2.LogsRequest(id="nope", namespace="system2", driver=common_pb2.CRI))
    assert (error.status, error.message) == (Status.UNKNOWN, "CRI inspector is supported only for K8s namespace")
    error = admin.error("Logs", machine_pb2.LogsRequest(id="kube-system/nothing:here", **K8S))
    assert (error.status, error.message) == (Status.UNKNOWN, 'container "kube-system/nothing:here" not found')


def test_dmesg_history_and_follow_with_tail(cluster, admin):
    node = cluster.control_planes[0]
    history = [m.bytes.decode() for m in admin("Dmesg", machine_pb2.DmesgRequest())]
    assert history and history[0].startswith("kern:  notice: [") and "Linux version" in history[0]
    assert admin("Dmesg", machine_pb2.DmesgRequest(tail=True)) == []      # only new messages, and no follow
    new = first_messages(admin, "Dmesg", machine_pb2.DmesgRequest(follow=True, tail=True), limit=1,
                         during=lambda: cluster.kernel_message(node, "eth0: link up"))
    assert new[0].bytes.decode().startswith("kern:    info: [") and new[0].bytes.endswith(b"]: eth0: link up")


# Files ------------------------------------------------------------------------------------------------
def test_list_walks_the_tree_with_go_file_modes(cluster, admin):
    entries = {f.relative_name: f for f in admin("MachineService/List", machine_pb2.ListRequest(root="etc"))}
    assert entries["."].name == "/etc" and entries["."].is_dir and entries["."].mode == GO_MODE_DIR | 0o755
    assert entries["os-release"].mode == 0o644 and entries["os-release"].size > 0
    assert entries["localtime"].mode == GO_MODE_SYMLINK | 0o777 and entries["localtime"].link == \
        "/usr/share/zoneinfo/UTC"
    deep = [f.name for f in admin("MachineService/List", machine_pb2.ListRequest(root="/proc", recurse=True))]
    assert "/proc/sys/kernel/random/boot_id" in deep
    shallow = [f.name for f in admin("MachineService/List", machine_pb2.ListRequest(root="/proc"))]
    assert "/proc/sys" in shallow and "/proc/sys/kernel" not in shallow
    files = admin("MachineService/List", machine_pb2.ListRequest(root="/proc", recurse=True,
                                                                 types=[machine_pb2.ListRequest.REGULAR]))
    assert files and all(not f.is_dir for f in files) and all(f.size == 0 for f in files)   # procfs sizes
    error = admin.error("MachineService/List", machine_pb2.ListRequest(root="/nowhere"))
    assert (error.status, error.message) == (Status.UNKNOWN, "lstat /nowhere: no such file or directory")


def test_read_streams_files_in_1024_byte_chunks(cluster, admin):
    chunks = admin("Read", machine_pb2.ReadRequest(path="/system/state/config.yaml"))
    assert len(chunks) > 1 and all(len(c.bytes) == 1024 for c in chunks[:-1])
    config = yaml.safe_load_all(b"".join(c.bytes for c in chunks))
    assert next(config)["machine"]["type"] == "controlplane"
    assert _text(admin("Read", machine_pb2.ReadRequest(path="/etc/localtime"))).startswith("TZif2")   # followed
    error = admin.error("Read", machine_pb2.ReadRequest(path="/etc"))
    assert (error.status, error.message) == (Status.UNKNOWN, "path must be a regular file")
    error = admin.error("Read", machine_pb2.ReadRequest(path="/etc/nothing"))
    assert (error.status, error.message) == (Status.NOT_FOUND, "stat /etc/nothing: no such file or directory")


def test_copy_is_a_tar_gz_of_the_tree(cluster, admin):
    data = b"".join(c.bytes for c in admin("Copy", machine_pb2.CopyRequest(root_path="/proc/sys/../sys")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert members["kernel/"].isdir() if "kernel/" in members else members["kernel"].isdir()
        boot_id = archive.extractfile(members["kernel/random/boot_id"]).read().decode().strip()
    assert boot_id == cluster.node(cluster.control_planes[0]).boot_id
    data = b"".join(c.bytes for c in admin("Copy", machine_pb2.CopyRequest(root_path="/etc")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        link = archive.getmember("localtime")
        assert link.issym() and link.linkname == "/usr/share/zoneinfo/UTC"
        assert archive.getmember("os-release").mode == 0o644
    data = b"".join(c.bytes for c in admin("Copy", machine_pb2.CopyRequest(root_path="/etc/os-release")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        assert archive.getnames() == ["os-release"]               # a file root under its base name
    error = admin.error("Copy", machine_pb2.CopyRequest(root_path="etc"))
    assert (error.status, error.message) == (Status.UNKNOWN, "path is not absolute etc")


def test_disk_usage_sums_directories(cluster, admin):
    rows = admin("DiskUsage", machine_pb2.DiskUsageRequest(paths=["/etc", "/var"], all=True))
    by_name = {r.name: r for r in rows}
    assert all(name.startswith("/etc") for name in by_name)         # only the first path is processed
    files = by_name["/etc/os-release"].size + by_name["/etc/resolv.conf"].size + by_name["/etc/localtime"].size
    assert by_name["/etc"].size == 4096 + files and by_name["/etc"].relative_name == "."
    assert rows[-1].name == "/etc"                                   # directories after their contents
    dirs_only = admin("DiskUsage", machine_pb2.DiskUsageRequest(paths=["/etc"]))
    assert [r.name for r in dirs_only] == ["/etc"]
    missing = admin("DiskUsage", machine_pb2.DiskUsageRequest(paths=["/gone"]))
    assert [(r.name, r.error) for r in missing] == [("/gone", "lstat /gone: no such file or directory")]


# Credentials --------------------------------------------------------------------------------------------
def test_kubeconfig_is_upstreams_tar_gz(cluster, admin):
    messages = admin("Kubeconfig")
    assert len(messages) == 1
    raw = gzip.decompress(messages[0].bytes)
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        member = archive.next()
        assert (member.name, member.mode, member.isreg()) == ("kubeconfig", 0o600, True)
        document = yaml.safe_load(archive.extractfile(member))
        with pytest.raises(tarfile.ReadError):       # no padding and no end-of-archive blocks, as machined sends
            archive.next()
    assert len(raw) == 512 + member.size
    assert list(document) == sorted(document)
    user = document["users"][0]
    assert document["current-context"] == user["name"] == f"admin@{cluster.name}"
    assert document["clusters"][0]["cluster"]["server"] == f"https://{cluster.control_planes[0]}:6443"
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["user"]["client-certificate-data"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    ca = x509.load_pem_x509_certificate(base64.b64decode(document["clusters"][0]["cluster"][
        "certificate-authority-data"]))
    cert.verify_directly_issued_by(ca)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(hours=8760, seconds=10)
    again = yaml.safe_load(archive_member(admin("Kubeconfig")[0].bytes))
    assert again["users"][0]["user"]["client-key-data"] != user["user"]["client-key-data"]   # fresh every call


def archive_member(data):
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        return archive.extractfile(archive.next()).read()


def test_generated_client_certificate_authenticates_with_its_roles(cluster, admin, tmp_path):
    request = machine_pb2.GenerateClientConfigurationRequest(roles=["os:reader"],
                                                             crt_ttl=duration_pb2.Duration(seconds=7200))
    reply = admin("GenerateClientConfiguration", request).messages[0]
    cert = x509.load_pem_x509_certificate(reply.crt)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["os:reader"]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(hours=2)
    assert reply.key.startswith(b"-----BEGIN ED25519 PRIVATE KEY-----") and reply.ca == cluster.ca_pem
    talosconfig = yaml.safe_load(reply.talosconfig)
    context = talosconfig["contexts"][talosconfig["context"]]
    assert talosconfig["context"] == f"reader@{cluster.name}" and context["endpoints"] == []
    context["endpoints"] = [cluster.control_planes[0]]
    path = tmp_path / "generated"
    path.write_text(yaml.safe_dump(talosconfig))
    generated = Caller(cluster, talosconfig=path)
    assert generated("Version").messages[0].version.tag.startswith("v1.13")
    error = generated.error("ServiceRestart", machine_pb2.ServiceRestartRequest(id="kubelet"))
    assert (error.status, error.message) == (Status.PERMISSION_DENIED, "not authorized")
    two = admin("GenerateClientConfiguration", machine_pb2.GenerateClientConfigurationRequest(
        roles=["os:reader", "os:operator"], crt_ttl=duration_pb2.Duration(seconds=60))).messages[0]
    assert yaml.safe_load(two.talosconfig)["context"] == cluster.name
    error = admin.error("GenerateClientConfiguration", machine_pb2.GenerateClientConfigurationRequest(
        roles=["os:admin"]))
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "crt_ttl should be positive")


# META, containers, images, wipes ---------------------------------------------------------------------
def test_meta_write_and_delete(cluster, admin):
    node = cluster.control_planes[0]
    admin("MetaWrite", machine_pb2.MetaWriteRequest(key=0x0A, value=b"network"))
    assert cluster.meta(node) == {0x0A: b"network"}
    admin("MetaDelete", machine_pb2.MetaDeleteRequest(key=0x0A))
    assert cluster.meta(node) == {}
    error = admin.error("MetaDelete", machine_pb2.MetaDeleteRequest(key=0x0A))
    assert (error.status, error.message) == (Status.NOT_FOUND, "meta key not found")
    error = admin.error("MetaWrite", machine_pb2.MetaWriteRequest(key=256, value=b"x"))
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "key must be a uint8")
    error = admin.error("MetaWrite", machine_pb2.MetaWriteRequest(key=0x0C, value=b"x" * (256 * 1024)))
    assert (error.status, error.message) == (Status.RESOURCE_EXHAUSTED, "meta write failed")
    assert cluster.meta(node) == {}


def test_containers_stats_restart_and_processes(cluster, admin):
    def containers():
        return {c.id: c for c in admin("Containers", machine_pb2.ContainersRequest(**K8S)).messages[0].containers}
    before = containers()
    apiserver = next(c for c in before.values() if c.name == "kube-apiserver")
    assert apiserver.id.startswith("kube-system/kube-apiserver-talos-cp-1:kube-apiserver:")
    assert before[apiserver.pod_id].image == "registry.k8s.io/pause:3.10"          # the pod's sandbox row
    system = admin("Containers", machine_pb2.ContainersRequest(namespace="system")).messages[0].containers
    assert {"apid", "etcd", "kubelet", "trustd"} <= {c.id for c in system}
    worker = admin("Containers", machine_pb2.ContainersRequest(**K8S), node=cluster.workers[0]).messages[0]
    assert {c.name for c in worker.containers} == {"kube-proxy", worker.containers[0].name}
    stats = admin("Stats", machine_pb2.StatsRequest(**K8S)).messages[0].stats
    assert {s.id for s in stats} == set(before) and all(s.memory_usage > 0 for s in stats)
    short = apiserver.id.rsplit(":", 1)[0]
    admin("Restart", machine_pb2.RestartRequest(id=short, **K8S))
    after = next(c for c in containers().values() if c.name == "kube-apiserver")
    assert after.pid != apiserver.pid and after.id != apiserver.id
    error = admin.error("Restart", machine_pb2.RestartRequest(id="kube-system/none:none", **K8S))
    assert (error.status, error.message) == (Status.UNKNOWN, 'container "kube-system/none:none" not found')
    processes = admin("Processes").messages[0].processes
    assert processes[0].pid == 1 and after.pid in {p.pid for p in processes}


def _docker_archive(tag):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
    return raw.getvalue()


def test_images_legacy_and_image_service(cluster, admin):
    names = {i.name for i in admin("ImageList", machine_pb2.ImageListRequest(namespace=common_pb2.NS_CRI))}
    assert "registry.k8s.io/pause:3.10" in names
    error = admin.error("ImageList", machine_pb2.ImageListRequest())
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "invalid namespace NS_UNKNOWN")
    admin("ImagePull", machine_pb2.ImagePullRequest(namespace=common_pb2.NS_CRI, reference="alpine:3.20"))
    names = {i.name for i in admin("ImageList", machine_pb2.ImageListRequest(namespace=common_pb2.NS_CRI))}
    assert "docker.io/library/alpine:3.20" in names
    cri = common_pb2.ContainerdInstance(driver=common_pb2.CRI, namespace=common_pb2.NS_CRI)
    archive = _docker_archive("registry.example.com/tools/debug:1.0")
    requests = [image_pb2.ImageServiceImportRequest(containerd=cri)] + [
        image_pb2.ImageServiceImportRequest(image_chunk=common_pb2.Data(bytes=archive[i:i + 700]))
        for i in range(0, len(archive), 700)]
    assert admin("ImageService/Import", requests=requests).name == "registry.example.com/tools/debug:1.0"
    error = admin.error("ImageService/Import", requests=[image_pb2.ImageServiceImportRequest(
        image_chunk=common_pb2.Data(bytes=archive))])
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "containerd instance is required")
    admin("ImageService/Remove", image_pb2.ImageServiceRemoveRequest(
        containerd=cri, image_ref="registry.example.com/tools/debug:1.0"))
    error = admin.error("ImageService/Remove", image_pb2.ImageServiceRemoveRequest(
        containerd=cri, image_ref="registry.example.com/tools/debug:1.0"))
    assert (error.status, error.message) == (Status.NOT_FOUND, "image registry.example.com/tools/debug:1.0 not found")
    verified = admin("ImageService/Verify", image_pb2.ImageServiceVerifyRequest(image_ref="alpine:3.20"))
    assert (verified.verified, verified.message) == (False, "no matched rule")


def test_block_device_wipe(cluster, admin):
    node = cluster.control_planes[0]

    def wipe(*devices, **options):
        return admin("StorageService/BlockDeviceWipe", storage_pb2.BlockDeviceWipeRequest(devices=[
            storage_pb2.BlockDeviceWipeDescriptor(device=d, **options) for d in devices]))
    for devices, status, message in ((("sdb", "sda"), Status.FAILED_PRECONDITION,
                                      'blockdevice "sda" is in use by volume "EFI"'),
                                     (("sda6",), Status.FAILED_PRECONDITION,
                                      'blockdevice "sda6" is in use by volume "EPHEMERAL"'),
                                     (("sdz",), Status.NOT_FOUND, 'blockdevice "sdz" not found')):
        with pytest.raises(GRPCError) as caught:
            wipe(*devices)
        assert (caught.value.status, caught.value.message) == (status, message)
    assert cluster.wiped_devices(node) == []                  # every device is validated before any wipe
    wipe("sdb", method=storage_pb2.BlockDeviceWipeDescriptor.ZEROES)
    assert cluster.wiped_devices(node) == [("sdb", "ZEROES")]


# Stats, network, time, inspect ---------------------------------------------------------------------------
def test_netstat_filters_as_upstream(cluster, admin):
    assert list(admin("Netstat").messages[0].connectrecord) == []     # defaults: no host network, no protocol
    request = machine_pb2.NetstatRequest(filter=machine_pb2.NetstatRequest.LISTENING,
                                         l4proto=machine_pb2.NetstatRequest.L4proto(tcp=True, tcp6=True),
                                         netns=machine_pb2.NetstatRequest.NetNS(hostnetwork=True),
                                         feature=machine_pb2.NetstatRequest.Feature(pid=True))
    records = admin("Netstat", request).messages[0].connectrecord
    ports = {(r.localport, r.process.name) for r in records}
    assert (50000, "apid") in ports and (6443, "kube-apiserver") in ports
    assert all(r.state == machine_pb2.ConnectRecord.LISTEN and not r.netns for r in records)
    worker = {r.localport for r in admin("Netstat", request, node=cluster.workers[0]).messages[0].connectrecord}
    assert 6443 not in worker and 50000 in worker


def test_counters_and_frequencies(cluster, admin):
    disks = admin("DiskStats").messages[0]
    assert [d.name for d in disks.devices] == ["sda", "sdb"]
    assert disks.total.read_completed == sum(d.read_completed for d in disks.devices)
    network = admin("NetworkDeviceStats").messages[0]
    assert {d.name for d in network.devices} == {"eth0", "lo"} and network.total.rx_bytes > 0
    frequencies = admin("CPUFreqStats").messages[0].cpu_freq_stats
    assert len(frequencies) == 4 and frequencies[0].governor == "performance"


def test_packet_capture_streams_pcap(cluster, admin):
    messages = first_messages(admin, "PacketCapture", machine_pb2.PacketCaptureRequest(interface="eth0", snap_len=64),
                              limit=3)
    magic, major, minor, _zone, _sigfigs, snap_len, link_type = struct.unpack("<IHHiIII", messages[0].bytes)
    assert (magic, major, minor, snap_len, link_type) == (0xA1B2C3D4, 2, 4, 64, 1)
    _sec, _usec, captured, length = struct.unpack("<IIII", messages[1].bytes[:16])
    assert captured == 64 < length and len(messages[1].bytes) == 16 + 64
    error = admin.error("PacketCapture", machine_pb2.PacketCaptureRequest(interface="wlan9"))
    assert (error.status, error.message) == (Status.NOT_FOUND, 'interface "wlan9" not found')


def test_time_and_inspect(cluster, admin):
    reply = admin("TimeService/Time").messages[0]
    assert reply.server == "time.cloudflare.com" and reply.remotetime.ToNanoseconds() > 0
    assert admin("TimeService/TimeCheck", time_pb2.TimeRequest(server="pool.ntp.org")).messages[0].server == \
        "pool.ntp.org"
    error = admin.error("TimeService/TimeCheck", time_pb2.TimeRequest())
    assert (error.status, error.message) == (Status.INVALID_ARGUMENT, "ntp server is required")
    edges = admin("InspectService/ControllerRuntimeDependencies").messages[0].edges
    assert any(e.edge_type == inspect_pb2.OUTPUT_EXCLUSIVE and e.resource_type == "MachineStatuses.runtime.talos.dev"
               for e in edges)


def test_a_reader_may_wipe_in_maintenance_only(emulated_cluster):
    import asyncio
    from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context
    cluster = emulated_cluster(control_planes=1, workers=1, maintenance_nodes=[1])
    maintenance = cluster.workers[0]
    request = storage_pb2.BlockDeviceWipeRequest(devices=[storage_pb2.BlockDeviceWipeDescriptor(device="sda")])

    async def wipe():
        client = TalosTestClient(maintenance, client_ssl_context(maintenance=True))
        try:
            return await client.call("StorageService/BlockDeviceWipe", request)
        finally:
            client.close()
    asyncio.run(wipe())             # no certificate: maintenance callers hold os:reader
    assert cluster.wiped_devices(maintenance) == [("sda", "FAST")]
