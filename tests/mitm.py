"""A man in the middle for the tests: a hostile signaling path, and a relay that terminates
DTLS towards each peer (tests/test_peer_mitm.py with aiortc peers, tests/test_browser_mitm.py
with Chromium pages).

:func:`hostile_proxy` is a WebSocket proxy in front of the real server that sees, rewrites
or swallows every frame (and, for pages, serves the client's files, so that the page's
origin, and so its WebSocket, is the proxy). :class:`DtlsRelay` is the attack the safety
number exists for: it answers each peer's negotiation with an aiortc connection of its own,
so each peer's DTLS session ends at the relay, and it bridges the two chat channels. The
peers connect and chat; only the numbers they are shown differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceCandidate, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCCertificate

from client_py.channel import CHAT_CHANNEL_ID, CHAT_LABEL
from client_py.peer import parse_candidate
from client_py.safety import normalise

__all__ = ["Conn", "DtlsRelay", "Hook", "hostile_proxy", "pass_through"]


class Conn:
    """One client's path through the proxy."""

    def __init__(self, client: web.WebSocketResponse) -> None:
        self.client = client
        self.id: str | None = None

    async def to_client(self, frame: dict[str, Any]) -> None:
        await self.client.send_str(json.dumps(frame))


#: Sees one frame on its way; returns True to swallow it.
Hook = Callable[[Conn, dict[str, Any]], Awaitable[bool]]


async def pass_through(conn: Conn, frame: dict[str, Any]) -> bool:
    return False


@contextlib.asynccontextmanager
async def hostile_proxy(
    host: str, upstream: str, on_client: Hook, on_server: Hook, *, files: str | None = None
) -> AsyncIterator[tuple[str, dict[str, Conn]]]:
    """A signaling proxy to the server at ws URL ``upstream``. With ``files`` (the server's
    http URL) it serves the client's files too. Yields (its URL: ``ws://…/ws``, or the
    ``http://…`` page origin with ``files``; the clients' paths by peer id)."""
    conns: dict[str, Conn] = {}
    clients: list[web.WebSocketResponse] = []
    session = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        clients.append(client)
        conn = Conn(client)
        # A page's proxy says where the page came from, as the page itself would.
        async with session.ws_connect(upstream, origin=files) as server:

            async def down() -> None:
                async for msg in server:
                    frame = json.loads(msg.data)
                    if frame.get("type") == "welcome":
                        conn.id = frame["id"]
                        conns[frame["id"]] = conn
                    if not await on_server(conn, frame):
                        await client.send_str(json.dumps(frame))
                await client.close()

            task = asyncio.create_task(down())
            async for msg in client:
                frame = json.loads(msg.data)
                if not await on_client(conn, frame):
                    await server.send_str(json.dumps(frame))
            task.cancel()
        return client

    async def static(request: web.Request) -> web.Response:
        async with session.get(f"{files}{request.path_qs}") as response:
            body = await response.read()
            kind = response.headers.get("Content-Type")
            return web.Response(body=body, status=response.status,
                                headers={"Content-Type": kind} if kind else None)  # fmt: skip

    app = web.Application()
    app.router.add_get("/ws", handle)
    if files:
        app.router.add_get("/{tail:.*}", static)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield (f"http://{host}:{port}" if files else f"ws://{host}:{port}/ws"), conns
    finally:
        # Close the clients' sockets first: a page keeps its own open, and the cleanup
        # would wait for it.
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        await runner.cleanup()
        await session.close()


class DtlsRelay:
    """Use :meth:`on_client` as the proxy's client hook and set :attr:`conns`: the newcomer's
    offer to X is answered by the relay as X, and the relay offers to X as the newcomer;
    candidates go to the relay's connection facing their sender. Nothing of the peers' own
    negotiation reaches the other side."""

    def __init__(self) -> None:
        self.certificate = RTCCertificate.generateCertificate()
        #: The relay's connection facing each peer id.
        self.pcs: dict[str, RTCPeerConnection] = {}
        #: The text of every chat message bridged (either way).
        self.relayed: list[str] = []
        self.conns: dict[str, Conn] = {}
        self._waiting: dict[str, list[RTCIceCandidate]] = {}

    @property
    def fingerprint(self) -> str:
        """The relay's certificate, as the peers see it: ``sha-256 AB:…``."""
        (value,) = [f.value for f in self.certificate.getFingerprints() if f.algorithm == "sha-256"]
        return normalise(f"sha-256 {value}")

    def _pc(self, towards: str) -> RTCPeerConnection:
        # No ICE servers: aiortc's default is a public STUN server, out of the lab's reach.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc._RTCPeerConnection__certificates = [self.certificate]  # type: ignore[attr-defined]
        chat = pc.createDataChannel(CHAT_LABEL, negotiated=True, id=CHAT_CHANNEL_ID)
        self.pcs[towards] = pc

        @chat.on("message")
        def forward(data: str | bytes) -> None:
            self.relayed.append(data if isinstance(data, str) else "")
            for other_id, other in self.pcs.items():
                if other_id != towards and other.sctp is not None:
                    for channel in other.sctp._data_channels.values():
                        if channel.label == CHAT_LABEL and channel.readyState == "open":
                            channel.send(data)

        return pc

    async def _described(self, towards: str) -> None:
        """The remote description of the connection facing ``towards`` is set: the
        candidates that came before it go in now."""
        for candidate in self._waiting.pop(towards, []):
            await self.pcs[towards].addIceCandidate(candidate)

    async def on_client(self, conn: Conn, frame: dict[str, Any]) -> bool:
        kind, to = frame.get("type"), frame.get("to")
        if kind not in ("offer", "answer", "candidate"):
            return False
        sender = conn.id
        assert sender is not None and isinstance(to, str)
        if kind == "offer":
            if sender in self.pcs:
                return True  # one connection each way is all this relay needs
            # Answer the newcomer as if we were `to`, and offer to `to` as the newcomer.
            towards_sender = self._pc(sender)
            await towards_sender.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
            await self._described(sender)
            await towards_sender.setLocalDescription(await towards_sender.createAnswer())
            answer = {"type": "answer", "from": to, "sdp": towards_sender.localDescription.sdp}
            await conn.to_client(answer)
            towards_target = self._pc(to)
            await towards_target.setLocalDescription(await towards_target.createOffer())
            offer = {"type": "offer", "from": sender, "sdp": towards_target.localDescription.sdp}
            await self.conns[to].to_client(offer)
        elif kind == "answer":
            answered = self.pcs[sender]
            if answered.signalingState == "have-local-offer":
                await answered.setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
                await self._described(sender)
        else:
            candidate = parse_candidate(frame.get("candidate"))
            facing = self.pcs.get(sender)
            if candidate is None:
                pass  # end of candidates: aiortc needs no word of it
            elif facing is None or facing.remoteDescription is None:
                self._waiting.setdefault(sender, []).append(candidate)
            else:
                await facing.addIceCandidate(candidate)
        return True

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.pcs.values()))
