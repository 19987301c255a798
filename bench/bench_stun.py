"""STUN Binding throughput: the embedded responder against coturn, in one run.

    python -m bench.bench_stun [--duration 5] [--rounds 2] [--json bench/results/stun.json]

Starts ``python -m server stun`` (uvloop when installed, rate limiting off) and
coturn's ``turnserver --stun-only``, each on a free loopback port, then runs the
load client (bench.loadgen_stun, its own process) against each in turn,
alternating which goes first, under two CPU placements:

- ``pinned``: every thread of the server on CPU 0, the client on CPU 1, so
  each side has exactly one core: the ratio compares one core of server work.
- ``shared``: no affinity; the scheduler places everything, so coturn may
  spread its threads (one per CPU) over both cores, competing with the client.

Prints a table and writes JSON; both servers are stopped however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from natlab.processes import child_setup, free_port, stop_process

__all__ = ["CLIENT_BOUND_UTILISATION", "READY_TIMEOUT", "main"]

#: Seconds a server may take to answer its first Binding request.
READY_TIMEOUT = 10.0
#: Seconds the load client may overrun its own duration before it is killed.
CLIENT_GRACE = 30.0
#: A process counts as a bottleneck at this share of one core (or more).
CLIENT_BOUND_UTILISATION = 0.95
#: A server left behind by a dead bench stops by itself after the run plus this.
SERVER_GRACE = 120.0

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "stun.json"
RESPONDER = "embedded responder"
COTURN = "coturn"


@dataclass(frozen=True)
class Placement:
    name: str
    server_cpus: frozenset[int] | None  # None: all CPUs
    client_cpu: int | None  # None: not pinned
    description: str


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    description: str
    rounds: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def wait_ready(host: str, port: int, process: subprocess.Popen[bytes]) -> None:
    """Poll with Binding requests until one is answered, or fail after READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early with {process.returncode}")
            sock.sendto(request, (host, port))
            try:
                reply = sock.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if reply[8:20] == request[8:20]:
                return
    raise RuntimeError(f"no STUN answer from {host}:{port} within {READY_TIMEOUT} s")


def set_affinity(pid: int, cpus: frozenset[int] | None) -> None:
    """Pin every thread of ``pid`` (sched_setaffinity acts on one thread only)."""
    mask = cpus if cpus is not None else frozenset(range(os.cpu_count() or 1))
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), mask)
        except ProcessLookupError:
            pass  # a thread that just exited


@contextmanager
def started(
    name: str, command: list[str], port: int, description: str, *, log: Path
) -> Iterator[Target]:
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(),
        )
    try:
        wait_ready("127.0.0.1", port, process)
        yield Target(name, port, process, description)
    finally:
        stop_process(process)


def responder_command(port: int, lifetime: float, stats_file: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "server",
        "stun",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-rate-limit",
        "--duration",
        str(lifetime),
        "--stats-file",
        str(stats_file),
    ]


def coturn_command(turnserver: str, port: int, workdir: Path) -> list[str]:
    # Plain STUN only, as close to the responder's job as coturn gets: no
    # config file, CLI, TCP/TLS/DTLS, RFC 5780, old-STUN MAPPED-ADDRESS or
    # SOFTWARE; pid file and database in the bench's temporary folder.
    return [
        turnserver,
        "-n",
        "--no-cli",
        "--stun-only",
        "--listening-ip",
        "127.0.0.1",
        "--listening-port",
        str(port),
        "--no-tcp",
        "--no-tls",
        "--no-dtls",
        "--no-rfc5780",
        "--no-stun-backward-compatibility",
        "--response-origin-only-with-rfc5780",
        "--no-software-attribute",
        "--pidfile",
        str(workdir / "turnserver.pid"),
        "--db",
        str(workdir / "turndb"),
        "--log-file",
        "stdout",
        "--simple-log",
    ]


def run_client(target: Target, placement: Placement, args: argparse.Namespace) -> dict[str, Any]:
    set_affinity(target.process.pid, placement.server_cpus)
    command = [
        sys.executable,
        "-m",
        "bench.loadgen_stun",
        "--port",
        str(target.port),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--window",
        str(args.window),
        "--sockets",
        str(args.sockets),
        "--server-pid",
        str(target.process.pid),
    ]
    if placement.client_cpu is not None:
        command += ["--cpu", str(placement.client_cpu)]
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=args.duration + args.warmup + CLIENT_GRACE,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load client failed: {completed.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(completed.stdout)
    if target.process.poll() is not None:
        raise RuntimeError(f"{target.name} exited during the run")
    result["bottleneck"] = bottleneck(result)
    return result


def bottleneck(result: dict[str, Any]) -> str:
    """Which process had (about) a full core: "client", "server", "both" or "neither".

    "neither" means something else held the CPU: other work on the machine.
    """
    client = result["client_cpu_utilisation"] >= CLIENT_BOUND_UTILISATION
    server = (result["server_cpu_utilisation"] or 0.0) >= CLIENT_BOUND_UTILISATION
    if client and server:
        return "both"
    if client:
        return "client"
    if server:
        return "server"
    return "neither"


def summarise(target: Target, placement: str) -> dict[str, Any]:
    rounds = target.rounds[placement]
    rates = [r["rate"] for r in rounds]
    efficiency = [
        r["rate"] / r["server_cpu_utilisation"] for r in rounds if r["server_cpu_utilisation"]
    ]
    return {
        "name": target.name,
        "description": target.description,
        "median_rate": statistics.median(rates),
        "best_rate": max(rates),
        "rates": rates,
        # Responses per CPU-second of the server (all its threads): less
        # sensitive to other work on the machine than the rate itself.
        "median_per_server_cpu_second": statistics.median(efficiency) if efficiency else None,
        "median_client_cpu": statistics.median(r["client_cpu_utilisation"] for r in rounds),
        "median_server_cpu": statistics.median(r["server_cpu_utilisation"] or 0.0 for r in rounds),
        "client_bound_rounds": sum(r["bottleneck"] in ("client", "both") for r in rounds),
        "contended_rounds": sum(r["bottleneck"] == "neither" for r in rounds),
        "stalls": sum(r["stalls"] for r in rounds),
        "bad_responses": sum(r["bad"] for r in rounds),
        "rounds": rounds,
    }


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None] | None:
    if len(rows) != 2:
        return None
    ours, theirs = rows
    per_cpu = None
    if ours["median_per_server_cpu_second"] and theirs["median_per_server_cpu_second"]:
        per_cpu = ours["median_per_server_cpu_second"] / theirs["median_per_server_cpu_second"]
    return {
        "median": ours["median_rate"] / theirs["median_rate"],
        "best": ours["best_rate"] / theirs["best_rate"],
        "per_server_cpu_second": per_cpu,
    }


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print()
    print(
        f"STUN Binding responses/s over loopback: {settings['rounds']} round(s) of "
        f"{settings['duration']} s (+{settings['warmup']} s warm-up) per server and placement, "
        f"{settings['sockets']} client sockets x {settings['window']} requests in flight"
    )
    print(f"the responder runs with rate limiting {settings['rate_limiting']}")
    for placement in report["placements"]:
        rows = placement["targets"]
        print()
        print(f"placement {placement['name']}: {placement['description']}")
        header = (
            f"{'server':<20} {'median/s':>10} {'best/s':>10} {'per srv CPU-s':>14} "
            f"{'client CPU':>11} {'server CPU':>11} {'client-bound':>13} {'stalls':>7}"
        )
        print(header)
        print("-" * len(header))
        for row in rows:
            per_cpu = row["median_per_server_cpu_second"]
            print(
                f"{row['name']:<20} {row['median_rate']:>10,.0f} {row['best_rate']:>10,.0f} "
                f"{per_cpu or 0:>14,.0f} "
                f"{row['median_client_cpu']:>10.0%} {row['median_server_cpu']:>10.0%} "
                f"{row['client_bound_rounds']:>6}/{len(row['rounds']):<6} {row['stalls']:>7}"
            )
        ratio = placement["ratio"]
        if ratio is not None:
            per_cpu_text = (
                f", {ratio['per_server_cpu_second']:.2f}x per server CPU-second"
                if ratio["per_server_cpu_second"]
                else ""
            )
            print(
                f"responder / coturn: {ratio['median']:.2f}x (median rates), "
                f"{ratio['best']:.2f}x (best rates){per_cpu_text}; target >= 0.90x "
                f"{'met' if ratio['median'] >= 0.9 else 'NOT met'} on medians"
            )
        for row in rows:
            if row["client_bound_rounds"]:
                print(
                    f"  note: the load client used >= {CLIENT_BOUND_UTILISATION:.0%} of a core in "
                    f"{row['client_bound_rounds']} round(s) against {row['name']}: the client "
                    "limited those rates too, so they are lower bounds for the server"
                )
            if row["contended_rounds"]:
                print(
                    f"  note: in {row['contended_rounds']} round(s) against {row['name']} neither "
                    "process had a full core: other work on the machine took the CPU"
                )
            if row["bad_responses"]:
                print(f"  warning: {row['bad_responses']} unexpected datagrams from {row['name']}")
    if report["responder_counters"] is not None:
        print()
        print(f"responder's own counters: {report['responder_counters']}")
    load = report["load_average"]
    print(
        f"machine load average before/after: {load['before']:.2f}/{load['after']:.2f} "
        f"on {report['cpus']} CPUs (other work on the machine lowers the rates)"
    )
    print(f"JSON: {report['json']}")


def placements_for(choice: str, cpus: int) -> list[Placement]:
    pinned = Placement(
        "pinned",
        frozenset({0}),
        1,
        "every server thread on CPU 0, load client on CPU 1 (one core each)",
    )
    shared = Placement(
        "shared",
        None,
        None,
        "no affinity: the scheduler places the server threads and the client on all CPUs",
    )
    if cpus < 2:
        return [shared]
    return {"pinned": [pinned], "shared": [shared], "both": [pinned, shared]}[choice]


def run_all(
    args: argparse.Namespace,
    workdir: Path,
    turnserver: str | None,
    placements: list[Placement],
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """Start the servers, run the rounds, stop the servers (always)."""
    stats_file = workdir / "responder-stats.json"
    lifetime = (
        len(placements) * args.rounds * 2 * (args.duration + args.warmup + CLIENT_GRACE)
        + SERVER_GRACE
    )
    with ExitStack() as stack:
        port = free_port("127.0.0.1", socket.SOCK_DGRAM)
        targets = [
            stack.enter_context(
                started(
                    RESPONDER,
                    responder_command(port, lifetime, stats_file),
                    port,
                    "python -m server stun (uvloop if installed), rate limiting off",
                    log=workdir / "responder.log",
                )
            )
        ]
        if turnserver is not None:
            port = free_port("127.0.0.1", socket.SOCK_DGRAM)
            targets.append(
                stack.enter_context(
                    started(
                        COTURN,
                        coturn_command(turnserver, port, workdir),
                        port,
                        "turnserver --stun-only (coturn 4.x: one UDP thread per CPU)",
                        log=workdir / "coturn.log",
                    )
                )
            )
        for placement in placements:
            for round_number in range(args.rounds):
                order = targets if round_number % 2 == 0 else targets[::-1]
                for target in order:
                    result = run_client(target, placement, args)
                    target.rounds.setdefault(placement.name, []).append(result)
                    print(
                        f"{placement.name} round {round_number + 1}: {target.name:<20} "
                        f"{result['rate']:>10,.0f}/s  client CPU "
                        f"{result['client_cpu_utilisation']:.0%}  server CPU "
                        f"{(result['server_cpu_utilisation'] or 0.0):.0%}  "
                        f"(bottleneck: {result['bottleneck']})",
                        flush=True,
                    )
    # The responder writes its own counters when it stops: the proof that
    # nothing was rate limited or dropped.
    counters = json.loads(stats_file.read_text()) if stats_file.exists() else None
    results = []
    for placement in placements:
        rows = [summarise(target, placement.name) for target in targets]
        results.append(
            {
                "name": placement.name,
                "description": placement.description,
                "targets": rows,
                "ratio": ratios(rows),
            }
        )
    return results, counters


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_stun",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per round")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server and placement")
    parser.add_argument("--window", type=int, default=16, help="requests in flight per socket")
    parser.add_argument("--sockets", type=int, default=8, help="client sockets")
    parser.add_argument("--placement", choices=("pinned", "shared", "both"), default="both")
    parser.add_argument("--no-coturn", action="store_true", help="measure the responder only")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)

    cpus = os.cpu_count() or 1
    placements = placements_for(args.placement, cpus)
    turnserver = None if args.no_coturn else shutil.which("turnserver")
    if turnserver is None and not args.no_coturn:
        print("turnserver not found: measuring the responder only", file=sys.stderr)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-stun-") as tmp:
        results, counters = run_all(args, Path(tmp), turnserver, placements)

    report: dict[str, Any] = {
        "benchmark": "stun-binding",
        "settings": {
            "duration": args.duration,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "window": args.window,
            "sockets": args.sockets,
            "rate_limiting": "off: --no-rate-limit, i.e. StunServer(rate=math.inf)",
        },
        "cpus": cpus,
        "python": sys.version.split()[0],
        "placements": results,
        "responder_counters": counters,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "json": str(args.json),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
