"""The NAT matrix: two peers behind each pair of NAT kinds, TURN off and on.

:func:`run_matrix` builds one :class:`~natlab.nat.NatLab` with two sites of every kind
needed, runs the Confide server twice in the internet namespace (without and with TURN
URLs) and coturn beside it, and for each cell starts a lab peer (:mod:`natlab.peer`) in
each of the two sites and records whether they connected, how fast, and through which
candidate pair.  :func:`broken_expectations` says which of the issue's expectations a set
of cells breaks.  ``python -m natlab`` (``make natlab``) runs the full matrix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from natlab.coturn import LAB_PEER_RANGE, Coturn, running_coturn
from natlab.nat import INTERNET_ALT_IP, KINDS, NatLab, Site
from natlab.servers import RunningServer, running_server

__all__ = [
    "CONNECT_TIMEOUT",
    "Cell",
    "Matrix",
    "broken_expectations",
    "full_pairs",
    "running_matrix",
    "site_name",
]

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a pair may take to connect before the cell counts as failed.  Pairs that
#: connect do so in 1-3 s here; aiortc itself reports failure only after ~64 s.
CONNECT_TIMEOUT: Final = 20.0
#: Seconds a lab peer may take to start and join (importing aiortc takes ~1 s).
JOIN_TIMEOUT: Final = 30.0
#: Short names for site names (lowercase letters and digits).
_CODES: Final = {"none": "pub", "eim": "eim", "eim-adf": "eimadf", "apdm": "apdm",
                 "udp-blocked": "udpblk", "double": "dbl"}  # fmt: skip


def site_name(side: str, kind: str) -> str:
    """The site of ``kind`` for ``side`` "a" or "b" (two per kind, so a kind meets itself)."""
    return side + _CODES[kind]


def full_pairs(kinds: Sequence[str] = KINDS) -> list[tuple[str, str]]:
    """Each kind against each (unordered, itself included), in :data:`KINDS` order."""
    return [(a, b) for i, a in enumerate(kinds) for b in kinds[i:]]


@dataclass
class Cell:
    """One pair's result; ``local``/``remote`` are the candidate types of the pair a's ICE
    nominated (local: host or relay, what a sends from; remote: host, srflx, prflx or relay,
    where a reaches b), ``b_local``/``b_remote`` the same for b; ``protocol`` is "tcp"
    when either side reaches its relay over TURN over TCP, else "udp"."""

    a: str
    b: str
    turn: bool
    connected: bool
    seconds: float | None
    local: str | None = None
    remote: str | None = None
    protocol: str | None = None
    b_local: str | None = None
    b_remote: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def relayed(self) -> bool:
        return "relay" in (self.local, self.remote, self.b_local, self.b_remote)

    @property
    def path(self) -> str:
        if not self.connected:
            return "failed"
        return f"{self.local}->{self.remote} / {self.b_local}->{self.b_remote} {self.protocol}"


async def _read_event(stream: asyncio.StreamReader, timeout: float) -> dict[str, Any]:
    import json

    line = await asyncio.wait_for(stream.readline(), timeout)
    if not line:
        raise RuntimeError("the lab peer ended before it reported")
    event: dict[str, Any] = json.loads(line)
    return event


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, BrokenPipeError, ConnectionResetError):
            assert process.stdin is not None
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class Matrix:
    """A running NAT lab with its servers; :meth:`run_cell` runs one pair."""

    def __init__(self, lab: NatLab, plain: RunningServer, relayed: RunningServer,
                 coturn: Coturn) -> None:  # fmt: skip
        self.lab = lab
        self.plain = plain
        self.relayed = relayed
        self.coturn = coturn
        self._rooms = 0

    def site(self, side: str, kind: str) -> Site:
        name = site_name(side, kind)
        if name not in self.lab.sites:
            self.lab.add_site(name, kind)
        return self.lab.sites[name]

    async def _spawn(self, site: Site, server: RunningServer, room: str, name: str,
                     timeout: float) -> asyncio.subprocess.Process:  # fmt: skip
        argv = [sys.executable, "-m", "natlab.peer", "--server", server.url, "--room", room,
                "--name", name, "--timeout", str(timeout)]  # fmt: skip
        return await asyncio.create_subprocess_exec(
            *site.host.exec_args(argv),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def run_cell(self, a: str, b: str, turn: bool, *,
                       timeout: float = CONNECT_TIMEOUT) -> Cell:  # fmt: skip
        """Peers in sites ``a`` and ``b`` (kinds) through the server with or without TURN."""
        loop = asyncio.get_running_loop()
        site_a, site_b = self.site("a", a), self.site("b", b)
        server = self.relayed if turn else self.plain
        self._rooms += 1
        room = f"cell{self._rooms}"
        procs = [
            await self._spawn(site_a, server, room, "A", timeout + JOIN_TIMEOUT),
            await self._spawn(site_b, server, room, "B", timeout + JOIN_TIMEOUT),
        ]
        try:
            streams = [p.stdout for p in procs]
            assert all(s is not None for s in streams)
            for stream in streams:
                assert stream is not None
                joined = await _read_event(stream, JOIN_TIMEOUT)
                if joined.get("event") != "joined":
                    raise RuntimeError(f"a lab peer said {joined} instead of joining")
            start = loop.time()

            async def outcome(stream: asyncio.StreamReader) -> dict[str, Any]:
                try:
                    return await _read_event(stream, timeout)
                except TimeoutError:
                    return {"event": "failed"}

            got_a, got_b = await asyncio.gather(*(outcome(s) for s in streams if s is not None))
            seconds = round(loop.time() - start, 2)
        finally:
            await asyncio.gather(*(_stop(p) for p in procs))
        connected = got_a.get("event") == got_b.get("event") == "connected"
        protocol = None
        if connected:
            protocol = "tcp" if "tcp" in (got_a.get("protocol"), got_b.get("protocol")) else "udp"
        return Cell(
            a=a, b=b, turn=turn, connected=connected, seconds=seconds if connected else None,
            local=got_a.get("local"), remote=got_a.get("remote"), protocol=protocol,
            b_local=got_b.get("local"), b_remote=got_b.get("remote"),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def running_matrix(
    run_dir: Path | None = None, lab: NatLab | None = None
) -> AsyncIterator[Matrix]:
    """A NAT lab (``lab``, or a new one), coturn (UDP and TCP) and two Confide servers in
    its internet namespace.

    The calling thread stays inside the internet namespace for the whole block (the
    servers run in this event loop); everything started here is torn down on the way
    out, also on an error or Ctrl-C (a lab given is left to its owner).
    """
    with contextlib.ExitStack() as stack:
        if run_dir is None:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="natlab-")))
        if lab is None:
            lab = stack.enter_context(NatLab())
        inet = lab.internet
        stack.enter_context(inet.entered())
        loop = asyncio.get_running_loop()
        # Threads inherit the namespace of the thread that starts them (see lab_host).
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="natlab-inet"))
        # RFC 5780 on the internet host's two addresses, for nat-check.
        discovery: dict[str, Any] = {"stun_alt_port": 0, "stun_alt_host": INTERNET_ALT_IP}
        async with (
            running_coturn(
                inet.ip, run_dir / "coturn", netns=inet, allowed_peer_ips=(LAB_PEER_RANGE,)
            ) as coturn,  # fmt: skip
            running_server(inet.ip, **discovery) as plain,
            running_server(
                inet.ip,
                turn_urls=(coturn.url("udp"), coturn.url("tcp")),
                turn_secret=coturn.secret,
                turn_secret_file=coturn.secret_file,
                turn_ttl=600,
                **discovery,
            ) as relayed,
        ):
            yield Matrix(lab, plain, relayed, coturn)


def _is_direct_srflx(cell: Cell) -> bool:
    """Connected without a relay, and each peer behind a NAT reached at its server-reflexive
    candidate (a peer sends from its host candidate, the base of its srflx: RFC 8445
    §6.1.2.4, so the srflx shows in the *other* side's pair)."""
    # (kind of a side, how the other side reached it); a list: a and b may be one kind.
    seen_as = [(cell.a, cell.b_remote), (cell.b, cell.remote)]
    return (
        cell.connected
        and not cell.relayed
        and all(typ == "srflx" for kind, typ in seen_as if kind != "none")
    )


def broken_expectations(cells: Iterable[Cell]) -> list[str]:
    """The issue's expectations that ``cells`` break, one sentence each (empty: all hold).

    - eim ↔ eim and eim ↔ none connect directly through srflx candidates, without TURN;
    - apdm ↔ apdm fails without TURN and connects through the relay with it;
    - with TURN every pair connects;
    - udp-blocked connects only through TURN over TCP.
    """
    broken = []
    for cell in cells:
        kinds = {cell.a, cell.b}
        name = f"{cell.a} <-> {cell.b} with{'' if cell.turn else 'out'} TURN"
        if kinds in ({"eim"}, {"eim", "none"}) and not cell.turn and not _is_direct_srflx(cell):
            broken.append(f"{name}: expected a direct srflx connection, got {cell.path}")
        if kinds == {"apdm"} and not cell.turn and cell.connected:
            broken.append(f"{name}: expected no connection, got {cell.path}")
        if kinds == {"apdm"} and cell.turn and not (cell.connected and cell.relayed):
            broken.append(f"{name}: expected a relayed connection, got {cell.path}")
        if cell.turn and not cell.connected:
            broken.append(f"{name}: expected every pair to connect with TURN, it failed")
        if "udp-blocked" in kinds:
            if not cell.turn and cell.connected:
                broken.append(f"{name}: expected no connection, got {cell.path}")
            if cell.connected and not (cell.relayed and cell.protocol == "tcp"):
                broken.append(f"{name}: expected TURN over TCP, got {cell.path}")
    return broken
