"""What every benchmark shares: an emulated cluster in its own process, timing, and the results page.

Figures are ratios against a baseline run in the same process and the same minute, because absolute
times on these machines drift; each side is measured in alternating rounds and the median is kept.
"""

import contextlib
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PERFORMANCE_DOC = ROOT / "docs" / "performance.md"


@contextlib.contextmanager
def emulated_cluster(control_planes, workers, version="1.13.5", *extra):
    """Start `python -m tests.emulator up` in its own process (``extra``: more CLI flags); yield its state dir."""
    with tempfile.TemporaryDirectory(prefix="talos-bench-") as tmp:
        state = pathlib.Path(tmp)
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.emulator", "up", "--control-planes", str(control_planes),
             "--workers", str(workers), "--talos-version", version, "--state-dir", str(state), *extra],
            cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (state / "ready").exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulated cluster did not start")
                time.sleep(0.05)
            yield state
        finally:
            subprocess.run([sys.executable, "-m", "tests.emulator", "down", "--state-dir", str(state)],
                           cwd=ROOT, timeout=30, check=False, stdout=subprocess.DEVNULL)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def inject_fault(state, *args):
    """`python -m tests.emulator fault --state-dir STATE ARGS...` against the running cluster."""
    subprocess.run([sys.executable, "-m", "tests.emulator", "fault", "--state-dir", str(state), *args], cwd=ROOT,
                   check=True, timeout=30, stdout=subprocess.DEVNULL)


async def alternate(rounds, **sides):
    """Run each side's coroutine factory once per round, in turn; median seconds per side."""
    times = {name: [] for name in sides}
    for _round in range(rounds):
        for name, side in sides.items():
            started = time.perf_counter()
            await side()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def publish(section, command, rows, notes=""):
    """Write one benchmark's table into docs/performance.md between its markers, and its JSON to results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{section}.json").write_text(json.dumps(rows, indent=2) + "\n")
    header = "| benchmark | measured | baseline | ratio | goal | met |\n|---|---|---|---|---|---|\n"
    lines = [f"| {r['name']} | {r['measured']} | {r['baseline']} | {r['ratio']} | {r['goal']} | "
             f"{'yes' if r['met'] else 'NO'} |" for r in rows]
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    block = (f"<!-- bench:{section}:start -->\nCommand: `{command}` ({stamp}, Python "
             f"{sys.version.split()[0]}, {_cpu_count()} cores)\n\n{header}" + "\n".join(lines) + "\n"
             + (f"\n{notes}\n" if notes else "") + f"<!-- bench:{section}:end -->")
    text = PERFORMANCE_DOC.read_text() if PERFORMANCE_DOC.exists() else "# Performance\n"
    start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_DOC.write_text(text)
    for r in rows:
        print(f"{r['name']}: {r['measured']} vs {r['baseline']} -> {r['ratio']} (goal {r['goal']}: "
              f"{'met' if r['met'] else 'NOT met'})")


def _cpu_count():
    import os
    return os.cpu_count()
