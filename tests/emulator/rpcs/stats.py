"""CPUFreqStats, DiskStats, NetworkDeviceStats, Netstat and PacketCapture, with per-node counters.

Counters grow with the node's uptime, so two reads a moment apart differ as on a real node.
"""
import asyncio
import struct
import time

from grpclib.const import Status

from .. import hardware
from ..api import common_pb2, machine_pb2
from .base import fail, rpc
from .logs import FOLLOW_POLL, check_node_unchanged

M = "machine.MachineService"
_N = machine_pb2.NetstatRequest
_STATE = machine_pb2.ConnectRecord.State
PCAP_DEFAULT_SNAPLEN = 4096          # afpacket.DefaultFrameSize
PCAP_PACKET_INTERVAL = 0.05


def _uptime(node):
    return max(time.time() - node.boot_time, 0.0) + 1.0


@rpc(M, "CPUFreqStats", since_minor=9)
async def cpu_freq_stats(call, request):
    current = int(hardware.CPU_MHZ * 1000)
    rows = [machine_pb2.CPUFreqStats(current_frequency=current - 1000 * i, minimum_frequency=1_500_000,
                                     maximum_frequency=3_529_000, governor="performance")
            for i in range(hardware.CPU_COUNT)]
    return machine_pb2.CPUFreqStatsResponse(messages=[machine_pb2.CPUsFreqStats(cpu_freq_stats=rows)])


@rpc(M, "DiskStats")
async def disk_stats(call, request):
    uptime = _uptime(call.node)
    devices = []
    for number, disk in enumerate(hardware.disks(call.node.index)):
        scale = 1 if disk.system_disk else 0.05
        reads, writes = int(uptime * 40 * scale) + 300, int(uptime * 25 * scale) + 100
        devices.append(machine_pb2.DiskStat(
            name=disk.name, read_completed=reads, read_merged=reads // 10, read_sectors=reads * 16,
            read_time_ms=reads // 2, write_completed=writes, write_merged=writes // 8, write_sectors=writes * 24,
            write_time_ms=writes, io_time_ms=(reads + writes) // 3, io_time_weighted_ms=reads + writes))
    fields = [f.name for f in machine_pb2.DiskStat.DESCRIPTOR.fields if f.name != "name"]
    total = machine_pb2.DiskStat(name="total", **{f: sum(getattr(d, f) for d in devices) for f in fields})
    return machine_pb2.DiskStatsResponse(messages=[machine_pb2.DiskStats(total=total, devices=devices)])


@rpc(M, "NetworkDeviceStats")
async def network_device_stats(call, request):
    uptime = _uptime(call.node)
    devices = [machine_pb2.NetDev(name=name, rx_bytes=int(uptime * rate), rx_packets=int(uptime * rate / 900),
                                  tx_bytes=int(uptime * rate * 0.8), tx_packets=int(uptime * rate / 1000))
               for name, rate in (("eth0", 12_000), ("lo", 40_000))]
    fields = [f.name for f in machine_pb2.NetDev.DESCRIPTOR.fields if f.name != "name"]
    total = machine_pb2.NetDev(name="total", **{f: sum(getattr(d, f) for d in devices) for f in fields})
    return machine_pb2.NetworkDeviceStatsResponse(messages=[machine_pb2.NetworkDeviceStats(
        total=total, devices=devices)])


def _sockets(node):
    """(l4proto, local ip, port, remote ip, remote port, state, process, netns) of the node."""
    rows = [("tcp", "0.0.0.0", 50000, "0.0.0.0", 0, _STATE.LISTEN, "apid", ""),
            ("tcp", "127.0.0.1", 10248, "0.0.0.0", 0, _STATE.LISTEN, "kubelet", ""),
            ("tcp6", "::", 10250, "::", 0, _STATE.LISTEN, "kubelet", ""),
            ("udp", "127.0.0.53", 53, "0.0.0.0", 0, _STATE.CLOSE, "dnsd", "")]
    if node.is_control_plane:
        rows += [("tcp", "0.0.0.0", 50001, "0.0.0.0", 0, _STATE.LISTEN, "trustd", ""),
                 ("tcp", node.address, 2379, "0.0.0.0", 0, _STATE.LISTEN, "etcd", ""),
                 ("tcp", node.address, 2380, "0.0.0.0", 0, _STATE.LISTEN, "etcd", ""),
                 ("tcp6", "::", 6443, "::", 0, _STATE.LISTEN, "kube-apiserver", ""),
                 ("tcp", node.address, 2379, node.address, 40112, _STATE.ESTABLISHED, "etcd", "")]
    control_plane = node.cluster.control_planes[0].address if node.cluster.control_planes else node.address
    rows += [("tcp", node.address, 41000 + node.index, control_plane, 6443, _STATE.ESTABLISHED, "kubelet", ""),
             ("tcp", "10.244.0.2", 8080, "0.0.0.0", 0, _STATE.LISTEN, "kube-proxy", "cni-kube-proxy")]
    return rows


@rpc(M, "Netstat")
async def netstat(call, request):
    """Host network only with netns.hostnetwork; no protocol flag selects nothing; ALL=0 is the proto default."""
    protocols = {name for name in ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6")
                 if getattr(request.l4proto, name)}
    records = []
    for pid, (proto, local, lport, remote, rport, state, process, netns) in enumerate(_sockets(call.node), 200):
        if proto not in protocols:
            continue
        if (netns == "" and not request.netns.hostnetwork) or (
                netns and not (request.netns.allnetns or netns in request.netns.netns)):
            continue
        listening = state == _STATE.LISTEN or (proto.startswith("udp") and state == _STATE.CLOSE)
        if (request.filter == _N.LISTENING and not listening) or (request.filter == _N.CONNECTED and listening):
            continue
        record = machine_pb2.ConnectRecord(l4proto=proto, localip=local, localport=lport, remoteip=remote,
                                           remoteport=rport, state=state, inode=10_000 + pid, netns=netns)
        if request.feature.pid:
            record.process.CopyFrom(machine_pb2.ConnectRecord.Process(pid=pid, name=process))
        records.append(record)
    return machine_pb2.NetstatResponse(messages=[machine_pb2.Netstat(connectrecord=records)])


def _pcap_header(snap_len, link_type):
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snap_len, link_type)


def _pcap_packet(node, number, snap_len):
    """An Ethernet/IPv4/UDP frame (NTP-sized) from the node, truncated to snap_len."""
    payload = number.to_bytes(4, "big") * 12
    ip_src = bytes(int(p) for p in node.address.split("."))
    udp = struct.pack(">HHHH", 40000 + number % 1000, 123, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), number & 0xFFFF, 0, 64, 17, 0, ip_src,
                     bytes((162, 159, 200, 1))) + udp
    mac = bytes(int(x, 16) for x in node.mac.split(":"))
    frame = b"\xff\xff\xff\xff\xff\xff" + mac + b"\x08\x00" + ip
    now = time.time()
    captured = frame[:snap_len]
    return struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(captured), len(frame)) + captured


@rpc(M, "PacketCapture")
async def packet_capture(call, request):
    """The pcap file header, then one packet per message until the client goes away (it never ends)."""
    link = call.node.resources.get("network", "LinkStatuses.net.talos.dev", request.interface)
    if link is None:
        fail(Status.NOT_FOUND, f'interface "{request.interface}" not found')
    snap_len = request.snap_len or PCAP_DEFAULT_SNAPLEN
    yield common_pb2.Data(bytes=_pcap_header(snap_len, 1))          # LinkTypeEthernet (ether and loopback)
    number = 0
    while True:
        await asyncio.sleep(min(PCAP_PACKET_INTERVAL, FOLLOW_POLL))
        check_node_unchanged(call)
        number += 1
        yield common_pb2.Data(bytes=_pcap_packet(call.node, number, snap_len))
