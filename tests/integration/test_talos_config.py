"""talos.linux.talos_config through real ansible-playbook runs against the emulator, on every Talos version."""

import copy
import json

import pytest
import yaml

from tests.integration.playbook import ROOT, run_playbook, static_inventory

APPLY = "/machine.MachineService/ApplyConfiguration"
MUTATING = (APPLY, "/machine.MachineService/Reboot", "/machine.MachineService/Upgrade")
VERSIONS = ["1.11.6", "1.12.4", "1.13.5", "1.14.0"]
SYSCTL = {"machine": {"sysctls": {"net.core.somaxconn": "65535"}, "nodeLabels": {"example.com/rack": "r1"}}}


def play(hosts="all", options="", **args):
    task = {"name": "config", "talos.linux.talos_config": args, "register": "applied"}
    for line in options.split(";"):
        if line.strip():
            key, value = line.split("=", 1)
            task[key.strip()] = yaml.safe_load(value)
    return yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [task]}], sort_keys=False)


def documents(data):
    return [d for d in yaml.safe_load_all(data) if d]


def v1alpha1(data):
    return next(d for d in documents(data) if d.get("version") == "v1alpha1")


def mutating_calls(cluster, address):
    return sum(cluster.calls[(address, rpc)] for rpc in MUTATING)


@pytest.fixture(params=VERSIONS)
def cluster(request, emulated_cluster):
    return emulated_cluster(control_planes=1, workers=1, talos_version=request.param)


def one_node(cluster, tmp_path, address=None, role="admin"):
    address = address or cluster.workers[0]
    return address, cluster.node(address).hostname, static_inventory(tmp_path, cluster, role=role, hosts=[address])


def test_patch_applies_once_then_is_unchanged_with_no_apply_sent(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    first = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert first.rc == 0, first.output
    result = first.result("config", host)
    assert result["changed"] is True and result["mode"] == "no_reboot"
    assert v1alpha1(cluster.node(address).config)["machine"]["sysctls"]["net.core.somaxconn"] == "65535"
    assert cluster.calls[(address, APPLY)] == 1

    second = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert second.rc == 0, second.output
    assert second.result("config", host)["changed"] is False
    assert second.result("config", host)["config_sha256"] == result["config_sha256"]
    assert cluster.calls[(address, APPLY)] == 1, "no ApplyConfiguration on the second run"


def test_check_mode_reports_and_diffs_without_any_mutating_call(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    before = cluster.node(address).config
    run = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory, "--check", "--diff")
    assert run.rc == 0, run.output
    result = run.result("config", host)
    assert result["changed"] is True
    assert "+    net.core.somaxconn" in run.stdout or "net.core.somaxconn" in run.stdout
    assert cluster.node(address).config == before
    assert mutating_calls(cluster, address) == 0, "check mode sends no mutating RPC, not even a dry run"


def test_full_config_plus_patches(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    current = cluster.node(address).config.decode()
    config = current.replace("version: v1alpha1", "version: v1alpha1\ndebug: false", 1)
    args = {"config": config, "patches": [SYSCTL, [{"op": "add", "path": "/machine/nodeLabels/extra", "value": "x"}]]
            if len(documents(current)) == 1 else [SYSCTL]}
    run = run_playbook(tmp_path, play(**args), inventory)
    assert run.rc == 0, run.output
    applied = v1alpha1(cluster.node(address).config)
    assert applied["machine"]["nodeLabels"]["example.com/rack"] == "r1"
    again = run_playbook(tmp_path, play(**args), inventory)
    assert again.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 1


def test_staged_is_compared_with_the_persistent_config(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    active = cluster.node(address).config
    run = run_playbook(tmp_path, play(patches=[SYSCTL], mode="staged"), inventory)
    assert run.rc == 0, run.output
    assert run.result("config", host)["reboot_required"] is True
    assert cluster.node(address).config == active, "staged leaves the active configuration alone"
    assert "65535" in cluster.node(address).persistent_config.decode()
    again = run_playbook(tmp_path, play(patches=[SYSCTL], mode="staged"), inventory)
    assert again.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 1


def test_try_then_confirm(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    tried = run_playbook(tmp_path, play(patches=[SYSCTL], mode="try", try_timeout=300), inventory)
    assert tried.rc == 0, tried.output
    result = tried.result("config", host)
    assert result["mode"] == "try" and result["try_rollback_at"]
    assert "65535" in cluster.node(address).config.decode()
    assert "65535" not in cluster.node(address).persistent_config.decode()

    confirm = run_playbook(tmp_path, play(patches=[SYSCTL], confirm_try=True), inventory)
    assert confirm.rc == 0, confirm.output
    assert confirm.result("config", host)["changed"] is True and confirm.result("config", host)["confirmed_try"]
    assert "65535" in cluster.node(address).persistent_config.decode()
    assert cluster.calls[(address, APPLY)] == 2

    nothing_pending = run_playbook(tmp_path, play(patches=[SYSCTL], confirm_try=True), inventory)
    assert nothing_pending.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 2


def test_reboot_and_auto_modes_follow_the_version(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    newer = cluster.node(address).version >= "1.14"
    # machine.env cannot apply live on 1.13 and older (the emulator's CanApplyImmediate model)
    needs_reboot = {"machine": {"env": {"HTTP_PROXY": "http://proxy:3128"}}}
    no_reboot = run_playbook(tmp_path, play(patches=[needs_reboot], mode="no_reboot"), inventory)
    if newer:
        assert no_reboot.rc == 0 and no_reboot.result("config", host)["reboot_required"] is None
    else:
        assert no_reboot.rc != 0
        assert "without a reboot" in no_reboot.result("config", host)["msg"]
        assert "mode auto" in no_reboot.result("config", host)["msg"]

    reboot = run_playbook(tmp_path, play(patches=[{"machine": {"env": {"A": "1"}}}], mode="reboot"), inventory)
    if newer:
        assert reboot.rc != 0 and "no longer applies configuration with a reboot" in reboot.result("config", host)["msg"]
        assert cluster.calls[(address, APPLY)] == 1, "refused before sending"
    else:
        rebooted = reboot.result("config", host)
        assert reboot.rc == 0 and rebooted["rebooted"] is True, reboot.output
        # the task returned once the node was back: the next task reaches it without retrying
        assert rebooted["boot_id_before"] != rebooted["boot_id_after"] == cluster.node(address).boot_id

    auto = run_playbook(tmp_path, play(patches=[{"machine": {"env": {"B": "2"}}}], mode="auto"), inventory)
    assert auto.rc == 0, auto.output
    assert auto.result("config", host)["mode"] == ("no_reboot" if newer else "reboot")
    if not newer:
        assert "boot_id_after" in auto.result("config", host)


def test_wait_false_returns_while_the_node_reboots(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    newer = cluster.node(address).version >= "1.14"
    boot_id = cluster.node(address).boot_id
    patch = [{"machine": {"env": {"A": "1"}}}]
    run = run_playbook(tmp_path, play(patches=patch, mode="auto" if newer else "reboot", wait=False), inventory)
    assert run.rc == 0, run.output
    result = run.result("config", host)
    assert result["rebooted"] is not newer and "boot_id_after" not in result
    cluster.wait_until_up(address)
    assert (cluster.node(address).boot_id == boot_id) is newer


def test_reader_certificate_is_refused_naming_os_admin(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path, role="reader")
    run = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert run.rc != 0
    assert "os:admin" in run.result("config", host)["msg"] and "os:reader" in run.result("config", host)["msg"]
    assert mutating_calls(cluster, address) == 0


def test_a_config_the_node_rejects(tmp_path, cluster):
    address, host, inventory = one_node(cluster, tmp_path)
    config = v1alpha1(cluster.node(address).config)
    config["machine"]["install"] = "not-a-mapping"  # valid YAML the node's validation refuses
    run = run_playbook(tmp_path, play(config=yaml.safe_dump(config)), inventory)
    assert run.rc != 0
    assert "rejected the configuration" in run.result("config", host)["msg"]
    assert run.result("config", host)["code"] == "InvalidArgument"
    assert "machine.install" in run.result("config", host)["msg"]


def test_wrong_machine_type_is_refused_before_sending_unless_forced(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    worker_config = cluster.node(cluster.workers[0]).config.decode()
    address, host, inventory = one_node(cluster, tmp_path, address=cluster.control_planes[0])
    run = run_playbook(tmp_path, play(config=worker_config), inventory)
    assert run.rc != 0
    assert "is for a worker node" in run.result("config", host)["msg"] and "force" in run.result("config", host)["msg"]
    assert cluster.calls[(address, APPLY)] == 0
    forced = run_playbook(tmp_path, play(config=worker_config, force=True), inventory)
    assert cluster.calls[(address, APPLY)] == 1, "force sends it (the node itself then refuses the type change)"
    assert forced.rc != 0 and "rejected the configuration" in forced.result("config", host)["msg"]


@pytest.mark.parametrize("version", ["1.12.4", "1.13.5"])
def test_maintenance_mode_first_apply_then_idempotent(tmp_path, emulated_cluster, version):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=version, maintenance_nodes=(1,))
    address = cluster.workers[0]
    assert cluster.node(address).maintenance
    template = cluster.node(cluster.control_planes[0]).config.decode()
    worker = v1alpha1(template)
    worker["machine"]["type"] = "worker"
    config = yaml.safe_dump(worker)
    inventory = static_inventory(tmp_path, cluster, hosts=[address], talos_endpoints=[address])
    host = cluster.node(address).hostname
    first = run_playbook(tmp_path, play(config=config, insecure=True), inventory)
    assert first.rc == 0, first.output
    assert first.result("config", host)["changed"] is True
    cluster.wait_until_up(address)
    assert not cluster.node(address).maintenance
    second = run_playbook(tmp_path, play(config=config, insecure=True), inventory)
    assert second.rc == 0, second.output
    assert second.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 1


SECRETS_CONFIG_PATCH = {"cluster": {"secretboxEncryptionSecret": "c2VjcmV0Ym94LXNlY3JldC1mb3ItdGVzdHMtb25seQ==",
                                    "token": "abcdef.0123456789abcdef"},
                        "machine": {"token": "zz9ttt.qwertyuiopasdfgh", "sysctls": {"vm.swappiness": "1"}}}


def test_secrets_never_appear_with_vvvv_and_diff(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=0)
    address, host, inventory = one_node(cluster, tmp_path, address=cluster.control_planes[0])
    current = v1alpha1(cluster.node(address).config)
    secrets = [current["machine"]["token"], current["machine"]["ca"]["key"], "zz9ttt.qwertyuiopasdfgh",
               "abcdef.0123456789abcdef", "c2VjcmV0Ym94LXNlY3JldC1mb3ItdGVzdHMtb25seQ=="]
    secrets += [v for k, v in (current.get("cluster") or {}).items() if k.endswith(("ecret", "oken"))
                and isinstance(v, str)]
    full = yaml.safe_dump(current)
    shown = ""
    for args, flags in (({"patches": [SECRETS_CONFIG_PATCH]}, ["--check"]),
                        ({"patches": [SECRETS_CONFIG_PATCH]}, []),
                        ({"config": full, "patches": [SECRETS_CONFIG_PATCH]}, []),
                        ({"patches": [{"machine": {"install": "broken"}, "cluster": {"token": "abcdef.0123456789abcdef"}}]},
                         [])):
        run = run_playbook(tmp_path, play(options="ignore_errors=true", **args), inventory, "-vvvv", "--diff", *flags)
        output = run.output + json.dumps(run.results)
        for secret in secrets:
            assert secret not in output, (flags, secret[:6])
        shown += output
    assert "<redacted>" in shown, "the diff shows where secrets were"
    assert "vm.swappiness" in shown, "the rest of the configuration is not masked"


@pytest.mark.parametrize("args,expected", [
    ({"config": "version: v1alpha1\nmachine: [unclosed\n"}, "column"),
    ({"config": "version: v1alpha1\nmachine: {type: worker}\n",
      "patches": [[{"op": "replace", "path": "/machine/does/not/exist", "value": 1}]]}, "/machine/does/not/exist"),
    ({"patches": [{"machine": {"sysctls": {"a": "1"}}}, "machine: [oops\n"]}, "patch 2"),
    ({}, "Nothing to apply: give config, patches, or both"),
    ({"patches": [SYSCTL], "mode": "sometimes"}, "value of mode must be one of"),
])
def test_bad_input_is_refused_clearly_and_nothing_is_sent(tmp_path, emulated_cluster, args, expected):
    cluster = emulated_cluster(control_planes=1, workers=1)
    address, host, inventory = one_node(cluster, tmp_path)
    run = run_playbook(tmp_path, play(**args), inventory)
    assert run.rc != 0
    assert expected in run.result("config", host)["msg"], run.result("config", host)["msg"]
    assert mutating_calls(cluster, address) == 0


def test_json6902_on_a_multi_document_config_is_refused(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1)
    address, host, inventory = one_node(cluster, tmp_path)
    config = cluster.node(address).config.decode() + "\n---\napiVersion: v1alpha1\nkind: KmsgLogConfig\nname: x\n" \
        "url: udp://127.0.0.1:5555/\n"
    run = run_playbook(tmp_path, play(config=config, patches=[[{"op": "add", "path": "/debug", "value": True}]]),
                       inventory)
    assert run.rc != 0
    assert "JSON6902 patches can only be applied to a single-document v1alpha1 config" in run.result("config", host)["msg"]
    assert mutating_calls(cluster, address) == 0


def test_patch_every_node_from_localhost_in_one_task(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2)
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    args = {"talosconfig": str(cluster.talosconfig_path()), "nodes": cluster.addresses, "patches": [SYSCTL]}
    first = run_playbook(tmp_path, play(hosts="localhost", **args), inventory)
    assert first.rc == 0, first.output
    assert first.result("config")["changed"] is True and sorted(first.result("config")["nodes"]) == sorted(cluster.addresses)
    second = run_playbook(tmp_path, play(hosts="localhost", **args), inventory)
    assert second.result("config")["changed"] is False
    assert all(cluster.calls[(a, APPLY)] == 1 for a in cluster.addresses)


def test_another_apply_in_progress_is_retried(tmp_path, emulated_cluster):
    from grpclib.const import Status

    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.14.0")
    address, host, inventory = one_node(cluster, tmp_path)
    cluster.fail("ApplyConfiguration", code=Status.FAILED_PRECONDITION, count=2, node=address,
                 message="another apply configuration is already in progress")
    run = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert run.rc == 0, run.output
    assert run.result("config", host)["changed"] is True
    assert cluster.calls[(address, APPLY)] == 3
    assert "65535" in cluster.node(address).config.decode()


# --- issue 10: changed tells the truth, check mode predicts the real run, input errors are clear ----------------

def test_an_apply_cut_off_in_flight_fails_as_changed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.5")
    address, host, inventory = one_node(cluster, tmp_path)
    cluster.interrupt_stream("ApplyConfiguration", 0, node=address)  # the node applies it; the answer is lost
    run = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert run.rc != 0
    result = run.result("config", host)
    assert run.task("config", host)[0]["status"] == "failed" and result["changed"] is True, result
    assert "the node may have applied the configuration; rerun to compare" in result["msg"].lower()
    assert "65535" in cluster.node(address).config.decode(), "the node had applied it"
    assert cluster.calls[(address, APPLY)] == 1, "a changing call that may have landed is not sent twice"
    again = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory)
    assert again.rc == 0 and again.result("config", host)["changed"] is False
    assert cluster.calls[(address, APPLY)] == 1


def test_a_reboot_that_never_comes_back_fails_as_changed(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.5")
    address, host, inventory = one_node(cluster, tmp_path)
    run = run_playbook(tmp_path, play(patches=[{"machine": {"env": {"A": "1"}}}], mode="auto", wait_timeout=0.5),
                       inventory)
    assert run.rc != 0
    result = run.result("config", host)
    assert result["changed"] is True and result["rebooted"] is True, result
    assert "was applied" in result["msg"] and "did not come back" in result["msg"]


@pytest.mark.parametrize("version", ["1.13.5", "1.14.0"])
@pytest.mark.parametrize("patch", [{"machine": {"env": {"HTTPS_PROXY": "http://proxy:3128"}}},
                                   {"machine": {"files": [{"path": "/var/etc/x.conf", "op": "create",
                                                           "permissions": 0o644, "content": "x = 1\n"}]}}],
                         ids=["env", "files"])
def test_check_mode_predicts_the_real_run(tmp_path, emulated_cluster, version, patch):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version=version)
    address, host, inventory = one_node(cluster, tmp_path)
    keys = ("changed", "mode", "reboot_required", "msg")
    outcomes = []
    for flags in (["--check"], []):
        run = run_playbook(tmp_path, play(patches=[patch]), inventory, *flags)
        result = run.result("config", host)
        outcomes.append({"failed": run.rc != 0, **{key: result.get(key) for key in keys}})
    predicted, real = outcomes
    assert predicted == real, (predicted, real)
    if version < "1.14":
        assert real["failed"] and real["changed"] is False and "without a reboot" in real["msg"]
        assert cluster.calls[(address, APPLY)] == 0, "what the node would refuse is refused before sending"
    else:
        assert real["changed"] is True and real["reboot_required"] is None


def test_check_mode_predicts_a_reboot_in_auto_mode(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.5")
    address, host, inventory = one_node(cluster, tmp_path)
    patch = [{"machine": {"env": {"A": "1"}}}]
    predicted = run_playbook(tmp_path, play(patches=patch, mode="auto"), inventory, "--check").result("config", host)
    real = run_playbook(tmp_path, play(patches=patch, mode="auto"), inventory).result("config", host)
    assert (predicted["mode"], predicted["rebooted"]) == (real["mode"], real["rebooted"]) == ("reboot", True)


@pytest.mark.parametrize("args,expected", [
    ({"patches": "machine: {sysctls: {a: '1', b: '2'}}"}, "patches must be a list of patches, not a string"),
    ({"patches": [SYSCTL], "mode": "try", "try_timeout": 0}, "try_timeout must be a number of seconds greater than 0"),
    ({"patches": [SYSCTL], "try_timeout": "nan"}, "try_timeout must be a number of seconds greater than 0, not nan"),
    ({"patches": [SYSCTL], "wait_timeout": -1}, "wait_timeout must be a number of seconds greater than 0, not -1"),
])
def test_options_that_cannot_be_right_are_refused_before_connecting(tmp_path, emulated_cluster, args, expected):
    cluster = emulated_cluster(control_planes=1, workers=1)
    address, host, inventory = one_node(cluster, tmp_path)
    run = run_playbook(tmp_path, play(**args), inventory)
    assert run.rc != 0
    result = run.result("config", host)
    assert expected in result["msg"], result["msg"]
    assert "give a list" in result["msg"].lower() or "positive number" in result["msg"]
    assert sum(count for (node, _rpc), count in cluster.calls.items() if node == address) == 0, "nothing was sent"


def module_examples():
    from ansible_collections.talos.linux.plugins.modules import talos_config

    return yaml.safe_load(talos_config.EXAMPLES)


@pytest.mark.parametrize("example", module_examples(), ids=lambda task: task["name"])
def test_every_example_is_unchanged_on_its_second_run(tmp_path, emulated_cluster, example):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version="1.13.5", maintenance_nodes=(2,))
    worker, new_node = cluster.workers
    inventory = static_inventory(tmp_path, cluster, hosts=[worker], talos_machine_type="worker")
    config = documents(cluster.node(worker).config)
    templated = copy.deepcopy(config)
    templated[0]["machine"]["sysctls"] = {"vm.max_map_count": "262144"}
    first_config = dict(config[0], machine=dict(config[0]["machine"], type="worker"))
    first_config["machine"]["network"] = {"hostname": "talos-new"}
    files = {"worker.yaml.j2": yaml.safe_dump_all(templated), "worker.yaml": yaml.safe_dump(config[0]),
             "network.patch.yaml": "machine:\n  network:\n    nameservers: [1.1.1.1, 9.9.9.9]\n",
             "controlplane.yaml": yaml.safe_dump(first_config)}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    text = yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": [example]}], sort_keys=False)
    playbook = text.replace("192.168.1.50", new_node)
    for attempt in ("first", "second"):
        applied = sum(cluster.calls[(a, APPLY)] for a in cluster.addresses)
        run = run_playbook(tmp_path, playbook, inventory)
        assert run.rc == 0, f"{attempt} run:\n{run.output[-4000:]}"
        if new_node in playbook:
            cluster.wait_until_up(new_node)
    configs = [r for r in run.results if r["action"] == "talos.linux.talos_config"]
    assert configs and not any(r["result"]["changed"] for r in configs), configs
    assert sum(cluster.calls[(a, APPLY)] for a in cluster.addresses) == applied, "nothing sent on the second run"


CONTENT_SECRETS = {"env": "env-credential-0xf00d", "file": "file-content-credential-0xbeef",
                   "secret data": "c2VjcmV0LWRhdGEtY3JlZGVudGlhbA==", "secret stringData": "string-data-credential",
                   "header": "Bearer manifest-header-credential", "registry": "registry-password-credential",
                   "registry user": "registry-username-credential", "extension": "extension-env-credential",
                   "extension file": "extension-file-credential"}
CONTENT_PATCHES = [
    {"machine": {"env": {"CREDS": CONTENT_SECRETS["env"]},
                 "files": [{"path": "/var/etc/app.conf", "op": "create", "permissions": 0o600,
                            "content": f"token = {CONTENT_SECRETS['file']}\n"}],
                 "registries": {"config": {"registry.internal": {"auth": {
                     "username": CONTENT_SECRETS["registry user"], "password": CONTENT_SECRETS["registry"]}}}}},
     "cluster": {"extraManifestHeaders": {"X-Fetch": CONTENT_SECRETS["header"]},
                 "inlineManifests": [{"name": "db", "contents": (
                     "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
                     f"data: {{password: {CONTENT_SECRETS['secret data']}}}\n"
                     f"stringData: {{token: {CONTENT_SECRETS['secret stringData']}}}\n---\n"
                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shown-in-the-diff}\ndata: {colour: blue}\n")}]}},
    {"apiVersion": "v1alpha1", "kind": "ExtensionServiceConfig", "name": "tailscale",
     "configFiles": [{"content": CONTENT_SECRETS["extension file"], "mountPath": "/etc/ts.conf"}],
     "environment": [f"TS_AUTHKEY={CONTENT_SECRETS['extension']}"]},
]


@pytest.mark.parametrize("version,flags", [("1.13.5", ["--check"]), ("1.14.0", ["--check"]), ("1.14.0", [])])
def test_content_secrets_never_appear_with_vvvv_and_diff(tmp_path, emulated_cluster, version, flags):
    cluster = emulated_cluster(control_planes=1, workers=0, talos_version=version)
    address, host, inventory = one_node(cluster, tmp_path, address=cluster.control_planes[0])
    run = run_playbook(tmp_path, play(patches=CONTENT_PATCHES), inventory, "-vvvv", "--diff", *flags)
    assert run.rc == (0 if version >= "1.14" else 2), run.output[-3000:]
    output = run.output + json.dumps(run.results)
    for name, secret in CONTENT_SECRETS.items():
        assert secret not in output, name
    assert "shown-in-the-diff" in output and "CREDS" in output and "fingerprint" in output
    if not flags:
        assert CONTENT_SECRETS["extension file"] in cluster.node(address).config.decode(), "it was applied"


def test_a_node_whose_apply_was_cut_off_counts_as_changed_in_a_many_node_task(tmp_path, emulated_cluster):
    cluster = emulated_cluster(control_planes=1, workers=2, talos_version="1.14.0")
    cut, fine = cluster.workers
    cluster.interrupt_stream("ApplyConfiguration", 0, node=cut)
    inventory = tmp_path / "localhost"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter={{ ansible_playbook_python }}\n")
    args = {"talosconfig": str(cluster.talosconfig_path()), "nodes": [cut, fine], "patches": [SYSCTL]}
    run = run_playbook(tmp_path, play(hosts="localhost", **args), inventory)
    assert run.rc != 0
    result = run.result("config")
    assert result["changed"] is True and sorted(result["failed_nodes"]) == [cut] and list(result["nodes"]) == [fine]
    assert "may have applied the configuration" in result["failed_nodes"][cut]["msg"]
    assert result["failed_nodes"][cut]["changed"] is True


def test_the_nodes_refusal_to_apply_live_shows_no_configuration(tmp_path, emulated_cluster):
    """Talos 1.13's refusal carries a diff of the configuration: only its first line is shown."""
    from grpclib.const import Status

    cluster = emulated_cluster(control_planes=1, workers=1, talos_version="1.13.5")
    address, host, inventory = one_node(cluster, tmp_path)
    cluster.fail("ApplyConfiguration", code=Status.INVALID_ARGUMENT, node=address,
                 message="this config change can't be applied in immediate mode\ndiff:\n+  content: |\n"
                         "+    password = a-short-secret\n")
    run = run_playbook(tmp_path, play(patches=[SYSCTL]), inventory, "-vvvv")
    assert run.rc != 0
    result = run.result("config", host)
    assert result["changed"] is False and "without a reboot" in result["msg"] and "mode auto" in result["msg"]
    assert "a-short-secret" not in run.output + json.dumps(run.results)


EXAMPLE_PLAYBOOKS = sorted(p.name for p in (ROOT / "examples").glob("*.yml") if "talos.linux.talos_config" in p.read_text())


@pytest.mark.parametrize("example", EXAMPLE_PLAYBOOKS)
def test_every_example_playbook_is_unchanged_on_its_second_run(tmp_path, emulated_cluster, example):
    cluster = emulated_cluster(control_planes=1, workers=1)
    inventory = tmp_path / "cluster.talos.yml"
    inventory.write_text(yaml.safe_dump({"plugin": "talos.linux.talosconfig",
                                         "talosconfig": str(cluster.talosconfig_path())}))
    first = run_playbook(tmp_path, ROOT / "examples" / example, inventory)
    assert first.rc == 0, first.output[-4000:]
    applied = sum(cluster.calls[(a, APPLY)] for a in cluster.addresses)
    second = run_playbook(tmp_path, ROOT / "examples" / example, inventory)
    assert second.rc == 0, second.output[-4000:]
    configs = [r for r in second.results if r["action"] == "talos.linux.talos_config"]
    assert configs and not any(r["result"]["changed"] for r in configs)
    assert sum(cluster.calls[(a, APPLY)] for a in cluster.addresses) == applied
