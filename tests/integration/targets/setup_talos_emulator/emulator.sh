# shellcheck shell=bash
# Sourced by the runme.sh of each target that needs a Talos cluster (alias needs/target/setup_talos_emulator).
#
#   talos_emulator_up [options of `python -m tests.emulator up`...]
#
# starts the collection's emulator (tests/emulator, run by the controller's Python, which has the collection's
# requirements) in a new private state directory, stops it and removes that directory when the script exits,
# and exports:
#   TALOS_EMULATOR_STATE      the state directory (talosconfig, talosconfig-reader, ... for each role)
#   TALOS_EMULATOR_INVENTORY  an inventory of the nodes in groups controlplane and worker, as users write one
#   TALOS_EMULATOR_VARS       a vars file: addresses, hostnames, talosconfig paths, and talos_emulator_calls,
#                             a command whose output (JSON) counts the calls each node served

TALOS_EMULATOR_PYTHON="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python}"
# ansible-test points ANSIBLE_COLLECTIONS_PATH at the directory holding ansible_collections/talos/linux.
TALOS_EMULATOR_ROOT="${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/talos/linux"
TALOS_EMULATOR_PID=""

talos_emulator() {
    (cd "$TALOS_EMULATOR_ROOT" && "$TALOS_EMULATOR_PYTHON" -m tests.emulator "$@")
}

talos_emulator_down() {
    local status=$?
    if [ -n "$TALOS_EMULATOR_PID" ]; then
        # `down` signals the pid the emulator wrote; if it cannot, end the process this script started.
        talos_emulator down --state-dir "$TALOS_EMULATOR_STATE" || kill "$TALOS_EMULATOR_PID" 2>/dev/null || true
        wait "$TALOS_EMULATOR_PID" 2>/dev/null || true
        TALOS_EMULATOR_PID=""
    fi
    rm -rf "$TALOS_EMULATOR_STATE"
    return "$status"
}

talos_emulator_up() {
    # A short private path: the state holds keys, and the control socket's path must stay short.
    TALOS_EMULATOR_STATE="$(mktemp -d "${TMPDIR:-/tmp}/talos-emulator.XXXXXX")"
    TALOS_EMULATOR_INVENTORY="$TALOS_EMULATOR_STATE/inventory.json"
    TALOS_EMULATOR_VARS="$TALOS_EMULATOR_STATE/vars.json"
    export TALOS_EMULATOR_STATE TALOS_EMULATOR_INVENTORY TALOS_EMULATOR_VARS
    trap talos_emulator_down EXIT

    (cd "$TALOS_EMULATOR_ROOT" \
        && exec "$TALOS_EMULATOR_PYTHON" -m tests.emulator up --state-dir "$TALOS_EMULATOR_STATE" "$@") \
        >"$TALOS_EMULATOR_STATE/emulator.log" 2>&1 &
    TALOS_EMULATOR_PID=$!

    # Wait up to a minute for the ready file, without tracing every poll.
    local waited=0 xtrace=""
    case $- in *x*) xtrace=1; set +x ;; esac
    until [ -f "$TALOS_EMULATOR_STATE/ready" ]; do
        if ! kill -0 "$TALOS_EMULATOR_PID" 2>/dev/null || [ "$waited" -ge 600 ]; then
            echo "the emulator did not start:" >&2
            cat "$TALOS_EMULATOR_STATE/emulator.log" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    [ -z "$xtrace" ] || set -x

    talos_emulator status --state-dir "$TALOS_EMULATOR_STATE" >"$TALOS_EMULATOR_STATE/status.json"
    "$TALOS_EMULATOR_PYTHON" - "$TALOS_EMULATOR_STATE" "$TALOS_EMULATOR_ROOT" <<'PYTHON'
import json
import pathlib
import shlex
import sys

state, root = pathlib.Path(sys.argv[1]), sys.argv[2]
nodes = json.loads((state / "status.json").read_text())["nodes"]
groups = {"controlplane": {"hosts": {}}, "worker": {"hosts": {}}}
for node in nodes:
    # the host variables the talos.linux.talosconfig inventory sets, with the talosconfig of the admin role
    groups[node["type"]]["hosts"][node["hostname"]] = {
        "ansible_host": node["address"], "talos_node": node["address"],
        "ansible_connection": "talos.linux.controller", "ansible_python_interpreter": sys.executable,
        "ansible_facts_modules": ["talos.linux.talos_facts"], "talos_config_path": str(state / "talosconfig"),
    }
(state / "inventory.json").write_text(json.dumps({"all": {"children": groups}}, indent=2))

calls = [sys.executable, "-m", "tests.emulator", "calls", "--state-dir", str(state)]
variables = {
    "talos_emulator_state": str(state),
    "talos_emulator_calls": f"cd {shlex.quote(root)} && {shlex.join(calls)}",
    "talos_control_planes": [n["address"] for n in nodes if n["type"] == "controlplane"],
    "talos_workers": [n["address"] for n in nodes if n["type"] == "worker"],
    "talos_hostnames": {n["address"]: n["hostname"] for n in nodes},
    "talos_versions": {n["address"]: n["version"] for n in nodes},
    "talosconfig": str(state / "talosconfig"),
    "talosconfig_reader": str(state / "talosconfig-reader"),
    "talosconfig_operator": str(state / "talosconfig-operator"),
    "talosconfig_etcd_backup": str(state / "talosconfig-etcd-backup"),
}
(state / "vars.json").write_text(json.dumps(variables, indent=2))
PYTHON
}
