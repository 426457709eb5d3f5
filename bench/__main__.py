"""make bench: every benchmark, each writing its figures into docs/performance.md."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tests.emulator._import_path import ensure_collection_importable  # noqa: E402

ensure_collection_importable()

from bench import client_calls, config_apply, config_normalise, facts, inventory_discovery, rolling_upgrade  # noqa: E402

BENCHMARKS = [client_calls, inventory_discovery, facts, config_normalise, config_apply, rolling_upgrade]

if __name__ == "__main__":
    rows = [row for bench in BENCHMARKS for row in bench.main()]
    sys.exit(0 if all(r["met"] for r in rows) else 1)
