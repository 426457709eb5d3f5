"""talos.linux.talos_upgrade through real ansible-playbook runs against the emulator."""

import pytest
import yaml
from grpclib.const import Status

from tests.integration.playbook import run_playbook, static_inventory

INSTALLER = "ghcr.io/siderolabs/installer"
MUTATING = ("/machine.MachineService/Upgrade", "/machine.LifecycleService/Upgrade", "/machine.ImageService/Pull",
            "/machine.MachineService/Reboot", "/machine.MachineService/EtcdForfeitLeadership",
            "/machine.MachineService/Rollback")


def play(hosts="all", options=None, **args):
    task = {"name": "upgrade", "talos.linux.talos_upgrade": args, "register": "upgraded", **(options or {})}
    return yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [task]}], sort_keys=False)


def mutating_calls(cluster, addresses=None):
    addresses = addresses or cluster.addresses
    return sum(cluster.calls[(a, rpc)] for a in addresses for rpc in MUTATING)


def inventory_for(tmp_path, cluster, address, role="admin"):
    return cluster.node(address).hostname, static_inventory(tmp_path, cluster, role=role, hosts=[address])


@pytest.mark.parametrize("old,new,path", [("1.12.4", "v1.12.5", "legacy"), ("1.13.5", "v1.13.6", "lifecycle"),
                                          ("1.14.0", "v1.14.1", "lifecycle")])
def test_worker_upgrade_then_rerun_unchanged(tmp_path, emulated_cluster, old, new, path):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=old, reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    boot_before = cluster.node(worker).boot_id
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:{new}"), inventory)
    assert run.rc == 0, run.output
    result = run.result("upgrade", host)
    assert result["changed"] is True and result["path"] == path
    assert result["previous_version"] == f"v{old}" and result["current_version"] == new
    assert cluster.node(worker).version == new.lstrip("v") and cluster.node(worker).boot_id != boot_before
    assert result["boot_id_before"] == boot_before and result["boot_id_after"] == cluster.node(worker).boot_id
    sent = mutating_calls(cluster)

    again = run_playbook(tmp_path, play(image=f"{INSTALLER}:{new}"), inventory)
    assert again.rc == 0 and again.result("upgrade", host)["changed"] is False
    assert again.result("upgrade", host)["path"] == "none"
    assert mutating_calls(cluster) == sent, "no mutating RPC on the rerun"


def test_check_mode_sends_nothing(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=0, reboot_seconds=0.3)
    node = cluster.control_planes[1]
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory, "--check")
    assert run.rc == 0, run.output
    result = run.result("upgrade", host)
    assert result["changed"] is True and result["path"] == "lifecycle" and result["gates"]["healthy"]
    assert mutating_calls(cluster) == 0 and cluster.node(node).version == "1.13.5"


def etcd_leader(cluster):
    """The control plane whose etcd member leads, asked over the API like any client would."""
    from ansible_collections.talos.linux.plugins.module_utils._client import TalosClient
    from ansible_collections.talos.linux.plugins.module_utils._talosconfig import load_settings

    async def find(client):
        for node in cluster.control_planes:
            status = (await client.call("EtcdStatus", node=node)).messages[0].member_status
            if status.member_id == status.leader:
                return node
        return None

    return TalosClient(load_settings(talosconfig=str(cluster.talosconfig_path()))).run(find)


def test_control_plane_leader_forfeits_first_and_quorum_holds(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=0, reboot_seconds=0.3)
    node = etcd_leader(cluster)
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc == 0, run.output
    result = run.result("upgrade", host)
    assert cluster.node(node).version == "1.13.6"
    assert result["leader_forfeited"] is True
    assert cluster.calls[(node, "/machine.MachineService/EtcdForfeitLeadership")] == 1
    assert etcd_leader(cluster) != node, "leadership moved away and stayed with a member that did not reboot"
    assert cluster.max_control_planes_down == 1

    follower = next(a for a in cluster.control_planes if a != etcd_leader(cluster) and a != node)
    host, inventory = inventory_for(tmp_path, cluster, follower)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc == 0 and run.result("upgrade", host)["leader_forfeited"] is False
    assert cluster.calls[(follower, "/machine.MachineService/EtcdForfeitLeadership")] == 0


def test_the_only_endpoint_is_the_node_being_upgraded(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=0, reboot_seconds=0.5)
    node = cluster.control_planes[0]
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", endpoints=[node]), inventory)
    assert run.rc == 0, run.output
    assert cluster.node(node).version == "1.13.6"


@pytest.mark.parametrize("fault", ["unhealthy", "alarm", "other-down"])
def test_etcd_gate_refuses_and_touches_nothing(tmp_path, emulated_cluster, fault):
    cluster = emulated_cluster(control_planes=3, workers=0, reboot_seconds=0.3)
    node, other = cluster.control_planes[0], cluster.control_planes[2]
    if fault == "unhealthy":
        cluster.set_etcd_unhealthy(other, error="etcdserver: request timed out")
    elif fault == "alarm":
        cluster.raise_alarm(other, "NOSPACE")
    else:
        cluster.take_down(other)
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", timeout=3), inventory)
    assert run.rc != 0
    msg = run.result("upgrade", host)["msg"]
    assert other in msg or cluster.node(other).hostname in msg or "NOSPACE" in msg, msg
    assert mutating_calls(cluster) == 0 and cluster.node(node).version == "1.13.5"


def test_two_member_cluster_is_refused(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=2, workers=0)
    node = cluster.control_planes[0]
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc != 0 and "two" in run.result("upgrade", host)["msg"].lower()
    assert mutating_calls(cluster) == 0


def test_force_skips_the_gate_with_a_warning(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=2, workers=0, reboot_seconds=0.3)
    node = cluster.control_planes[0]
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", force=True), inventory)
    assert run.rc == 0, run.output
    assert any("force" in w for w in run.result("upgrade", host)["warnings"])
    assert cluster.node(node).version == "1.13.6"


def test_image_that_fails_to_pull(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    image = f"{INSTALLER}:v1.13.6"
    cluster.fail_image_pull(image)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=image), inventory)
    assert run.rc != 0 and "ImageService/Pull" in run.result("upgrade", host)["msg"]
    assert cluster.calls[(worker, "/machine.MachineService/Reboot")] == 0 and cluster.node(worker).version == "1.13.5"


def test_installer_exit_code_fails_with_its_messages(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    image = f"{INSTALLER}:v1.13.6"
    cluster.fail_upgrade(image, exit_code=3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=image), inventory)
    assert run.rc != 0
    assert "exit code 3" in run.result("upgrade", host)["msg"]
    assert cluster.calls[(worker, "/machine.MachineService/Reboot")] == 0 and cluster.node(worker).version == "1.13.5"


def test_node_never_coming_back_times_out_clearly(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, reboot_seconds=60)
    worker, other = cluster.workers
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", wait_timeout=3, timeout=2), inventory)
    assert run.rc != 0
    msg = run.result("upgrade", host)["msg"]
    assert "3" in msg and worker in msg and "stage" in msg, msg
    assert cluster.node(other).version == "1.13.5" and mutating_calls(cluster, [other]) == 0


def test_unavailable_burst_during_the_wait(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    # the watch opens Events before the upgrade and reopens it while the node reboots: both absorb the burst
    cluster.fail("Events", code=Status.UNAVAILABLE, count=3, node=worker, message="connection refused")
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc == 0, run.output
    assert cluster.node(worker).version == "1.13.6"


@pytest.mark.parametrize("role", ["reader", "operator"])
def test_weaker_roles_are_refused_naming_os_admin(tmp_path, emulated_cluster, role):
    cluster = emulated_cluster(control_planes=1, workers=1)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker, role=role)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc != 0 and "os:admin" in run.result("upgrade", host)["msg"]
    assert mutating_calls(cluster) == 0


def test_mixed_cluster_in_one_task_control_planes_one_at_a_time(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=2, node_versions={3: "1.12.4"}, reboot_seconds=0.3)
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    run = run_playbook(tmp_path, play(hosts="localhost", talosconfig=str(cluster.talosconfig_path()),
                                      nodes=cluster.addresses, image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc == 0, run.output
    result = run.result("upgrade")
    assert all(cluster.node(a).version == "1.13.6" for a in cluster.addresses)
    assert result["nodes"][cluster.workers[0]]["path"] == "legacy"
    assert result["nodes"][cluster.workers[1]]["path"] == "lifecycle"
    assert cluster.max_control_planes_down == 1


def test_rollback_then_idempotent(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    assert run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory).rc == 0
    back = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.5", rollback=True), inventory)
    assert back.rc == 0, back.output
    assert back.result("upgrade", host)["path"] == "rollback" and cluster.node(worker).version == "1.13.5"
    again = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.5", rollback=True), inventory)
    assert again.result("upgrade", host)["changed"] is False
    assert cluster.calls[(worker, "/machine.MachineService/Rollback")] == 1


def test_image_without_a_version_tag_is_refused(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    host, inventory = inventory_for(tmp_path, cluster, cluster.workers[0])
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:latest"), inventory)
    assert run.rc != 0 and "not a Talos version" in run.result("upgrade", host)["msg"]
    assert mutating_calls(cluster) == 0


# --- a failure after the upgrade was sent is changed: true, and says what is known (issue 10, point 5) ---------

def test_health_check_failing_after_the_reboot_is_changed_and_says_the_node_is_on_the_new_version(
        tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    cluster.fail("ClusterService/HealthCheck", code=Status.UNKNOWN, count=-1,
                 message="waiting for all k8s nodes to report ready: context deadline exceeded")
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", health_check=True, health_timeout=2), inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True, result
    assert "was installed and the node rebooted onto v1.13.6; the health check after it failed" in result["msg"]
    assert "report ready" in result["msg"] and result["current_version"] == "v1.13.6"
    assert cluster.node(worker).version == "1.13.6"


def test_node_that_never_comes_back_after_the_installer_is_changed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    cluster.fail_next_boot(worker, "stay_down")
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", wait_timeout=3, timeout=2), inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True, result
    assert "was sent and the node went down to reboot; it did not come back within 3 s" in result["msg"], result
    assert cluster.calls[(worker, "/machine.MachineService/Reboot")] == 1 and not cluster.node(worker).up


def test_node_that_comes_back_on_its_old_version_is_changed_and_says_so(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    cluster.fail_next_boot(worker, "roll_back")
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", wait_timeout=4, timeout=2), inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True and "came back on v1.13.5" in result["msg"], result
    assert cluster.node(worker).version == "1.13.5"


@pytest.mark.parametrize("old,rpc", [("1.12.4", "MachineService/Upgrade"), ("1.13.5", "MachineService/Reboot")])
def test_lost_answer_to_the_upgrade_call_is_changed_and_a_rerun_is_unchanged(tmp_path, emulated_cluster, old, rpc):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=old, reboot_seconds=0.3)
    worker = cluster.workers[0]
    cluster.lose_answer(rpc, node=worker)
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6" if old == "1.13.5" else f"{INSTALLER}:v1.12.5"),
                       inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True and "answer was lost" in result["msg"], result
    cluster.wait_until_up(worker)
    sent = mutating_calls(cluster)
    again = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6" if old == "1.13.5" else f"{INSTALLER}:v1.12.5"),
                         inventory)
    assert again.rc == 0 and again.result("upgrade", host)["changed"] is False, again.output
    assert mutating_calls(cluster) == sent


def test_installer_stream_cut_off_is_changed_and_a_rerun_finishes(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, reboot_seconds=0.3)
    worker = cluster.workers[0]
    # the installer reports success (message 5), then the stream breaks before its exit code
    cluster.interrupt_stream("LifecycleService/Upgrade", after_messages=5, node=worker)
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True and "the installer" in result["msg"] and "answer was lost" in result["msg"]
    assert cluster.calls[(worker, "/machine.MachineService/Reboot")] == 0
    again = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory)
    assert again.rc == 0 and again.result("upgrade", host)["changed"] is True, again.output
    assert cluster.node(worker).version == "1.13.6"


def test_refusal_before_the_upgrade_was_sent_stays_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    image = f"{INSTALLER}:v1.13.6"
    cluster.fail_upgrade(image, exit_code=3)
    host, inventory = inventory_for(tmp_path, cluster, cluster.workers[0])
    run = run_playbook(tmp_path, play(image=image), inventory)
    assert run.rc != 0 and run.result("upgrade", host)["changed"] is False


# --- no silent downgrade, supported upgrade paths only (issue 10, point 6) ---------------------------------------

@pytest.mark.parametrize("check", [False, True])
def test_node_newer_than_the_target_is_left_alone_with_a_warning(tmp_path, emulated_cluster, check):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.7", reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6"), inventory, *(["--check"] if check else []))
    assert run.rc == 0, run.output
    result = run.result("upgrade", host)
    assert result["changed"] is False and result["direction"] == "downgrade" and result["newer_than_target"] is True
    assert any("newer than the target" in w and "allow_downgrade" in w for w in result["warnings"]), result
    assert mutating_calls(cluster) == 0 and cluster.node(worker).version == "1.13.7"


def test_allow_downgrade_downgrades_within_a_minor_then_rerun_unchanged(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.7", reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    check = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", allow_downgrade=True), inventory, "--check")
    assert check.result("upgrade", host)["direction"] == "downgrade" and mutating_calls(cluster) == 0
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", allow_downgrade=True), inventory)
    assert run.rc == 0, run.output
    assert run.result("upgrade", host)["changed"] is True and run.result("upgrade", host)["direction"] == "downgrade"
    assert cluster.node(worker).version == "1.13.6"
    sent = mutating_calls(cluster)
    again = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", allow_downgrade=True), inventory)
    assert again.rc == 0 and again.result("upgrade", host)["changed"] is False
    assert mutating_calls(cluster) == sent


@pytest.mark.parametrize("old,image,args,words", [
    ("1.11.3", "v1.13.6", {}, ["skips minor releases", "1.11 -> 1.12 -> 1.13", "allow_unsupported_path"]),
    ("1.13.5", "v1.12.4", {"allow_downgrade": True}, ["crosses minor releases", "rollback"]),
])
@pytest.mark.parametrize("check", [False, True])
def test_unsupported_upgrade_path_is_refused_before_anything_is_sent(tmp_path, emulated_cluster, old, image, args,
                                                                     words, check):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=old, reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:{image}", **args), inventory, *(["--check"] if check else []))
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is False and all(w in result["msg"] for w in words), result["msg"]
    assert mutating_calls(cluster) == 0 and cluster.node(worker).version == old


def test_allow_unsupported_path_goes_ahead(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.11.3", reboot_seconds=0.3)
    worker = cluster.workers[0]
    host, inventory = inventory_for(tmp_path, cluster, worker)
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", allow_unsupported_path=True), inventory)
    assert run.rc == 0, run.output
    assert cluster.node(worker).version == "1.13.6"


def test_several_nodes_one_unsupported_path_sends_nothing_to_any(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, node_versions={2: "1.11.3"}, reboot_seconds=0.3)
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    run = run_playbook(tmp_path, play(hosts="localhost", talosconfig=str(cluster.talosconfig_path()),
                                      nodes=cluster.addresses, image=f"{INSTALLER}:v1.13.6"), inventory)
    assert run.rc != 0
    assert cluster.workers[1] in run.result("upgrade")["msg"] and "1.11 -> 1.12 -> 1.13" in run.result("upgrade")["msg"]
    assert mutating_calls(cluster) == 0


@pytest.mark.parametrize("option,value", [("wait_timeout", 0), ("wait_timeout", "nan"), ("health_timeout", -5)])
def test_timeouts_that_cannot_be_right_are_refused_before_anything_is_sent(tmp_path, emulated_cluster, option, value):
    cluster = emulated_cluster(control_planes=1, workers=1)
    host, inventory = inventory_for(tmp_path, cluster, cluster.workers[0])
    cluster.reset_calls()
    run = run_playbook(tmp_path, play(image=f"{INSTALLER}:v1.13.6", **{option: value}), inventory)
    assert run.rc != 0
    msg = run.result("upgrade", host)["msg"]
    assert option in msg and "positive number of seconds" in msg, msg
    assert sum(cluster.calls.values()) == 0, "refused before any call"


def test_failure_after_the_leader_handed_over_etcd_leadership_is_changed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=3, workers=0, reboot_seconds=0.3)
    node = etcd_leader(cluster)
    image = f"{INSTALLER}:v1.13.6"
    cluster.fail_image_pull(image)
    host, inventory = inventory_for(tmp_path, cluster, node)
    run = run_playbook(tmp_path, play(image=image), inventory)
    assert run.rc != 0
    result = run.result("upgrade", host)
    assert result["changed"] is True and "etcd leadership was handed to another member" in result["msg"], result
    assert "ImageService/Pull" in result["msg"] and cluster.node(node).version == "1.13.5"
    assert cluster.calls[(node, "/machine.MachineService/EtcdForfeitLeadership")] == 1
