"""``GET /`` from memory: Confide's static handler against aiohttp's ``FileResponse``.

    python -m bench.bench_static [--rounds 3] [--duration 5] [--connections 64]
                                 [--json bench/results/static.json]

Starts ``python -m server serve`` and a reference app (this module with
``--reference-server``: a one-route aiohttp app answering ``GET /`` with
``web.FileResponse`` of the same ``client_web/index.html``, under uvloop like
Confide), each on a free loopback port, and loads both with ``wrk`` (Debian
package ``wrk``; a small Node.js keep-alive client when it is missing) for
``rounds`` rounds, alternating which goes first. By default the servers are
pinned to CPU 0 and the client to CPU 1. Prints requests per second, the
client's CPU and the ratio; the target is 15,000 requests/s or more. Every
process is stopped at the end, also on error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.reference import Plausible, compare, exit_code
from natlab.processes import (
    child_setup,
    confide_serve_command,
    exit_on_sigterm,
    free_port,
    process_cpu_seconds,
    run_queue_wait_seconds,
    stop_process,
    wait_tcp_ready,
)

__all__ = ["TARGET_RPS", "main"]

#: Requests per second Confide's ``GET /`` should reach (issue 2).
TARGET_RPS = 15_000
READY_TIMEOUT = 15.0
CLIENT_GRACE = 30.0
#: A process at this share of one core (or more) is taken as the bottleneck.
BOUND_UTILISATION = 0.9
#: A server that waited this share of the time for a CPU was starved by other work.
STARVED_WAIT = 0.1

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "static.json"
INDEX = REPO_ROOT / "client_web" / "index.html"
CONFIDE = "confide (memory)"
REFERENCE = "FileResponse"

# The fallback load client: keep-alive HTTP/1.1 over raw sockets, one request
# in flight per connection, responses delimited by Content-Length.
NODE_CLIENT = r"""
const net = require("node:net");
const [port, conns, duration] = process.argv.slice(1).map(Number);
const req = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
let done = 0, bad = 0, errors = 0, stop = false;
const t0 = process.hrtime.bigint();
for (let i = 0; i < conns; i++) {
  const s = net.connect(port, "127.0.0.1");
  let buf = Buffer.alloc(0);
  s.on("connect", () => s.write(req));
  s.on("error", () => { errors++; });
  s.on("data", (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.toString("latin1", 0, end);
      const m = /content-length: *(\d+)/i.exec(head);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) return;
      buf = buf.subarray(total);
      // Only a 2xx is a request served; anything else is counted apart.
      if (/^HTTP\/1\.1 2\d\d /.test(head)) done++;
      else bad++;
      if (!stop) s.write(req);
    }
  });
}
setTimeout(() => {
  stop = true;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ requests: done, bad, seconds: secs, errors }) + "\n");
  process.exit(0);
}, duration * 1000);
"""


@dataclass
class Target:
    name: str
    description: str
    rounds: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def started(
    command: list[str], port: int, *, cpu: int | None, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=child_setup(cpu),
            start_new_session=True,
        )
    try:
        wait_tcp_ready(port, process, log, READY_TIMEOUT)
        yield process
    finally:
        stop_process(process)


def confide_command(port: int) -> list[str]:
    return confide_serve_command(port)


def reference_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.bench_static", "--reference-server", "--port", str(port)]


def serve_reference(port: int) -> int:
    """The reference: aiohttp's FileResponse for the same file, no access log, uvloop."""
    from aiohttp import web

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(INDEX)

    app = web.Application()
    app.router.add_get("/", index)
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else None,
    )
    return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_load(
    port: int, server_pid: int, args: argparse.Namespace, wrk: str | None, node: str | None
) -> dict[str, Any]:
    """One bounded load run; requests/s, the client's and the server's CPU."""
    cpu0 = _children_cpu()
    server0 = process_cpu_seconds(server_pid)
    waited0 = run_queue_wait_seconds(server_pid)
    wall0 = time.monotonic()
    timeout = args.duration + CLIENT_GRACE
    if wrk is not None:
        command = [
            wrk,
            "-t1",
            f"-c{args.connections}",
            f"-d{args.duration:g}s",
            "--latency",
            f"http://127.0.0.1:{port}/",
        ]
    elif node is not None:
        command = [node, "-e", NODE_CLIENT, str(port), str(args.connections), str(args.duration)]
    else:
        raise RuntimeError("neither wrk nor node found")
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=child_setup(args.client_cpu),
        start_new_session=True,
        check=False,
    )
    wall = time.monotonic() - wall0
    client_cpu = _children_cpu() - cpu0
    server_cpu = process_cpu_seconds(server_pid) - server0
    server_waited = run_queue_wait_seconds(server_pid) - waited0
    out = completed.stdout
    if completed.returncode != 0:
        code = completed.returncode
        raise RuntimeError(f"load client failed ({code}): {completed.stderr[-500:]}")
    result: dict[str, Any] = {"client": "wrk" if wrk else "node"}
    if wrk is not None:
        total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", out)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
        errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        socket_errors = re.search(r"Socket errors:(.*)", out)
        if total is None:
            raise RuntimeError(f"could not read wrk's output: {out[-500:]}")
        seconds = (
            float(total.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
        )
        if p99 is not None:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
            result["p99_ms"] = float(p99.group(1)) * scale
        result["bad_responses"] = int(errors.group(1)) if errors else 0
        result["socket_errors"] = socket_errors.group(1).strip() if socket_errors else ""
        # wrk's Requests/sec counts every response: a server answering 500s
        # fast would look fast. Only 2xx count (wrk's "Non-2xx or 3xx" apart).
        result["rps"] = (int(total.group(1)) - result["bad_responses"]) / seconds
    else:
        data = json.loads(out.strip().splitlines()[-1])
        result["rps"] = data["requests"] / data["seconds"]  # 2xx only (NODE_CLIENT)
        result["bad_responses"] = data["bad"]
        result["socket_errors"] = str(data["errors"]) if data["errors"] else ""
    # The client's CPU over its whole run (start-up is negligible for wrk).
    result["client_cpu_util"] = client_cpu / max(wall, 1e-9)
    result["server_cpu_util"] = server_cpu / max(wall, 1e-9)
    result["server_cpu_wait"] = server_waited / max(wall, 1e-9)
    client = result["client_cpu_util"] >= BOUND_UTILISATION
    server = result["server_cpu_util"] >= BOUND_UTILISATION
    result["bottleneck"] = (
        "both" if client and server else "client" if client else "server" if server else "neither"
    )
    if result["bottleneck"] == "neither" and result["server_cpu_wait"] >= STARVED_WAIT:
        result["bottleneck"] = "other work on the machine"
    return result


def check_response(port: int) -> dict[str, Any]:
    """One plain GET, to be sure both serve the same bytes (and report the size)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    return {"status": status, "body_bytes": len(body), "same_as_file": body == INDEX.read_bytes()}


#: Requests per second any machine this runs on serves (bench/reference.py).
PLAUSIBLE_RPS = Plausible(100, 10_000_000)


def served_problem(row: dict[str, Any]) -> str | None:
    """Why a server's rate is not a rate of ``GET /`` served right, or None."""
    response = row["response"]
    if not response["status"].startswith("HTTP/1.1 200"):
        return f"{row['name']} answered {response['status']!r}"
    if row["bad_responses"]:
        return f"{row['name']} gave {row['bad_responses']:,} non-2xx responses under load"
    return None


def static_row(metric: str, ours: dict[str, Any], ref: dict[str, Any], key: str) -> dict[str, Any]:
    out = compare(
        "static", metric, ours[key], "req/s", ref[key], REFERENCE, plausible=PLAUSIBLE_RPS,
        higher_is_better=True, target=f">= {TARGET_RPS:,} req/s", ok=ours[key] >= TARGET_RPS,
    )  # fmt: skip
    for row, kind in ((ref, "reference"), (ours, "measurement")):
        problem = served_problem(row)
        if problem is not None and not out["broken"]:
            out.update(broken=f"{kind} broken: {problem}", ratio=None, ok=False)
    out["bottleneck"] = ", ".join(sorted({r["bottleneck"] for r in ours["rounds"]}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_static", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--reference-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.reference_server:
        return serve_reference(args.port)
    exit_on_sigterm()

    wrk = shutil.which("wrk")
    node = shutil.which("node")
    if wrk is None:
        print(
            "wrk not found (apt-get install wrk; `make bench` installs it): using the Node.js "
            "client, which may be the bottleneck",
            file=sys.stderr,
        )
        if node is None:
            print("no load client (wrk or node): static bench skipped")
            return 1
    cpus = os.cpu_count() or 1
    pin = not args.no_pin and cpus >= 2
    server_cpu = 0 if pin else None
    args.client_cpu = 1 if pin else None
    load_before = os.getloadavg()[0]

    targets = [
        Target(CONFIDE, "python -m server serve: client_web read once, served from memory"),
        Target(REFERENCE, "aiohttp web.FileResponse(client_web/index.html), same loop (uvloop)"),
    ]
    responses: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-static-") as tmp, ExitStack() as stack:
        running: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for target, make in zip(targets, (confide_command, reference_command), strict=True):
            port = free_port()
            log = Path(tmp) / f"{port}.log"
            process = stack.enter_context(started(make(port), port, cpu=server_cpu, log=log))
            running[target.name] = (process, port)
            responses[target.name] = check_response(port)
        for round_number in range(args.rounds):
            order = targets if round_number % 2 == 0 else targets[::-1]
            for target in order:
                process, port = running[target.name]
                result = run_load(port, process.pid, args, wrk, node)
                target.rounds.append(result)
                print(
                    f"round {round_number + 1}: {target.name:<17} {result['rps']:>9,.0f} req/s  "
                    f"client CPU {result['client_cpu_util']:.0%}  "
                    f"server CPU {result['server_cpu_util']:.0%}  "
                    f"server waited for a CPU {result['server_cpu_wait']:.0%}  "
                    f"non-2xx {result['bad_responses']}  "
                    f"socket errors {result['socket_errors'] or 'none'}  "
                    f"(bottleneck: {result['bottleneck']})",
                    flush=True,
                )

    rows = []
    for target in targets:
        rates = [r["rps"] for r in target.rounds]
        rows.append(
            {
                "name": target.name,
                "description": target.description,
                "median_rps": statistics.median(rates),
                "best_rps": max(rates),
                "rates": rates,
                "median_client_cpu": statistics.median(r["client_cpu_util"] for r in target.rounds),
                "median_server_cpu": statistics.median(r["server_cpu_util"] for r in target.rounds),
                "client_bound_rounds": sum(
                    r["bottleneck"] in ("client", "both") for r in target.rounds
                ),
                "response": responses[target.name],
                "bad_responses": sum(r["bad_responses"] for r in target.rounds),
                "socket_errors": [r["socket_errors"] for r in target.rounds if r["socket_errors"]],
                "rounds": target.rounds,
            }
        )
    ours, ref = rows
    summary = [
        static_row("GET / req/s (memory) vs FileResponse, best", ours, ref, "best_rps"),
        static_row("GET / req/s (memory) vs FileResponse, median", ours, ref, "median_rps"),
    ]
    # The printed ratio is the median row's, checked by bench/reference.py: none when a
    # reference of zero or a non-2xx server broke it (its "broken" says why).
    ratio = summary[1]["ratio"]
    client_name = "wrk" if wrk else "node (fallback)"
    report: dict[str, Any] = {
        "benchmark": "static",
        "settings": {
            "rounds": args.rounds,
            "duration": args.duration,
            "connections": args.connections,
            "client": f"{client_name}, 1 thread, {args.connections} keep-alive connections",
            "pinning": "servers on CPU 0, client on CPU 1" if pin else "none",
            "request": "GET / without Accept-Encoding (identity body)",
        },
        "cpus": cpus,
        "targets": rows,
        "ratio": ratio,
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "json": str(args.json),
        "summary": summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print()
    print(
        f"GET / over loopback: {args.rounds} round(s) of {args.duration:g} s per server; "
        f"{report['settings']['client']}; {report['settings']['request']}"
    )
    print(f"pinning: {report['settings']['pinning']}")
    print()
    header = (
        f"{'server':<18} {'median/s':>10} {'best/s':>10} {'client CPU':>11} {'server CPU':>11} "
        f"{'body':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['name']:<18} {row['median_rps']:>10,.0f} {row['best_rps']:>10,.0f} "
            f"{row['median_client_cpu']:>10.0%} {row['median_server_cpu']:>10.0%} "
            f"{row['response']['body_bytes']:>7}"
        )
    print()
    if ratio is not None:
        print(f"memory / FileResponse: {ratio:.2f}x (medians)")
    else:
        print(f"memory / FileResponse: no ratio ({summary[1]['broken']})")
    for label, key in (("median", "median_rps"), ("best round", "best_rps")):
        verdict = "met" if ours[key] >= TARGET_RPS else "NOT met"
        print(f"target >= {TARGET_RPS:,} req/s: {verdict} on the {label} ({ours[key]:,.0f} req/s)")
    starved = sum(r["bottleneck"] == "other work on the machine" for t in targets for r in t.rounds)
    if starved:
        print(
            f"note: in {starved} round(s) a server waited >= {STARVED_WAIT:.0%} of the time for a "
            "CPU (other work on the machine): those rates are lower than the server's own"
        )
    for row in rows:
        if row["bad_responses"] or row["socket_errors"]:
            print(
                f"warning: {row['name']}: {row['bad_responses']:,} non-2xx responses (not "
                f"counted in its rate); socket errors: {'; '.join(row['socket_errors']) or 'none'}"
            )
        if not row["response"]["same_as_file"]:
            print(f"warning: {row['name']} did not serve client_web/index.html byte for byte")
        if row["client_bound_rounds"]:
            print(
                f"note: the load client was at >= {BOUND_UTILISATION:.0%} of a core in "
                f"{row['client_bound_rounds']} round(s) against {row['name']}: those rates are "
                "lower bounds"
            )
    load = report["load_average"]
    print(
        f"machine load average before/after: {load['before']:.2f}/{load['after']:.2f} on "
        f"{cpus} CPUs (other work on the machine lowers both rates)"
    )
    print(f"JSON: {args.json}")
    return exit_code(report["summary"])


if __name__ == "__main__":
    sys.exit(main())
