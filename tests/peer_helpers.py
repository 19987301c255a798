"""Helpers of the Python-peer tests (tests/test_peer_*.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from client_py import events as ev
from client_py.room import Room
from natlab.lab import Host
from natlab.processes import wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCS / "vectors.json").read_text())
    return data


def protocol_examples(kind: str) -> list[str]:
    """The ```` ```json <kind> ```` blocks of docs/PROTOCOL.md, in order."""
    text = (DOCS / "PROTOCOL.md").read_text()
    return re.findall(rf"```json {kind}\n(.*?)\n```", text, flags=re.S)


# -- rooms of in-process Python peers --------------------------------------------------

E = TypeVar("E", bound=ev.Event)
#: Seconds any one wait of these tests may take (connections open in ~0.1 s here).
WAIT = 20.0


def of_type(room: Room, kind: type[E]) -> list[E]:
    return [e for e in room.history if isinstance(e, kind)]


async def wait_for_event(
    room: Room, kind: type[E], where: Callable[[E], bool] = lambda e: True, timeout: float = WAIT
) -> E:
    """The first event of ``kind`` (already seen or still to come) matching ``where``."""
    found: list[E] = []

    def seen() -> bool:
        found[:] = [e for e in of_type(room, kind) if where(e)]
        return bool(found)

    await wait_until(seen, timeout)
    return found[0]


def fully_connected(*rooms: Room) -> bool:
    return all(
        len(r.peers) == len(rooms) - 1 and all(p.connected.is_set() for p in r.peers.values())
        for r in rooms
    )


@contextlib.asynccontextmanager
async def rooms(
    ws_url: str, room: str, *names: str, connect: bool = True, **options: object
) -> AsyncIterator[list[Room]]:
    """Rooms of Python peers joined one after the other; all closed after the block."""
    made: list[Room] = []
    try:
        for name in names:
            r = Room(ws_url, room, name, **options)  # type: ignore[arg-type]
            made.append(r)
            await r.start()
            # Join in order, as people do: each newcomer sees the ones before it.
            await wait_until(lambda: all(len(m.names) >= len(made) - 1 for m in made), WAIT)
        if connect:
            await wait_until(lambda: fully_connected(*made), WAIT)
        yield made
    finally:
        await asyncio.gather(*(r.close() for r in made), return_exceptions=True)


async def spawn_chat(
    host: Host, server_url: str, *args: str, stdin: bool = False, **env: str
) -> asyncio.subprocess.Process:
    """``confide chat --server URL ARGS`` (``python -m client_py``) in lab host ``host``."""
    argv = [sys.executable, "-m", "client_py", "--server", server_url, *args]
    return await asyncio.create_subprocess_exec(
        *host.exec_args(argv),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = WAIT) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_until(proc: asyncio.subprocess.Process, text: str, seen: list[str]) -> str:
    """Read the process's output lines until one contains ``text``; return that line."""
    assert proc.stdout is not None
    async with asyncio.timeout(WAIT):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError(f"output ended before {text!r}: {seen}")
            line = raw.decode().rstrip("\n")
            seen.append(line)
            if text in line:
                return line
