"""Run ansible-test on a copy of the collection laid out as ansible_collections/talos/linux, without docker.

    python hack/run_ansible_test.py sanity [ansible-test sanity arguments...]
    python hack/run_ansible_test.py units [ansible-test units arguments...]
    python hack/run_ansible_test.py integration [ansible-test integration arguments...]

sanity   in ansible-test's venvs (--venv --requirements), as hack/sanity.py.
units    in a venv of ansible-test's (--venv --requirements) holding tests/unit/requirements.txt, which must list
         every requirement of requirements.txt (ansible-test cannot include a file by path); the venv is kept
         between runs in the copy, so only the first run installs.
integration  with this Python and its packages (--local): no download; the targets start the emulator.

Each command has its own copy, .cache/<command>/ansible_collections/talos/linux (see hack/_collection_copy.py).
"""
import pathlib
import sys

from _collection_copy import PYTHON_VERSION, ROOT, run_ansible_test

# ansible-test --venv keeps its venv here, in the copy; installing it takes a minute or two.
DELEGATION_VENV = "tests/output/.tmp/delegation"
USAGE = "usage: python hack/run_ansible_test.py {sanity,units,integration} [ansible-test arguments...]"


def requirement_lines(path):
    """The requirement specifiers of a pip requirements file, comments and blanks left out, spaces removed."""
    lines = (line.split("#", 1)[0].replace(" ", "") for line in pathlib.Path(path).read_text().splitlines())
    return {line for line in lines if line and not line.startswith("-")}


def missing_requirements(copy_of_requirements):
    return sorted(requirement_lines(ROOT / "requirements.txt") - requirement_lines(ROOT / copy_of_requirements))


def sanity(args):
    return run_ansible_test("sanity", "sanity", ["--venv", "--python", PYTHON_VERSION, "--requirements", *args])


def units(args):
    missing = missing_requirements("tests/unit/requirements.txt")
    if missing:
        print(f"tests/unit/requirements.txt lacks {', '.join(missing)} of requirements.txt: add them there",
              file=sys.stderr)
        return 2
    return run_ansible_test("units", "units", ["--venv", "--python", PYTHON_VERSION, "--requirements", *args],
                            keep=[DELEGATION_VENV])


def integration(args):
    return run_ansible_test("integration", "integration", ["--local", "--python-interpreter", sys.executable, *args])


COMMANDS = {"sanity": sanity, "units": units, "integration": integration}


def main(argv):
    if not argv or argv[0] not in COMMANDS:
        print(USAGE, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
