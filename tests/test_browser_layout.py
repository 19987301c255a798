"""Layout, sharing, history and diagnostics in real Chromium; also makes the README's
screenshot of a live chat (written to docs/screenshot.png when CONFIDE_SCREENSHOT=1)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import (
    chromium,
    expect_connected,
    expect_message,
    join,
    lab_server,
    log,
    open_link,
    send,
)

TEST_TIMEOUT = 90.0
DOCS = Path(__file__).resolve().parent.parent / "docs"


async def test_live_chat_screenshot_phone_width_and_dark_scheme(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "design-review", "Ada")
        grace = await join(browser, server.url, "design-review", "Grace")
        alan = await join(browser, server.url, "design-review", "Alan")
        await expect_connected(ada, "Grace", "Alan")
        await send(grace, "Morning! The new mock-ups are in the shared folder.")
        await send(ada, "Thanks, looking now. The header spacing is much better.")
        await send(alan, "Can we check the safety numbers before we share the contract?")
        await send(grace, "Mine with you is on the left panel, Ada. Read it out on the call?")
        await send(ada, "Let's call at 11 to go through it.", to="Grace")
        notes = tmp_path / "contract-draft.pdf"
        notes.write_bytes(b"%PDF-1.4\n" + os.urandom(180_000))
        await grace.get_by_label("Send file").set_input_files(notes)
        await log(ada).get_by_role("button", name="Accept").click()
        await expect(log(ada).locator(".file[data-state=received]")).to_have_count(1)
        await expect_message(ada, "Read it out on the call?")
        shot = await ada.screenshot(type="png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
        if os.environ.get("CONFIDE_SCREENSHOT") == "1":
            (DOCS / "screenshot.png").write_bytes(shot)

        # A phone's width: nothing wider than the screen, the message box still usable.
        phone = await browser.new_context(
            viewport={"width": 375, "height": 740}, color_scheme="dark"
        )
        page = await phone.new_page()
        await open_link(page, server.url, "design-review", "Pat")
        await expect_connected(page, "Ada")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        await expect(page.get_by_role("textbox", name="Message")).to_be_in_viewport()
        await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
        # prefers-color-scheme: dark gives a dark background.
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 24, 28)"


async def test_history_share_link_typing_and_diagnostics(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "keep", "Ada")
        bob = await join(browser, server.url, "keep", "Bob")
        await expect_connected(ada, "Bob")

        # Typing indicator, then the message.
        await bob.get_by_role("textbox", name="Message").press_sequentially("hel")
        await expect(ada.get_by_text("Bob typing…")).to_be_visible()
        await bob.get_by_role("textbox", name="Message").press("Enter")
        await expect_message(ada, "hel")
        await expect(ada.get_by_text("Bob typing…")).to_have_count(0)

        # The share link, copied, and its QR code (from the server's /api/qr).
        link = await ada.get_by_label("Room link").input_value()
        assert link == f"{server.url}/?room=keep"
        await ada.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await ada.get_by_role("button", name="Copy link").click()
        await expect(ada.get_by_role("banner").get_by_role("status")).to_have_text("link copied")
        assert await ada.evaluate("navigator.clipboard.readText()") == link
        await ada.get_by_role("button", name="QR code").click()
        qr = ada.get_by_role("img", name="QR code of the room link")
        await expect(qr).to_be_visible()
        await ada.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=await qr.element_handle()
        )

        # Diagnostics from getStats: a direct host-to-host pair over UDP.
        peers = ada.get_by_role("list", name="Peers")
        await peers.get_by_text("Details").click()
        await expect(peers.locator(".diag")).to_contain_text("host ↔ host over udp")
        await ada.get_by_role("button", name="Test connectivity").click()
        await expect(ada.locator("#probeout")).to_contain_text("Found: host")

        # History stays on the device: a reload shows it; "Clear history" removes it.
        await ada.reload()
        await expect(ada.get_by_label("Your name")).to_have_value("Ada")  # remembered
        await ada.get_by_role("button", name="Join").click()
        await expect_message(ada, "hel")
        await ada.get_by_role("button", name="Clear history").click()
        await expect_message(ada, "hel", count=0)
        await ada.reload()
        await ada.get_by_role("button", name="Join").click()
        await expect_connected(ada, "Bob")
        await expect_message(ada, "hel", count=0)
        # A newcomer gets no history from anyone.
        cy = await join(browser, server.url, "keep", "Cy")
        await expect_connected(cy, "Ada", "Bob")
        await expect(log(cy).locator(".m")).to_have_count(0)
