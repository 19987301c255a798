"""``?relay=1`` in real Chromium: only TURN candidates (a real coturn in the lab), the chat
works through the relay, and the diagnostics say that the connection is relayed."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from natlab.coturn import Coturn
from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import (
    TIMEOUT_MS,
    chromium,
    expect_connected,
    expect_message,
    lab_server,
    open_link,
    send,
)

TEST_TIMEOUT = 90.0


async def test_relay_only_goes_through_turn_and_says_so(
    lab_host: Host, lab_coturn: Coturn, launch_browser: BrowserLauncher
) -> None:
    overrides = {"turn_urls": (lab_coturn.url(),), "turn_secret": lab_coturn.secret}
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host, **overrides) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        pages = []
        for name in ("Ada", "Bob"):
            context = await browser.new_context()
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await open_link(page, server.url, "relayed", name, relay=True)
            pages.append(page)
        ada, bob = pages
        await expect_connected(ada, "Bob")
        await send(ada, "through the relay")
        await expect_message(bob, "through the relay")

        peers = ada.get_by_role("list", name="Peers")
        await peers.get_by_text("Details").click()
        diag = peers.locator(".diag")
        await expect(diag).to_contain_text("relay ↔ relay over udp")
        await expect(diag).to_contain_text("relayed (TURN)")
        await ada.get_by_role("button", name="Test connectivity").click()
        await expect(ada.locator("#probeout")).to_contain_text("TURN works.")
