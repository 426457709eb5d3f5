"""make bench: every benchmark, each writing its figures into docs/performance.md."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.emulator._import_path import ensure_collection_importable  # noqa: E402

ensure_collection_importable()

from bench import (  # noqa: E402
    client_calls, config_apply, config_normalise, etcd_snapshot, facts, inventory_discovery, rolling_upgrade)

BENCHMARKS = [client_calls, inventory_discovery, facts, config_normalise, config_apply, rolling_upgrade, etcd_snapshot]

if __name__ == "__main__":
    # python -m bench [name ...]: only the named benchmarks (module names, e.g. rolling_upgrade)
    chosen = [b for b in BENCHMARKS if not sys.argv[1:] or b.__name__.rsplit(".", 1)[-1] in sys.argv[1:]]
    rows = [row for bench in chosen for row in bench.main()]
    sys.exit(0 if all(r["met"] for r in rows) else 1)
