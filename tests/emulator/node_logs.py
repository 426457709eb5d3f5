"""A node's in-memory logs: machined's per-service buffers, container logs and the kernel ring (/dev/kmsg).

Lost at every boot, as machined's circular buffers and the kernel ring are. Readers that follow a log
wait on `wait_beyond`; tests and RPCs append with `append`.
"""
import asyncio
import datetime


class LineLog:
    """An append-only list of lines (no trailing newline) that followers can wait on."""

    def __init__(self, lines=()):
        self.lines = list(lines)
        self._grown = asyncio.Event()

    def append(self, line):
        self.lines.append(line)
        grown, self._grown = self._grown, asyncio.Event()
        grown.set()

    async def wait_beyond(self, count, timeout):
        """Return once there are more than `count` lines, or after `timeout` seconds."""
        if len(self.lines) > count:
            return
        try:
            await asyncio.wait_for(self._grown.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def _stamp(when):
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped (kmsg has microseconds)."""
    moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def service_log(service_id, hostname, when):
    """What a service has logged by the time it is Running."""
    stamp = _stamp(when)
    return LineLog([
        f"{stamp} {service_id}: starting on {hostname}",
        f"{stamp} {service_id}: loaded configuration",
        f"{stamp} {service_id}: listening",
        f"{stamp} {service_id}: health check successful",
    ])


def container_log(container_name, when):
    """A CRI container log file: `<RFC3339Nano> <stream> <F|P> <message>` lines, as talosctl logs -k shows."""
    stamp = _stamp(when)
    return LineLog([f"{stamp} stderr F I0000 {container_name} starting",
                    f"{stamp} stderr F I0000 {container_name} serving"])


def kmsg_line(facility, priority, when, message):
    """Dmesg's rendering of one kernel message: "<facility>: <%7s priority>: [<RFC3339Nano>]: <message>"."""
    return f"{facility}: {priority:>7}: [{_stamp(when)}]: {message}"


def boot_kmsg(hostname, when):
    return LineLog([
        kmsg_line("kern", "notice", when, "Linux version 6.12.57-talos (@buildkitsandbox) #1 SMP"),
        kmsg_line("kern", "info", when, "Command line: talos.platform=metal console=ttyS0"),
        kmsg_line("kern", "info", when, "virtio_blk virtio4: [sda] 20971520 512-byte logical blocks"),
        kmsg_line("user", "warning", when, f"[talos] hostname set to {hostname}"),
        kmsg_line("user", "warning", when, "[talos] task startAllServices (1/1): done"),
    ])
