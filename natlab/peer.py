"""A lab peer: the terminal peer's own :class:`~client_py.room.Room`, reporting its path.

``python -m natlab.peer --server URL --room ROOM --name NAME [--timeout S]`` joins, waits
until the chat channel with the first other peer is open, and prints one JSON object per
line on stdout:

- ``{"event": "joined"}`` once in the room;
- ``{"event": "connected", "local": "srflx", "remote": "prflx", "protocol": "udp"}``: the
  types of the candidate pair ICE nominated (RFC 8445 §5.1.1: host, srflx, prflx, relay),
  and how this peer reaches it: ``tcp`` only when its own candidate is a relay reached
  over TURN over TCP (RFC 6062 is not used: WebRTC relays UDP);
- ``{"event": "failed"}`` when ``--timeout`` passed first (aiortc itself takes ~64 s).

Then it stays in the room (so the other side keeps its connection) until stdin closes.
``confide chat`` shows the same pair in ``/peers`` but not the TURN transport, which the
NAT matrix needs; the peer code is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from client_py import events as ev
from client_py.cli import ws_url
from client_py.peer import PeerLink, selected_candidates
from client_py.room import Room

__all__ = ["path_of", "main"]


def path_of(link: PeerLink) -> dict[str, Any] | None:
    """Local and remote candidate types of ``link``'s nominated pair, and the protocol."""
    pair = selected_candidates(link.pc)
    if pair is None or link.pc is None or link.pc.sctp is None:
        return None
    local, remote = pair
    connection = link.pc.sctp.transport.transport._connection
    protocol = connection.turn_transport if local.type == "relay" else local.transport.lower()
    return {"local": local.type, "remote": remote.type, "protocol": protocol}


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def run(server: str, room_name: str, name: str, timeout: float) -> int:
    room = Room(ws_url(server), room_name, name)
    loop = asyncio.get_running_loop()
    try:
        await room.start()
        _say(event="joined")
        deadline = loop.time() + timeout
        link: PeerLink | None = None
        while link is None:
            left = deadline - loop.time()
            if left <= 0:
                _say(event="failed")
                break
            try:
                event = await asyncio.wait_for(room.events.get(), left)
            except TimeoutError:
                continue
            if isinstance(event, ev.Connected):
                link = room.peers.get(event.peer)
        if link is not None:
            _say(event="connected", **(path_of(link) or {}))
        # Stay until told to go: the other side may still be finishing its own checks.
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        await room.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m natlab.peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", required=True, metavar="URL")
    parser.add_argument("--room", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, default=20.0, metavar="S")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout: must be more than 0 seconds")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args.server, args.room, args.name, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
