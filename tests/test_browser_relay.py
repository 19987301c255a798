"""``?relay=1`` in real Chromium: only TURN candidates (a real coturn in the lab), the chat
works through the relay, and the diagnostics say that the connection is relayed."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from natlab.coturn import Coturn
from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import chromium, expect_message, lab_server, people, send

TEST_TIMEOUT = 90.0


async def test_relay_only_goes_through_turn_and_says_so(
    lab_host: Host, lab_coturn: Coturn, launch_browser: BrowserLauncher
) -> None:
    overrides = {"turn_urls": (lab_coturn.url(),), "turn_secret": lab_coturn.secret}
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host, **overrides) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "relayed", "Ada", "Bob", relay=True)
        await send(ada, "through the relay")
        await expect_message(bob, "through the relay")

        peers = ada.get_by_role("list", name="Peers")
        await peers.get_by_text("Details").click()
        diag = peers.locator(".diag")
        await expect(diag).to_contain_text("relay ↔ relay over udp")
        await expect(diag).to_contain_text("relayed (TURN)")
        await ada.get_by_role("button", name="Test connectivity").click()
        await expect(ada.locator("#probeout")).to_contain_text("TURN works.")
