"""A Talos Linux API emulator: a whole cluster of Talos nodes in one process, for tests.

Usage: `with EmulatedCluster(control_planes=3, workers=2) as cluster: ...`, or the CLI
`python -m tests.emulator up --state-dir DIR` (see __main__.py).
"""
from ._import_path import ensure_collection_importable

ensure_collection_importable()

from .cluster import EmulatedCluster  # noqa: E402

__all__ = ["EmulatedCluster"]
