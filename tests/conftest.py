"""Shared pytest set-up: the collection importable as ansible_collections.talos.linux, and the emulator fixture."""

from tests.emulator._import_path import ensure_collection_importable

ensure_collection_importable()

pytest_plugins = ["tests.emulator.pytest_plugin"]
