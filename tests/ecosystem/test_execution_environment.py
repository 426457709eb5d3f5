"""The execution environment: a user's EE definition that includes talos.linux, made into a build context.

`ansible-builder create` writes the Containerfile and its context without a container runtime. The image
build would then install the collection (galaxy stage) and run the context's introspection over the installed
collections (builder stage) to learn their Python and system requirements from meta/execution-environment.yml.
The test runs those two steps here, with the files of the context, and checks what the image would install.
"""

import copy
import importlib.metadata
import shutil
import subprocess
import sys

import yaml
from ansible_builder.ee_schema import validate_schema
from packaging.requirements import Requirement

from tests.ecosystem.collection import galaxy
from tests.integration.playbook import BIN, ROOT

# A user's definition: an image with Python 3.11 and ansible-core 2.19, and talos.linux from its release tarball.
USER_EE = """\
---
version: 3
images:
  base_image:
    name: quay.io/centos/centos:stream9
dependencies:
  python_interpreter:
    package_system: python3.11
    python_path: /usr/bin/python3.11
  ansible_core:
    package_pip: ansible-core>=2.19
  ansible_runner:
    package_pip: ansible-runner
  galaxy:
    collections:
      - name: collections/{tarball}
        type: file
additional_build_files:
  - src: {tarball}
    dest: collections
"""


def requirement_lines(path):
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def test_the_collection_declares_its_requirements_in_a_valid_definition(installed_collection):
    definition = yaml.safe_load((installed_collection.path / "meta" / "execution-environment.yml").read_text())
    validate_schema(copy.deepcopy(definition))  # ansible-builder's own schema check; raises DefinitionError
    assert definition["version"] == 3
    dependencies = definition["dependencies"]
    assert set(dependencies) <= {"python", "system"}, "a collection contributes only python and system requirements"
    python = installed_collection.path / dependencies["python"]
    assert python.is_file(), f"{dependencies['python']} is not in the installed collection"
    assert requirement_lines(python) == requirement_lines(ROOT / "requirements.txt")
    if "system" in dependencies:
        assert (installed_collection.path / dependencies["system"]).is_file()


def test_a_user_ee_that_includes_the_collection_installs_its_python_requirements(installed_collection, tmp_path):
    tarball = installed_collection.tarball.name
    project = tmp_path / "ee"
    project.mkdir()
    shutil.copy2(installed_collection.tarball, project / tarball)
    (project / "execution-environment.yml").write_text(USER_EE.format(tarball=tarball))

    create = subprocess.run([str(BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
                             "--context", "context", "--output-filename", "Containerfile"],
                            cwd=project, capture_output=True, text=True, timeout=120, check=False)
    assert create.returncode == 0, create.stdout + create.stderr
    context = project / "context"
    build_dir = context / "_build"
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "RUN $PYCMD /output/scripts/introspect.py introspect" in containerfile
    assert yaml.safe_load((build_dir / "requirements.yml").read_text()) == {
        "collections": [{"name": f"collections/{tarball}", "type": "file"}]}
    assert (build_dir / "collections" / tarball).is_file()

    # the galaxy stage: the context's requirements.yml installed from /build (here: the context's _build)
    share = tmp_path / "usr-share-ansible" / "collections"
    galaxy("collection", "install", "-r", "requirements.yml", "--collections-path", share, "--offline",
           cwd=build_dir)
    # the builder stage: the context's own introspection script over what the galaxy stage installed
    pip, bindep = tmp_path / "ee-requirements.txt", tmp_path / "ee-bindep.txt"
    introspect = subprocess.run([sys.executable, str(build_dir / "scripts" / "introspect.py"), "introspect",
                                 str(share), f"--write-pip={pip}", f"--write-bindep={bindep}"],
                                capture_output=True, text=True, timeout=120, check=False)
    assert introspect.returncode == 0, introspect.stdout + introspect.stderr

    from_collection = {}
    for line in pip.read_text().splitlines():
        requirement, source = line.split("#", 1)
        assert source.strip() == "from collection talos.linux", line
        from_collection[Requirement(requirement).name.lower()] = requirement.strip()
    declared = {Requirement(line).name.lower(): line for line in requirement_lines(ROOT / "requirements.txt")}
    assert from_collection == {name: declared[name] for name in from_collection}, "the lines as declared"
    assert {"grpclib", "protobuf", "cryptography", "jsonpatch"} <= set(from_collection)
    # ansible-builder leaves out a few names every EE has anyway (PyYAML): ansible-core itself must require them
    core = {Requirement(r).name.lower() for r in importlib.metadata.requires("ansible-core")}
    left_out = set(declared) - set(from_collection)
    assert left_out <= core, f"requirements the EE would not install: {sorted(left_out - core)}"
    assert not bindep.exists(), "talos.linux needs no system package"
