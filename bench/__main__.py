"""``python -m bench`` (``make bench``): every benchmark, one summary table.

Runs each benchmark module that is present, in this order, as its own
process (``python -m bench.NAME``), so that one that fails or hangs does not
stop the rest; a module that outlives BENCH_TIMEOUT is stopped. Each writes
``bench/results/<name>.json`` (``bench_stun`` -> ``stun.json``); the headline
rows of those files are gathered into one table, printed and written to
``bench/results/summary.json``. A benchmark's JSON may hold a ``summary``
list of rows (``metric``, ``value``, ``unit``, ``reference``,
``reference_name``, ``ratio``, ``target``, ``ok``); for the STUN bench the
rows are read from its own fields.

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

__all__ = ["BENCHES", "BENCH_TIMEOUT", "main"]

#: The benchmark modules, in the order they run; missing ones are skipped.
BENCHES = (
    "bench_stun",
    "bench_signaling",
    "bench_scaleout",
    "bench_static",
    "bench_client",
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
    if name == "bench_stun":
        return _stun_rows(report)
    return _median_rows(short, report.get("results"))


def _stun_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    # One block of targets per CPU placement ("pinned", "shared"), or one block.
    placements = report.get("placements") or [
        {"name": "", "targets": report.get("targets", []), "ratio": report.get("ratio")}
    ]
    rows = []
    for placement in placements:
        targets = {t["name"]: t for t in placement.get("targets", [])}
        ours, ref = targets.get("embedded responder"), targets.get("coturn")
        if ours is None:
            continue
        ratio = (placement.get("ratio") or {}).get("median")
        label = f", {placement['name']}" if placement.get("name") else ""
        rows.append(
            {
                "bench": "stun",
                "metric": f"Binding responses/s, median{label}",
                "unit": "resp/s",
                "value": ours["median_rate"],
                "reference": ref["median_rate"] if ref else None,
                "reference_name": "coturn",
                "ratio": ratio,
                "target": ">= 0.90x",
                "ok": None if ratio is None else ratio >= 0.9,
            }
        )
    return rows


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
            )
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
    return 0 if all(b["exit_code"] == 0 for b in benches) else 1


if __name__ == "__main__":
    sys.exit(main())
