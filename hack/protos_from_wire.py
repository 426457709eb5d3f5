"""Write protos/ from the upstream wire facts (talos-wire.json), for the subset the collection speaks.

The facts (packages, names, field numbers, types, RPC shapes) come from upstream; the .proto text is
ours. Run by hand when the subset changes: `python hack/protos_from_wire.py ../shared/reference/talos-wire.json`.
"""
import json
import pathlib
import sys

# Every service apid serves clients, each RPC upstream has (securityapi.SecurityService is trustd's, port 50001).
RPCS = {
    "machine.MachineService": [
        "ApplyConfiguration", "Bootstrap", "CPUFreqStats", "CPUInfo", "Containers", "Copy", "DiskStats",
        "DiskUsage", "Dmesg", "EtcdAlarmDisarm", "EtcdAlarmList", "EtcdDefragment",
        "EtcdDowngradeCancel", "EtcdDowngradeEnable", "EtcdDowngradeValidate", "EtcdForfeitLeadership",
        "EtcdLeaveCluster", "EtcdMemberList", "EtcdRecover", "EtcdRemoveMemberByID", "EtcdSnapshot",
        "EtcdStatus", "Events", "GenerateClientConfiguration", "Hostname", "ImageList", "ImagePull",
        "Kubeconfig", "List", "LoadAvg", "Logs", "LogsContainers", "Memory", "MetaDelete", "MetaWrite",
        "Mounts", "Netstat", "NetworkDeviceStats", "PacketCapture", "Processes", "Read", "Reboot", "Reset",
        "Restart", "Rollback", "ServiceList", "ServiceRestart", "ServiceStart", "ServiceStop", "Shutdown",
        "Stats", "SystemStat", "Upgrade", "Version",
    ],
    "machine.LifecycleService": ["Install", "Upgrade"],
    "machine.ImageService": ["List", "Pull", "Import", "Remove", "Verify"],
    "cluster.ClusterService": ["HealthCheck"],
    "storage.StorageService": ["Disks", "BlockDeviceWipe"],
    "inspect.InspectService": ["ControllerRuntimeDependencies"],
    "time.TimeService": ["Time", "TimeCheck"],
    "cosi.resource.State": ["Create", "Destroy", "Get", "List", "Teardown", "TeardownAndDestroy", "Update", "Watch"],
}
# Messages reached only through google.protobuf.Any (Events payloads) or read from COSI bytes.
EXTRA = [
    "machine.MachineStatusEvent", "machine.SequenceEvent", "machine.PhaseEvent", "machine.TaskEvent",
    "machine.ServiceStateEvent", "machine.ConfigLoadErrorEvent", "machine.ConfigValidationErrorEvent",
    "machine.AddressEvent", "machine.RestartEvent", "resource.config.MachineConfigSpec",
    "resource.config.MachineTypeSpec",
    # COSI specs of the resource types the emulator serves (proto_spec), as upstream's resource definitions
    *(f"talos.resource.definitions.{name}" for name in (
        "network.AddressStatusSpec", "network.LinkStatusSpec", "network.RouteStatusSpec",
        "network.HostnameStatusSpec", "network.ResolverStatusSpec", "network.NodeAddressSpec",
        "runtime.MachineStatusSpec", "runtime.VersionSpec", "runtime.PlatformMetadataSpec", "block.DiskSpec",
        "block.SystemDiskSpec", "hardware.SystemInformationSpec", "hardware.ProcessorSpec",
        "hardware.MemoryModuleSpec", "cluster.MemberSpec", "cluster.IdentitySpec", "etcd.MemberSpec",
        "secrets.OSRootSpec")),
    "cosi.resource.meta.ResourceDefinitionSpec", "cosi.resource.meta.NamespaceSpec",
    # bit masks a spec holds as uint32 and prints by flag name
    "talos.resource.definitions.enums.NethelpersAddressFlag", "talos.resource.definitions.enums.NethelpersRouteFlag",
]
# Upstream oneofs (the wire facts do not record them; the wire format is the same either way).
ONEOFS = {
    "machine.LifecycleServiceInstallProgress": ("response", ["message", "exit_code"]),
    "machine.ImageServicePullResponse": ("response", ["name", "pull_progress"]),
    "machine.ImageServiceImportRequest": ("request", ["containerd", "image_chunk"]),
}
# Which file each top-level name goes to: (package, file) chosen by prefix, longest first.
FILES = [
    ("machine.LifecycleService", "machine/lifecycle.proto"),
    ("machine.ImageService", "machine/image.proto"),
    ("machine.", "machine/machine.proto"),
    ("common.", "common/common.proto"),
    ("cluster.", "cluster/cluster.proto"),
    ("storage.", "storage/storage.proto"),
    ("inspect.", "inspect/inspect.proto"),
    ("time.", "time/time.proto"),
    ("resource.config.", "resource/config/config.proto"),
    ("cosi.resource.meta.", "cosi/v1alpha1/meta.proto"),
    ("cosi.resource.State", "cosi/v1alpha1/state.proto"),
    ("cosi.resource.", "cosi/v1alpha1/resource.proto"),
]
STATE_MESSAGES = ("Create", "Destroy", "Get", "List", "Teardown", "Update", "Watch")
WELL_KNOWN = {
    "google.protobuf.Any": "google/protobuf/any.proto",
    "google.protobuf.Duration": "google/protobuf/duration.proto",
    "google.protobuf.Empty": "google/protobuf/empty.proto",
    "google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
    "google.protobuf.Struct": "google/protobuf/struct.proto",
    "google.rpc.Status": "google/rpc/status.proto",
}
SCALAR = {"TYPE_%s" % t.upper(): t for t in (
    "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string", "bytes",
    "uint32", "sfixed32", "sfixed64", "sint32", "sint64")}


def file_for(name):
    if name in WELL_KNOWN:
        return WELL_KNOWN[name]
    short = name.rsplit(".", 1)[-1]
    if name.startswith("talos.resource.definitions."):
        package = name.split(".")[3]
        return f"resource/definitions/{package}/{package}.proto"
    if name.startswith("cosi.resource.") and name.count(".") == 2 and short.startswith(STATE_MESSAGES):
        return "cosi/v1alpha1/state.proto"
    for prefix, path in FILES:
        if name.startswith(prefix):
            return path
    raise SystemExit("no file for " + name)


def main(wire_path, out_dir="protos"):
    wire = json.load(open(wire_path))
    messages, enums = wire["messages"], wire["enums"]

    def top_level(name):
        # nested names hang under a message: machine.A.B -> machine.A
        parts = name.split(".")
        for i in range(2, len(parts) + 1):
            cand = ".".join(parts[:i])
            if cand in messages:
                return cand
        return name

    wanted, todo = set(), []
    for svc, names in RPCS.items():
        for rpc in names:
            r = wire["services"][svc][rpc]
            todo += [r["input"], r["output"]]
    todo += EXTRA
    while todo:
        n = todo.pop()
        if n in wanted or n.startswith("google."):
            continue
        wanted.add(n)
        if n in messages:
            for f in messages[n].values():
                if f["type_name"]:
                    todo.append(f["type_name"])
            todo += [m for m in list(messages) + list(enums) if m.startswith(n + ".")]
        # an enum or message nested in another wanted message: keep the parent too
        parent = top_level(n) if n not in messages else None
        if parent and parent != n:
            todo.append(parent)

    by_file = {}
    for n in sorted(wanted):
        if n == top_level(n) or (n in enums and top_level(n) == n):
            by_file.setdefault(file_for(n), []).append(n)
    for svc in RPCS:
        by_file.setdefault(file_for(svc), [])

    def package_of(path):
        if path.startswith("resource/definitions/"):
            return "talos.resource.definitions." + path.split("/")[2]
        if path == "cosi/v1alpha1/meta.proto":
            return "cosi.resource.meta"
        return {"machine": "machine", "common": "common", "cluster": "cluster", "storage": "storage",
                "inspect": "inspect", "time": "time",
                "resource": "resource.config", "cosi": "cosi.resource"}[path.split("/")[0]]

    for path, names in by_file.items():
        pkg = package_of(path)
        imports, body = set(), []

        def ref(type_name):
            if file_for(type_name) != path:
                imports.add(file_for(type_name))
            return "." + type_name

        def emit_enum(name, indent):
            pad = "  " * indent
            body.append(f"{pad}enum {name.rsplit('.', 1)[-1]} {{")
            if len(set(enums[name].values())) < len(enums[name]):
                body.append(f"{pad}  option allow_alias = true;")
            for k, v in sorted(enums[name].items(), key=lambda kv: kv[1]):
                body.append(f"{pad}  {k} = {v};")
            body.append(pad + "}")

        def emit_message(name, indent):
            pad = "  " * indent
            fields = messages[name]
            body.append(f"{pad}message {name.rsplit('.', 1)[-1]} {{")
            for child in sorted(e for e in enums if e.rsplit(".", 1)[0] == name):
                emit_enum(child, indent + 1)
            for child in sorted(m for m in messages if m.rsplit(".", 1)[0] == name and not m.endswith("Entry")):
                emit_message(child, indent + 1)
            oneof_name, oneof_fields = ONEOFS.get(name, (None, []))
            in_oneof = []

            def field_line(fname, f, p):
                entry = name + "." + "".join(x.title() for x in fname.split("_")) + "Entry"
                if f["repeated"] and entry in messages:
                    k, v = messages[entry]["key"], messages[entry]["value"]
                    vt = ref(v["type_name"]) if v["type_name"] else SCALAR[v["type"]]
                    return f"{p}map<{SCALAR[k['type']]}, {vt}> {fname} = {f['number']};"
                t = ref(f["type_name"]) if f["type_name"] else SCALAR[f["type"]]
                rep = "repeated " if f["repeated"] else ""
                return f"{p}{rep}{t} {fname} = {f['number']};"

            for fname, f in sorted(fields.items(), key=lambda kv: kv[1]["number"]):
                if fname in oneof_fields:
                    in_oneof.append(field_line(fname, f, pad + "    "))
                else:
                    body.append(field_line(fname, f, pad + "  "))
            if in_oneof:
                body.append(f"{pad}  oneof {oneof_name} {{")
                body.extend(in_oneof)
                body.append(f"{pad}  }}")
            body.append(pad + "}")

        for n in names:
            if n in enums:
                emit_enum(n, 0)
            else:
                emit_message(n, 0)
            body.append("")
        for svc, rpcs in RPCS.items():
            if file_for(svc) != path:
                continue
            body.append(f"service {svc.rsplit('.', 1)[-1]} {{")
            for rpc in rpcs:
                r = wire["services"][svc][rpc]
                cs = "stream " if r["client_streaming"] else ""
                ss = "stream " if r["server_streaming"] else ""
                body.append(f"  rpc {rpc}({cs}{ref(r['input'])}) returns ({ss}{ref(r['output'])});")
            body.append("}")
            body.append("")
        head = ["// Generated by hack/protos_from_wire.py from the upstream wire facts; edit that script, not this file.",
                'syntax = "proto3";', "", f"package {pkg};", ""]
        head += [f'import "{i}";' for i in sorted(imports)]
        out = pathlib.Path(out_dir, path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(head + [""] + body).rstrip() + "\n")
        print("wrote", out)

    status = pathlib.Path(out_dir, "google/rpc/status.proto")
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(
        "// The gRPC rich error status, as carried in common.Metadata.status.\n"
        'syntax = "proto3";\n\npackage google.rpc;\n\nimport "google/protobuf/any.proto";\n\n'
        "message Status {\n  int32 code = 1;\n  string message = 2;\n  repeated google.protobuf.Any details = 3;\n}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
