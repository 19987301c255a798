"""The safety number catches a man in the middle (docs/PROTOCOL.md, "Safety numbers").

A hostile signaling path: a WebSocket proxy in front of the real server that sees and
rewrites every frame. Either it terminates DTLS towards each side with two aiortc
connections of its own and bridges their chat channels (the peers connect and chat,
but their safety numbers differ), or it only rewrites the ``a=fingerprint`` lines (the
DTLS handshake then fails, as aiortc checks the certificate against them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RTCCertificate

from client_py import events as ev
from client_py.room import Room
from natlab.lab import Host
from natlab.processes import wait_until
from natlab.servers import RunningServer, running_server
from tests.peer_helpers import WAIT, of_type, wait_for_event


class Conn:
    """One client's path through the proxy."""

    def __init__(self, client: web.WebSocketResponse) -> None:
        self.client = client
        self.id: str | None = None

    async def to_client(self, frame: dict[str, Any]) -> None:
        await self.client.send_str(json.dumps(frame))


Hook = Callable[[Conn, dict[str, Any]], Awaitable[bool]]


@contextlib.asynccontextmanager
async def hostile_proxy(
    host: str, upstream: str, on_client: Hook, on_server: Hook
) -> AsyncIterator[tuple[str, dict[str, Conn]]]:
    """A signaling proxy; a hook returning True swallows the frame. Yields (ws URL, conns)."""
    conns: dict[str, Conn] = {}
    session = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse()
        await client.prepare(request)
        conn = Conn(client)
        async with session.ws_connect(upstream) as server:

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

    app = web.Application()
    app.router.add_get("/ws", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://{host}:{port}/ws", conns
    finally:
        await runner.cleanup()
        await session.close()


@pytest.fixture
async def lab_server(lab_host: Host) -> AsyncIterator[RunningServer]:
    async with running_server(host=lab_host.ip) as server:
        yield server


async def _pass(conn: Conn, frame: dict[str, Any]) -> bool:
    return False


async def test_a_relay_terminating_dtls_on_each_side_shows_different_safety_numbers(
    lab_host: Host, lab_server: RunningServer
) -> None:
    pcs: dict[str, RTCPeerConnection] = {}  # the relay's connection towards each peer id
    certificate = RTCCertificate.generateCertificate()
    relayed: list[str] = []

    def relay_pc(towards: str) -> RTCPeerConnection:
        # No ICE servers: aiortc's default is a public STUN server, out of the lab's reach.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]
        chat = pc.createDataChannel("chat", negotiated=True, id=0)
        pcs[towards] = pc

        @chat.on("message")
        def forward(data: str | bytes) -> None:
            relayed.append(data if isinstance(data, str) else "")
            for other_id, other in pcs.items():
                if other_id != towards and other.sctp is not None:
                    for channel in other.sctp._data_channels.values():
                        if channel.label == "chat" and channel.readyState == "open":
                            channel.send(data)

        return pc

    async def on_client(conn: Conn, frame: dict[str, Any]) -> bool:
        kind, to = frame.get("type"), frame.get("to")
        if kind not in ("offer", "answer", "candidate"):
            return False
        assert conn.id is not None and isinstance(to, str)
        if kind == "offer":
            # Answer the newcomer as if we were `to`, and offer to `to` as the newcomer.
            towards_sender = relay_pc(conn.id)
            await towards_sender.setRemoteDescription(RTCSessionDescription(frame["sdp"], "offer"))
            await towards_sender.setLocalDescription(await towards_sender.createAnswer())
            answer = {"type": "answer", "from": to, "sdp": towards_sender.localDescription.sdp}
            await conn.to_client(answer)
            towards_target = relay_pc(to)
            await towards_target.setLocalDescription(await towards_target.createOffer())
            offer = {"type": "offer", "from": conn.id, "sdp": towards_target.localDescription.sdp}
            await conns[to].to_client(offer)
        elif kind == "answer":
            await pcs[conn.id].setRemoteDescription(RTCSessionDescription(frame["sdp"], "answer"))
        return True  # nothing of the peers' own negotiation reaches the other side

    async with hostile_proxy(lab_host.ip, lab_server.ws_url, on_client, _pass) as (url, conns):
        bob = Room(url, "mitm", "Bob")
        ada = Room(url, "mitm", "Ada")
        try:
            await bob.start()
            await ada.start()
            a = await wait_for_event(ada, ev.Connected)
            b = await wait_for_event(bob, ev.Connected)
            # The attack works: they chat through the relay ...
            ada.send_text("meet at noon")
            assert (await wait_for_event(bob, ev.Message)).text == "meet at noon"
            assert any("meet at noon" in r for r in relayed)
            # ... but the numbers on the two screens differ.
            assert a.safety_number and b.safety_number
            assert a.safety_number != b.safety_number
            assert a.source == b.source == "dtls"
        finally:
            await ada.close()
            await bob.close()
            await asyncio.gather(*(pc.close() for pc in pcs.values()))


async def test_a_relay_rewriting_only_the_fingerprint_makes_the_handshake_fail(
    lab_host: Host, lab_server: RunningServer
) -> None:
    fake = RTCCertificate.generateCertificate().getFingerprints()
    fake_line = next(f"a=fingerprint:sha-256 {f.value}" for f in fake if f.algorithm == "sha-256")
    rewritten: list[str] = []

    async def on_server(conn: Conn, frame: dict[str, Any]) -> bool:
        if frame.get("type") in ("offer", "answer"):
            sdp, n = re.subn(r"a=fingerprint:sha-256 [0-9A-Fa-f:]+", fake_line, frame["sdp"])
            assert n >= 1
            frame["sdp"] = sdp
            rewritten.append(frame["type"])
        return False

    async with hostile_proxy(lab_host.ip, lab_server.ws_url, _pass, on_server) as (url, _):
        bob = Room(url, "fp", "Bob")
        ada = Room(url, "fp", "Ada")
        try:
            await bob.start()
            await ada.start()
            lost = await wait_for_event(ada, ev.PeerDisconnected)
            assert lost.reason == "connection failed"
            await wait_for_event(bob, ev.PeerDisconnected)
            assert {"offer", "answer"} <= set(rewritten)
            assert not of_type(ada, ev.Connected) and not of_type(bob, ev.Connected)
            assert all(link.safety_number is None for r in (ada, bob) for link in r.peers.values())
            await wait_until(
                lambda: not any(p.connected.is_set() for p in ada.peers.values()), WAIT
            )
        finally:
            await ada.close()
            await bob.close()
