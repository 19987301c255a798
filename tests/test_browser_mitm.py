"""A hostile signaling relay: between the browsers and the real server, a test-only aiohttp
proxy adds to every relayed description an ``a=fingerprint:sha-256`` line of a certificate
of its own (Chromium keeps the last such line and checks the DTLS certificate against it).
The connection must then break, or the safety numbers must differ: it may never show
matching numbers for a session that the fingerprint swap touched.  The same proxy without
the injection connects normally, so the break is due to the injected line.

And the attack the safety number exists for: a relay that terminates DTLS towards each page
with an aiortc connection of its own (tests/mitm.py) and bridges the two chat channels. The
pages connect and chat through it, and the numbers they show differ: each is the number of
that page's certificate with the relay's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCCertificate
from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from natlab.processes import free_port
from tests.browser import (
    NUMBER,
    certificate_of,
    chromium,
    expect_message,
    join,
    lab_server,
    people,
    safety_number,
    safety_number_of,
    send,
)
from tests.mitm import DtlsRelay, hostile_proxy, pass_through

TEST_TIMEOUT = 90.0
#: The room in which the proxy injects; other rooms pass untouched (the control).
HOSTILE_ROOM = "mitm"


def inject(sdp: str, fingerprint: str) -> str:
    """Add our fingerprint after the last a=fingerprint line of each section."""
    out: list[str] = []
    lines = sdp.split("\r\n")
    for i, line in enumerate(lines):
        out.append(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith("a=fingerprint:") and not nxt.startswith("a=fingerprint:"):
            out.append(f"a=fingerprint:sha-256 {fingerprint}")
    return "\r\n".join(out)


@asynccontextmanager
async def hostile_relay(
    host: str, upstream: str, fingerprint: str
) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """Serve the client's files and relay /ws to ``upstream``; yields the relay's URL and
    its count of descriptions it rewrote."""
    session = aiohttp.ClientSession()
    counts = {"injected": 0}
    sockets: list[web.WebSocketResponse | aiohttp.ClientWebSocketResponse] = []

    async def files(request: web.Request) -> web.Response:
        async with session.get(upstream + request.path_qs) as response:
            body = await response.read()
            headers = {k: v for k, v in response.headers.items() if k.lower() in ("content-type",)}
            return web.Response(body=body, status=response.status, headers=headers)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        down = web.WebSocketResponse()
        await down.prepare(request)
        url = upstream.replace("http", "ws", 1) + "/ws"
        async with session.ws_connect(url, origin=upstream) as up:
            sockets.extend((down, up))
            hostile = False

            async def to_server() -> None:
                nonlocal hostile
                async for msg in down:
                    frame: dict[str, Any] = msg.json()
                    if frame.get("type") == "join":
                        hostile = frame.get("room") == HOSTILE_ROOM
                    await up.send_str(msg.data)
                await up.close()

            async def to_client() -> None:
                async for msg in up:
                    frame = msg.json()
                    if hostile and frame.get("type") in ("offer", "answer"):
                        frame["sdp"] = inject(frame["sdp"], fingerprint)
                        counts["injected"] += 1
                    await down.send_json(frame)
                await down.close()

            await asyncio.gather(to_server(), to_client())
        return down

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/{tail:.*}", files)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port(host)
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}", counts
    finally:
        for sock in sockets:
            await sock.close()
        await runner.cleanup()
        await session.close()


async def test_an_injected_fingerprint_breaks_the_connection(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    own = RTCCertificate.generateCertificate().getFingerprints()[0].value
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", own)
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        lab_server(lab_host) as server,
        hostile_relay(lab_host.ip, server.url, own) as (relay, counts),
    ):
        browser = await chromium(launch_browser, lab_host, relay)
        # Control: through the same relay, untouched, people connect.
        assert counts["injected"] == 0
        ada, bob = await people(browser, relay, "control", "Ada", "Bob")

        eve_a = await join(browser, relay, HOSTILE_ROOM, "Ann")
        eve_b = await join(browser, relay, HOSTILE_ROOM, "Ben")
        peers_a = eve_a.get_by_role("list", name="Peers")
        peers_b = eve_b.get_by_role("list", name="Peers")
        # DTLS fails on the certificate check: the connection ends "failed" ...
        await expect(peers_a.locator(".state")).to_have_text("failed", timeout=30_000)
        await expect(peers_b.locator(".state")).to_have_text("failed", timeout=30_000)
        # ... and no chat channel ever opened, so no matching numbers were ever shown.
        for page, other in ((eve_a, "Ben"), (eve_b, "Ann")):
            await expect(safety_number(page, other)).not_to_have_text(NUMBER)
        assert counts["injected"] >= 2  # the offer and the answer were both rewritten
        await send(eve_a, "through the man in the middle?")
        await expect(
            eve_b.get_by_role("log", name="Messages").get_by_text("man in the middle")
        ).to_have_count(0)


async def test_a_relay_terminating_dtls_between_two_pages_shows_different_numbers(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    relay = DtlsRelay()
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        lab_server(lab_host) as server,
        hostile_proxy(
            lab_host.ip, server.ws_url, relay.on_client, pass_through, files=server.url
        ) as (url, conns),  # fmt: skip
    ):
        relay.conns = conns
        try:
            browser = await chromium(launch_browser, lab_host, url)
            # The attack works: both pages connect (to the relay) and chat through it ...
            ann, ben = await people(browser, url, "dtls-mitm", "Ann", "Ben")
            await send(ann, "meet at noon")
            await expect_message(ben, "meet at noon")
            await send(ben, "see you there")
            await expect_message(ann, "see you there")
            assert any("meet at noon" in m for m in relay.relayed)
            assert any("see you there" in m for m in relay.relayed)
            # ... each page sees the relay's certificate as its peer's ...
            assert await certificate_of(ann, "Ben") == relay.fingerprint
            assert await certificate_of(ben, "Ann") == relay.fingerprint
            # ... and the numbers the two people would compare differ: each is its own
            # certificate's number with the relay's.
            shown_ann = (await safety_number(ann, "Ben").text_content() or "").strip()
            shown_ben = (await safety_number(ben, "Ann").text_content() or "").strip()
            assert NUMBER.fullmatch(shown_ann) and NUMBER.fullmatch(shown_ben)
            assert shown_ann != shown_ben
            assert shown_ann == safety_number_of(await certificate_of(ann), relay.fingerprint)
            assert shown_ben == safety_number_of(await certificate_of(ben), relay.fingerprint)
        finally:
            await relay.close()
