"""Scale-out: signaling relay over one process against two sharing rooms through Redis.

    python -m bench.bench_scaleout [--rounds 2] [--duration 3] [--conns 500] [--rate 2000]
                                   [--json bench/results/scaleout.json]

Starts a real redis-server (Debian's, persistence off, natlab/redis.py) and
``confide serve`` processes on free loopback ports, and drives them with the
signaling bench's load client (``bench/loadgen_signaling.mjs``, its ``ports``
and ``spread`` options), in one run and in alternating order:

one process, memory hub
    the reference: ``confide serve`` without Redis.
one process, Redis hub
    ``--redis-url``; both ends of every pair on the one process, so a relay is
    delivered without a round trip to Redis.
two processes, pairs within
    each pair on one of two processes: the total two processes relay.
two processes, pairs split
    the two ends of every pair on different processes: every relay is a Lua
    script and a ``PUBLISH`` through Redis to the other process.

Each runs the closed-loop ``relay`` mode (messages/s and p99 with ``--window``
in flight per connection) and the open-loop ``rate`` mode (latency at a fixed
offered rate); the added latency of a cross-process relay is the split run's
p50/p99 minus the one-process Redis run's, at the same offered rate.

No process is pinned: the servers, redis-server and the load client share
the machine's CPUs as the scheduler decides, and every run reports the CPU
use of the servers (added up) and of the client, and its bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bench_signaling import (
    CLIENT_GRACE,
    CONFIDE_LOAD_OPTIONS,
    bottleneck,
    per_cpu_second,
    raise_nofile_limit,
    run_client,
    run_line,
    settle,
    started,
)
from bench.limits import ONE_ADDRESS_OPTIONS
from natlab.processes import (
    child_setup,
    exit_on_sigterm,
    free_port,
    stop_process,
    wait_tcp_ready,
)
from natlab.redis import READY_TIMEOUT, redis_server_command, redis_unavailable_reason

__all__ = ["main"]

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_JSON = BENCH_DIR / "results" / "scaleout.json"
#: The added latency of a cross-process relay the issue aims under (p50, loopback).
CROSS_P50_TARGET_MS = 1.0


@dataclass
class Setup:
    name: str
    processes: int
    redis: bool
    spread: str  # the load client's: "pairs" or "split"
    relay: list[dict[str, Any]] = field(default_factory=list)
    rate: list[dict[str, Any]] = field(default_factory=list)


SETUPS = (
    Setup("1 process, memory hub", 1, False, "pairs"),
    Setup("1 process, Redis hub", 1, True, "pairs"),
    Setup("2 processes, pairs within", 2, True, "pairs"),
    Setup("2 processes, pairs split", 2, True, "split"),
)


def _median_of(values: list[float | None]) -> float | None:
    """The median of the figures that exist (None when no run gave one)."""
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def _min_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


@contextmanager
def redis_running(workdir: Path) -> Iterator[str]:
    """redis-server on a free loopback port; its URL. Stopped however the block ends."""
    port = free_port()
    log = workdir / "redis.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            redis_server_command("127.0.0.1", port, workdir / "redis"),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(None),
            start_new_session=True,
        )
    try:
        wait_tcp_ready(port, process, log, READY_TIMEOUT)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


def load_config(
    ports: list[int], pids: list[int], spread: str, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "server": "confide",
        "port": ports[0],
        "ports": ports,
        "spread": spread,
        "serverPids": pids,
        "mode": mode,
        "conns": args.conns,
        "window": args.window,
        "rate": args.rate,
        "warmup": args.warmup,
        "duration": args.duration,
        "deadline": args.warmup + args.duration + CLIENT_GRACE,
    }


def run_all(node: str, args: argparse.Namespace, workdir: Path) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(redis_running(workdir))
        servers: dict[str, list[tuple[subprocess.Popen[bytes], int]]] = {}
        for setup in SETUPS:
            options = (*ONE_ADDRESS_OPTIONS, *(("--redis-url", url) if setup.redis else ()))
            servers[setup.name] = [
                stack.enter_context(
                    started("confide", node, cpu=None, workdir=workdir, options=options)
                )
                for _ in range(setup.processes)
            ]
        for round_number in range(args.rounds):
            order = SETUPS if round_number % 2 == 0 else SETUPS[::-1]
            for setup in order:
                running = servers[setup.name]
                pids = [process.pid for process, _ in running]
                ports = [port for _, port in running]
                for mode, store in (("relay", setup.relay), ("rate", setup.rate)):
                    for pid in pids:
                        settle(pid)
                    result = run_client(
                        node, load_config(ports, pids, setup.spread, mode, args), None
                    )
                    result["bottleneck"] = bottleneck(result)
                    store.append(result)
                    print(
                        f"round {round_number + 1}: {setup.name:<27} {mode:<5} {run_line(result)}",
                        flush=True,
                    )


def summarise(setup: Setup) -> dict[str, Any]:
    def median(rows: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] or 0.0 for r in rows))

    return {
        "name": setup.name,
        "processes": setup.processes,
        "redis": setup.redis,
        "spread": setup.spread,
        "relay_median_per_s": median(setup.relay, "delivered_per_s"),
        "relay_best_per_s": max(r["delivered_per_s"] for r in setup.relay),
        "relay_p99_ms": median(setup.relay, "p99_ms"),
        "relay_server_cpu": median(setup.relay, "server_cpu_util"),
        # Messages per second of the servers' CPU (added up; redis-server's
        # not included): steadier than the rate on a busy machine.
        "relay_per_server_cpu_s": _median_of([per_cpu_second(r) for r in setup.relay]),
        "relay_client_cpu": median(setup.relay, "client_cpu_util"),
        "rate_p50_ms": median(setup.rate, "p50_ms"),
        "rate_p99_ms": median(setup.rate, "p99_ms"),
        # A run without a figure has none to offer; it never counts as 0 ms.
        "rate_best_p50_ms": _min_of([r["p50_ms"] for r in setup.rate]),
        "rate_best_p99_ms": _min_of([r["p99_ms"] for r in setup.rate]),
        "errors": sum(r["errors"] + r["unexpectedCloses"] for r in setup.relay + setup.rate),
        "relay_runs": setup.relay,
        "rate_runs": setup.rate,
    }


def headline(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows of bench/__main__'s table."""
    by_name = {row["name"]: row for row in rows}
    one = by_name["1 process, memory hub"]
    local = by_name["1 process, Redis hub"]
    within = by_name["2 processes, pairs within"]
    split = by_name["2 processes, pairs split"]

    def row(
        metric: str,
        value: float,
        unit: str,
        reference: float | None,
        reference_name: str,
        target: str,
        ok: bool | None,
    ) -> dict[str, Any]:
        return {
            "bench": "scaleout",
            "metric": metric,
            "unit": unit,
            "value": value,
            "reference": reference,
            "reference_name": reference_name,
            "ratio": value / reference if reference else None,
            "target": target,
            "ok": ok,
        }

    added_p50 = split["rate_p50_ms"] - local["rate_p50_ms"]
    added_p99 = split["rate_p99_ms"] - local["rate_p99_ms"]
    reference = one["name"]
    return [
        row("relay msg/s, 2 processes, pairs within (median)", within["relay_median_per_s"],
            "msg/s", one["relay_median_per_s"], reference, ">= 1.00x",
            within["relay_median_per_s"] >= one["relay_median_per_s"]),
        row("relay msg/s, 2 processes, every pair split (median)", split["relay_median_per_s"],
            "msg/s", one["relay_median_per_s"], reference, "(measured)", None),
        row("relay p99 under load, 2 processes, split", split["relay_p99_ms"], "ms",
            one["relay_p99_ms"], reference, "(measured)", None),
        row("relay msg per server CPU-second, every pair split", split["relay_per_server_cpu_s"],
            "msg", local["relay_per_server_cpu_s"], local["name"], "(measured)", None),
        row("relay msg/s, 1 process with the Redis hub (median)", local["relay_median_per_s"],
            "msg/s", one["relay_median_per_s"], reference, "~1.00x", None),
        row(f"added p50 of a cross-process relay at {args.rate:,} msg/s", added_p50, "ms",
            None, local["name"], f"< {CROSS_P50_TARGET_MS:g} ms",
            added_p50 < CROSS_P50_TARGET_MS),
        row(f"added p99 of a cross-process relay at {args.rate:,} msg/s", added_p99, "ms",
            None, local["name"], "(measured)", None),
    ]  # fmt: skip


def print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    print()
    print(
        f"Scale-out over loopback: {s['rounds']} round(s) of {s['duration']} s "
        f"(+{s['warmup']} s warm-up); {s['conns']} connections in pairs, {s['window']} in "
        f"flight each; latency at {s['rate']:,} msg/s offered; {report['cpus']} CPUs, unpinned"
    )
    print(
        f"{'setup':<28} {'relay msg/s':>12} {'msg/CPU-s':>10} {'relay p99':>10} "
        f"{'rate p50':>9} {'rate p99':>9}"
    )
    for row in report["setups"]:
        print(
            f"{row['name']:<28} {row['relay_median_per_s']:>12,.0f} "
            f"{row['relay_per_server_cpu_s'] or float('nan'):>10,.0f} "
            f"{row['relay_p99_ms']:>8.2f}ms {row['rate_p50_ms']:>7.2f}ms "
            f"{row['rate_p99_ms']:>7.2f}ms"
        )
    for row in report["summary"]:
        ok = {True: "ok", False: "MISSED", None: ""}[row["ok"]]
        print(f"  {row['metric']}: {row['value']:,.2f} {row['unit']}  {row['target']} {ok}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scaleout", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conns", type=int, default=500)
    parser.add_argument("--window", type=int, default=4, help="messages in flight per connection")
    parser.add_argument("--rate", type=int, default=2000, help="offered msg/s for latency")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    exit_on_sigterm()

    node = shutil.which("node")
    if node is None:
        print("node not found: the scale-out bench needs Node.js for its load client")
        return 1
    reason = redis_unavailable_reason()
    if reason is not None:
        print(f"scale-out bench not run: {reason}")
        return 1
    raise_nofile_limit()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        run_all(node, args, Path(tmp))
    rows = [summarise(setup) for setup in SETUPS]
    report: dict[str, Any] = {
        "benchmark": "scaleout",
        "settings": {
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "conns": args.conns,
            "window": args.window,
            "rate": args.rate,
            "confide_options": list(CONFIDE_LOAD_OPTIONS),
        },
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "setups": rows,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }
    report["summary"] = headline(rows, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
