# Every target creates or reuses its virtual environment, so a fresh clone needs only python3 and make.
#   make demo    start an emulated Talos cluster and run the main job against it
#   make test    every test (the contract CI runs), on Python 3.11 + ansible-core 2.19 and Python 3.13 + the newest
#   make bench   the benchmarks; figures go to docs/performance.md
#   make protos  regenerate plugins/module_utils/_api from protos/
#   make docs    the docs site in docs/build/html: plugin docs and the guides of docs/, linted
# PYTHON=python3.13 make test  uses another interpreter (pyenv installs are found too), in its own venv.

PYTHON ?= python3
# A pyenv shim fails for a version that is installed but not selected: fall back to the install itself.
PYTHON_BIN := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || \
	ls -d $$HOME/.pyenv/versions/*/bin/$(PYTHON) 2>/dev/null | tail -n 1)
VENV ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(PYTHON))
PY := $(VENV)/bin/python
SHARED ?= ../shared
PYTEST_ARGS ?=
# The oldest and newest protobuf runtimes requirements.txt admits; the gencode must load on both.
PROTOBUF_OLDEST ?= 5.29.0
PROTOBUF_NEWEST ?= 7.36.2

.PHONY: venv demo test test-unit test-emulator test-integration test-protobuf-range sanity check-wire bench protos \
	protos-from-wire clean units integration-ansible-test test-molecule lint docs test-matrix

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON_BIN)" || { echo "cannot find $(PYTHON); install it or set PYTHON=..."; exit 1; }
	@test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

demo: venv
	$(PY) demo/run.py

# pytest covers the unit, emulator, integration (ansible-playbook) and ecosystem suites: the installed tarball,
# ansible-builder, ansible-runner as AWX runs jobs, molecule, ansible-lint, the docs site and the guides.
test: venv check-wire
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-protobuf-range
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory units
	$(MAKE) --no-print-directory integration-ansible-test
	$(if $(filter .venv,$(VENV)),$(MAKE) --no-print-directory test-matrix)

# The other supported pair: the newest ansible-core on Python 3.13, unit and integration suites (own venv).
MATRIX_PYTHON ?= python3.13
test-matrix:
	$(MAKE) --no-print-directory PYTHON=$(MATRIX_PYTHON) test-unit test-integration

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-emulator: venv
	$(PY) -m pytest tests/emulator_tests $(PYTEST_ARGS)

test-integration: venv
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# Loads the committed gencode on the oldest and newest declared protobuf runtimes (each in its own
# target directory in front of the venv's), next to googleapis-common-protos, runs a real call, then the unit
# suite and the client's integration tests on each.
test-protobuf-range: venv
	$(PY) hack/protobuf_range.py $(PROTOBUF_OLDEST) $(PROTOBUF_NEWEST)

# ansible-test sanity on a copy under .cache/sanity/ansible_collections/talos/linux (no docker needed).
sanity: venv
	$(PY) hack/sanity.py

# ansible-test units in its own venv of tests/unit/requirements.txt (kept in .cache/units; the first run installs).
units: venv
	$(PY) hack/run_ansible_test.py units

# ansible-test integration --local with the venv's Python: tests/integration/targets against the emulator.
integration-ansible-test: venv
	$(PY) hack/run_ansible_test.py integration

# molecule test --all from the repository root: the scenarios of extensions/molecule/, each on an emulated cluster.
# molecule runs the venv's ansible-playbook from PATH; its working files go to .cache/molecule/, not ~/.ansible.
test-molecule: venv
	$(PY) -c 'from tests.emulator._import_path import ensure_collection_importable; ensure_collection_importable()'
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_HOME="$(CURDIR)/.cache/molecule/$(VENV)" $(VENV)/bin/molecule test --all

# ansible-lint, production profile (.ansible-lint), offline, with talos.linux from .collections.
lint: venv
	$(PY) -c 'from tests.emulator._import_path import ensure_collection_importable; ensure_collection_importable()'
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_HOME="$(CURDIR)/.cache/ansible-lint" \
	ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/.collections" $(VENV)/bin/ansible-lint examples roles extensions/molecule

check-wire:
	@if [ -x $(SHARED)/tools/check-wire ]; then CHECK_WIRE_PYTHON=$(PY) $(SHARED)/tools/check-wire; \
	else echo "check-wire: $(SHARED)/tools/check-wire not found; skipped (set SHARED=...)"; fi

bench: venv
	$(PY) -m bench

protos: venv
	$(PY) hack/gen_api.py

# The guides (docs/*.md) rendered into docs/docsite/rst (commit them), antsibull-docs lint, then the HTML site.
docs: venv
	$(PY) hack/docsite.py build

# Rewrites protos/ from the upstream wire facts; run when the RPC subset in the script changes.
protos-from-wire: venv
	$(PY) hack/protos_from_wire.py $(SHARED)/reference/talos-wire.json
	$(MAKE) --no-print-directory protos

clean:
	rm -rf .venv .venv-* .collections .cache tests/output bench/results
