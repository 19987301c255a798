"""Signaling relay: Confide's ``/ws`` against PeerJS's server, in one run.

    python -m bench.bench_signaling [--rounds 2] [--duration 3] [--idle 10000]
                                    [--json bench/results/signaling.json]

Starts ``python -m server serve`` (uvloop when installed, rate limit and room
capacity raised so the load is not refused) and PeerJS's server (npm package
``peer``, installed on first use into the git-ignored ``bench/.peerjs``), each
on a free loopback port, and drives both with the same load client,
``bench/loadgen_signaling.mjs`` (Node.js, raw RFC 6455 framing; its docstring
says why a Node client rather than a Python one). Three measurements:

relay
    500 connections in 250 pairs (a room of two each on Confide), each with
    4 messages in flight to its partner: messages relayed per second, and
    latency under that load.
rate
    fixed offered rates (1,000, 5,000, 20,000 and 50,000 messages/s over the
    500 connections; 5,000 is the headline): the p50/p99 latency curve.
idle
    10,000 joined, idle WebSockets on a fresh server (Confide: rooms of ten;
    PeerJS: with ids, sending its HEARTBEAT): growth of the server's RSS (from
    /proc) per connection still open at the end, the baseline read before the
    measuring client starts.

A figure or reference outside what any machine could measure (a zero, say)
shows "reference broken: ..." instead of a ratio and the bench exits 1
(bench/reference.py).

By default each server is pinned to CPU 0 and the load client to CPU 1, so
the ratios compare one core of server work; the load client's CPU (and the
server's) is printed for every run, with the bottleneck. Everything runs for
a fixed time and every process is stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import IO, Any

from bench.limits import ONE_ADDRESS_OPTIONS
from bench.reference import Plausible, compare, exit_code, figure
from natlab.processes import (
    child_setup,
    confide_serve_command,
    exit_on_sigterm,
    free_port,
    process_cpu_seconds,
    rss_bytes,
    stop_process,
    wait_tcp_ready,
)

__all__ = ["CLIENT_BOUND_UTILISATION", "READY_TIMEOUT", "main"]

#: Seconds a server may take to accept its first connection.
READY_TIMEOUT = 15.0
#: Seconds the load client may overrun its own schedule before it is killed.
CLIENT_GRACE = 60.0
#: A process at this share of one core (or more) is taken as the bottleneck.
CLIENT_BOUND_UTILISATION = 0.9
#: A process that waited this share of the time for a CPU was starved by
#: other work on the machine (from /proc/PID/task/*/schedstat).
STARVED_WAIT = 0.1
#: Seconds for `npm install` of PeerJS's server.
NPM_TIMEOUT = 180.0
#: Seconds an idle server is left to settle before its RSS is read.
IDLE_SETTLE = 2.0
#: Confide's idle connections join rooms of this many (issue 13's outside
#: measurement: 10,000 sockets in rooms of ten).
IDLE_ROOM_SIZE = 10
#: An idle measurement counts only if this share of its connections is still
#: open when the client lets go (one that dropped them measured nothing).
IDLE_MIN_OPEN = 0.99
#: Between runs, wait (at most SETTLE_TIMEOUT s) until the server has used
#: under SETTLE_CPU of a core for 0.25 s: it has finished closing the last
#: run's connections, which would otherwise count against the next run.
SETTLE_CPU = 0.05
SETTLE_TIMEOUT = 10.0

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
LOADGEN = BENCH_DIR / "loadgen_signaling.mjs"
PEERJS_PREFIX = BENCH_DIR / ".peerjs"
PEERJS_BIN = PEERJS_PREFIX / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
PEERJS_SPEC = "peer@1"
DEFAULT_JSON = BENCH_DIR / "results" / "signaling.json"
CONFIDE = "confide"
PEERJS = "peerjs-server"
#: Confide's limits are raised for the load (a browser never sends this much): the
#: per-connection token bucket would otherwise refuse the load client, and the per-address
#: limits (connections, joins: bench/limits.py) its thousands of sockets from one address.
CONFIDE_LOAD_OPTIONS = (
    "--rate", "1000000", "--burst", "1000000", "--room-capacity", "16", *ONE_ADDRESS_OPTIONS
)  # fmt: skip


@dataclass
class Target:
    name: str
    kind: str  # "confide" or "peerjs": the load client's dialect
    description: str
    relay: list[dict[str, Any]] = field(default_factory=list)
    rate: list[dict[str, Any]] = field(default_factory=list)
    idle: dict[str, Any] | None = None


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to its hard limit (inherited by children)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


def server_command(kind: str, node: str, port: int, options: Sequence[str] = ()) -> list[str]:
    if kind == "confide":
        return confide_serve_command(port, *CONFIDE_LOAD_OPTIONS, *options)
    # PeerJS's own command line; its concurrent limit (5,000) is raised for the idle test.
    return [
        node,
        str(PEERJS_BIN),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--concurrent_limit",
        "100000",
    ]


@contextmanager
def started(
    kind: str, node: str, *, cpu: int | None, workdir: Path, options: Sequence[str] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A server on a free loopback port; stopped when the block ends, however it ends.

    ``options``: more ``confide serve`` options (bench/bench_scaleout.py's ``--redis-url``).
    """
    port = free_port()
    log = workdir / f"{kind}-{port}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            server_command(kind, node, port, options),
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            # PeerJS prints a line per connection: to a file, not a pipe that could fill.
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(cpu),
            start_new_session=True,
        )
    try:
        wait_tcp_ready(port, process, log, READY_TIMEOUT)
        yield process, port
    finally:
        stop_process(process)


def client_process(
    node: str, config: dict[str, Any], cpu: int | None, stdin: int | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [node, str(LOADGEN), json.dumps(config)],
        cwd=REPO_ROOT,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=child_setup(cpu),
        start_new_session=True,
    )


def run_client(node: str, config: dict[str, Any], cpu: int | None) -> dict[str, Any]:
    """Run one bounded load client to the end and return its JSON result."""
    timeout = config["deadline"] + 10
    process = client_process(node, config, cpu)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        stop_process(process)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"load client printed nothing (exit {process.returncode}): {err[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise RuntimeError(f"load client failed: {result['error']}")
    return result


def settle(pid: int) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        before = process_cpu_seconds(pid)
        time.sleep(0.25)
        if process_cpu_seconds(pid) - before < SETTLE_CPU * 0.25:
            return


def run_line(r: dict[str, Any]) -> str:
    if "failed" in r:
        return f"FAILED: {r['failed']}"
    return (
        f"{r['delivered_per_s']:>9,.0f} msg/s  p50 {r['p50_ms']:7.2f} ms  "
        f"p99 {r['p99_ms']:7.2f} ms  client CPU {r['client_cpu_util']:.0%}  "
        f"server CPU {(r['server_cpu_util'] or 0.0):.0%}  waited for a CPU: client "
        f"{(r.get('client_cpu_wait') or 0.0):.0%} server {(r.get('server_cpu_wait') or 0.0):.0%}  "
        f"(bottleneck: {r['bottleneck']})"
    )


def bottleneck(result: dict[str, Any]) -> str:
    client = result["client_cpu_util"] >= CLIENT_BOUND_UTILISATION
    server = (result.get("server_cpu_util") or 0.0) >= CLIENT_BOUND_UTILISATION
    if client and server:
        return "both"
    if client:
        return "client"
    if server:
        return "server"
    waited = max(result.get("client_cpu_wait") or 0.0, result.get("server_cpu_wait") or 0.0)
    if waited >= STARVED_WAIT:
        return "other work on the machine"
    return "neither"


def _read_json_line(stream: IO[str], deadline: float) -> dict[str, Any]:
    # The client prints one line when every connection is open; readline
    # blocks, so the client's own deadline (it exits) bounds the wait.
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        if line.startswith("{"):
            obj: dict[str, Any] = json.loads(line)
            return obj
    raise RuntimeError("load client ended without reporting")


def measure_idle(
    target: Target, node: str, args: argparse.Namespace, workdir: Path, server_cpu: int | None
) -> dict[str, Any]:
    """RSS growth of a fresh server for ``args.idle`` joined, idle connections.

    The baseline is read before the measuring client starts (issue 13: read 2 s
    after, it held whatever had opened by then: all of peerjs-server's 10,000,
    which then read 0.0 KiB each). The connections stay joined (Confide: rooms
    of IDLE_ROOM_SIZE; PeerJS: with ids, sending its HEARTBEAT) until ``after``
    is read, and the client then reports how many are still open.
    """
    with started(target.kind, node, cpu=server_cpu, workdir=workdir) as (server, port):
        config = {
            "server": target.kind,
            "port": port,
            "mode": "idle",
            "serverPid": server.pid,
            "roomSize": IDLE_ROOM_SIZE,
            "hold": 120,
            "deadline": 180,
        }
        # Warm-up: a few connections first, opened and closed, so that imports,
        # first-use caches and the like are in the baseline rather than counted
        # per connection.
        warmup = client_process(node, {**config, "conns": 100}, args.client_cpu, stdin=PIPE)
        try:
            assert warmup.stdout is not None
            _read_json_line(warmup.stdout, time.monotonic() + 120)
        finally:
            stop_process(warmup)
        settle(server.pid)
        time.sleep(IDLE_SETTLE)
        before = rss_bytes(server.pid)
        client = client_process(node, {**config, "conns": args.idle}, args.client_cpu, stdin=PIPE)
        try:
            assert client.stdin is not None and client.stdout is not None
            ready = _read_json_line(client.stdout, time.monotonic() + 170)
            if "error" in ready:
                raise RuntimeError(f"idle load client: {ready['error']}")
            settle(server.pid)
            time.sleep(IDLE_SETTLE)
            after = rss_bytes(server.pid)
            client.stdin.write("close\n")
            client.stdin.flush()
            closing = _read_json_line(client.stdout, time.monotonic() + 30)
        finally:
            if client.stdin is not None:
                client.stdin.close()
            stop_process(client)
        asked = args.idle
        opened = int(ready["conns"])
        still_open = int(closing["still_open"])
        return {
            "asked": asked,
            "connections": opened,
            "still_open_at_end": still_open,
            "room_size": IDLE_ROOM_SIZE if target.kind == "confide" else None,
            "rss_before": before,
            "rss_after": after,
            "growth": after - before,
            # Per connection that was open when ``after`` was read.
            "per_connection": (after - before) / max(1, still_open),
            "open_seconds": ready["open_s"],
            "client_cpu_s": ready["client_cpu_s"],
            "unexpected_closes": closing["unexpectedCloses"],
        }


def idle_problem(idle: dict[str, Any]) -> str | None:
    """Why an idle measurement cannot stand, or None."""
    if idle["still_open_at_end"] < idle["asked"] * IDLE_MIN_OPEN:
        return (
            f"only {idle['still_open_at_end']:,} of {idle['asked']:,} connections "
            "still open at the end"
        )
    return None


def ensure_peerjs(npm: str | None) -> str | None:
    """Install PeerJS's server into bench/.peerjs (git-ignored) if it is not there."""
    if PEERJS_BIN.exists():
        return None
    if npm is None:
        return "npm not found"
    print(f"installing {PEERJS_SPEC} into {PEERJS_PREFIX.relative_to(REPO_ROOT)} ...", flush=True)
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PEERJS_PREFIX),
                "--no-audit",
                "--no-fund",
                PEERJS_SPEC,
            ],
            cwd=REPO_ROOT,
            check=True,
            timeout=NPM_TIMEOUT,
            capture_output=True,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"npm install {PEERJS_SPEC} failed: {exc}"
    return None if PEERJS_BIN.exists() else "npm install did not produce peerjs.js"


def load_config(
    kind: str, port: int, pid: int, mode: str, args: argparse.Namespace, rate: int = 0
) -> dict[str, Any]:
    return {
        "server": kind,
        "port": port,
        "serverPid": pid,
        "mode": mode,
        "conns": args.conns,
        "window": args.window,
        "rate": rate,
        "warmup": args.warmup,
        "duration": args.duration,
        "deadline": args.warmup + args.duration + CLIENT_GRACE,
    }


#: Offered rates of the latency curve (issue 13 item 5), msg/s.
DEFAULT_CURVE = (1_000, 5_000, 20_000, 50_000)


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--curve: not a list of integers: {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError(f"--curve: rates must be positive: {text!r}")
    return rates


def offered_rates(args: argparse.Namespace) -> list[int]:
    """The latency curve's offered rates, the headline rate among them."""
    return sorted({args.rate, *args.curve})


def run_all(targets: list[Target], node: str, args: argparse.Namespace, workdir: Path) -> None:
    server_cpu = args.server_cpu
    with ExitStack() as stack:
        running = {
            t.name: stack.enter_context(started(t.kind, node, cpu=server_cpu, workdir=workdir))
            for t in targets
        }
        for round_number in range(args.rounds):
            order = targets if round_number % 2 == 0 else targets[::-1]
            for target in order:
                process, port = running[target.name]
                runs = [("relay", 0)] + [("rate", rate) for rate in offered_rates(args)]
                for mode, rate in runs:
                    settle(process.pid)
                    try:
                        result = run_client(
                            node,
                            load_config(target.kind, port, process.pid, mode, args, rate),
                            args.client_cpu,
                        )
                        result["bottleneck"] = bottleneck(result)
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                        # One run that overran (a starved machine at 50k msg/s) must not
                        # lose the others; its figures are missing, never zero.
                        result = failed_run(rate, exc)
                    if mode == "relay":
                        target.relay.append(result)
                    else:
                        target.rate.append(result)
                    label = "relay" if mode == "relay" else f"{rate / 1000:g}k/s"
                    print(
                        f"round {round_number + 1}: {target.name:<14} {label:<6} "
                        f"{run_line(result)}",
                        flush=True,
                    )
    if args.idle > 0:
        for target in targets:
            try:
                target.idle = measure_idle(target, node, args, workdir, server_cpu)
            except (RuntimeError, OSError) as exc:
                # One failed phase must not lose the relay and latency figures.
                print(f"idle: {target.name:<14} failed: {exc}", flush=True)
                continue
            idle = target.idle
            print(
                f"idle: {target.name:<14} {idle['connections']:,} of {idle['asked']:,} opened, "
                f"{idle['still_open_at_end']:,} still open at the end; RSS "
                f"+{idle['growth'] / 2**20:.1f} MiB = {idle['per_connection'] / 1024:.1f} KiB each "
                f"(client CPU {idle['client_cpu_s']:.1f} s to open them)",
                flush=True,
            )


def failed_run(rate: int, exc: BaseException) -> dict[str, Any]:
    """A run without figures: every measured value None (so rows say "missing")."""
    return {
        "failed": str(exc)[:500],
        "offered_per_s": rate,
        **dict.fromkeys(
            ("delivered_per_s", "p50_ms", "p99_ms", "client_cpu_util", "server_cpu_util")
        ),
        "bottleneck": "failed run",
        "errors": 0,
        "unexpectedCloses": 0,
    }


def per_cpu_second(result: dict[str, Any]) -> float | None:
    cpu = result.get("server_cpu_util")
    delivered = result["delivered_per_s"]
    return float(delivered / cpu) if cpu and delivered is not None else None


def _median(values: list[float | None]) -> float | None:
    """The median of the figures that exist; None (not 0.0) when none does."""
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _best(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def latency_curve(rate_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """p50/p99 per offered rate: the median over the rounds and the best round."""
    curve = []
    for offered in sorted({r["offered_per_s"] for r in rate_runs}):
        runs = [r for r in rate_runs if r["offered_per_s"] == offered]
        curve.append(
            {
                "offered_per_s": offered,
                "sent_per_s": _median([r.get("sent_per_s") for r in runs]),
                "delivered_per_s": _median([r["delivered_per_s"] for r in runs]),
                "p50_ms": _median([r["p50_ms"] for r in runs]),
                "p99_ms": _median([r["p99_ms"] for r in runs]),
                # Other work on a shared machine only ever slows a run down, so
                # the best round is the one least disturbed.
                "best_p50_ms": _best([r["p50_ms"] for r in runs]),
                "best_p99_ms": _best([r["p99_ms"] for r in runs]),
                "server_cpu": _median([r["server_cpu_util"] for r in runs]),
                "client_cpu": _median([r["client_cpu_util"] for r in runs]),
                "bottlenecks": sorted({r["bottleneck"] for r in runs}),
            }
        )
    return curve


def summarise(target: Target, headline_rate: int) -> dict[str, Any]:
    def median(rows: list[dict[str, Any]], key: str) -> float | None:
        return _median([r[key] for r in rows])

    curve = latency_curve(target.rate)
    headline = next(c for c in curve if c["offered_per_s"] == headline_rate)
    return {
        "name": target.name,
        "description": target.description,
        "relay_median_per_s": median(target.relay, "delivered_per_s"),
        "relay_best_per_s": max(
            (r["delivered_per_s"] for r in target.relay if r["delivered_per_s"] is not None),
            default=None,
        ),
        "relay_p99_ms": median(target.relay, "p99_ms"),
        # Messages per second of server CPU: what one core would relay, and less
        # disturbed than the rate by other work that takes the CPU away.
        "relay_per_server_cpu_s": _median([per_cpu_second(r) for r in target.relay]),
        "relay_client_cpu": median(target.relay, "client_cpu_util"),
        "relay_server_cpu": median(target.relay, "server_cpu_util"),
        "relay_client_bound_rounds": sum(
            r["bottleneck"] in ("client", "both") for r in target.relay
        ),
        "rate_offered_per_s": headline_rate,
        "rate_delivered_per_s": headline["delivered_per_s"],
        "rate_p50_ms": headline["p50_ms"],
        "rate_p99_ms": headline["p99_ms"],
        # The headline compares bests (see latency_curve).
        "rate_best_p50_ms": headline["best_p50_ms"],
        "rate_best_p99_ms": headline["best_p99_ms"],
        "rate_client_cpu": headline["client_cpu"],
        "rate_server_cpu": headline["server_cpu"],
        "curve": curve,
        "starved_runs": sum(
            r["bottleneck"] == "other work on the machine" for r in target.relay + target.rate
        ),
        "idle": target.idle,
        "errors": sum(r["errors"] + r["unexpectedCloses"] for r in target.relay + target.rate),
        "relay_runs": target.relay,
        "rate_runs": target.rate,
    }


#: What a figure of each unit can be on any machine this runs on (bench/reference.py):
#: a relay under 1,000 msg/s or an idle WebSocket under 1 KiB measured something else.
PLAUSIBLE = {
    "msg/s": Plausible(1_000, 100_000_000),
    "msg": Plausible(1_000, 100_000_000),
    "ms": Plausible(0.005, 10_000),
    "KiB": Plausible(1.0, 1024.0),
}


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline rows (Confide against PeerJS) for the table and bench/__main__."""
    ours = next(r for r in rows if r["name"] == CONFIDE)
    theirs = next((r for r in rows if r["name"] == PEERJS), None)

    def row(metric: str, mine: Any, ref: Any, unit: str, higher: bool) -> dict[str, Any]:
        if theirs is None:
            return figure("signaling", metric, mine, unit, plausible=PLAUSIBLE[unit])
        return compare(
            "signaling", metric, mine, unit, ref, PEERJS,
            plausible=PLAUSIBLE[unit], higher_is_better=higher,
        )  # fmt: skip

    def pair(key: str) -> tuple[Any, Any]:
        return ours[key], None if theirs is None else theirs[key]

    rate = f"{ours['rate_offered_per_s']:,} msg/s"
    out = [
        row("relay msg/s, 500 conns x 4 in flight (best)", *pair("relay_best_per_s"), "msg/s",
            True),
        row("relay msg/s, 500 conns x 4 in flight (median)", *pair("relay_median_per_s"), "msg/s",
            True),
        row("relay msg per server CPU-second (median)", *pair("relay_per_server_cpu_s"), "msg",
            True),
        row(f"p99 latency at {rate} offered (best)", *pair("rate_best_p99_ms"), "ms", False),
        row(f"p99 latency at {rate} offered (median)", *pair("rate_p99_ms"), "ms", False),
        row(f"p50 latency at {rate} offered (best)", *pair("rate_best_p50_ms"), "ms", False),
    ]  # fmt: skip
    # The rest of the curve (issue 13 item 5): p99 at every other offered rate.
    theirs_curve = {c["offered_per_s"]: c for c in theirs["curve"]} if theirs else {}
    for point in ours["curve"]:
        offered = point["offered_per_s"]
        if offered == ours["rate_offered_per_s"]:
            continue
        ref = theirs_curve.get(offered, {}).get("best_p99_ms")
        out.append(row(f"p99 latency at {offered:,} msg/s offered (best)",
                       point["best_p99_ms"], ref, "ms", False))  # fmt: skip
    # What limited the runs behind each row (python -m bench prints it).
    relay = sorted({r["bottleneck"] for t in rows for r in t["relay_runs"]})
    for row_ in out:
        offered = ours["rate_offered_per_s"] if "relay" not in row_["metric"] else None
        for point in ours["curve"]:
            if f"{point['offered_per_s']:,} msg/s" in row_["metric"]:
                offered = point["offered_per_s"]
        runs = {
            r["bottleneck"]
            for t in rows
            for r in t["rate_runs"]
            if offered is not None and r["offered_per_s"] == offered
        }
        row_["bottleneck"] = ", ".join(sorted(runs) if offered is not None else relay)
    if ours["idle"] is not None or (theirs and theirs["idle"] is not None):
        out.append(idle_row(ours, theirs))
    return out


def idle_row(ours: dict[str, Any], theirs: dict[str, Any] | None) -> dict[str, Any]:
    """RSS per joined idle WebSocket; a side that lost its connections is broken."""

    def kib(side: dict[str, Any] | None) -> float | None:
        idle = None if side is None else side["idle"]
        return None if idle is None else float(idle["per_connection"]) / 1024

    metric = "RSS per joined idle WebSocket"
    if theirs is None:
        row = figure("signaling", metric, kib(ours), "KiB", plausible=PLAUSIBLE["KiB"])
    else:
        row = compare(
            "signaling", metric, kib(ours), "KiB", kib(theirs), PEERJS,
            plausible=PLAUSIBLE["KiB"], higher_is_better=False,
        )  # fmt: skip
    for side, name in ((theirs, f"{PEERJS} reference"), (ours, "figure")):
        idle = None if side is None else side["idle"]
        problem = None if idle is None else idle_problem(idle)
        if problem is not None and not row["broken"]:
            kind = "reference" if side is theirs else "measurement"
            row.update(broken=f"{kind} broken: {name}: {problem}", ratio=None, ok=False)
    return row


def _f(value: float | None, spec: str, suffix: str = "") -> str:
    """``value`` formatted, or "-" when it was not measured (never a silent 0)."""
    return "-" if value is None else f"{value:{spec}}{suffix}"


def print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    print()
    print(
        f"Signaling relay over loopback: {s['rounds']} round(s) of {s['duration']} s "
        f"(+{s['warmup']} s warm-up); {s['conns']} connections in pairs, {s['window']} in flight "
        f"each; latency at {', '.join(f'{r:,}' for r in s['rates'])} msg/s offered "
        f"(headline {s['rate']:,}); idle: {s['idle']:,} WebSockets, Confide's in rooms of "
        f"{IDLE_ROOM_SIZE}"
    )
    print(f"pinning: {s['pinning']}")
    print(f"load client: {s['client']}")
    print(f"Confide runs with {' '.join(CONFIDE_LOAD_OPTIONS)} (load far above a browser's)")
    print()
    header = (
        f"{'server':<14} {'relay/s':>9} {'best/s':>9} {'p99@load':>9} {'cli CPU':>8} "
        f"{'srv CPU':>8} | {'idle KiB/conn':>13} {'open at end':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in report["targets"]:
        idle = r["idle"]
        idle_text = (
            f"{idle['per_connection'] / 1024:>13.1f} {idle['still_open_at_end']:>6,}/"
            f"{idle['asked']:<,}"
            if idle
            else f"{'-':>13} {'-':>12}"
        )
        print(
            f"{r['name']:<14} {_f(r['relay_median_per_s'], '>9,.0f')} "
            f"{_f(r['relay_best_per_s'], '>9,.0f')} {_f(r['relay_p99_ms'], '>7.1f', 'ms')} "
            f"{_f(r['relay_client_cpu'], '>8.0%')} {_f(r['relay_server_cpu'], '>8.0%')} | "
            f"{idle_text}"
        )
    for r in report["targets"]:
        print(
            f"{r['name']}: {_f(r['relay_per_server_cpu_s'], ',.0f')} messages relayed per second "
            "of server CPU (median over the relay rounds)"
        )
    print()
    print("latency curve (open loop, messages spread over the connections):")
    header = (
        f"{'server':<14} {'offered/s':>10} {'delivered/s':>12} {'best p50':>10} {'p50':>10} "
        f"{'best p99':>10} {'p99':>10} {'srv CPU':>8} {'cli CPU':>8}  bottleneck"
    )
    print(header)
    print("-" * len(header))
    for r in report["targets"]:
        for c in r["curve"]:
            print(
                f"{r['name']:<14} {c['offered_per_s']:>10,} {_f(c['delivered_per_s'], '>12,.0f')} "
                f"{_f(c['best_p50_ms'], '>8.2f', 'ms')} {_f(c['p50_ms'], '>8.2f', 'ms')} "
                f"{_f(c['best_p99_ms'], '>8.2f', 'ms')} {_f(c['p99_ms'], '>8.2f', 'ms')} "
                f"{_f(c['server_cpu'], '>8.0%')} {_f(c['client_cpu'], '>8.0%')}  "
                f"{', '.join(c['bottlenecks'])}"
            )
    print()
    for c in report["summary"]:
        if c["broken"]:
            print(f"{c['metric']}: {c['broken']}")
        elif c["ratio"] is None:
            print(f"{c['metric']}: {_f(c['value'], ',.2f')} {c['unit']} (no reference run)")
        else:
            verdict = "met" if c["ok"] else "NOT met"
            print(
                f"{c['metric']}: {c['value']:,.2f} vs {c['reference']:,.2f} {c['unit']} = "
                f"{c['ratio']:.2f}x (target {c['target']}: {verdict})"
            )
    print(
        "relay/s, p99@load, p50 and p99 are medians over the rounds; best p50/p99 are the "
        "lowest of any round (CPU columns are medians, in shares of one core)"
    )
    for r in report["targets"]:
        if r["starved_runs"]:
            print(
                f"note: in {r['starved_runs']} run(s) against {r['name']} the server or the client "
                f"waited >= {STARVED_WAIT:.0%} of the time for a CPU (other work on the machine): "
                "those figures are worse than the server's own"
            )
        if r["relay_client_bound_rounds"]:
            print(
                f"note: the load client was at >= {CLIENT_BOUND_UTILISATION:.0%} of a core in "
                f"{r['relay_client_bound_rounds']} relay round(s) against {r['name']}: the "
                "client, not only the server, limited those rates (they are lower bounds)"
            )
        for c in r["curve"]:
            sent = c["sent_per_s"]
            if sent is not None and sent < 0.95 * c["offered_per_s"]:
                print(
                    f"note: the load client offered only {sent:,.0f} of "
                    f"{c['offered_per_s']:,} msg/s to {r['name']} (it fell behind)"
                )
            delivered = c["delivered_per_s"]
            fully_offered = sent is None or sent >= 0.95 * c["offered_per_s"]
            if fully_offered and delivered is not None and delivered < 0.95 * c["offered_per_s"]:
                print(
                    f"note: {r['name']} delivered {delivered:,.0f} of "
                    f"{c['offered_per_s']:,} msg/s offered: past its capacity there"
                )
        if r["errors"]:
            print(f"warning: {r['errors']} socket errors or unexpected closes with {r['name']}")
    load = report["load_average"]
    print(
        f"machine load average before/after: {load['before']:.2f}/{load['after']:.2f} on "
        f"{report['cpus']} CPUs (other work on the machine lowers every figure)"
    )
    print(f"JSON: {report['json']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_signaling", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conns", type=int, default=500)
    parser.add_argument("--window", type=int, default=4, help="messages in flight per connection")
    parser.add_argument("--rate", type=int, default=5000, help="offered msg/s, headline latency")
    parser.add_argument(
        "--curve",
        type=_rates,
        default=DEFAULT_CURVE,
        help="offered msg/s of the latency curve, comma-separated",
    )
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections (0: skip)")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place processes")
    parser.add_argument("--no-peerjs", action="store_true", help="measure Confide only")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    exit_on_sigterm()

    node = shutil.which("node")
    if node is None:
        print("node not found: the signaling bench needs Node.js for its load client")
        return 1
    nofile = raise_nofile_limit()
    if args.idle + 200 > nofile:
        print(f"open-file limit {nofile}: idle connections lowered", file=sys.stderr)
        args.idle = max(0, nofile - 200)
    cpus = os.cpu_count() or 1
    pin = not args.no_pin and cpus >= 2
    args.server_cpu = 0 if pin else None
    args.client_cpu = 1 if pin else None

    targets = [Target(CONFIDE, "confide", "python -m server serve (uvloop if installed)")]
    skipped = None
    if not args.no_peerjs:
        skipped = ensure_peerjs(shutil.which("npm"))
        if skipped is None:
            targets.append(Target(PEERJS, "peerjs", f"PeerJS server ({PEERJS_SPEC}) on Node.js"))
        else:
            print(f"peerjs-server not run: {skipped}", file=sys.stderr)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as tmp:
        run_all(targets, node, args, Path(tmp))
    rows = [summarise(t, args.rate) for t in targets]
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    report: dict[str, Any] = {
        "benchmark": "signaling",
        "settings": {
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "conns": args.conns,
            "window": args.window,
            "rate": args.rate,
            "rates": offered_rates(args),
            "idle": args.idle,
            "idle_room_size": IDLE_ROOM_SIZE,
            "pinning": (
                "servers on CPU 0, load client on CPU 1"
                if pin
                else "none (the scheduler places servers and client)"
            ),
            "client": f"bench/loadgen_signaling.mjs on Node.js {version} (raw framing)",
            "confide_options": list(CONFIDE_LOAD_OPTIONS),
        },
        "cpus": cpus,
        "python": sys.version.split()[0],
        "peerjs_skipped": skipped,
        "targets": rows,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "json": str(args.json),
    }
    report["summary"] = comparisons(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report)
    return exit_code(report["summary"])


if __name__ == "__main__":
    sys.exit(main())
