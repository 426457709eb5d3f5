"""The CLI control channel: JSON lines over a unix socket in the state directory.

Request: {"command": "fail", "rpc": "Version", "code": "UNAVAILABLE", "count": 3, ...}
Reply:   {"ok": true, "result": ...} or {"ok": false, "error": "..."}
The server runs in its own thread and calls the thread-safe EmulatedCluster API.
"""
import json
import os
import pathlib
import socket
import socketserver
import tempfile
import threading

SOCKET_NAME = "control.sock"
READY_FILE = "ready"
# sun_path holds 108 bytes on Linux; deeper state directories get a socket in a short temp dir.
MAX_SOCKET_PATH = 100


def _commands(cluster):
    def opt(request, key, default=None):
        value = request.get(key)
        return default if value is None else value

    return {
        "status": lambda r: cluster.status(),
        "calls": lambda r: cluster.calls_json(),
        "fail": lambda r: bool(cluster.fail(r["rpc"], code=opt(r, "code", "UNAVAILABLE"), count=int(opt(r, "count", 1)),
                                            node=r.get("node"), message=r.get("message"))),
        "latency": lambda r: cluster.add_latency(float(r["seconds"]), rpc=r.get("rpc"), node=r.get("node")),
        "interrupt": lambda r: cluster.interrupt_stream(r["rpc"], int(r["after_messages"]), node=r.get("node"),
                                                        count=int(opt(r, "count", 1)), code=r.get("code")),
        "down": lambda r: cluster.take_down(r["node"]),
        "up": lambda r: cluster.bring_up(r["node"]),
        "reboot": lambda r: cluster.reboot(r["node"], seconds=r.get("seconds")),
        "etcd-unhealthy": lambda r: cluster.set_etcd_unhealthy(r["node"], opt(r, "error", "etcdserver: request timed out")),
        "etcd-healthy": lambda r: cluster.set_etcd_healthy(r["node"]),
        "alarm": lambda r: cluster.raise_alarm(r["node"], opt(r, "type", "NOSPACE")),
        "fail-pull": lambda r: cluster.fail_image_pull(r["image"], r.get("message")),
        "fail-upgrade": lambda r: cluster.fail_upgrade(r["image"], int(opt(r, "exit_code", 1))),
        "fail-boot": lambda r: cluster.fail_next_boot(r["node"], opt(r, "outcome", "stay_down")),
        "lose-answer": lambda r: cluster.lose_answer(r["rpc"], node=r.get("node"), count=int(opt(r, "count", 1))),
        "apply-delay": lambda r: cluster.set_apply_delay(float(r["seconds"])),
        "clear": lambda r: cluster.clear_faults(),
    }


class ControlServer:
    def __init__(self, cluster, state_dir):
        self.cluster = cluster
        path = pathlib.Path(state_dir).resolve() / SOCKET_NAME
        if len(str(path)) > MAX_SOCKET_PATH:
            path = pathlib.Path(tempfile.mkdtemp(prefix="talos-emu-")) / SOCKET_NAME
        self.path = path
        commands = _commands(cluster)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    if not line.strip():
                        continue
                    try:
                        request = json.loads(line)
                        command = commands[request["command"]]
                        reply = {"ok": True, "result": command(request)}
                    except KeyError as error:
                        reply = {"ok": False, "error": f"missing or unknown: {error}"}
                    except Exception as error:  # the control channel reports, it never dies
                        reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                    self.wfile.write((json.dumps(reply, default=str) + "\n").encode())
                    self.wfile.flush()

        if self.path.exists():
            self.path.unlink()
        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="talos-emulator-control", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def socket_path(state_dir):
    ready = pathlib.Path(state_dir) / READY_FILE
    if not ready.exists():
        raise FileNotFoundError(f"no running emulator in {state_dir} (missing {ready})")
    return json.loads(ready.read_text())["control_socket"]


def send(state_dir, request, timeout=30.0):
    """One request over the control channel; raises RuntimeError with the server's error."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path(state_dir))
        sock.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "control request failed"))
    return reply.get("result")
