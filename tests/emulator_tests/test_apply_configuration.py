"""ApplyConfiguration modes and dry runs per version (§4.1), and reading configs back via COSI (§4.2)."""
import asyncio
import threading
import time

import pytest
import yaml
from google.protobuf import duration_pb2
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from tests.emulator.api import config_pb2, machine_pb2, state_pb2
from tests.emulator_tests.conftest import Caller
from tests.emulator_tests.talos_client import TalosTestClient, client_ssl_context

Mode = machine_pb2.ApplyConfigurationRequest.Mode


def _apply(data, mode, dry_run=False, **fields):
    return machine_pb2.ApplyConfigurationRequest(data=data, mode=mode, dry_run=dry_run, **fields)


def _edit(config, edit):
    documents = list(yaml.safe_load_all(config))
    edit(documents[0])
    return yaml.safe_dump_all(documents, sort_keys=False).encode()


def _set_hostname(name):
    return lambda doc: doc["machine"]["network"].update(hostname=name)


def _needs_reboot(doc):
    doc["machine"]["disks"] = [{"device": "/dev/sdb", "partitions": [{"mountpoint": "/var/mnt/extra"}]}]


def _config(caller, node, id_="v1alpha1"):
    reply = caller("Get", state_pb2.GetRequest(namespace="config", type="MachineConfigs.config.talos.dev", id=id_),
                   node=node)
    return reply.resource


def _single(emulated_cluster, version):
    cluster = emulated_cluster(control_planes=1, talos_version=version, reboot_seconds=0.1)
    return cluster, Caller(cluster), cluster.control_planes[0]


def test_dry_run_without_changes_ignores_comments(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.13.5")
    original = cluster.node(node).config
    assert b"# Indicates the schema" in original
    uncommented = yaml.safe_dump_all(list(yaml.safe_load_all(original)), sort_keys=False).encode()
    reply = admin("ApplyConfiguration", _apply(uncommented, Mode.NO_REBOOT, dry_run=True)).messages[0]
    assert reply.mode == Mode.NO_REBOOT
    assert reply.mode_details == ("Dry run summary:\nApplied configuration without a reboot (skipped in dry-run)."
                                  "\nConfig diff:\n\nNo changes.")
    assert list(reply.warnings) == []
    assert cluster.node(node).config == original


def test_dry_run_diff_and_live_apply(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.13.5")
    changed = _edit(cluster.node(node).config, _set_hostname("renamed"))
    reply = admin("ApplyConfiguration", _apply(changed, Mode.AUTO, dry_run=True)).messages[0]
    assert reply.mode == Mode.NO_REBOOT
    diff = reply.mode_details.split("Config diff:\n\n", 1)[1]
    assert "-    hostname: talos-cp-1\n" in diff and "+    hostname: renamed\n" in diff
    boot_id = cluster.node(node).boot_id
    reply = admin("ApplyConfiguration", _apply(changed, Mode.NO_REBOOT)).messages[0]
    assert (reply.mode, reply.mode_details) == (Mode.NO_REBOOT, "Applied configuration without a reboot")
    resource = _config(admin, node)
    assert config_pb2.MachineConfigSpec.FromString(resource.spec.proto_spec).yaml_marshalled == changed
    assert _config(admin, node, "persistent").spec.proto_spec == resource.spec.proto_spec
    assert cluster.node(node).boot_id == boot_id


def test_1_13_auto_reboots_when_needed_and_no_reboot_refuses(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.13.5")
    changed = _edit(cluster.node(node).config, _needs_reboot)
    assert admin("ApplyConfiguration", _apply(changed, Mode.AUTO, dry_run=True)).messages[0].mode == Mode.REBOOT
    error = admin.error("ApplyConfiguration", _apply(changed, Mode.NO_REBOOT))
    assert error.status == Status.INVALID_ARGUMENT   # CanApplyImmediate's words, then the diff
    assert error.message.startswith("this config change can't be applied in immediate mode\ndiff:\n")
    assert "disks:" in error.message, "the diff of what needs a reboot"
    boot_id = cluster.node(node).boot_id
    reply = admin("ApplyConfiguration", _apply(changed, Mode.AUTO)).messages[0]
    assert (reply.mode, reply.mode_details) == (Mode.REBOOT, "Applied configuration with a reboot")
    cluster.wait_until_up(node)
    deadline = time.monotonic() + 5
    while cluster.node(node).boot_id == boot_id and time.monotonic() < deadline:
        time.sleep(0.02)
    cluster.wait_until_up(node)
    assert cluster.node(node).boot_id != boot_id
    assert cluster.node(node).config == changed


def test_1_14_never_reboots_and_refuses_reboot_mode(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.14.0")
    changed = _edit(cluster.node(node).config, _needs_reboot)
    error = admin.error("ApplyConfiguration", _apply(changed, Mode.REBOOT))
    assert error.status == Status.UNIMPLEMENTED and error.message.startswith("the REBOOT mode is not supported")
    reply = admin("ApplyConfiguration", _apply(changed, Mode.AUTO)).messages[0]
    assert reply.mode == Mode.NO_REBOOT
    assert admin("ApplyConfiguration", _apply(changed, Mode.NO_REBOOT)).messages[0].mode == Mode.NO_REBOOT
    assert cluster.node(node).up and cluster.node(node).config == changed


def test_1_14_concurrent_apply_is_refused(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.14.0")
    cluster.set_apply_delay(0.5)
    config = cluster.node(node).config
    results = []
    first = threading.Thread(target=lambda: results.append(admin("ApplyConfiguration", _apply(config, Mode.NO_REBOOT))))
    first.start()
    time.sleep(0.2)
    error = admin.error("ApplyConfiguration", _apply(config, Mode.NO_REBOOT))
    first.join()
    assert (error.status, error.message) == (Status.FAILED_PRECONDITION,
                                             "another apply configuration is already in progress")
    assert results and results[0].messages[0].mode == Mode.NO_REBOOT


def test_staged_config_becomes_active_after_reboot(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.13.5")
    staged = _edit(cluster.node(node).config, _set_hostname("staged"))
    reply = admin("ApplyConfiguration", _apply(staged, Mode.STAGED)).messages[0]
    assert reply.mode_details == "Staged configuration to be applied after the next reboot"
    persistent = config_pb2.MachineConfigSpec.FromString(_config(admin, node, "persistent").spec.proto_spec)
    active = config_pb2.MachineConfigSpec.FromString(_config(admin, node).spec.proto_spec)
    assert persistent.yaml_marshalled == staged and active.yaml_marshalled != staged
    cluster.reboot(node, seconds=0.05)
    cluster.wait_until_up(node)
    assert cluster.node(node).config == staged


def test_try_mode_rolls_back(emulated_cluster):
    cluster, admin, node = _single(emulated_cluster, "1.13.5")
    original = cluster.node(node).config
    trial = _edit(original, _set_hostname("trial"))
    reply = admin("ApplyConfiguration", _apply(trial, Mode.TRY, try_mode_timeout=duration_pb2.Duration(nanos=300_000_000)))
    assert reply.messages[0].mode_details == "Applied configuration in a try mode, it will be rolled back in 300ms"
    assert cluster.node(node).config == trial
    deadline = time.monotonic() + 3
    while cluster.node(node).config != original and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cluster.node(node).config == original


@pytest.mark.parametrize("data,fragment", [
    (b"machine: [unclosed", "failed to parse config"),
    (b"apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers: []\n", "missing v1alpha1 document"),
    (b"version: v1alpha1\nmachine:\n  type: toaster\ncluster: {}\n", "unknown machine type"),
])
def test_invalid_configs_are_invalid_argument(emulated_cluster, data, fragment):
    cluster, admin, node = _single(emulated_cluster, "1.12.4")
    error = admin.error("ApplyConfiguration", _apply(data, Mode.NO_REBOOT))
    assert error.status == Status.INVALID_ARGUMENT and fragment in error.message


@pytest.mark.parametrize("version,string_spec", [("1.11.6", False), ("1.12.4", True)])
def test_machine_config_yaml_spec_format_by_version(emulated_cluster, version, string_spec):
    cluster, admin, node = _single(emulated_cluster, version)
    resource = _config(admin, node)
    config = cluster.node(node).config
    assert config_pb2.MachineConfigSpec.FromString(resource.spec.proto_spec).yaml_marshalled == config
    if string_spec:
        assert resource.metadata.annotations["talos.dev/yaml-spec"] == "1"
        assert yaml.safe_load(resource.spec.yaml_spec) == config.decode()
    else:
        assert "talos.dev/yaml-spec" not in resource.metadata.annotations
        assert resource.spec.yaml_spec == config.decode()


def test_maintenance_apply_configures_the_node(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, maintenance_nodes=[1], reboot_seconds=0.1)
    address = cluster.workers[0]
    worker_config = _edit(cluster.node(cluster.control_planes[0]).config,
                          lambda doc: doc["machine"].update(type="worker"))

    async def apply():
        client = TalosTestClient(address, client_ssl_context(maintenance=True))
        try:
            return await client.call("ApplyConfiguration", _apply(worker_config, Mode.AUTO))
        finally:
            client.close()
    reply = asyncio.run(apply()).messages[0]
    assert reply.mode == Mode.NO_REBOOT              # v1.13+: AUTO becomes NO_REBOOT in maintenance
    deadline = time.monotonic() + 5
    while cluster.node(address).maintenance or not cluster.node(address).ready:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert cluster.node(address).machine_type == "worker"
    assert Caller(cluster)("Hostname", node=address).messages[0].hostname == "talos-w-1"


def test_1_12_maintenance_refuses_no_reboot_and_staged(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.12.4", maintenance_nodes=[1])
    address = cluster.workers[0]
    config = _edit(cluster.node(cluster.control_planes[0]).config, lambda doc: doc["machine"].update(type="worker"))

    async def call(rpc, request=None):
        client = TalosTestClient(address, client_ssl_context(maintenance=True))
        try:
            return await client.call(rpc, request)
        finally:
            client.close()

    def apply(mode, dry_run=False):
        return call("ApplyConfiguration", _apply(config, mode, dry_run=dry_run))
    for mode in (Mode.NO_REBOOT, Mode.STAGED):
        with pytest.raises(GRPCError) as caught:
            asyncio.run(apply(mode))
        assert caught.value.status == Status.UNIMPLEMENTED
    dry = asyncio.run(apply(Mode.AUTO, dry_run=True)).messages[0]
    assert dry.mode_details.startswith("Node is running in maintenance mode")
    with pytest.raises(GRPCError) as caught:          # the ≤ v1.12 maintenance service lacks most RPCs
        asyncio.run(call("Hostname"))
    assert caught.value.status == Status.UNIMPLEMENTED
    assert asyncio.run(apply(Mode.AUTO)).messages[0].mode == Mode.REBOOT
    deadline = time.monotonic() + 5
    while cluster.node(address).maintenance or not cluster.node(address).ready:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert Caller(cluster)("Hostname", node=address).messages[0].hostname == "talos-w-1"


def test_bootstrap_on_worker_before_1_13_is_failed_precondition(emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.12.4")
    error = Caller(cluster).error("Bootstrap", machine_pb2.BootstrapRequest(), node=cluster.workers[0])
    assert error.status == Status.FAILED_PRECONDITION
