"""``python -m bench`` (``make bench``): every benchmark, one summary table.

Runs each benchmark module that is present, in this order, as its own
process (``python -m bench.NAME``), so that one that fails or hangs does not
stop the rest; a module that outlives BENCH_TIMEOUT is stopped. Each writes
``bench/results/<name>.json`` (``bench_stun`` -> ``stun.json``); the headline
rows of those files are gathered into one table, printed and written to
``bench/results/summary.json``. A benchmark's JSON may hold a ``summary``
list of rows (``metric``, ``value``, ``unit``, ``reference``,
``reference_name``, ``ratio``, ``target``, ``ok``, ``broken``: built by
bench/reference.py, which refuses a ratio from an implausible reference). A
broken row prints why instead of a ratio, and makes the run exit 1.

    python -m bench [--only bench_signaling ...] [--skip bench_peer ...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.reference import broken_rows

__all__ = ["BENCHES", "BENCH_TIMEOUT", "main"]

#: The benchmark modules, in the order they run; missing ones are skipped.
BENCHES = (
    "bench_stun",
    "bench_signaling",
    "bench_scaleout",
    "bench_static",
    "bench_client",
    "bench_app",
    "bench_peer",
    "bench_turn",
)
#: Seconds one benchmark module may run before it is stopped.
BENCH_TIMEOUT = 900.0
#: Seconds between SIGTERM and SIGKILL when a benchmark is stopped.
STOP_GRACE = 10.0

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"


def result_path(name: str) -> Path:
    return RESULTS / f"{name.removeprefix('bench_')}.json"


def run_bench(name: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m bench.NAME`` to the end (or stop it); its output goes to ours."""
    started = time.time()
    print(f"\n=== {name} ===", flush=True)
    # A session of its own, so that stopping it reaches whatever it started
    # in its process group (the signaling and static benches' servers, in
    # sessions of their own, get SIGTERM through PR_SET_PDEATHSIG instead).
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}"],
        cwd=BENCH_DIR.parent,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    status = "ok"
    load_before = os.getloadavg()[0]
    try:
        code = process.wait(timeout)
        if code != 0:
            status = f"exit {code}"
    except subprocess.TimeoutExpired:
        status = f"stopped after {timeout:g} s"
        code = _stop(process)
    except KeyboardInterrupt:
        _stop(process)
        raise
    seconds = time.time() - started
    path = result_path(name)
    report = None
    if path.exists() and path.stat().st_mtime >= started:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            status += ", unreadable JSON"
    elif status == "ok":
        status = "ok, no JSON"
    return {
        "name": name,
        "status": status,
        "exit_code": code,
        "seconds": seconds,
        "json": str(path) if report is not None else None,
        "rows": rows_of(name, report),
        # Other work on the machine moves every figure 10-30 %: say how much there was.
        "load_average": (load_before, os.getloadavg()[0]),
    }


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the bench's process group, SIGKILL after STOP_GRACE."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            continue
    return process.wait()


def rows_of(name: str, report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The headline rows of one benchmark's JSON."""
    if report is None:
        return []
    short = name.removeprefix("bench_")
    summary = report.get("summary")
    if isinstance(summary, list):
        return [dict(row, bench=row.get("bench", short)) for row in summary]
    return _median_rows(short, report.get("results"))


#: At most this many rows are read from a JSON without a ``summary``.
MAX_GENERIC_ROWS = 8


def _median_rows(bench: str, results: Any, path: str = "") -> list[dict[str, Any]]:
    """Rows for every ``{"median": x}`` found in ``results`` (no targets known)."""
    rows: list[dict[str, Any]] = []
    if isinstance(results, dict):
        if isinstance(results.get("median"), int | float):
            return [{"bench": bench, "metric": f"{path} (median)", "value": results["median"]}]
        for key, value in results.items():
            rows += _median_rows(bench, value, f"{path}.{key}" if path else str(key))
    elif isinstance(results, list):
        for index, value in enumerate(results):
            label = value.get("loop") or value.get("name") if isinstance(value, dict) else None
            rows += _median_rows(bench, value, f"{path}[{label or index}]")
    return rows[:MAX_GENERIC_ROWS]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def print_summary(benches: list[dict[str, Any]]) -> None:
    print("\n=== summary ===")
    header = (
        f"{'bench':<10} {'metric':<48} {'value':>12} {'reference':>22} {'ratio':>7} "
        f"{'target':>16} {'ok':>4}"
    )
    print(header)
    print("-" * len(header))
    for bench in benches:
        short = bench["name"].removeprefix("bench_")
        if not bench["rows"]:
            print(f"{short:<10} ({bench['status']}, {bench['seconds']:.0f} s, no figures)")
            continue
        for row in bench["rows"]:
            if row.get("broken"):
                # No ratio from a reference (or a figure) that cannot be right.
                print(f"{short:<10} {row['metric'][:48]:<48} {row['broken']}  {'NO':>4}")
                continue
            ref = row.get("reference")
            ref_text = "-" if ref is None else f"{_number(ref)} {row.get('reference_name') or ''}"
            ratio = row.get("ratio")
            ok = row.get("ok")
            print(
                f"{short:<10} {row['metric'][:48]:<48} "
                f"{_number(row.get('value')) + ' ' + (row.get('unit') or ''):>12} "
                f"{ref_text[:22]:>22} {'-' if ratio is None else f'{ratio:.2f}x':>7} "
                f"{(row.get('target') or '')[:16]:>16} "
                f"{'-' if ok is None else ('yes' if ok else 'NO'):>4}"
                + (f"  (bottleneck: {row['bottleneck']})" if row.get("bottleneck") else "")
            )
        load = bench.get("load_average")
        if load:
            print(f"{short:<10} (load average {load[0]:.2f} -> {load[1]:.2f} during this bench)")
        if bench["status"] != "ok":
            print(f"{short:<10} ({bench['status']})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these modules")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME")
    parser.add_argument("--timeout", type=float, default=BENCH_TIMEOUT)
    args = parser.parse_args(argv)

    names = [n for n in (args.only or BENCHES) if (BENCH_DIR / f"{n}.py").exists()]
    names = [n for n in names if n not in args.skip]
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_before = os.getloadavg()[0]
    benches = [run_bench(name, args.timeout) for name in names]
    print_summary(benches)
    summary = {
        "started": started,
        "seconds": time.time() - started,
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "benches": benches,
        "rows": [row for bench in benches for row in bench["rows"]],
    }
    path = RESULTS / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nmachine load average before/after: {load_before:.2f}/{os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs; JSON: {path}"
    )
    rows = [row for bench in benches for row in bench["rows"]]
    broken = [f"{row['bench']}: {line}" for row in rows for line in broken_rows([row])]
    for line in broken:
        print(f"ERROR: {line}")
    ok = all(b["exit_code"] == 0 for b in benches) and not broken
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
