"""Notifications (issue 12 item 3) in real Chromium: a message or file offer to a page that
is not looked at shows a system notification through the service worker, counts in the tab
title and the app badge; in password rooms the text stays out unless the person opts in;
permission is asked from a button, never on load.

Headless pages always have focus and are never hidden, so a test makes a page "in the
background" by overriding ``document.hidden`` and ``document.hasFocus`` (as a phone's
switcher would set them).  Notifications are read back with
``ServiceWorkerRegistration.getNotifications()``; the badge and permission prompts through
wrappers an init script installs around ``navigator.setAppBadge`` and
``Notification.requestPermission``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import chromium, expect_connected, expect_message, join, lab_server, send

TEST_TIMEOUT = 90.0

#: Records badge values and permission prompts (the browser's own functions still run).
WATCH = """(() => {
  window.badges = [];
  window.prompts = 0;
  const set = navigator.setAppBadge?.bind(navigator);
  const clear = navigator.clearAppBadge?.bind(navigator);
  const done = Promise.resolve();
  navigator.setAppBadge = (n) => { window.badges.push(n); return set ? set(n) : done; };
  navigator.clearAppBadge = () => { window.badges.push(0); return clear ? clear() : done; };
  if (window.Notification) {
    const ask = Notification.requestPermission.bind(Notification);
    Notification.requestPermission = (...a) => { window.prompts++; return ask(...a); };
  }
})()"""

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.ready;
  return (await registration.getNotifications()).map((n) => ({
    title: n.title, body: n.body, room: n.data && n.data.room }));
}"""


async def background(page: Page, away: bool) -> None:
    """Put ``page`` in the background (hidden, unfocused) or bring it back."""
    await page.evaluate(
        """(away) => {
            document.hasFocus = () => !away;
            Object.defineProperty(document, 'hidden', { value: away, configurable: true });
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        away,
    )


async def notifications(page: Page, count: int) -> list[dict[str, Any]]:
    """The page's notifications, once there are ``count`` of them."""
    await page.wait_for_function(
        f"async () => (await ({NOTIFICATIONS})()).length >= {count}", polling=100
    )
    shown: list[dict[str, Any]] = await page.evaluate(NOTIFICATIONS)
    return shown


async def allow(page: Page, url: str) -> None:
    """The person allowed notifications earlier; the watchers are in for the next load."""
    await page.context.grant_permissions(["notifications"], origin=url)
    await page.context.add_init_script(WATCH)
    await page.reload()
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")


async def test_message_and_file_offer_notify_a_hidden_page_with_count_and_badge(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "notes", "Ada")
        await allow(ada, server.url)
        await ada.get_by_role("button", name="Join").click()
        bob = await join(browser, server.url, "notes", "Bob")
        await expect_connected(ada, "Bob")

        # Looked at: nothing to tell.
        await send(bob, "while you look")
        await expect_message(ada, "while you look")
        assert await ada.evaluate(NOTIFICATIONS) == []

        await background(ada, True)
        await send(bob, "Lunch at one?")
        shown = await notifications(ada, 1)
        assert shown == [{"title": "Bob in notes", "body": "Lunch at one?", "room": "notes"}]
        offer = tmp_path / "menu.txt"
        offer.write_text("soup")
        await bob.get_by_label("Send file").set_input_files(offer)
        # One notification per room (its tag), renewed: it says what came last.
        await ada.wait_for_function(
            f"async () => (await ({NOTIFICATIONS})()).some((n) => n.body === 'Offers menu.txt')"
        )
        assert len(await ada.evaluate(NOTIFICATIONS)) == 1
        await expect(ada).to_have_title("(2) Confide · notes")
        assert await ada.evaluate("window.badges.at(-1)") == 2

        # Back: the count, the badge and the room's notifications are cleared.
        await background(ada, False)
        await expect(ada).to_have_title("Confide · notes")
        assert await ada.evaluate("window.badges.at(-1)") == 0
        await ada.wait_for_function(f"async () => (await ({NOTIFICATIONS})()).length === 0")


async def test_password_room_keeps_text_out_unless_opted_in_and_permission_waits_for_a_tap(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "vault", "Ada", password="correct horse")
        await allow(ada, server.url)
        await ada.get_by_label("Room password (optional)").fill("correct horse")
        await ada.get_by_role("button", name="Join").click()
        bob = await join(browser, server.url, "vault", "Bob", password="correct horse")
        await expect_connected(ada, "Bob")

        await background(ada, True)
        await send(bob, "the code is 4711")
        shown = await notifications(ada, 1)
        assert shown[-1]["title"] == "Bob in vault"
        assert "4711" not in shown[-1]["body"] and "password room" in shown[-1]["body"]
        # A file's name is as private as a message's text.
        secret = tmp_path / "salaries-2027.txt"
        secret.write_text("numbers")
        await bob.get_by_label("Send file").set_input_files(secret)
        await ada.wait_for_function(
            f"async () => (await ({NOTIFICATIONS})()).some((n) => n.body === 'Offers a file')"
        )

        # Opting in shows the text from then on.
        await background(ada, False)
        await ada.get_by_label("Show message text in notifications").check()
        await background(ada, True)
        await send(bob, "and the door is blue")
        await ada.wait_for_function(
            f"async () => (await ({NOTIFICATIONS})()).some((n) => n.body.includes('blue'))"
        )

        # Bob never allowed notifications: loading asked nothing; "Notify me" asks.
        await bob.context.add_init_script(WATCH)
        await bob.reload()
        await bob.get_by_label("Room password (optional)").fill("correct horse")
        await bob.get_by_role("button", name="Join").click()
        await expect_connected(bob, "Ada")
        assert await bob.evaluate("window.prompts") == 0
        assert await bob.evaluate("Notification.permission") == "default"
        await bob.get_by_role("button", name="Notify me").click()
        await bob.wait_for_function("() => window.prompts === 1")
