"""Read-only facts: Version, Hostname, Memory, CPUInfo, SystemStat, Mounts, LoadAvg, Disks."""
import time

from .. import hardware
from ..api import machine_pb2, storage_pb2
from .base import rpc

M = "machine.MachineService"
BUILD_DATE = "2026-01-15T10:00:00Z"


@rpc(M, "Version")
async def version(call, request):
    node = call.node
    return machine_pb2.VersionResponse(messages=[machine_pb2.Version(
        version=machine_pb2.VersionInfo(tag=node.version.tag, sha=node.version.sha, built=BUILD_DATE,
                                        go_version=node.version.go_version, os="linux", arch="amd64"),
        platform=machine_pb2.PlatformInfo(name="metal", mode="metal"),
        features=machine_pb2.FeaturesInfo(rbac=True),
    )])


@rpc(M, "Hostname")
async def hostname(call, request):
    return machine_pb2.HostnameResponse(messages=[machine_pb2.Hostname(hostname=call.node.hostname)])


@rpc(M, "Memory")
async def memory(call, request):
    return machine_pb2.MemoryResponse(messages=[machine_pb2.Memory(
        meminfo=machine_pb2.MemInfo(**hardware.meminfo(call.node.index)))])


@rpc(M, "CPUInfo")
async def cpu_info(call, request):
    cpus = [machine_pb2.CPUInfo(
        processor=i, vendor_id="AuthenticAMD", cpu_family="25", model="1", model_name=hardware.CPU_MODEL,
        stepping="1", microcode="0x1000065", cpu_mhz=hardware.CPU_MHZ, cache_size="512 KB", physical_id="0",
        siblings=hardware.CPU_COUNT, core_id=str(i), cpu_cores=hardware.CPU_COUNT, apic_id=str(i),
        initial_apic_id=str(i), fpu="yes", fpu_exception="yes", cpu_id_level=13, wp="yes",
        flags=list(hardware.CPU_FLAGS), bugs=["sysret_ss_attrs", "spectre_v1", "spectre_v2"], bogo_mips=4890.81,
        cl_flush_size=64, cache_alignment=64, address_sizes="48 bits physical, 48 bits virtual",
    ) for i in range(hardware.CPU_COUNT)]
    return machine_pb2.CPUInfoResponse(messages=[machine_pb2.CPUsInfo(cpu_info=cpus)])


@rpc(M, "SystemStat")
async def system_stat(call, request):
    uptime = max(time.time() - call.node.boot_time, 0.0)
    per_cpu = [machine_pb2.CPUStat(user=uptime * 0.05, system=uptime * 0.02, idle=uptime * 0.9, iowait=0.3)
               for _index in range(hardware.CPU_COUNT)]
    total = machine_pb2.CPUStat(user=sum(c.user for c in per_cpu), system=sum(c.system for c in per_cpu),
                                idle=sum(c.idle for c in per_cpu), iowait=sum(c.iowait for c in per_cpu))
    return machine_pb2.SystemStatResponse(messages=[machine_pb2.SystemStat(
        boot_time=int(call.node.boot_time), cpu_total=total, cpu=per_cpu, irq_total=int(uptime * 900),
        context_switches=int(uptime * 4000), process_created=int(uptime * 10) + 300, process_running=2,
        process_blocked=0, soft_irq_total=int(uptime * 700), soft_irq=machine_pb2.SoftIRQStat(timer=int(uptime * 250)),
    )])


@rpc(M, "Mounts")
async def mounts(call, request):
    stats = [machine_pb2.MountStat(filesystem=fs, size=size, available=available, mounted_on=target)
             for fs, size, available, target in hardware.MOUNTS]
    return machine_pb2.MountsResponse(messages=[machine_pb2.Mounts(stats=stats)])


@rpc(M, "LoadAvg")
async def load_avg(call, request):
    load1, load5, load15 = hardware.LOAD_AVERAGE
    return machine_pb2.LoadAvgResponse(messages=[machine_pb2.LoadAvg(load1=load1, load5=load5, load15=load15)])


@rpc("storage.StorageService", "Disks")
async def disks(call, request):
    return storage_pb2.DisksResponse(messages=[storage_pb2.Disks(disks=[
        storage_pb2.Disk(size=d.size, model=d.model, device_name=f"/dev/{d.name}", name=d.name, serial=d.serial,
                         modalias="virtio:d00000002v00001AF4", wwid=d.wwid, type=storage_pb2.Disk.HDD
                         if d.rotational else storage_pb2.Disk.SSD, bus_path=d.bus_path,
                         system_disk=d.system_disk and not call.node.maintenance,
                         subsystem="/sys/class/block", readonly=False)
        for d in hardware.disks(call.node.index)])])
