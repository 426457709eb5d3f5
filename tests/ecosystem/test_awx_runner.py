"""AWX / automation controller: the example playbook run by ansible-runner the way AWX runs a job.

The private data directory is laid out as AWX lays it out: the project (the playbook, the inventory source,
collections/requirements.yml with the collection's release tarball) installed into requirements_collections,
the credential of docs/awx/ injected (its talosconfig file, TALOSCONFIG, the talos_config_path extra
variable), env/envvars and env/extravars. The cluster is emulated.
"""

import base64
import json
import os
import pathlib
import re
import shutil

import ansible_runner
import pytest
import yaml

from tests.ecosystem.awx import (
    INVENTORY_UPDATE_ENV,
    CredentialTypeError,
    check_credential_type,
    inject,
    load_credential_type,
    project_update,
    run_job,
    write_env,
    write_inventory_script,
)
from tests.emulator import pki
from tests.integration.playbook import BIN, ROOT

PLAYBOOK = ROOT / "examples" / "facts.yml"
INVENTORY_SOURCE = ROOT / "docs" / "awx" / "cluster.talos.yml"
TASKS = ("Gathering Facts", "One line per node")  # each on every host; then "Summary of the cluster" once
SUMMARY = "Summary of the cluster"


@pytest.fixture
def credential_type():
    return load_credential_type()


@pytest.fixture
def runner_environment(monkeypatch, tmp_path):
    """What the execution environment's image gives a job: ansible on PATH, a home, nothing of the caller's."""
    for name in list(os.environ):
        if name.startswith(("ANSIBLE_", "TALOS")) or name == "PYTHONPATH":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def talosconfig_credential(cluster, kind="admin"):
    return {"talosconfig": cluster.talosconfig_path(kind).read_text()}


def admin_context(cluster):
    talosconfig = yaml.safe_load(cluster.talosconfig_path().read_text())
    return talosconfig["contexts"][talosconfig["context"]]


def fields_credential(cluster):
    """The other way to fill the credential: endpoints and the PEM texts a user pastes."""
    context = admin_context(cluster)
    return {"endpoints": ", ".join(cluster.control_planes),
            **{name: base64.b64decode(context[name]).decode() for name in ("ca", "crt", "key")}}


def foreign_credential(cluster):
    """The cluster's talosconfig, but with a client certificate that another CA signed."""
    certificate, key = pki.CertificateAuthority().issue_client_certificate(["os:admin"])
    context = yaml.safe_load(cluster.talosconfig_path().read_text())["context"]
    return {"talosconfig": pki.render_talosconfig(context, cluster.control_planes, cluster.addresses,
                                                  cluster.ca_pem, certificate, key)}


def launch(private_data_dir, credential_type, credential, collections, verbosity=0, **envvars):
    """A job of the job template: site.yml of the project, the credential, the project's collections."""
    env, cmdline = inject(credential_type, credential, private_data_dir)
    write_env(private_data_dir, {**env, "ANSIBLE_COLLECTIONS_PATH": str(collections), **envvars},
              extravars={"job_template": "talos facts"}, cmdline=cmdline)
    return run_job(private_data_dir=str(private_data_dir), playbook="site.yml", quiet=True, timeout=300,
                   verbosity=verbosity)


def inventory_sync(private_data_dir, credential_type, credential, collections):
    """An inventory update of the source in the project: ansible-inventory with the credential, like AWX."""
    env = inject(credential_type, credential, private_data_dir, inventory_update=True)[0]  # no extra vars
    output = private_data_dir / "artifacts" / "inventory.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    out, err, rc = ansible_runner.run_command(
        executable_cmd="ansible-inventory",
        cmdline_args=["--list", "--export", "-i", str(private_data_dir / "project" / "cluster.talos.yml"),
                      "--output", str(output), "--playbook-dir", str(private_data_dir / "project")],
        private_data_dir=str(private_data_dir), quiet=True, timeout=120,
        envvars={**env, **INVENTORY_UPDATE_ENV, "ANSIBLE_COLLECTIONS_PATH": str(collections)})
    return rc, (json.loads(output.read_text()) if rc == 0 else None), out + err


def events_of(run, kind=None):
    """The job's task events (runner_on_*), or those of one kind."""
    return [event for event in run.events if event.get("event", "").startswith("runner_on_")
            and (kind is None or event["event"] == kind)]


def ok_tasks(run):
    return {(e["event_data"]["task"], e["event_data"]["host"]) for e in events_of(run, "runner_on_ok")}


def assert_successful(run, cluster):
    hostnames = {cluster.node(address).hostname for address in cluster.addresses}
    assert (run.status, run.rc) == ("successful", 0), run.stdout
    assert [e for e in events_of(run) if e["event"] in ("runner_on_failed", "runner_on_unreachable")] == []
    done = ok_tasks(run)
    assert {(task, host) for task in TASKS for host in hostnames} <= done, sorted(done)
    assert len([host for task, host in done if task == SUMMARY]) == 1, sorted(done)
    summary = next(e for e in events_of(run, "runner_on_ok") if e["event_data"]["task"] == SUMMARY)
    assert len(summary["event_data"]["res"]["msg"]) == len(hostnames)


def assert_no_secret(text, cluster):
    """The client key, as the talosconfig holds it (base64) and as PEM text, is nowhere in `text`."""
    key = admin_context(cluster)["key"]
    body = "".join(base64.b64decode(key).decode().strip().splitlines()[1:-1])
    assert key[:48] not in text and body[:48] not in text


def job_output(run):
    return run.stdout + json.dumps(run.events)


def test_the_credential_type_is_one_awx_accepts(credential_type):
    fields = {field["id"]: field for field in credential_type["inputs"]["fields"]}
    assert {name for name, field in fields.items() if field.get("secret")} == {"talosconfig", "ca", "crt", "key"}
    assert credential_type["injectors"]["env"] == {"TALOSCONFIG": "{{ tower.filename }}"}
    # the environment variable is the one the modules and the inventory plugin read
    assert '"TALOSCONFIG"' in (ROOT / "plugins" / "module_utils" / "_options.py").read_text()
    with pytest.raises(CredentialTypeError, match="ANSIBLE_COLLECTIONS_PATH"):
        check_credential_type(credential_type["inputs"], {"env": {"ANSIBLE_COLLECTIONS_PATH": "{{ tower.filename }}"}})
    with pytest.raises(CredentialTypeError, match="is undefined"):
        check_credential_type(credential_type["inputs"], {"env": {"TALOS_CONTEXT": "{{ context }}"}})


def test_the_guide_shows_the_files_the_tests_use():
    guide = (ROOT / "docs" / "awx.md").read_text()
    for name in ("credential_type_inputs.yml", "credential_type_injectors.yml", "cluster.talos.yml"):
        assert (ROOT / "docs" / "awx" / name).read_text() in guide, f"docs/awx.md does not show docs/awx/{name}"


def test_a_job_with_the_inventory_source_and_a_talosconfig_credential(
        tmp_path, emulated_cluster, installed_collection, credential_type, runner_environment):
    cluster = emulated_cluster(control_planes=1, workers=1)
    credential = talosconfig_credential(cluster)
    job = tmp_path / "job"
    collections = project_update(job, {"site.yml": PLAYBOOK}, installed_collection.tarball)
    (job / "inventory").mkdir()
    (job / "inventory" / "cluster.talos.yml").write_text(INVENTORY_SOURCE.read_text())

    # ANSIBLE_INVENTORY_UNPARSED_FAILED: a source that cannot be read fails the job instead of emptying it
    run = launch(job, credential_type, credential, collections, verbosity=3, ANSIBLE_INVENTORY_UNPARSED_FAILED="True")
    assert_successful(run, cluster)
    assert_no_secret(job_output(run), cluster)
    gathered = next(e for e in events_of(run, "runner_on_ok") if e["event_data"]["task"] == "Gathering Facts")
    assert gathered["event_data"]["res"]["ansible_facts"]["talos_version"] == "1.13.5"
    # talos_facts, run as a module for gather_facts, came from the project's requirements_collections
    module_files = re.findall(r"Using module file (\S*talos\S*?\.py)", run.stdout)
    assert module_files and {pathlib.Path(f).resolve() for f in module_files} == {
        (collections / "ansible_collections/talos/linux/plugins/modules/talos_facts.py").resolve()}


def test_an_inventory_sync_then_a_job_with_a_credential_of_endpoints_and_certificates(
        tmp_path, emulated_cluster, installed_collection, credential_type, runner_environment):
    cluster = emulated_cluster(control_planes=1, workers=1)
    credential = fields_credential(cluster)
    files = {"site.yml": PLAYBOOK, "cluster.talos.yml": INVENTORY_SOURCE}

    sync = tmp_path / "inventory-update"
    rc, inventory, output = inventory_sync(sync, credential_type, credential,
                                           project_update(sync, files, installed_collection.tarball))
    assert rc == 0, output
    hostvars = inventory["_meta"]["hostvars"]
    assert set(hostvars) == {cluster.node(address).hostname for address in cluster.addresses}
    assert_no_secret(json.dumps(inventory), cluster)
    # AWX removes a run's private data directory at its end: the talosconfig path the sync stored is gone
    shutil.rmtree(sync)
    stored = {json.dumps(host["talos_config_path"]) for host in hostvars.values()}
    assert len(stored) == 1 and str(sync) in stored.pop()

    # the job runs later, in a directory of its own, with a new file for the credential
    job = tmp_path / "job"
    collections = project_update(job, files, installed_collection.tarball)
    write_inventory_script(job, inventory)
    run = launch(job, credential_type, credential, collections)
    assert_successful(run, cluster)
    assert_no_secret(job_output(run), cluster)


def test_a_wrong_credential_fails_the_sync_and_the_job(
        tmp_path, emulated_cluster, installed_collection, credential_type, runner_environment):
    cluster = emulated_cluster(control_planes=1, workers=1)
    files = {"site.yml": PLAYBOOK, "cluster.talos.yml": INVENTORY_SOURCE}
    sync = tmp_path / "inventory-update"
    collections = project_update(sync, files, installed_collection.tarball)
    rc, inventory, output = inventory_sync(sync, credential_type, foreign_credential(cluster), collections)
    assert rc != 0 and inventory is None and "Discovery of the members" in output, output

    # the inventory a good credential synced, and a job whose credential the cluster does not trust
    rc, inventory, output = inventory_sync(tmp_path / "good-sync", credential_type, talosconfig_credential(cluster),
                                           project_update(tmp_path / "good-sync", files, installed_collection.tarball))
    assert rc == 0, output
    job = tmp_path / "job"
    write_inventory_script(job, inventory)
    collections = project_update(job, files, installed_collection.tarball)
    run = launch(job, credential_type, foreign_credential(cluster), collections)
    assert (run.status, run.rc != 0) == ("failed", True)
    failed = {e["event_data"]["host"] for e in events_of(run) if e["event"] == "runner_on_failed"}
    assert failed == {cluster.node(address).hostname for address in cluster.addresses}
    assert ok_tasks(run) == set()
    for event in events_of(run, "runner_on_failed"):  # gather_facts: talos_facts was refused, and says why
        reason = event["event_data"]["res"]["failed_modules"]["talos.linux.talos_facts"]
        assert reason["code"] == "TLSError" and "refused the client certificate" in reason["msg"], reason
