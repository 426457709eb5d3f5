"""The talos.linux.rolling_upgrade role: real ansible-playbook runs against an emulated cluster."""

import json
import subprocess
import threading
import time

import pytest
import yaml
from grpclib.const import Status

from tests.integration.playbook import BIN, ROOT, ansible_env, run_playbook, static_inventory

INSTALLER = "ghcr.io/siderolabs/installer"
OLD, NEW = "1.13.5", "1.13.6"
IMAGE = f"{INSTALLER}:v{NEW}"
EXAMPLE = ROOT / "examples" / "rolling_upgrade.yml"
UPGRADE_RPCS = ("/machine.MachineService/Upgrade", "/machine.LifecycleService/Upgrade", "/machine.ImageService/Pull",
                "/machine.MachineService/Reboot")
HEALTH = "/cluster.ClusterService/HealthCheck"
# each line a hook writes: "<pre|post> <inventory name> <address> <time>" (the time keeps every line unique)
HOOK = """\
- name: Record the {kind} hook of {{{{ talos_upgrade_host }}}}
  ansible.builtin.lineinfile:
    path: {log}
    line: "{kind} {{{{ talos_upgrade_host }}}} {{{{ talos_upgrade_node }}}} {{{{ now(fmt='%H:%M:%S.%f') }}}}"
    insertafter: EOF
    create: true
    mode: "0644"
  delegate_to: localhost
"""


# --- helpers ----------------------------------------------------------------------------------------------

def grouped_inventory(tmp_path, cluster, **host_vars):
    """The static inventory of the tests, with the groups the talosconfig inventory makes."""
    path = static_inventory(tmp_path, cluster, **host_vars)
    hosts = yaml.safe_load(path.read_text())["talos"]["hosts"]
    by_type = {"controlplane": {}, "worker": {}}
    for address in cluster.addresses:
        node = cluster.node(address)
        by_type[node.machine_type][node.hostname] = hosts[node.hostname]
    groups = {group: {"hosts": members} for group, members in by_type.items()}
    path.write_text(yaml.safe_dump({"all": {"children": groups}}))
    return path


def talosconfig_inventory(tmp_path, cluster):
    path = tmp_path / "cluster.talos.yml"
    path.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig",
                                    "talosconfig": str(cluster.talosconfig_path())}))
    return path


def role_play(**role_vars):
    role = {"role": "talos.linux.rolling_upgrade", "vars": {"talos_upgrade_image": IMAGE, **role_vars}}
    if role["vars"]["talos_upgrade_image"] is None:
        del role["vars"]["talos_upgrade_image"]
    return yaml.safe_dump([{"name": "Rolling upgrade", "hosts": "localhost", "gather_facts": False,
                            "roles": [role]}], sort_keys=False)


def hooks(tmp_path):
    """Pre and post hook task files that append to one log; (role vars, function reading the log)."""
    log = tmp_path / "hooks.log"
    files = {}
    for kind in ("pre", "post"):
        files[kind] = tmp_path / f"{kind}-hook.yml"
        files[kind].write_text("---\n" + HOOK.format(kind=kind, log=log))
    role_vars = {"talos_upgrade_pre_node_tasks": [str(files["pre"])],
                 "talos_upgrade_post_node_tasks": [str(files["post"])]}
    return role_vars, lambda: [line.rsplit(" ", 1)[0] for line in log.read_text().splitlines()] if log.exists() else []


def upgrade_calls(cluster, addresses=None):
    return {a: sum(cluster.calls[(a, rpc)] for rpc in UPGRADE_RPCS) for a in (addresses or cluster.addresses)}


def healthy(cluster):
    return all(n.up and n.ready and n.stage == "running" for n in cluster.nodes)


class Watcher:
    """Polls the emulator during a run: the order in which nodes reach a version, and who is down at once."""

    def __init__(self, cluster, version=NEW):
        self.cluster, self.version = cluster, version
        self.reached = []            # addresses, in the order they came up running `version`
        self.max_down = {"controlplane": 0, "worker": 0}
        self.down_together = []      # every set of nodes seen down at the same time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            down = set()
            for node in self.cluster.nodes:
                if not node.up:
                    down.add(node.address)
                elif node.version == self.version and node.address not in self.reached:
                    self.reached.append(node.address)
            for kind in self.max_down:
                self.max_down[kind] = max(self.max_down[kind], sum(
                    1 for a in down if self.cluster.node(a).machine_type == kind))
            if down and (not self.down_together or self.down_together[-1] != down):
                self.down_together.append(down)
            time.sleep(0.002)

    def __enter__(self):
        self.reached = [n.address for n in self.cluster.nodes if n.version == self.version]
        self._already = list(self.reached)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)

    @property
    def upgraded(self):
        """The nodes that reached the version during the run, in order."""
        return [a for a in self.reached if a not in self._already]


def role_result(run, name):
    """The result of the role's task called `name` (it runs on localhost)."""
    return run.result(f"talos.linux.rolling_upgrade : {name}", "localhost")


def task_banners(run, *starts):
    """The names of the role's tasks the play output announced that start with one of `starts`, in order."""
    prefix = "TASK [talos.linux.rolling_upgrade : "
    names = [line[len(prefix):].rstrip("* ").rstrip("]") for line in run.stdout.splitlines()
             if line.startswith(prefix)]
    return [name for name in names if name.startswith(starts)]


# --- tests ------------------------------------------------------------------------------------------------

def test_whole_cluster_control_planes_first_one_at_a_time_with_the_talosconfig_inventory(
        tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=4, talos_version=OLD, reboot_seconds=0.3)
    cluster.reset_max_control_planes_down()
    inventory = talosconfig_inventory(tmp_path, cluster)
    with Watcher(cluster) as watcher:
        run = run_playbook(tmp_path, EXAMPLE, inventory, "-e", f"talos_upgrade_image={IMAGE}")
    assert run.rc == 0, run.output
    assert {a: cluster.node(a).version for a in cluster.addresses} == {a: NEW for a in cluster.addresses}
    assert cluster.max_control_planes_down == 1
    assert watcher.max_down == {"controlplane": 1, "worker": 1}, watcher.down_together
    assert sorted(watcher.upgraded[:3]) == sorted(cluster.control_planes), "every control plane before any worker"
    assert sorted(watcher.upgraded[3:]) == sorted(cluster.workers)
    assert all(len(down) == 1 for down in watcher.down_together), watcher.down_together
    assert all(cluster.calls[(a, "/machine.LifecycleService/Upgrade")] == 1 for a in cluster.addresses)
    assert all(cluster.calls[(a, "/machine.MachineService/Upgrade")] == 0 for a in cluster.addresses)
    assert sum(cluster.calls[(a, HEALTH)] for a in cluster.addresses) >= 7, "a health gate after every node"
    # progress node by node in the plain output, in the order they were upgraded
    hostnames = [cluster.node(a).hostname for a in watcher.upgraded]
    banners = task_banners(run, "Upgrade control plane ", "Upgrade worker ")
    assert [b.split(" (")[0].split()[-1] for b in banners] == hostnames, banners
    assert task_banners(run, "Upgrade ")[0] == "Upgrade the control planes, one at a time"

    cluster.reset_calls()
    again = run_playbook(tmp_path, EXAMPLE, inventory, "-e", f"talos_upgrade_image={IMAGE}")
    assert again.rc == 0, again.output
    assert sum(upgrade_calls(cluster).values()) == 0, "a rerun sends no upgrade"
    assert "Every node already runs it: nothing to do." in role_result(again, "Show the plan")["msg"]
    assert task_banners(again, "Upgrade control plane ", "Upgrade worker") == []


def test_mixed_versions_legacy_and_lifecycle_and_nodes_at_the_target_skipped(tmp_path, emulated_cluster):
    # control planes: 1.12.4 (legacy path), 1.13.5, 1.13.6 (already there); workers: 1.12.4, 1.13.5
    cluster = emulated_cluster(control_planes=3, workers=2, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={0: "1.12.4", 2: NEW, 3: "1.12.4"})
    cluster.reset_max_control_planes_down()
    legacy = [cluster.control_planes[0], cluster.workers[0]]
    lifecycle = [cluster.control_planes[1], cluster.workers[1]]
    skipped = cluster.control_planes[2]
    with Watcher(cluster) as watcher:
        run = run_playbook(tmp_path, role_play(), grouped_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    assert all(cluster.node(a).version == NEW for a in cluster.addresses)
    assert all(cluster.calls[(a, "/machine.MachineService/Upgrade")] == 1 for a in legacy)
    assert all(cluster.calls[(a, "/machine.LifecycleService/Upgrade")] == 0 for a in legacy)
    assert all(cluster.calls[(a, "/machine.LifecycleService/Upgrade")] == 1 for a in lifecycle)
    assert upgrade_calls(cluster, [skipped]) == {skipped: 0}
    assert watcher.upgraded[:2] == cluster.control_planes[:2] and sorted(watcher.upgraded[2:]) == cluster.workers
    assert cluster.max_control_planes_down == 1
    plan = role_result(run, "Show the plan")["msg"]
    cp = [cluster.node(a).hostname for a in cluster.control_planes]
    assert f"Control planes, one at a time: {cp[0]} (1.12.4), {cp[1]} ({OLD})" in plan, plan
    assert f"Already at the target, skipped: {cp[2]}" in plan, plan


def test_failure_stops_the_run_and_a_rerun_finishes_the_rest_only(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=4, talos_version=OLD, reboot_seconds=0.3)
    role_vars, hook_log = hooks(tmp_path)
    inventory = grouped_inventory(tmp_path, cluster)
    failing = cluster.workers[1]
    cluster.fail("LifecycleService/Upgrade", code=Status.INTERNAL, count=-1, node=failing,
                 message="installer exited: no space left on device")
    run = run_playbook(tmp_path, role_play(**role_vars), inventory)
    assert run.rc != 0
    stop = role_result(run, "Stop the rolling upgrade")
    assert stop["msg"].startswith(f"The upgrade of worker {cluster.node(failing).hostname} to Talos {NEW} failed")
    assert "no space left on device" in stop["msg"] and "run the play again" in stop["msg"]
    done = cluster.control_planes + cluster.workers[:1]
    untouched = cluster.workers[2:]
    assert {a: cluster.node(a).version for a in cluster.addresses} == {
        **{a: NEW for a in done}, failing: OLD, **{a: OLD for a in untouched}}
    assert upgrade_calls(cluster, untouched) == {a: 0 for a in untouched}, "nothing sent after the failure"
    assert healthy(cluster)
    assert cluster.runtime.etcd.members and not any(m.errors for m in cluster.runtime.etcd.members.values())
    names = {a: f"{cluster.node(a).hostname} {a}" for a in cluster.addresses}
    assert hook_log() == [line for a in done for line in (f"pre {names[a]}", f"post {names[a]}")] + [
        f"pre {names[failing]}"], "no post hook for the node that failed, no hook after it"

    cluster.clear_faults()
    cluster.reset_calls()
    before = hook_log()
    with Watcher(cluster) as watcher:
        again = run_playbook(tmp_path, role_play(**role_vars), inventory)
    assert again.rc == 0, again.output
    assert all(cluster.node(a).version == NEW for a in cluster.addresses)
    assert upgrade_calls(cluster, done) == {a: 0 for a in done}, "the rerun leaves upgraded nodes alone"
    assert all(cluster.calls[(a, "/machine.LifecycleService/Upgrade")] == 1 for a in [failing, *untouched])
    assert watcher.upgraded == [failing, *untouched]
    assert hook_log()[len(before):] == [line for a in [failing, *untouched]
                                        for line in (f"pre {names[a]}", f"post {names[a]}")]


@pytest.mark.parametrize("batch", [2, "50%"])
def test_workers_in_batches(tmp_path, emulated_cluster, batch):
    cluster = emulated_cluster(control_planes=1, workers=4, talos_version=OLD, reboot_seconds=0.3)
    with Watcher(cluster) as watcher:
        run = run_playbook(tmp_path, role_play(talos_upgrade_worker_batch=batch), grouped_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    assert all(cluster.node(a).version == NEW for a in cluster.addresses)
    w = [cluster.node(a).hostname for a in cluster.workers]
    banners = task_banners(run, "Upgrade workers")
    assert [b.split(" (")[0] for b in banners] == [f"Upgrade workers {w[0]}, {w[1]}", f"Upgrade workers {w[2]}, {w[3]}"]
    assert watcher.max_down["worker"] == 2, watcher.down_together
    assert set(watcher.upgraded[1:3]) == set(cluster.workers[:2]) and set(watcher.upgraded[3:]) == set(cluster.workers[2:])
    first, second = set(cluster.workers[:2]), set(cluster.workers[2:])
    assert not any(down & first and down & second for down in watcher.down_together), "batches do not overlap"
    assert f"Workers, in batches of up to 2: [{w[0]} ({OLD}), {w[1]} ({OLD})] [{w[2]} ({OLD}), {w[3]} ({OLD})]" in \
        role_result(run, "Show the plan")["msg"]


def test_hooks_run_once_per_upgraded_node_in_order_and_not_for_skipped_nodes(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=3, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={2: NEW})
    role_vars, hook_log = hooks(tmp_path)
    run = run_playbook(tmp_path, role_play(talos_upgrade_worker_batch=2, **role_vars),
                       grouped_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    cp, w0, skipped, w2 = (cluster.addresses[i] for i in range(4))
    assert skipped == cluster.workers[1]
    names = {a: f"{cluster.node(a).hostname} {a}" for a in cluster.addresses}
    assert hook_log() == [f"pre {names[cp]}", f"post {names[cp]}",
                          f"pre {names[w0]}", f"pre {names[w2]}", f"post {names[w0]}", f"post {names[w2]}"]
    assert upgrade_calls(cluster, [skipped]) == {skipped: 0}


def test_a_failed_batch_runs_the_post_hooks_of_its_nodes_that_were_upgraded(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3)
    role_vars, hook_log = hooks(tmp_path)
    ok, failing = cluster.workers
    cluster.fail("LifecycleService/Upgrade", code=Status.INTERNAL, count=-1, node=failing)
    run = run_playbook(tmp_path, role_play(talos_upgrade_worker_batch=2, **role_vars),
                       grouped_inventory(tmp_path, cluster))
    assert run.rc != 0
    assert cluster.node(ok).version == NEW and cluster.node(failing).version == OLD
    names = {a: f"{cluster.node(a).hostname} {a}" for a in cluster.addresses}
    assert hook_log()[2:] == [f"pre {names[ok]}", f"pre {names[failing]}", f"post {names[ok]}"]
    assert f"{cluster.node(ok).hostname} runs Talos {NEW} now" in role_result(run, "Stop the rolling upgrade")["msg"]
    assert healthy(cluster)


def test_argument_validation(tmp_path):
    inventory = tmp_path / "empty.yml"
    inventory.write_text("all: {}\n")
    missing = run_playbook(tmp_path, role_play(talos_upgrade_image=None), inventory)
    assert missing.rc != 0
    validation = [r for r in missing.results if r["action"] == "ansible.builtin.validate_argument_spec"]
    assert [r["status"] for r in validation] == ["failed"], missing.output
    assert "missing required arguments: talos_upgrade_image" in validation[0]["result"]["msg"]
    assert len(missing.results) == 1, "nothing runs after the validation"

    wrong = run_playbook(tmp_path, role_play(talos_upgrade_reboot_mode="kexec"), inventory)
    assert wrong.rc != 0 and "talos_upgrade_reboot_mode" in wrong.output and "powercycle" in wrong.output

    empty = run_playbook(tmp_path, role_play(), inventory)
    assert empty.rc != 0
    assert "groups controlplane and worker are empty" in role_result(
        empty, "Check the target version and the groups")["msg"]

    inventory.write_text("controlplane: {hosts: {cp-1: {talos_node: 192.0.2.1}}}\n")   # never reached
    batch = run_playbook(tmp_path, role_play(talos_upgrade_worker_batch="a quarter"), inventory)
    assert batch.rc != 0
    assert "talos_upgrade_worker_batch must be a positive count" in role_result(
        batch, "Check the target version and the groups")["msg"]


def test_refuses_a_play_over_many_hosts_and_an_image_without_a_version(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=OLD)
    inventory = grouped_inventory(tmp_path, cluster)
    play = yaml.safe_load(role_play())
    play[0]["hosts"] = "all"
    many = run_playbook(tmp_path, yaml.safe_dump(play), inventory)
    assert many.rc != 0 and "hosts: localhost" in many.output

    untagged = run_playbook(tmp_path, role_play(talos_upgrade_image=f"{INSTALLER}@sha256:{'0' * 64}"), inventory)
    assert untagged.rc != 0
    assert "set talos_upgrade_version" in role_result(untagged, "Check the target version and the groups")["msg"]
    assert sum(upgrade_calls(cluster).values()) == 0


def test_check_mode_shows_the_plan_and_sends_no_upgrade(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3)
    run = run_playbook(tmp_path, role_play(), grouped_inventory(tmp_path, cluster), "--check")
    assert run.rc == 0, run.output
    assert sum(upgrade_calls(cluster).values()) == 0
    assert all(cluster.node(a).version == OLD for a in cluster.addresses)
    names = ", ".join(cluster.node(a).hostname for a in cluster.addresses)
    assert role_result(run, "Summary")["msg"] == f"Would upgrade (check mode) to Talos {NEW}: {names}."


def test_the_argument_spec_renders_with_ansible_doc(tmp_path):
    proc = subprocess.run([str(BIN / "ansible-doc"), "-t", "role", "--json", "talos.linux.rolling_upgrade"],
                          env=ansible_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    main = json.loads(proc.stdout)["talos.linux.rolling_upgrade"]["entry_points"]["main"]
    options = main["options"]
    assert options["talos_upgrade_image"]["required"] is True
    defaults = yaml.safe_load((ROOT / "roles" / "rolling_upgrade" / "defaults" / "main.yml").read_text())
    assert set(options) == set(defaults) | {"talos_upgrade_image"}, "every variable documented, no other"
    assert all(options[name].get("default") == value for name, value in defaults.items()), "same defaults"


# --- issue 10, points 5 and 6: what a failed step did, no silent downgrade, supported paths only --------------

def test_a_health_check_failing_after_the_reboot_says_the_node_runs_the_new_version(tmp_path, emulated_cluster):
    # the control plane already runs the target: the first step is the first worker
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={0: NEW})
    inventory = grouped_inventory(tmp_path, cluster)
    first, second = cluster.workers
    cluster.fail("ClusterService/HealthCheck", code=Status.UNKNOWN, count=-1,
                 message="waiting for all k8s nodes to report ready: context deadline exceeded")
    run = run_playbook(tmp_path, role_play(talos_upgrade_health_timeout=2), inventory)
    assert run.rc != 0
    failed = run.result(f"talos.linux.rolling_upgrade : Upgrade worker {cluster.node(first).hostname} ({first}) "
                        f"to Talos {NEW}", "localhost")
    assert failed["changed"] is True and "the health check after it failed" in failed["msg"], failed
    stop = role_result(run, "Stop the rolling upgrade")["msg"]
    assert f"{cluster.node(first).hostname} runs Talos {NEW} now" in stop, stop
    assert cluster.node(first).version == NEW and cluster.node(second).version == OLD
    assert upgrade_calls(cluster, [second]) == {second: 0}

    cluster.clear_faults()
    cluster.reset_calls()
    again = run_playbook(tmp_path, role_play(), inventory)
    assert again.rc == 0, again.output
    assert upgrade_calls(cluster, [first]) == {first: 0}, "the rerun leaves the upgraded node alone"
    assert cluster.node(second).version == NEW


@pytest.mark.parametrize("check", [False, True])
def test_a_node_newer_than_the_target_is_left_alone_with_a_warning(tmp_path, emulated_cluster, check):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={2: "1.13.7"})
    newer = cluster.workers[1]
    run = run_playbook(tmp_path, role_play(), grouped_inventory(tmp_path, cluster), *(["--check"] if check else []))
    assert run.rc == 0, run.output
    assert upgrade_calls(cluster, [newer]) == {newer: 0} and cluster.node(newer).version == "1.13.7"
    name = cluster.node(newer).hostname
    plan = role_result(run, "Show the plan")["msg"]
    assert f"Newer than the target, left alone (set talos_upgrade_allow_downgrade: true to downgrade them): " \
           f"{name} (1.13.7)" in plan, plan
    assert name not in " ".join(line for line in plan if line.startswith(("Control planes", "Workers")))
    summary = role_result(run, "Summary")["msg"]
    assert f"Left alone, newer than Talos {NEW}: {name}." in summary and "owngrade" not in summary, summary
    assert "newer than the target" in run.output


def test_allow_downgrade_calls_it_a_downgrade(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={2: "1.13.7"})
    newer = cluster.workers[1]
    name = cluster.node(newer).hostname
    run = run_playbook(tmp_path, role_play(talos_upgrade_allow_downgrade=True), grouped_inventory(tmp_path, cluster))
    assert run.rc == 0, run.output
    assert all(cluster.node(a).version == NEW for a in cluster.addresses)
    assert f"{name} (1.13.7, downgrade)" in role_result(run, "Show the plan")["msg"][2]
    assert task_banners(run, "Downgrade worker ") == [f"Downgrade worker {name} ({newer}) to Talos {NEW}"]
    summary = role_result(run, "Summary")["msg"]
    assert f"Downgraded to Talos {NEW}: {name}." in summary and f"Upgraded to Talos {NEW}:" in summary
    assert name not in summary.split("Downgraded")[0], summary


@pytest.mark.parametrize("check", [False, True])
def test_an_unsupported_upgrade_path_stops_the_role_before_anything_is_sent(tmp_path, emulated_cluster, check):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version=OLD, reboot_seconds=0.3,
                               node_versions={2: "1.11.3"})
    run = run_playbook(tmp_path, role_play(), grouped_inventory(tmp_path, cluster), *(["--check"] if check else []))
    assert run.rc != 0
    msg = role_result(run, "Ask talos_upgrade what each node needs (check mode, nothing is sent)")["msg"]
    assert cluster.workers[1] in msg and "1.11 -> 1.12 -> 1.13" in msg, msg
    assert sum(upgrade_calls(cluster).values()) == 0

    allowed = run_playbook(tmp_path, role_play(talos_upgrade_allow_unsupported_path=True),
                           grouped_inventory(tmp_path, cluster), *(["--check"] if check else []))
    assert allowed.rc == 0, allowed.output
