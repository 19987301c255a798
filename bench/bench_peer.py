"""The Python peer (client_py) on aiortc: time from join to an open chat channel, and
data-channel throughput, Python ↔ Python and Python ↔ browser, with asyncio's own event
loop and with uvloop, in one run.

    python -m bench.bench_peer [--rounds 7] [--size-mb 16] [--transfers 3] [--no-browser]
                               [--json bench/results/peer.json]

Everything runs in a network lab (natlab/lab.py: aioice leaves 127.0.0.1 out of its host
candidates, so the peers need a lab address): the server and the measuring peer run in
this process inside lab host "main"; the far Python peer of the cross-process runs is
``python -m client_py`` in host "far"; Chromium runs in "main" through Playwright.

join→open
    a peer starts (WebSocket, join, offer/answer, ICE, DTLS, SCTP) until its chat
    channel is open; median and p90 over ``--rounds`` joins into a room holding one peer.
raw
    one data channel, 16 KiB messages with the protocol's flow control (pause over
    1 MiB buffered until ``bufferedamountlow`` at 256 KiB), both ends in this process
    (one event loop does both sides' work); and browser → Python, a blast from the page
    with the message size and flow control its files use (client_web/files.js), the
    ceiling the browser → Python file is compared with: after one blast that is not
    counted (WARMUP_BLASTS), ``--transfers`` blasts and files taking turns, medians.
file
    a whole transfer as users see it (docs/PROTOCOL.md "Files": offer, accept, bytes,
    SHA-256 of the file on both sides, ``file-received``), to a ``confide chat``
    process in another lab host (its own core), or to/from Chromium.

Every run has a deadline; the lab, the server, the browser and every process are
stopped however the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bench.limits import ONE_ADDRESS
from bench.links import enter
from bench.reference import Plausible, compare, exit_code, figure
from client_py import events as ev
from client_py.files import CHUNK_SIZE, HIGH_WATER, LOW_WATER
from client_py.room import Room
from natlab.lab import Host, Lab
from natlab.stats import summary
from server.app import create_app
from server.config import ServeConfig

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "bench" / "results" / "peer.json"
#: Seconds any one measured step may take before the run is declared failed.
STEP_TIMEOUT = 120.0
T = TypeVar("T")


async def _until(room: Room, kind: type[T], where: Callable[[T], bool] = lambda e: True) -> T:
    """The next event of ``kind`` matching ``where`` from ``room.events``."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            event = await room.events.get()
            if isinstance(event, kind) and where(event):
                return event


class Server:
    """The real server in this event loop on the lab address."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Server:
        # Every peer of the run joins from this one address (bench/limits.py).
        app = create_app(ServeConfig(host=self.host, port=0, stun_port=0, **ONE_ADDRESS))
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"


async def join_to_open(server: Server, rounds: int) -> list[float]:
    """Seconds from a newcomer's start() to its open chat channel, ``rounds`` times."""
    anchor = Room(server.ws_url, "bench-join", "Anchor")
    await anchor.start()
    times = []
    try:
        for i in range(rounds):
            newcomer = Room(server.ws_url, "bench-join", f"N{i}")
            start = time.perf_counter()
            await newcomer.start()
            await _until(newcomer, ev.Connected)
            times.append(time.perf_counter() - start)
            await newcomer.close()
            await _until(anchor, ev.PeerLeft)
    finally:
        await anchor.close()
    return times


async def raw_throughput(server: Server, size: int) -> float:
    """Bytes per second over one data channel, both ends in this loop."""
    async with contextlib_rooms(server, "bench-raw") as (ada, bob):
        (a_link,) = ada.peers.values()
        (b_link,) = bob.peers.values()
        assert a_link.pc is not None and b_link.pc is not None
        received = 0
        done = asyncio.Event()

        # Negotiated on both sides (no DCEP), so the peers' own handlers, which refuse
        # channels of unknown labels, never see it.
        far_end = b_link.pc.createDataChannel("bench", negotiated=True, id=100)

        @far_end.on("message")
        def on_message(data: bytes) -> None:
            nonlocal received
            received += len(data)
            if received >= size:
                done.set()

        channel = a_link.pc.createDataChannel("bench", negotiated=True, id=100)
        opened, low = asyncio.Event(), asyncio.Event()
        channel.on("open", opened.set)
        channel.on("bufferedamountlow", low.set)
        channel.bufferedAmountLowThreshold = LOW_WATER
        if channel.readyState != "open":  # a negotiated channel opens at once
            await asyncio.wait_for(opened.wait(), STEP_TIMEOUT)
        chunk = os.urandom(CHUNK_SIZE)
        start = time.perf_counter()
        async with asyncio.timeout(STEP_TIMEOUT):
            for _ in range(size // CHUNK_SIZE):
                channel.send(chunk)
                while channel.bufferedAmount > HIGH_WATER:
                    low.clear()
                    await low.wait()
            await done.wait()
        return size / (time.perf_counter() - start)


class contextlib_rooms:  # noqa: N801 - reads like the helper it is
    """Two rooms joined and connected; closed on exit."""

    def __init__(self, server: Server, room: str, **options: Any) -> None:
        self.rooms = [Room(server.ws_url, room, n, **options) for n in ("Ada", "Bob")]

    async def __aenter__(self) -> list[Room]:
        for room in self.rooms:
            await room.start()
        for room in self.rooms:
            await _until(room, ev.Connected)
        return self.rooms

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(r.close() for r in self.rooms), return_exceptions=True)


async def file_to_process(
    server: Server, far: Host, path: Path, inbox: Path, uvloop_far: bool
) -> float:
    """Bytes per second of a whole file transfer to ``confide chat`` in host ``far``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONFIDE_UVLOOP": "1" if uvloop_far else "0"}
    argv = far.exec_args([sys.executable, "-m", "client_py", "--server", server.url,
                          "--room", "bench-file", "--name", "Far", "--receive-dir", str(inbox),
                          "--expect-files", "1", "--timeout", str(STEP_TIMEOUT)])  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    near = Room(server.ws_url, "bench-file", "Near")
    try:
        await near.start()
        if not near.peers:
            await _until(near, ev.PeerJoined)
        await _until(near, ev.Connected)
        start = time.perf_counter()
        await near.send_file(path)
        done = await _until(near, ev.FileDone, lambda e: e.direction == "out")
        elapsed = time.perf_counter() - start
        if done.state != "sent":  # the sender's final word (docs/vectors.json)
            raise RuntimeError(f"transfer ended {done.state}")
        return path.stat().st_size / elapsed
    finally:
        await near.close()
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


#: Page side of the raw browser → Python blast: a negotiated channel (so neither side's
#: handlers see it) on the page's connection to ``name``, messages of the size and with the
#: flow control a file uses (one source: client_web/files.js).
BLAST_JS = """async ([name, size, id]) => {
  const { chunkFor, HIGH, LOW } = await import('/files.js');
  const pc = [...confide.mesh.peers.values()].find((r) => r.name === name).peer.pc;
  const ch = pc.createDataChannel('bench', { negotiated: true, id });
  const chunk = new Uint8Array(chunkFor(pc));
  ch.bufferedAmountLowThreshold = LOW;
  if (ch.readyState !== 'open') await new Promise((r) => { ch.onopen = r; });
  for (let sent = 0; sent < size; sent += chunk.length) {
    if (ch.bufferedAmount > HIGH)
      await new Promise((r) => ch.addEventListener('bufferedamountlow', r, { once: true }));
    ch.send(sent + chunk.length <= size ? chunk : chunk.subarray(0, size - sent));
  }
}"""


#: The negotiated stream id of the first raw blast; each blast takes the next even one
#: (aiortc keeps a closed negotiated channel's id registered for a while).
BLAST_STREAM = 100
#: Unmeasured blasts before the first measured one. A new association moves its first
#: bulk bytes far slower than later ones (measured here, browser → Python, 16 MiB each,
#: uvloop: blasts 9.0, 18.9, 27.0 MB/s, files between them 9.9, 20.0, 22.4 MB/s): with the
#: blast first and cold, a file came out at 4.8x "its ceiling" (27.5 against 5.7 MB/s).
WARMUP_BLASTS = 1


async def raw_from_browser(page: Any, room: Room, name: str, size: int, stream: int) -> float:
    """Bytes per second of a raw blast from the page to ``room`` (its one peer link) on
    negotiated stream ``stream`` (a fresh one for each blast)."""
    (link,) = room.peers.values()
    assert link.pc is not None
    channel = link.pc.createDataChannel("bench", negotiated=True, id=stream)
    received = 0
    done = asyncio.Event()

    @channel.on("message")
    def on_message(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if received >= size:
            done.set()

    start = time.perf_counter()
    async with asyncio.timeout(STEP_TIMEOUT):
        await page.evaluate(BLAST_JS, [name, size, stream])
        await done.wait()
    elapsed = time.perf_counter() - start
    channel.close()
    return size / elapsed


async def browser_runs(
    server: Server, host: Host, path: Path, rounds: int, transfers: int, tmp: Path
) -> dict[str, Any]:
    """Join→open and file throughput between this process and Chromium in ``host``."""
    from playwright.async_api import async_playwright

    from natlab.fixtures import CHROMIUM, CHROMIUM_ARGS, _write_wrapper

    if not os.access(CHROMIUM, os.X_OK):
        return {"skipped": f"no chromium at {CHROMIUM}"}
    wrapper = _write_wrapper(tmp, host)
    result: dict[str, Any] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(wrapper), headless=True,
            args=[*CHROMIUM_ARGS, f"--unsafely-treat-insecure-origin-as-secure={server.url}"],
        )  # fmt: skip
        try:
            page = await (await browser.new_context()).new_page()
            await enter(page, server.url, "bench-browser", "Chromium")
            await page.get_by_role("textbox", name="Message").wait_for()
            times = []
            for i in range(rounds):
                room = Room(server.ws_url, "bench-browser", f"Py{i}", receive_dir=tmp / "in")
                start = time.perf_counter()
                await room.start()
                await _until(room, ev.Connected)
                times.append(time.perf_counter() - start)
                if i < rounds - 1:
                    await room.close()
            result["join_to_open_s"] = summary(times)
            # The ceiling of a browser → Python transfer: raw blasts on the same
            # connection, taking turns with the files (both see the same machine state).
            name, size = f"Py{rounds - 1}", path.stat().st_size
            streams = iter(range(BLAST_STREAM, BLAST_STREAM + 2 * (WARMUP_BLASTS + transfers), 2))
            for _ in range(WARMUP_BLASTS):
                await raw_from_browser(page, room, name, size, next(streams))
            raws, files = [], []
            for _ in range(transfers):
                raws.append(await raw_from_browser(page, room, name, size, next(streams)))
                start = time.perf_counter()
                await page.get_by_label("Send file").set_input_files(path)
                done = await _until(room, ev.FileDone, lambda e: e.direction == "in")
                if done.state != "received":  # the receiver's final word
                    raise RuntimeError(f"browser → python ended {done.state}")
                files.append(size / (time.perf_counter() - start))
            result["raw_browser_to_python_Bps"] = summary(raws)
            result["file_browser_to_python_Bps"] = summary(files)
            # Python → browser (the clock starts at the click on Accept).
            await room.send_file(path)
            offer = page.get_by_role("log", name="Messages").locator(".file").filter(
                has_text=path.name).last  # fmt: skip
            accept = offer.get_by_role("button", name="Accept")
            await accept.wait_for()
            start = time.perf_counter()
            await accept.click()
            done = await _until(room, ev.FileDone, lambda e: e.direction == "out")
            if done.state != "sent":  # the sender's final word
                raise RuntimeError(f"python → browser ended {done.state}")
            result["file_python_to_browser_Bps"] = path.stat().st_size / (
                time.perf_counter() - start
            )
            await room.close()
        finally:
            await browser.close()
    return result


async def run_config(
    main_host: Host, far: Host, loop_name: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    # A fresh executor, started from this (entered) thread: file reads run in the lab too.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
    size = args.size_mb * 1024 * 1024
    data = tmp / "payload.bin"
    if not data.exists():
        data.write_bytes(os.urandom(size))
    out: dict[str, Any] = {"loop": loop_name}
    async with Server(main_host.ip) as server:
        out["python_python"] = {
            "join_to_open_s": summary(await join_to_open(server, args.rounds)),
            "raw_channel_Bps": summary([await raw_throughput(server, size) for _ in range(3)]),
            "file_to_other_process_Bps": summary([
                await file_to_process(server, far, data, tmp / f"in-{loop_name}-{i}",
                                      uvloop_far=loop_name == "uvloop")
                for i in range(3)
            ]),
        }  # fmt: skip
        if not args.no_browser:
            out["python_browser"] = await browser_runs(
                server, main_host, data, args.rounds, args.transfers, tmp
            )
    return out


def _run(loop_name: str, coro: Coroutine[Any, Any, T]) -> T:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['median'] * 1000:7.1f} ms (p90 {stats['p90'] * 1000:.1f})"


def _mbs(value: float | dict[str, float]) -> str:
    v = value["median"] if isinstance(value, dict) else value
    return f"{v / 1e6:7.2f} MB/s"


def print_table(results: list[dict[str, Any]]) -> None:
    pp, pb = "python_python", "python_browser"
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("py↔py join→open", lambda r: _ms(r[pp]["join_to_open_s"])),
        ("py↔py raw channel, one process", lambda r: _mbs(r[pp]["raw_channel_Bps"])),
        ("py→py file, two processes", lambda r: _mbs(r[pp]["file_to_other_process_Bps"])),
        ("py↔browser join→open", lambda r: _ms(r[pb]["join_to_open_s"])),
        ("browser→py raw channel", lambda r: _mbs(r[pb]["raw_browser_to_python_Bps"])),
        ("browser→py file", lambda r: _mbs(r[pb]["file_browser_to_python_Bps"])),
        ("py→browser file", lambda r: _mbs(r[pb]["file_python_to_browser_Bps"])),
    ]
    names = [r["loop"] for r in results]
    print(f"{'':34}" + "".join(f"{n:>30}" for n in names))
    for label, cell in rows:
        cells = []
        for r in results:
            try:
                cells.append(cell(r))
            except (KeyError, TypeError):
                cells.append("-")
        print(f"{label:34}" + "".join(f"{c:>30}" for c in cells))


#: (metric, section, key, unit, scale) of the rows ``python -m bench`` shows.
_SUMMARY = (
    ("py↔py join→open", "python_python", "join_to_open_s", "ms", 1000.0),
    ("py↔py raw data channel", "python_python", "raw_channel_Bps", "MB/s", 1e-6),
    ("py→py file, two processes", "python_python", "file_to_other_process_Bps", "MB/s", 1e-6),
    ("py↔browser join→open", "python_browser", "join_to_open_s", "ms", 1000.0),
    ("browser→py file", "python_browser", "file_browser_to_python_Bps", "MB/s", 1e-6),
    ("py→browser file", "python_browser", "file_python_to_browser_Bps", "MB/s", 1e-6),
)


#: Issue 13 item 3: a file moves at this share of the raw channel or more.
FILE_TARGET_RATIO = 0.9
#: What a figure of each unit can be (bench/reference.py): a join under 1 ms or a
#: transfer under 0.05 MB/s measured something else.
PLAUSIBLE = {"ms": Plausible(1.0, STEP_TIMEOUT * 1000), "MB/s": Plausible(0.05, 10_000.0)}


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for ``python -m bench``: each metric with uvloop, asyncio's loop as reference."""
    by_loop = {r["loop"]: r for r in results}
    main_loop = "uvloop" if "uvloop" in by_loop else "asyncio"
    rows = []

    def value(loop: str, section: str, key: str, scale: float) -> float | None:
        found = by_loop.get(loop, {}).get(section, {}).get(key)
        if isinstance(found, dict):
            found = found.get("median")
        return None if not isinstance(found, int | float) else float(found) * scale

    for metric, section, key, unit, scale in _SUMMARY:
        measured = by_loop.get(main_loop, {}).get(section)
        if measured is None or "skipped" in measured:
            continue  # the browser runs were not asked for, or no Chromium
        ours = value(main_loop, section, key, scale)
        name = f"{metric} ({main_loop})"
        if main_loop != "uvloop":
            rows.append(figure("peer", name, ours, unit, plausible=PLAUSIBLE[unit]))
            continue
        ref = value("asyncio", section, key, scale)
        rows.append(compare("peer", name, ours, unit, ref, "asyncio", plausible=PLAUSIBLE[unit],
                            higher_is_better=unit != "ms", target_ratio=None))  # fmt: skip
    # Issue 13 item 3 for Python ↔ Chromium: a file at >= 90 % of the raw channel.
    browser = by_loop.get(main_loop, {}).get("python_browser")
    if browser is not None and "skipped" not in browser:
        file = value(main_loop, "python_browser", "file_browser_to_python_Bps", 1e-6)
        raw = value(main_loop, "python_browser", "raw_browser_to_python_Bps", 1e-6)
        rows.append(compare(
            "peer", f"browser→py file vs raw channel ({main_loop})", file, "MB/s", raw,
            "raw data channel", plausible=PLAUSIBLE["MB/s"], higher_is_better=True,
            target_ratio=FILE_TARGET_RATIO,
        ))  # fmt: skip
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=7, help="joins measured per setting")
    parser.add_argument("--size-mb", type=int, default=16, help="bytes moved per throughput run")
    parser.add_argument(
        "--transfers", type=int, default=3, help="browser→py raw blasts and files, each"
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium runs")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_peer needs root (network namespaces of natlab/lab.py)", file=sys.stderr)
        return 2
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("uvloop is not installed: measuring asyncio only", file=sys.stderr)
    else:
        loops.append("uvloop")
    results = []
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="bench-peer-") as tmpdir:
        main_host, far = lab.add_host("main"), lab.add_host("far")
        with main_host.entered():
            for name in loops:
                tmp = Path(tmpdir) / name
                tmp.mkdir()
                results.append(_run(name, run_config(main_host, far, name, args, tmp)))
    report: dict[str, Any] = {
        "benchmark": "python-peer",
        "summary": summary_rows(results),
        "settings": {"rounds": args.rounds, "size_mb": args.size_mb, "chunk": CHUNK_SIZE,
                     "transfers": args.transfers, "warmup_blasts": WARMUP_BLASTS,
                     "browser": not args.no_browser},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": results,
    }  # fmt: skip
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return exit_code(report["summary"])


if __name__ == "__main__":
    sys.exit(main())
