"""Static hardware facts of an emulated node: a small QEMU-like VM (4 vCPU, 8 GiB, two virtio disks)."""
import dataclasses

CPU_COUNT = 4
CPU_MODEL = "AMD EPYC 7763 64-Core Processor"
CPU_MHZ = 2445.406
CPU_FLAGS = ("fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge", "mca",
             "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "syscall", "nx", "lm",
             "rep_good", "nopl", "cpuid", "pni", "ssse3", "fma", "cx16", "sse4_1", "sse4_2", "x2apic", "movbe",
             "popcnt", "aes", "xsave", "avx", "f16c", "rdrand", "hypervisor", "avx2")
MEMORY_TOTAL_KB = 8152048
GIB = 1 << 30


@dataclasses.dataclass(frozen=True)
class DiskInfo:
    name: str
    size: int
    model: str
    serial: str
    wwid: str
    system_disk: bool
    bus_path: str
    transport: str = "virtio"
    rotational: bool = False


def disks(index):
    """Two disks: the system disk and an empty user disk."""
    return [
        DiskInfo("sda", 10 * GIB, "QEMU HARDDISK", f"QM{index:05d}", f"naa.6001405{index:09x}", True,
                 "/pci0000:00/0000:00:07.0/virtio4/host0/target0:0:0/0:0:0:0"),
        DiskInfo("sdb", 20 * GIB, "QEMU HARDDISK", f"QM{index + 50000:05d}", f"naa.6001406{index:09x}", False,
                 "/pci0000:00/0000:00:08.0/virtio5/host1/target1:0:0/1:0:0:0"),
    ]


def meminfo(index):
    free = MEMORY_TOTAL_KB // 2 - index * 1024
    return {
        "memtotal": MEMORY_TOTAL_KB, "memfree": free, "memavailable": free + 1_500_000, "buffers": 4096,
        "cached": 1_400_000, "active": 2_100_000, "inactive": 1_200_000, "swaptotal": 0, "swapfree": 0,
        "shmem": 80_000, "slab": 150_000, "commitlimit": MEMORY_TOTAL_KB // 2, "hugepagesize": 2048,
        "vmalloctotal": 34359738367, "directmap4k": 200_000, "directmap2m": 8_200_000,
    }


MOUNTS = (
    # filesystem, size, available, mounted on
    ("/dev/sda4", 104_857_600, 88_080_384, "/system/state"),
    ("/dev/sda6", 9 * GIB, 7 * GIB, "/var"),
    ("overlay", 9 * GIB, 7 * GIB, "/etc/cni"),
    ("overlay", 9 * GIB, 7 * GIB, "/etc/kubernetes"),
)

LOAD_AVERAGE = (0.42, 0.35, 0.28)
