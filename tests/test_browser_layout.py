"""Layout, sharing, history and diagnostics in real Chromium; also makes the README's
screenshots of a live chat (docs/screenshot-{phone,desktop}-{light,dark}.png, written when
CONFIDE_SCREENSHOT=1).  Nothing is compared by pixels: the checks are that nothing is wider
than the screen and that the composer and the newest message stay in view, also with an
on-screen keyboard's height taken from the viewport (``interactive-widget=resizes-content``
and shell.js make the app follow it), in both colour schemes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from playwright.async_api import Page, ViewportSize, expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from server.static import client_web_dir
from tests.browser import (
    chromium,
    expect_connected,
    expect_message,
    join,
    lab_server,
    log,
    open_link,
    people,
    send,
)

TEST_TIMEOUT = 120.0
DOCS = Path(__file__).resolve().parent.parent / "docs"
#: The two screens of the README, and an on-screen keyboard's height on that phone.
PHONE = ViewportSize(width=375, height=812)
DESKTOP = ViewportSize(width=1280, height=800)
KEYBOARD = 336
#: Dark scheme's page background (style.css), to see that the scheme really switched.
DARK_BACKGROUND = "rgb(21, 24, 28)"


async def expect_fits(page: Page, width: int) -> None:
    """Nothing wider than the screen; the composer and the newest message in view."""
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    assert await page.evaluate("document.body.scrollWidth") <= width
    await expect(page.get_by_role("textbox", name="Message")).to_be_in_viewport()
    await expect(page.get_by_role("button", name="Send")).to_be_in_viewport()
    await expect(log(page).locator(".m").last).to_be_in_viewport()


async def test_live_chat_screenshots_fit_phone_and_desktop_in_both_schemes(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, grace, alan = await people(
            browser, server.url, "design-review", "Ada", "Grace", "Alan"
        )
        await send(grace, "Morning! The new mock-ups are in the shared folder.")
        await send(grace, "I also put the icon sketch here, have a look.")
        mockup = tmp_path / "icon-sketch.png"
        mockup.write_bytes((client_web_dir() / "icon-192.png").read_bytes())
        await grace.get_by_label("Send file").set_input_files(mockup)
        await log(ada).get_by_role("button", name="Accept").click()
        await expect(log(ada).get_by_role("img", name="Preview of icon-sketch.png")).to_be_visible()
        await send(ada, "Thanks, looking now. The header spacing is much better.")
        await send(alan, "Safety numbers first, then the contract?")
        notes = tmp_path / "contract-draft.pdf"
        notes.write_bytes(b"%PDF-1.4\n" + os.urandom(180_000))
        await grace.get_by_label("Send file").set_input_files(notes)
        await log(ada).get_by_role("button", name="Accept").last.click()
        await expect(log(ada).locator(".file[data-state=received]")).to_have_count(2)
        await send(ada, "Let's call at 11 and read them out.", to="Grace")
        await expect(log(ada).locator(".m.me .ack").last).to_have_text("delivered to Grace")
        await ada.get_by_label("To").select_option(label="Everyone")

        for screen, size in (("phone", PHONE), ("desktop", DESKTOP)):
            for scheme in ("light", "dark"):
                await ada.set_viewport_size(size)
                await ada.emulate_media(color_scheme=scheme)
                background = await ada.evaluate("getComputedStyle(document.body).backgroundColor")
                assert (background == DARK_BACKGROUND) == (scheme == "dark")
                await expect_fits(ada, size["width"])
                shot = await ada.screenshot(type="png", animations="disabled")
                assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
                if os.environ.get("CONFIDE_SCREENSHOT") == "1":
                    (DOCS / f"screenshot-{screen}-{scheme}.png").write_bytes(shot)
                if screen == "phone":
                    # The on-screen keyboard takes the bottom of the screen: the composer
                    # and the newest message stay above it.
                    await ada.get_by_role("textbox", name="Message").focus()
                    await ada.set_viewport_size(
                        ViewportSize(width=size["width"], height=size["height"] - KEYBOARD)
                    )
                    await expect_fits(ada, size["width"])

        # A banner on top (offline, a new version waiting) takes height from the app, not
        # from the composer.
        await ada.set_viewport_size(PHONE)
        await ada.evaluate(
            """() => document.body.prepend(Object.assign(document.createElement('div'), {
                className: 'banner', textContent: 'A new version of Confide is ready.' }))"""
        )
        await expect_fits(ada, PHONE["width"])
        assert await ada.evaluate("document.documentElement.scrollHeight") <= PHONE["height"]

        # A newcomer on a phone: the peers panel folds behind "People" and opens on a tap.
        phone = await browser.new_context(viewport=PHONE, color_scheme="dark")
        page = await phone.new_page()
        await open_link(page, server.url, "design-review", "Pat")
        peers = page.get_by_role("list", name="Peers")
        toggle = page.get_by_role("button", name="People")
        await expect(toggle).to_have_text("People 3")
        await expect(peers).to_be_hidden()
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect_connected(page, "Ada", "Grace", "Alan")
        await toggle.click()
        await expect(peers).to_be_hidden()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


async def test_history_share_link_typing_and_diagnostics(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "keep", "Ada", "Bob")

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
