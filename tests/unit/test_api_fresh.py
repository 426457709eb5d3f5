"""The committed message code is exactly what `make protos` writes from protos/ with the pinned generator."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "plugins" / "module_utils" / "_api"


def test_generated_code_is_fresh(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "hack" / "gen_api.py")
    gen_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_api)
    gen_api.generate(tmp_path)
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*.py")}
    committed = {p.relative_to(COMMITTED): p.read_text() for p in COMMITTED.rglob("*.py")}
    assert sorted(fresh) == sorted(committed), "files differ: run `make protos` and commit"
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated code in {stale}: run `make protos` and commit"


def test_generated_code_imports_only_relative_or_protobuf():
    for path in COMMITTED.rglob("*_pb2.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("from ", "import ")) and not line.startswith("from ."):
                assert line.startswith("from google.protobuf") or "status_pb2" in line, f"{path.name}: {line}"
