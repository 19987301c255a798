"""Relay against direct, same run: connection setup time and data-channel throughput of two
aiortc peers, on their host candidates and through coturn (relay-only, TURN over UDP or TCP).

    python -m bench.bench_turn [--rounds 9] [--size-mb 8] [--json bench/results/turn.json]

Everything runs in a network lab (natlab/lab.py; aioice leaves 127.0.0.1 out of its host
candidates): coturn, started by ``tests.fixtures_coturn.running_coturn`` with the project's
own configuration (turn/turnserver.conf.template, so also its ``max-bps``), runs in lab host
"turn"; both peers run in this process in host "main". Credentials are minted as the
server mints them.

Modes: ``direct`` (host candidates), ``relay`` (relay-only, TURN over UDP), ``relay-tcp``
(relay-only, TURN over TCP to coturn).

setup
    from the offer's creation (candidate gathering: for the relay, the TURN Allocate) until
    the ``chat`` data channel is open on both sides: ICE checks, DTLS, SCTP.
throughput
    one ordered, reliable data channel, 16 KiB messages with the protocol's flow control
    (pause over 1 MiB buffered until ``bufferedamountlow`` at 256 KiB), until the receiver
    holds every byte. Both peers share one event loop (one core); coturn has its own.

Rounds cycle through the modes so that all see the same machine state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from bench.reference import Plausible, compare, exit_code
from client_py.peer import selected_candidates
from natlab.coturn import LAB_PEER_RANGE, Coturn, find_turnserver, running_coturn
from natlab.lab import Host, Lab
from natlab.stats import summary

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "turn.json"
#: Seconds any one measured step may take before the run is declared failed.
STEP_TIMEOUT = 60.0
CHUNK = 16 * 1024
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024
#: direct: host candidates; relay: relay-only, TURN over UDP; relay-tcp: TURN over TCP
#: (what networks that block UDP get; the relayed addresses are UDP either way).
MODES = ("direct", "relay", "relay-tcp")
#: A setup slower than this waited for an ICE retransmission (aioice's first is at 500 ms:
#: the first check reached coturn before the other side's permission existed, and aioice
#: started no triggered check for the In-Progress pair; client_py/ice_triggered.py, which
#: this bench gets through client_py.peer, does, per RFC 8445 §7.3.1.4).
SLOW_SETUP_MS = 300.0


@dataclass
class Round:
    mode: str
    setup_ms: float
    mb_per_s: float
    local_type: str
    remote_type: str


def _config(mode: str, coturn: Coturn) -> RTCConfiguration:
    if mode == "direct":
        return RTCConfiguration(iceServers=[])
    pair = coturn.credentials(ttl=600)
    transport = "tcp" if mode == "relay-tcp" else "udp"
    server = RTCIceServer(
        urls=[coturn.url(transport)], username=pair.username, credential=pair.credential
    )
    return RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def _opened(channel: RTCDataChannel) -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open() -> None:
        if not future.done():
            future.set_result(None)

    if channel.readyState == "open":
        on_open()
    else:
        channel.on("open", on_open)
    return future


def _selected_types(pc: RTCPeerConnection) -> tuple[str, str]:
    pair = selected_candidates(pc)
    assert pair is not None
    return str(pair[0].type), str(pair[1].type)


async def _send_all(channel: RTCDataChannel, size: int) -> None:
    """16 KiB messages, pausing over HIGH_WATER until bufferedamountlow (LOW_WATER)."""
    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = LOW_WATER
    channel.on("bufferedamountlow", low.set)
    chunk = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        if channel.bufferedAmount > HIGH_WATER:
            low.clear()
            await low.wait()
            continue
        piece = chunk[: min(CHUNK, size - sent)]
        channel.send(piece)
        sent += len(piece)


async def one_round(mode: str, coturn: Coturn, size: int) -> Round:
    a = RTCPeerConnection(_config(mode, coturn))
    b = RTCPeerConnection(_config(mode, coturn))
    try:
        chat_a = a.createDataChannel("chat", negotiated=True, id=0)
        chat_b = b.createDataChannel("chat", negotiated=True, id=0)
        open_a, open_b = _opened(chat_a), _opened(chat_b)
        start = time.perf_counter()
        async with asyncio.timeout(STEP_TIMEOUT):
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
            await asyncio.gather(open_a, open_b)
        setup_ms = (time.perf_counter() - start) * 1000
        local_type, remote_type = _selected_types(a)

        bulk_a = a.createDataChannel("bulk", negotiated=True, id=2)
        bulk_b = b.createDataChannel("bulk", negotiated=True, id=2)
        async with asyncio.timeout(STEP_TIMEOUT):
            await asyncio.gather(_opened(bulk_a), _opened(bulk_b))
        received = 0
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_message(message: bytes | str) -> None:
            nonlocal received
            received += len(message)
            if received >= size and not done.done():
                done.set_result(None)

        bulk_b.on("message", on_message)
        start = time.perf_counter()
        async with asyncio.timeout(STEP_TIMEOUT):
            await _send_all(bulk_a, size)
            await done
        seconds = time.perf_counter() - start
        return Round(mode, setup_ms, size / 1e6 / seconds, local_type, remote_type)
    finally:
        await a.close()
        await b.close()


async def run(turn_host: Host, rounds: int, size: int, tmp: Path) -> dict[str, Any]:
    # A fresh executor, started from this (entered) thread, so that its workers are in the lab.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
    async with running_coturn(
        turn_host.ip,
        tmp / "coturn",
        netns=turn_host,
        allowed_peer_ips=(LAB_PEER_RANGE,),
        args=(),  # the default log level, as deployed
    ) as coturn:
        max_bps = next(
            int(line.split("=", 1)[1])
            for line in coturn.conf_file.read_text().splitlines()
            if line.startswith("max-bps=")
        )
        results: list[Round] = []
        # A warm-up pair of each, not counted (imports, first DTLS key generation).
        for mode in MODES:
            await one_round(mode, coturn, size // 8)
        for _ in range(rounds):
            for mode in MODES:
                results.append(await one_round(mode, coturn, size))
    by_mode: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in results if r.mode == mode]
        by_mode[mode] = {
            "setup_ms": summary([r.setup_ms for r in mine]),
            "throughput_mb_s": summary([r.mb_per_s for r in mine]),
            "setup_ms_each": [round(r.setup_ms, 1) for r in mine],
            "throughput_mb_s_each": [round(r.mb_per_s, 2) for r in mine],
            "selected_pairs": sorted({f"{r.local_type}-{r.remote_type}" for r in mine}),
            "slow_setups": sum(r.setup_ms > SLOW_SETUP_MS for r in mine),
        }
    return {"max_bps": max_bps, "modes": by_mode}


def coturn_version(turnserver: str) -> str:
    out = subprocess.run([turnserver, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[-1] if (out.stdout or out.stderr) else ""


def print_table(modes: dict[str, Any], size_mb: float) -> None:
    print(f"{'':10}{'setup ms (median, min-max)':>32}{'MB/s (median, min-max)':>30}  pair")
    for mode, r in modes.items():
        s, t = r["setup_ms"], r["throughput_mb_s"]
        setup = f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})"
        rate = f"{t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f})"
        print(f"{mode:10}{setup:>32}{rate:>30}  {','.join(r['selected_pairs'])}")
    for mode, r in modes.items():
        runs = len(r["setup_ms_each"])
        print(f"{mode}: {r['slow_setups']} of {runs} setups over {SLOW_SETUP_MS:.0f} ms")
    print(f"({size_mb:g} MB per throughput run)")


#: Setup times any machine this runs on measures (bench/reference.py), in ms.
PLAUSIBLE_SETUP_MS = Plausible(1.0, STEP_TIMEOUT * 1000)
#: Issue 13 item 6: TURN over TCP sets up within this factor of TURN over UDP.
TCP_SETUP_TARGET = 1.5


def summary_rows(modes: dict[str, Any]) -> list[dict[str, Any]]:
    """TURN-over-TCP setup against TURN over UDP (median and p90), for ``python -m bench``."""
    tcp, udp = modes["relay-tcp"]["setup_ms"], modes["relay"]["setup_ms"]
    return [
        compare(
            "turn",
            f"TURN/TCP setup, {stat}",
            tcp[stat],
            "ms",
            udp[stat],
            "TURN/UDP",
            plausible=PLAUSIBLE_SETUP_MS,
            higher_is_better=False,
            target_ratio=TCP_SETUP_TARGET,
        )  # fmt: skip
        for stat in ("median", "p90")
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_turn",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each mode")
    parser.add_argument("--size-mb", type=float, default=8, help="bytes moved per throughput run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_turn needs root (network namespaces of natlab/lab.py)", file=sys.stderr)
        return 2
    turnserver = find_turnserver()
    if turnserver is None:
        print("bench_turn needs coturn (Debian package coturn)", file=sys.stderr)
        return 2
    size = int(args.size_mb * 1e6)
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="bench-turn-") as tmpdir:
        main_host, turn_host = lab.add_host("main"), lab.add_host("turn")
        with main_host.entered():
            measured = asyncio.run(run(turn_host, args.rounds, size, Path(tmpdir)))
    import aiortc

    report: dict[str, Any] = {
        "benchmark": "turn",
        "settings": {"rounds": args.rounds, "size_mb": args.size_mb, "chunk": CHUNK,
                     "high_water": HIGH_WATER, "low_water": LOW_WATER,
                     "coturn_max_bps": measured["max_bps"]},
        "coturn": coturn_version(turnserver),
        "aiortc": aiortc.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        # Other work on the machine slows both modes; the load says how much there was.
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": measured["modes"],
        "summary": summary_rows(measured["modes"]),
    }  # fmt: skip
    print_table(measured["modes"], args.size_mb)
    print("load average: " + " ".join(f"{x:.2f}" for x in report["load_average"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    for row in report["summary"]:
        if row["ratio"] is not None:
            verdict = "met" if row["ok"] else "NOT met"
            print(f"{row['metric']}: {row['ratio']:.2f}x TURN/UDP (target "
                  f"{row['target']}: {verdict})")  # fmt: skip
    print(f"\nwritten to {args.json}")
    return exit_code(report["summary"])


if __name__ == "__main__":
    sys.exit(main())
