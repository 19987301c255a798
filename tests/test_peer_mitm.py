"""The safety number catches a man in the middle (docs/PROTOCOL.md, "Safety numbers").

A hostile signaling path (tests/mitm.py): a WebSocket proxy in front of the real server
that sees and rewrites every frame. Either it terminates DTLS towards each side with two aiortc
connections of its own and bridges their chat channels (the peers connect and chat,
but their safety numbers differ), or it only rewrites the ``a=fingerprint`` lines (the
DTLS handshake then fails, as aiortc checks the certificate against them).
"""

from __future__ import annotations

import re
from typing import Any

from aiortc.rtcdtlstransport import RTCCertificate

from client_py import events as ev
from client_py.room import Room
from natlab.lab import Host
from natlab.processes import wait_until
from natlab.servers import RunningServer
from tests.mitm import Conn, DtlsRelay, hostile_proxy, pass_through
from tests.peer_helpers import WAIT, of_type, wait_for_event


async def test_a_relay_terminating_dtls_on_each_side_shows_different_safety_numbers(
    lab_host: Host, lab_server: RunningServer
) -> None:
    relay = DtlsRelay()

    async with hostile_proxy(lab_host.ip, lab_server.ws_url, relay.on_client, pass_through) as (
        url,
        conns,
    ):
        relay.conns = conns
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
            assert any("meet at noon" in r for r in relay.relayed)
            # ... but the numbers on the two screens differ.
            assert a.safety_number and b.safety_number
            assert a.safety_number != b.safety_number
            assert a.source == b.source == "dtls"
        finally:
            await ada.close()
            await bob.close()
            await relay.close()


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

    async with hostile_proxy(lab_host.ip, lab_server.ws_url, pass_through, on_server) as (url, _):
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
