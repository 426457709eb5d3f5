"""Make the collection's generated protobuf code importable as ansible_collections.talos.linux.

The emulator imports only `plugins/module_utils/_api` (generated messages), under the collection's
import name, exactly as the plugins see it. That name resolves through `<repo>/.collections`, where
`ansible_collections/talos/linux` is a relative symlink back to the repository root.
"""
import importlib.util
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".collections"
COLLECTION_LINK = COLLECTIONS_ROOT / "ansible_collections" / "talos" / "linux"


def _importable():
    try:
        return importlib.util.find_spec("ansible_collections.talos.linux.plugins.module_utils._api") is not None
    except ImportError:
        return False


def ensure_collection_importable():
    """Create the .collections symlink if missing and put .collections first on sys.path if needed."""
    if not COLLECTION_LINK.exists():
        COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
        if COLLECTION_LINK.is_symlink():  # dangling link
            COLLECTION_LINK.unlink()
        os.symlink("../../..", COLLECTION_LINK)
    if _importable():
        return
    path = str(COLLECTIONS_ROOT)
    if path not in sys.path:
        sys.path.insert(0, path)
    importlib.invalidate_caches()
