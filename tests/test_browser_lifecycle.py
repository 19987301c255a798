"""Background and resume in real Chromium (issue 12 item 1): a page frozen by the browser, a
page whose connections the OS closed while it was hidden, and a peer gone for good.
Nothing is lost or shown twice; what could not be delivered says so, with a retry.  The
page's life is driven through the DevTools protocol (``Page.setWebLifecycleState``) and
from inside the page, as a phone's OS would do it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import Page, expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host, Lab
from tests.browser import (
    chromium,
    expect_connected,
    expect_message,
    join,
    lab_server,
    log,
    people,
    send,
)

TEST_TIMEOUT = 120.0

#: What a phone's OS does to a page in the background: its peer connections and its
#: signaling socket closed under it, and the page hidden.
AWAY = """() => {
  for (const [key, value] of [['hidden', true], ['visibilityState', 'hidden']]) {
    Object.defineProperty(document, key, { value, configurable: true });
  }
  document.dispatchEvent(new Event('visibilitychange'));
  for (const record of confide.mesh.peers.values()) record.peer.pc.close();
  confide.mesh.sig.ws.close();
}"""
BACK = """() => {
  for (const [key, value] of [['hidden', false], ['visibilityState', 'visible']]) {
    Object.defineProperty(document, key, { value, configurable: true });
  }
  document.dispatchEvent(new Event('visibilitychange'));
}"""


async def set_state(page: Page, state: str) -> None:
    """Freeze (``frozen``) or thaw (``active``) the page as the browser does in the
    background (Page Lifecycle)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Page.setWebLifecycleState", {"state": state})
    await cdp.detach()


async def received(page: Page) -> list[str]:
    return await log(page).locator(".m:not(.me):not(.file) p").all_text_contents()


async def test_a_frozen_page_gets_everything_once_and_in_order_when_it_thaws(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "frozen", "Ada", "Bob")

        await set_state(ada, "frozen")
        texts = [f"while frozen {i}" for i in range(10)]
        for text in texts:
            await send(bob, text)
        notes = tmp_path / "notes.txt"
        notes.write_text("for later")
        await bob.get_by_label("Send file").set_input_files(notes)
        await set_state(ada, "active")

        await expect_message(ada, texts[-1])
        offer = log(ada).locator(".file").filter(has_text="notes.txt")
        await expect(offer.get_by_role("button", name="Accept")).to_have_count(1)
        assert await received(ada) == texts
        marks = log(bob).locator(".m.me:not(.file) .ack")
        await expect(marks).to_have_text(["delivered to Ada"] * len(texts))
        await offer.get_by_role("button", name="Accept").click()
        await expect(log(bob).locator(".file[data-state=sent]")).to_have_count(1)


async def test_connections_closed_while_hidden_come_back_when_the_page_is_shown(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "away", "Ada", "Bob")
        await send(bob, "before")
        await expect_message(ada, "before")

        await ada.evaluate(AWAY)
        from_ada = ["typed while away 1", "typed while away 2"]
        for text in from_ada:
            await send(ada, text)
        offer = tmp_path / "away.txt"
        offer.write_text("offered while away")
        await ada.get_by_label("Send file").set_input_files(offer)
        # The OS then freezes the hidden page; meanwhile Bob writes to it.
        await set_state(ada, "frozen")
        from_bob = [f"sent meanwhile {i}" for i in range(3)]
        for text in from_bob:
            await send(bob, text)
        await set_state(ada, "active")
        await ada.evaluate(BACK)

        await expect_message(ada, from_bob[-1], timeout=30_000)
        await expect_message(bob, from_ada[-1], timeout=30_000)
        await expect(log(bob).locator(".file").filter(has_text="away.txt")).to_have_count(1)
        await send(bob, "after")
        await expect_message(ada, "after")
        # Once each, in order per sender, and every mark right.
        assert await received(ada) == ["before", *from_bob, "after"]
        assert await received(bob) == from_ada
        await expect(log(ada).locator(".m.me:not(.file) .ack")).to_have_text(
            ["delivered to Bob"] * len(from_ada)
        )
        await expect(log(bob).locator(".m.me:not(.file) .ack")).to_have_text(
            ["delivered to Ada"] * (len(from_bob) + 2)
        )


async def test_a_message_for_a_peer_gone_for_good_says_so_and_can_be_retried(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host, resume_grace=2.0) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "gone", "Ada", "Bob")
        # Bob's page stops reading its channel (a page the OS is killing), then closes.
        await bob.evaluate(
            "() => { for (const r of confide.mesh.peers.values()) r.peer.chat.onmessage = null; }"
        )
        await send(ada, "are you there")
        await bob.context.close()
        mark = log(ada).locator(".m.me .ack")
        await expect(mark).to_contain_text("not delivered to Bob", timeout=30_000)

        cy = await join(browser, server.url, "gone", "Cy")
        await expect_connected(ada, "Cy")
        await mark.get_by_role("button", name="Retry").click()
        await expect_message(cy, "are you there")
        await expect(mark).to_have_text("delivered to Cy")


async def test_back_after_the_server_forgot_us_in_a_password_room(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host, resume_grace=1.0) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "sealed", "Ada", "Bob", password="pass phrase")
        await ada.evaluate(AWAY)
        await send(ada, "typed while away")
        await set_state(ada, "frozen")
        # Away longer than the resume grace: the server forgets Ada's id.
        await expect(log(bob).get_by_text("Ada left")).to_be_visible()
        await set_state(ada, "active")
        await ada.evaluate(BACK)

        # Back under a new id: offers are sealed for that id (a sealed payload names its
        # sender), so Bob opens them and the connection comes back.
        await expect_message(bob, "typed while away", timeout=30_000)
        await expect_connected(bob, "Ada")
        await send(bob, "welcome back")
        await expect_message(ada, "welcome back")
        for page in (ada, bob):
            await expect(log(page).get_by_role("alert")).to_have_count(0)


async def test_a_message_lost_when_a_peer_left_goes_when_the_same_device_is_back(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "reload", "Ada", "Bob")
        await send(ada, "seen before")
        await expect_message(bob, "seen before")
        # Bob's page stops reading, then reloads: it leaves, and comes back under a new id
        # with the same (kept) certificate.
        await bob.evaluate(
            "() => { for (const r of confide.mesh.peers.values()) r.peer.chat.onmessage = null; }"
        )
        await send(ada, "while you reload")
        await bob.reload()
        mark = log(ada).locator(".m.me").filter(has_text="while you reload").locator(".ack")
        await expect(mark).to_contain_text("not delivered to Bob")
        await bob.get_by_role("button", name="Join reload as Bob", exact=True).click()
        await expect_message(bob, "while you reload")
        await expect(mark).to_have_text("delivered to Bob")
        # From history once (an old line), never again from Ada.
        await expect_message(bob, "seen before", count=1)


#: How long the link stays cut: a phone changing networks (issue 12's lab scenario).
CUT_SECONDS = 20.0


async def test_a_20_s_network_change_loses_nothing(
    lab: Lab, lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        phone = lab.add_host("phone")
        browser_a, browser_b = await asyncio.gather(
            chromium(launch_browser, lab_host, server.url),
            chromium(launch_browser, phone, server.url),
        )
        ada, bob = await people((browser_a, browser_b), server.url, "commute", "Ada", "Bob")

        loop = asyncio.get_running_loop()
        cut_at = loop.time()
        phone.link_down()
        from_ada = [f"to the phone {i}" for i in range(3)]
        from_bob = [f"from the phone {i}" for i in range(2)]
        for text in from_ada:
            await send(ada, text)
        for text in from_bob:
            await send(bob, text)
        # Ada's side notices through ICE consent checks (RFC 7675) while the link is down.
        await expect(ada.get_by_role("list", name="Peers").locator(".state")).to_have_text(
            re.compile("disconnected|failed"), timeout=30_000
        )
        # The scenario's length, not a synchronisation: everything after waits on the pages.
        await asyncio.sleep(max(0.0, CUT_SECONDS - (loop.time() - cut_at)))
        phone.link_up()

        await expect_message(bob, from_ada[-1], timeout=45_000)
        await expect_message(ada, from_bob[-1], timeout=45_000)
        await expect(bob.get_by_role("banner").get_by_role("status")).to_have_text("online")
        assert await received(bob) == from_ada
        assert await received(ada) == from_bob
        await expect(log(ada).locator(".m.me .ack")).to_have_text(
            ["delivered to Bob"] * len(from_ada)
        )
        await expect(log(bob).locator(".m.me .ack")).to_have_text(
            ["delivered to Ada"] * len(from_bob)
        )
