"""The browser client in real Chromium: chat, direct messages, safety numbers, passwords.

Real server (in-process in lab host "main"), real Chromium in the lab, no mocks.  Each
person is a Playwright context of its own (own storage), which is what a second device is
to the page; peers reach each other over the lab address, not loopback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import (
    certificate_of,
    chromium,
    expect_connected,
    expect_message,
    join,
    lab_server,
    lab_tls_server,
    log,
    people,
    safety_number,
    safety_number_of,
    send,
)

#: Upper bound for one test.
TEST_TIMEOUT = 90.0


async def test_two_people_chat_both_ways_with_equal_safety_numbers(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "tea", "Ada", "Bob")

        await send(ada, "hello Bob")
        await expect_message(bob, "hello Bob")
        await send(bob, "hi Ada\nsecond line")
        await expect_message(ada, "hi Ada")
        # The sender's name comes from the server's peer list, bound to the connection.
        await expect(
            log(bob).locator(".m").filter(has_text="hello Bob").locator(".who")
        ).to_have_text("Ada")
        await expect(
            log(ada).locator(".m.me").filter(has_text="hello Bob").locator(".ack")
        ).to_have_text("delivered to Bob")

        # Safety numbers: the same on both screens, and what PROTOCOL.md gives in Python
        # from the certificates each page saw (its own, and the one the peer presented).
        number = await safety_number(ada, "Bob").text_content()
        assert number == await safety_number(bob, "Ada").text_content()
        ada_cert, bob_cert = await certificate_of(ada), await certificate_of(bob)
        assert await certificate_of(ada, "Bob") == bob_cert
        assert await certificate_of(bob, "Ada") == ada_cert
        assert ada_cert != bob_cert
        assert number == safety_number_of(ada_cert, bob_cert)


async def test_three_people_a_direct_message_and_html_shown_as_text(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob, cy = await people(browser, server.url, "trio", "Ada", "Bob", "Cy")

        for sender, others in ((ada, (bob, cy)), (bob, (ada, cy)), (cy, (ada, bob))):
            text = f"from {await sender.get_by_label('Your name').input_value()}"
            await send(sender, text)
            for page in others:
                await expect_message(page, text)

        # A direct message reaches only its peer, and both sides show it as private.
        await send(ada, "only for Cy", to="Cy")
        await expect_message(cy, "only for Cy")
        await expect(
            log(cy).locator(".m").filter(has_text="only for Cy").locator(".priv")
        ).to_have_text("private")
        await expect(
            log(ada).locator(".m").filter(has_text="only for Cy").locator(".priv")
        ).to_have_text("private to Cy")
        await send(ada, "after the secret")
        await expect_message(bob, "after the secret")
        await expect_message(bob, "only for Cy", count=0)

        # Markup from a peer is text: no element is made, no script runs.
        payload = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>'
        await send(bob, payload)
        for page in (ada, cy):
            message = log(page).locator(".m p").filter(has_text="<b>bold</b>")
            await expect(message).to_have_text(payload)
            assert await message.locator("img, script, b").count() == 0
            assert await page.evaluate("window.pwned") is None


async def test_password_room_connects_with_the_right_password_only(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "vault", "Ada", "Bob", password="open sesame")
        await send(bob, "sealed hello")
        await expect_message(ada, "sealed hello")

        eve = await join(browser, server.url, "vault", "Eve", password="guess")
        for page in (eve, ada, bob):
            await expect(
                log(page).get_by_role("alert").filter(has_text="wrong password")
            ).not_to_have_count(0)
        # Never a half-open connection: Eve has no channel to anyone, and nobody to her.
        await send(eve, "can you read me")
        await send(ada, "members only")
        await expect_message(bob, "members only")
        await expect_message(ada, "can you read me", count=0)
        await expect_message(eve, "members only", count=0)
        peers = eve.get_by_role("list", name="Peers")
        await expect(peers.get_by_text("refused")).to_have_count(2)

        # No password at all in a password room: told so on both sides.
        mallory = await join(browser, server.url, "vault", "Mallory")
        await expect(
            log(mallory).get_by_role("alert").filter(has_text="needs a password")
        ).not_to_have_count(0)
        await expect(
            log(ada).get_by_role("alert").filter(has_text="did not use the room password")
        ).not_to_have_count(0)


async def test_plain_http_from_another_device_warns_and_still_chats(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host)  # no secure-origin flag
        ada = await join(browser, server.url, "plain", "Ada")
        bob = await join(browser, server.url, "plain", "Bob")
        assert await ada.evaluate("isSecureContext") is False
        await expect(ada.get_by_role("alert").filter(has_text="need https")).to_be_visible()
        await expect_connected(ada, "Bob")
        await send(ada, "still chatting")
        await expect_message(bob, "still chatting")
        await expect(bob.get_by_role("button", name="Mark as verified")).to_be_disabled()
        await bob.goto(server.url)
        await expect(bob.get_by_label("Room password (optional)")).to_be_disabled()


async def test_verified_number_that_changes_is_a_loud_warning(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "verify", "Ada", "Bob")
        peers = ada.get_by_role("list", name="Peers")
        await peers.get_by_role("button", name="Mark as verified").click()
        await expect(peers.get_by_text("✔ verified")).to_be_visible()
        await expect(
            log(ada).get_by_text("You marked Bob's safety number as verified")
        ).to_be_visible()

        # "Bob" again, but another device (another certificate): another number.
        await bob.get_by_role("button", name="Leave").click()
        await expect(peers.get_by_role("listitem")).to_have_count(0)
        await join(browser, server.url, "verify", "Bob")
        await expect_connected(ada, "Bob")
        await expect(
            log(ada).get_by_role("alert").filter(has_text="safety number with Bob changed")
        ).to_be_visible()
        await expect(peers.get_by_text("safety number changed")).to_be_visible()


async def test_compose_keys_and_size_limit(lab_host: Host, launch_browser: BrowserLauncher) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "keys", "Ada")
        # Alone in the room: nothing is sent, and the page says why.
        await send(ada, "anyone?")
        await expect(ada.get_by_role("alert").filter(has_text="Nobody else")).to_be_visible()
        await expect(log(ada).locator(".m")).to_have_count(0)
        await expect(ada.get_by_role("textbox", name="Message")).to_have_value("anyone?")
        await ada.get_by_role("textbox", name="Message").fill("")
        bob = await join(browser, server.url, "keys", "Bob")
        await expect_connected(ada, "Bob")
        box = ada.get_by_role("textbox", name="Message")
        await box.press_sequentially("line one")
        await box.press("Shift+Enter")
        await box.press_sequentially("line two")
        await expect(box).to_have_value("line one\nline two")
        await bob.bring_to_front()
        await box.press("Enter")
        await expect(log(bob).locator(".m p")).to_have_text("line one\nline two")
        await expect(box).to_have_value("")

        # Over the limit: a clear notice, nothing sent, the text kept.
        await box.fill("x" * 16385)
        await ada.get_by_role("button", name="Send").click()
        await expect(ada.get_by_role("alert").filter(has_text="too long")).to_contain_text("16384")
        await expect(box).to_have_value("x" * 16385)
        await expect(log(bob).locator(".m")).to_have_count(1)

        # The tab's title names the room (the unread count shows only in a page without
        # focus, which headless Chromium does not give: not checked here).
        await expect(ada).to_have_title("Confide · keys")


async def test_over_https_with_the_self_signed_certificate(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_tls_server(lab_host, tmp_path) as url:
        browser = await chromium(launch_browser, lab_host)  # no flag: https is secure
        ada = await join(browser, url, "tls", "Ada", password="s3cret")
        bob = await join(browser, url, "tls", "Bob", password="s3cret")
        assert await ada.evaluate("isSecureContext") is True
        await expect(ada.get_by_role("alert").filter(has_text="need https")).to_be_hidden()
        await expect_connected(ada, "Bob")
        await send(ada, "over wss")
        await expect_message(bob, "over wss")
        await expect(bob.get_by_role("button", name="Mark as verified")).to_be_enabled()
