"""Command line: run an emulated Talos cluster and steer it.

    python -m tests.emulator up --control-planes 3 --workers 2 --talos-version 1.13.5 --state-dir DIR
    python -m tests.emulator status --state-dir DIR
    python -m tests.emulator calls --state-dir DIR
    python -m tests.emulator fault --state-dir DIR fail --rpc Version --code UNAVAILABLE --count 3 [--node ADDR]
    python -m tests.emulator fault --state-dir DIR latency --seconds 0.01 [--node ADDR] [--rpc R]
    python -m tests.emulator fault --state-dir DIR {down,up,reboot} --node ADDR
    python -m tests.emulator fault --state-dir DIR etcd-unhealthy --node ADDR [--error TEXT]
    python -m tests.emulator fault --state-dir DIR alarm --node ADDR --type NOSPACE
    python -m tests.emulator fault --state-dir DIR clear
    python -m tests.emulator down --state-dir DIR

Node indexes (for --node-version and --maintenance-node) count from 0: control planes first, then workers.
"""
import argparse
import json
import os
import pathlib
import signal
import sys
import threading
import time

from . import EmulatedCluster, control


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected INDEX=VERSION or ADDRESS=VERSION, got {text!r}")
    return (int(key) if key.isdigit() else key), value


def _index_or_address(text):
    return int(text) if text.isdigit() else text


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description="Talos Linux API emulator")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run a cluster until SIGTERM/SIGINT")
    up.add_argument("--state-dir", required=True, type=pathlib.Path)
    up.add_argument("--control-planes", type=int, default=1)
    up.add_argument("--workers", type=int, default=0)
    up.add_argument("--talos-version", default="1.13.5")
    up.add_argument("--node-version", action="append", type=_key_value, default=[],
                    help="INDEX=VERSION or ADDRESS=VERSION (repeatable)")
    up.add_argument("--reboot-seconds", type=float, default=1.0)
    up.add_argument("--boot-seconds", type=float, default=0.0)
    up.add_argument("--snapshot-size", type=int, default=1 << 20)
    up.add_argument("--name", default="emulated")
    up.add_argument("--maintenance-node", action="append", type=_index_or_address, default=[])
    up.add_argument("--not-bootstrapped", action="store_true", help="etcd waits for Bootstrap")

    for name, text in (("down", "stop a running cluster"), ("status", "print nodes and call counts as JSON"),
                       ("calls", "print call counts as JSON")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", required=True, type=pathlib.Path)

    fault = commands.add_parser("fault", help="inject faults into a running cluster")
    fault.add_argument("--state-dir", required=True, type=pathlib.Path)
    kinds = fault.add_subparsers(dest="fault", required=True)
    fail = kinds.add_parser("fail", help="fail the next N calls of an RPC")
    fail.add_argument("--rpc", required=True)
    fail.add_argument("--code", default="UNAVAILABLE")
    fail.add_argument("--count", type=int, default=1)
    fail.add_argument("--node")
    fail.add_argument("--message")
    latency = kinds.add_parser("latency", help="add latency to calls")
    latency.add_argument("--seconds", type=float, required=True)
    latency.add_argument("--node")
    latency.add_argument("--rpc")
    interrupt = kinds.add_parser("interrupt", help="break the next stream of an RPC after N messages")
    interrupt.add_argument("--rpc", required=True)
    interrupt.add_argument("--after-messages", type=int, required=True)
    interrupt.add_argument("--node")
    interrupt.add_argument("--count", type=int, default=1)
    for name in ("down", "up", "reboot", "etcd-healthy"):
        sub = kinds.add_parser(name)
        sub.add_argument("--node", required=True)
    unhealthy = kinds.add_parser("etcd-unhealthy")
    unhealthy.add_argument("--node", required=True)
    unhealthy.add_argument("--error")
    alarm = kinds.add_parser("alarm")
    alarm.add_argument("--node", required=True)
    alarm.add_argument("--type", default="NOSPACE", choices=["NOSPACE", "CORRUPT"])
    pull = kinds.add_parser("fail-pull", help="make an image pull fail")
    pull.add_argument("--image", required=True)
    pull.add_argument("--message")
    upgrade = kinds.add_parser("fail-upgrade", help="make LifecycleService.Upgrade exit non-zero for an image")
    upgrade.add_argument("--image", required=True)
    upgrade.add_argument("--exit-code", type=int, default=1)
    kinds.add_parser("clear", help="remove every injected fault")
    return parser


def run_up(args):
    state_dir = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_signal_args: stop.set())
    cluster = EmulatedCluster(
        control_planes=args.control_planes, workers=args.workers, talos_version=args.talos_version,
        state_dir=state_dir, node_versions=dict(args.node_version), reboot_seconds=args.reboot_seconds,
        snapshot_size=args.snapshot_size, name=args.name, boot_seconds=args.boot_seconds,
        bootstrapped=not args.not_bootstrapped, maintenance_nodes=args.maintenance_node,
    )
    ready, pid_file = state_dir / control.READY_FILE, state_dir / "pid"
    ready.unlink(missing_ok=True)
    cluster.start()
    channel = control.ControlServer(cluster, state_dir).start()
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        ready.write_text(json.dumps({
            "pid": os.getpid(), "control_socket": str(channel.path), "talosconfig": str(cluster.talosconfig_path()),
            "control_planes": cluster.control_planes, "workers": cluster.workers,
        }, indent=2) + "\n")
        print(f"emulated cluster {args.name!r} up: control planes {cluster.control_planes}, workers "
              f"{cluster.workers}; talosconfig {cluster.talosconfig_path()}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        ready.unlink(missing_ok=True)
        channel.stop()
        cluster.stop()
        pid_file.unlink(missing_ok=True)
    return 0


def run_down(args, timeout=10.0):
    pid_file = args.state_dir / "pid"
    if not pid_file.exists():
        print(f"no emulator running in {args.state_dir}", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        if not pid_file.exists():      # our own child would linger as a zombie; the pid file tells
            time.sleep(0.05)
            return 0
        time.sleep(0.05)
    print(f"emulator (pid {pid}) did not exit within {timeout} s", file=sys.stderr)
    return 1


def run_fault(args):
    request = {key: value for key, value in vars(args).items()
               if key not in ("command", "fault", "state_dir") and value is not None}
    request["command"] = "interrupt" if args.fault == "interrupt" else args.fault
    result = control.send(args.state_dir, request)
    if result not in (None, True):
        print(json.dumps(result, indent=2))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return run_up(args)
        if args.command == "down":
            return run_down(args)
        if args.command in ("status", "calls"):
            print(json.dumps(control.send(args.state_dir, {"command": args.command}), indent=2))
            return 0
        return run_fault(args)
    except (FileNotFoundError, ConnectionError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
