"""aiortc peers that may only use the relay connect through a real coturn.

The lab: coturn in host "turn" (10.231.0.3); the Confide server and both aiortc
peers in host "main" (10.231.0.2), the test's own namespace. The peers take their
TURN credentials from the server (a signaling ``welcome`` and
``/api/ice-servers``), negotiate through the server's signaling, and must end up
on a relay-relay pair.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

from natlab.coturn import Coturn, turn_allocation
from natlab.lab import Host
from natlab.servers import RunningServer

#: Seconds for ICE, DTLS and SCTP through the relay (about 0.05-0.6 s here).
CONNECT_TIMEOUT = 30.0
#: Seconds for one message to come back.
MESSAGE_TIMEOUT = 10.0


def rtc_ice_servers(ice_servers: list[dict[str, Any]], transport: str) -> list[RTCIceServer]:
    """The server's RTCIceServer dictionaries (W3C webrtc-pc §4.2.1) as aiortc objects,
    keeping only the TURN URL of ``transport`` (aiortc would use only the first anyway)."""
    servers = []
    for entry in ice_servers:
        urls = [
            url
            for url in entry["urls"]
            if not url.startswith("turn") or url.endswith(f"?transport={transport}")
        ]
        servers.append(
            RTCIceServer(
                urls=urls, username=entry.get("username"), credential=entry.get("credential")
            )
        )
    return servers


def turn_entry(ice_servers: list[dict[str, Any]]) -> dict[str, Any]:
    (entry,) = [e for e in ice_servers if any(u.startswith("turn") for u in e["urls"])]
    return entry


@asynccontextmanager
async def joined(
    http: aiohttp.ClientSession, server: RunningServer, room: str, name: str
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]]:
    """A real signaling join; yields the socket and its ``welcome``."""
    async with http.ws_connect(server.ws_url, origin=server.url) as ws:
        await ws.send_json({"type": "join", "room": room, "name": name})
        welcome = await ws.receive_json(timeout=MESSAGE_TIMEOUT)
        assert welcome["type"] == "welcome", welcome
        yield ws, welcome


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        frame = await ws.receive_json(timeout=MESSAGE_TIMEOUT)
        if frame["type"] == kind:
            assert isinstance(frame, dict)
            return frame


@dataclass
class Peer:
    """An aiortc peer with the negotiated ``chat`` channel of docs/PROTOCOL.md."""

    pc: RTCPeerConnection
    channel: RTCDataChannel
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    received: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    @classmethod
    def relay_only(cls, ice_servers: list[dict[str, Any]], transport: str = "udp") -> Peer:
        config = RTCConfiguration(
            iceServers=rtc_ice_servers(ice_servers, transport),
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
        pc = RTCPeerConnection(config)
        channel = pc.createDataChannel("chat", negotiated=True, id=0)
        peer = cls(pc, channel)
        channel.on("open", peer.opened.set)
        channel.on("message", lambda message: peer.received.put_nowait(message))
        if channel.readyState == "open":
            peer.opened.set()
        return peer

    def selected_pair(self) -> tuple[Any, Any]:
        """(local, remote) aioice candidates of the nominated pair of component 1."""
        sctp = self.pc.sctp
        assert sctp is not None
        connection = sctp.transport.transport._connection
        pair = connection._nominated[1]
        return pair.local_candidate, pair.remote_candidate


async def exchange(a: Peer, b: Peer) -> None:
    """A message each way over the chat channel, as in docs/PROTOCOL.md."""
    hello = json.dumps({"t": "msg", "id": "m1", "ts": 1, "text": "through the relay", "dm": False})
    a.channel.send(hello)
    assert await asyncio.wait_for(b.received.get(), MESSAGE_TIMEOUT) == hello
    ack = json.dumps({"t": "ack", "id": "m1"})
    b.channel.send(ack)
    assert await asyncio.wait_for(a.received.get(), MESSAGE_TIMEOUT) == ack


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_only_peers_chat_through_coturn(
    relay_server: RunningServer, lab_coturn: Coturn, lab_host: Host, transport: str
) -> None:
    """With TURN over UDP, and over TCP (for networks that block UDP: the relayed
    addresses are UDP either way)."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        # Ada's credentials come with her welcome, Grace's from /api/ice-servers.
        ws_a, welcome_a = await stack.enter_async_context(
            joined(http, relay_server, "relay", "Ada")
        )
        ws_b, welcome_b = await stack.enter_async_context(
            joined(http, relay_server, "relay", "Grace")
        )
        async with http.get(relay_server.url + "/api/ice-servers") as response:
            assert response.headers["Cache-Control"] == "no-store"
            servers_b = (await response.json())["iceServers"]
        turn_a, turn_b = turn_entry(welcome_a["iceServers"]), turn_entry(servers_b)
        assert turn_a["urls"][0] == lab_coturn.url("udp")  # aiortc uses the first only
        assert turn_a["username"] != turn_b["username"]  # minted per client

        a = Peer.relay_only(welcome_a["iceServers"], transport)
        b = Peer.relay_only(servers_b, transport)
        stack.push_async_callback(a.pc.close)
        stack.push_async_callback(b.pc.close)

        # Grace is the newcomer and offers to Ada through the server.
        await b.pc.setLocalDescription(await b.pc.createOffer())
        await ws_b.send_json(
            {"type": "offer", "to": welcome_a["id"], "sdp": b.pc.localDescription.sdp}
        )
        offer = await next_frame(ws_a, "offer")
        assert offer["from"] == welcome_b["id"]
        await a.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await a.pc.setLocalDescription(await a.pc.createAnswer())
        await ws_a.send_json(
            {"type": "answer", "to": welcome_b["id"], "sdp": a.pc.localDescription.sdp}
        )
        answer = await next_frame(ws_b, "answer")
        await b.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))

        # Relay-only: the descriptions carry relayed candidates and nothing else.
        for sdp in (offer["sdp"], answer["sdp"]):
            kinds = {line.split(" typ ")[1].split()[0] for line in sdp.splitlines()
                     if line.startswith("a=candidate:")}  # fmt: skip
            assert kinds == {"relay"}, sdp

        await asyncio.wait_for(a.opened.wait(), CONNECT_TIMEOUT)
        await asyncio.wait_for(b.opened.wait(), CONNECT_TIMEOUT)
        await exchange(a, b)

        # The selected pair is relay on both sides, both relayed addresses on coturn.
        for peer in (a, b):
            local, remote = peer.selected_pair()
            assert (local.type, remote.type) == ("relay", "relay")
            assert local.host == remote.host == lab_coturn.host

    # coturn saw the two usernames the server minted, and nothing else.
    log = lab_coturn.log_text()
    assert turn_a["username"] in log
    assert turn_b["username"] in log
    # ...over the transport asked for (coturn logs each TCP client connection).
    assert ("tcp or tls connected to" in log) == (transport == "tcp")


async def test_secret_in_no_http_response_or_log_line(
    relay_server: RunningServer,
    lab_coturn: Coturn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The shared secret stays on the two servers: not in HTTP, not in any log."""
    caplog.set_level(logging.DEBUG)
    secret = lab_coturn.secret.decode()
    bodies: list[str] = []
    async with aiohttp.ClientSession() as http:
        async with joined(http, relay_server, "secret", "Ada") as (_, welcome):
            bodies.append(json.dumps(welcome))
            for path in ("/api/ice-servers", "/healthz", "/"):
                async with http.get(relay_server.url + path) as response:
                    assert response.status == 200, path
                    bodies.append(await response.text())
                    bodies.append(json.dumps(dict(response.headers)))
        turn = turn_entry(welcome["iceServers"])
        # A real allocation with those credentials, so that coturn logs a session.
        async with turn_allocation(lab_coturn.address, turn["username"], turn["credential"]):
            pass
    assert all(body for body in bodies)
    for body in bodies:
        assert secret not in body
    assert caplog.records, "the server logged nothing at DEBUG: the check would be empty"
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in repr(record.args)
    log = lab_coturn.log_text()
    assert turn["username"] in log  # the session was logged...
    assert secret not in log  # ...without the secret
