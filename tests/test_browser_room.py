"""The browser client at the edges of a room: a full mesh of 16, and unread counts.

Real server (in-process in lab host "main"), real Chromium in the lab, no mocks.
"""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import chromium, expect_message, lab_server, open_link, people, send

#: The server's default room capacity: every page holds a connection to every other.
FULL_ROOM = 16
#: Upper bound for the full-room test: 120 connections on a 2-core machine.
FULL_ROOM_TIMEOUT = 240.0


async def test_a_full_room_of_16_is_a_full_mesh_and_the_17th_is_refused(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(FULL_ROOM_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        names = [f"P{index:02d}" for index in range(FULL_ROOM)]
        pages = await people(browser, server.url, "full", *names)
        await send(pages[-1], "hello all sixteen")
        for page in pages[:-1]:
            await expect_message(page, "hello all sixteen")
        # The room is full: one more person is told so, and nobody else is disturbed.
        context = await browser.new_context()
        late = await context.new_page()
        await open_link(late, server.url, "full", "Late")
        await expect(late.get_by_text("Server: room 'full' is full")).to_be_visible()
        await send(pages[0], "still sixteen")
        await expect_message(pages[-1], "still sixteen")


async def test_unread_count_in_the_tab_title_while_the_page_is_not_looked_at(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(90.0), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "tabs", "Ada", "Bob")
        # Headless pages always have focus: make Ada's tab a background one.
        await ada.evaluate(
            """() => {
                document.hasFocus = () => false;
                Object.defineProperty(document, 'hidden', {value: true, configurable: true});
            }"""
        )
        await send(bob, "one")
        await send(bob, "two")
        await expect_message(ada, "two")
        await expect(ada).to_have_title("(2) Confide · tabs")
        # Ada comes back to the tab: the count is cleared.
        await ada.evaluate(
            """() => {
                Object.defineProperty(document, 'hidden', {value: false, configurable: true});
                document.dispatchEvent(new Event('visibilitychange'));
            }"""
        )
        await expect(ada).to_have_title("Confide · tabs")
