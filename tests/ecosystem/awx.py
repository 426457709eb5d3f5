"""What AWX (and AAP's automation controller) does around a job, for tests: custom credential types, their
injectors, and the private data directory ansible-runner gets. Written from AWX's documented behaviour:

- A credential type has `inputs` (fields: id, label, type string|boolean, secret, multiline, help_text, ...;
  `required`) and `injectors` (`file`, `env`, `extra_vars`), checked when the type is saved: injector names,
  no ANSIBLE_* or reserved environment variables, and every template renders with each field set to a
  placeholder (undefined names are errors).
- When a job or inventory sync runs, the templates are Jinja in an immutable sandbox over the credential's
  inputs: a string field is there only when it is not empty, a boolean always (False when unset). Each `file`
  template is written to a new file under <private_data_dir>/env (mode 0660) and `tower.filename` names it
  (`template.<name>` files are `tower.filename.<name>`). `env` entries become the job's environment;
  `extra_vars` go to a file passed as `-e @file`, and are skipped for inventory syncs.
- The project is copied to <private_data_dir>/project; its collections/requirements.yml is installed, from the
  project's root, into <private_data_dir>/requirements_collections, which ANSIBLE_COLLECTIONS_PATH names first.
- An inventory sync runs `ansible-inventory --list --export -i project/<source>` with the credential injected
  and ANSIBLE_INVENTORY_UNPARSED_FAILED set; a job's inventory is inventory/hosts, a script printing what
  the sync stored.
"""

import json
import multiprocessing
import os
import pathlib
import shutil
import stat
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import jsonschema
import yaml
from jinja2 import StrictUndefined, sandbox

from tests.ecosystem.collection import galaxy
from tests.integration.playbook import ROOT

CREDENTIAL_TYPE_DIR = ROOT / "docs" / "awx"
NAME = r"^[a-zA-Z_]+[a-zA-Z0-9_]*$"
INPUTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "label"],
            "properties": {
                "id": {"type": "string", "pattern": NAME},
                "label": {"type": "string"},
                "type": {"enum": ["string", "boolean"]},
                "format": {"enum": ["ssh_private_key", "url"]},
                "choices": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}},
                "help_text": {"type": "string"},
                "multiline": {"type": "boolean"},
                "secret": {"type": "boolean"},
                "ask_at_runtime": {"type": "boolean"},
                "default": {},
            },
        }},
    },
}
INJECTORS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "additionalProperties": False,
                 "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}}},
        "env": {"type": "object", "additionalProperties": False,
                "patternProperties": {NAME: {"type": "string", "pattern": "^[\x00-\x7f]*$"}}},
        "extra_vars": {"type": "object", "additionalProperties": False,
                       "patternProperties": {NAME: {"type": "string"}}},
    },
}
# Variables a credential may not set (AWX's list), besides every ANSIBLE_* one.
ENV_BLOCKLIST = frozenset({
    "VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID", "INVENTORY_UPDATE_ID",
    "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES", "CALLBACK_QUEUE", "CALLBACK_CONNECTION",
    "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS", "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH",
})
# What AWX sets for every inventory sync.
INVENTORY_UPDATE_ENV = {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_INVENTORY_EXPORT": "True",
                        "ANSIBLE_VERBOSE_TO_STDERR": "True"}


class CredentialTypeError(ValueError):
    """What AWX would refuse when the credential type, or a credential of it, is saved."""


def load_credential_type(directory=CREDENTIAL_TYPE_DIR):
    """The credential type whose input and injector configurations are the YAML files in `directory`."""
    inputs = yaml.safe_load((directory / "credential_type_inputs.yml").read_text())
    injectors = yaml.safe_load((directory / "credential_type_injectors.yml").read_text())
    check_credential_type(inputs, injectors)
    return {"inputs": inputs, "injectors": injectors}


def check_credential_type(inputs, injectors):
    try:
        jsonschema.validate(inputs, INPUTS_SCHEMA)
        jsonschema.validate(injectors, INJECTORS_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise CredentialTypeError(exc.message) from None
    ids = [field["id"] for field in inputs.get("fields", [])]
    if len(ids) != len(set(ids)) or "tower" in ids:
        raise CredentialTypeError(f"field ids must be unique and not 'tower': {ids}")
    for field in inputs.get("fields", []):
        if field.get("type", "string") != "string" and {"secret", "multiline", "choices", "format"} & set(field):
            raise CredentialTypeError(f"{field['id']}: only string fields may be secret, multiline or have choices")
    for name in injectors.get("env", {}):
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            raise CredentialTypeError(f"a credential may not set the environment variable {name}")
    files = list(injectors.get("file", {}))
    if "template" in files and len(files) > 1:
        raise CredentialTypeError("one unnamed file template, or named ones only")
    # every template renders with each field set and undefined names refused
    filename = "EXAMPLE_FILENAME" if "template" in files else SimpleNamespace(
        **{name.split(".", 1)[1]: "EXAMPLE_FILENAME" for name in files})
    namespace = {**{name: "EXAMPLE" for name in ids}, "tower": SimpleNamespace(filename=filename)}
    environment = sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind, templates in injectors.items():
        for key, template in templates.items():
            try:
                environment.from_string(template).render(namespace)
            except Exception as exc:  # noqa: BLE001 - AWX refuses the type whatever the template error is
                raise CredentialTypeError(f"{kind}.{key}: {exc}") from None


def check_credential(credential_type, values):
    fields = {field["id"]: field for field in credential_type["inputs"].get("fields", [])}
    unknown = set(values) - set(fields)
    missing = [name for name in credential_type["inputs"].get("required", []) if not values.get(name)]
    if unknown or missing:
        raise CredentialTypeError(f"unknown fields {sorted(unknown)}, missing required fields {missing}")
    for name, value in values.items():
        expected = bool if fields[name].get("type", "string") == "boolean" else str
        if not isinstance(value, expected):
            raise CredentialTypeError(f"{name} must be a {expected.__name__}")


def inject(credential_type, values, private_data_dir, *, inventory_update=False):
    """The credential's files, environment and extra-vars file for a run in `private_data_dir`, as AWX makes them.

    Returns (env, cmdline arguments).
    """
    check_credential(credential_type, values)
    namespace = {"tower": SimpleNamespace()}
    for field in credential_type["inputs"].get("fields", []):
        value = values.get(field["id"])
        if field.get("type", "string") == "boolean":
            namespace[field["id"]] = bool(value)
        elif value:
            namespace[field["id"]] = value
    environment = sandbox.ImmutableSandboxedEnvironment()
    env_dir = pathlib.Path(private_data_dir) / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for label, template in credential_type["injectors"].get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as stream:
            stream.write(environment.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP)
        if label == "template":
            namespace["tower"].filename = path
        else:
            if not hasattr(namespace["tower"], "filename"):
                namespace["tower"].filename = SimpleNamespace()
            setattr(namespace["tower"].filename, label.split(".", 1)[1], path)
    env = {name: environment.from_string(template).render(**namespace)
           for name, template in credential_type["injectors"].get("env", {}).items()}
    cmdline = []
    extra_vars = {name: environment.from_string(template).render(**namespace)
                  for name, template in credential_type["injectors"].get("extra_vars", {}).items()}
    if extra_vars and not inventory_update:
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as stream:
            yaml.safe_dump(extra_vars, stream)
        os.chmod(path, stat.S_IRUSR | stat.S_IRGRP)
        cmdline = ["-e", f"@{path}"]
    return env, cmdline


def project_update(private_data_dir, project_files, tarball):
    """The project copied into the private data directory, and its collections/requirements.yml installed.

    `project_files` maps a path in the project to the file to copy there. The collection comes from its release
    tarball, kept in the project next to the requirements file that names it.
    """
    project = pathlib.Path(private_data_dir) / "project"
    for name, source in project_files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, project / name)
    (project / "collections").mkdir(parents=True, exist_ok=True)
    shutil.copy2(tarball, project / "collections" / tarball.name)
    (project / "collections" / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": f"collections/{tarball.name}", "type": "file"}]}))
    collections = pathlib.Path(private_data_dir) / "requirements_collections"
    galaxy("collection", "install", "-r", "collections/requirements.yml", "--collections-path", collections,
           "--offline", cwd=project)
    return collections


def write_env(private_data_dir, envvars, extravars=None, cmdline=()):
    """env/envvars, env/extravars and env/cmdline, the files ansible-runner reads."""
    env_dir = pathlib.Path(private_data_dir) / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    (env_dir / "envvars").write_text(yaml.safe_dump(dict(envvars)))
    (env_dir / "extravars").write_text(yaml.safe_dump(dict(extravars or {})))
    if cmdline:
        (env_dir / "cmdline").write_text(" ".join(cmdline))


def write_inventory_script(private_data_dir, inventory):
    """inventory/hosts: the script that gives a job the inventory a sync stored."""
    path = pathlib.Path(private_data_dir) / "inventory" / "hosts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(inventory))})\n")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR | stat.S_IXUSR)
    return path


@dataclass
class Job:
    """What AWX keeps of a finished job: its status, rc, events and output."""
    status: str
    rc: int
    events: list
    stdout: str


def run_job(**runner_options):
    """ansible_runner.run(**runner_options), in a fresh interpreter.

    ansible-runner starts ansible-playbook through pexpect, which forks a Python child before it executes; a test
    process runs the emulator's threads, and a fork there may deadlock (Python 3.12 warns of it).
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run, runner_options).result()


def _run(runner_options):
    import ansible_runner

    run = ansible_runner.run(**runner_options)
    return Job(run.status, run.rc, list(run.events), run.stdout.read())
