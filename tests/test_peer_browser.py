"""Browser ↔ Python peer: real Chromium running client_web/, real aiortc, in the lab.

Text both ways, files both ways with their SHA-256 checked, equal safety numbers on both
screens (and the certificates each side saw), whichever side joins first; and a room of
two browsers and one Python peer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from client_py import events as ev
from client_py.room import Room
from client_py.safety import local_fingerprint
from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from natlab.processes import wait_until
from tests.browser import (
    certificate_of,
    chromium,
    expect_connected,
    expect_message,
    join,
    lab_server,
    log,
    safety_number,
    send,
)
from tests.peer_helpers import WAIT, of_type, spawn_chat, wait_for_event

TEST_TIMEOUT = 90.0


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _saved_sha256(page: Page, name: str, tmp: Path) -> str:
    link = log(page).get_by_role("link", name=f"Save {name}")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    target = tmp / f"downloaded-{name}"
    await download.save_as(target)
    return _sha(target)


async def _same_safety_number(page: Page, room: Room, name: str) -> None:
    """The browser's number for ``name`` (the Python peer) equals the Python peer's."""
    link = room.find(await page.get_by_label("Your name").input_value() or "")
    assert link is not None and link.safety_number is not None
    await expect(safety_number(page, name)).to_have_text(link.safety_number)
    assert link.safety_source == "dtls"
    # And each saw the other's real certificate.
    assert link.pc is not None
    assert await certificate_of(page, name) == local_fingerprint(link.pc)


@pytest.mark.parametrize("python_first", [False, True], ids=["browser-first", "python-first"])
async def test_browser_and_python_text_files_and_safety_numbers(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path, python_first: bool
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        bot = Room(server.ws_url, "mixed", "Bot", receive_dir=tmp_path / "bot")
        try:
            if python_first:
                await bot.start()
            ada = await join(browser, server.url, "mixed", "Ada")
            if not python_first:
                await bot.start()
            await expect_connected(ada, "Bot")
            await wait_for_event(bot, ev.Connected)
            await _same_safety_number(ada, bot, "Bot")

            # Text both ways, with acknowledgements both ways.
            await send(ada, "hello <i>Bot</i> ✓")
            got = await wait_for_event(bot, ev.Message)
            assert (got.name, got.text, got.dm) == ("Ada", "hello <i>Bot</i> ✓", False)
            await expect(
                log(ada).locator(".m.me").filter(has_text="hello").locator(".ack")
            ).to_have_text("delivered to Bot")
            (sent,) = bot.send_text("hi Ada from Python")
            await expect_message(ada, "hi Ada from Python")
            await wait_for_event(bot, ev.Delivered, lambda d: d.id == sent)
            bot.send_text("a private word", to="Ada")
            await expect_message(ada, "a private word")

            # A file from the browser to Python ...
            up = tmp_path / "from-browser.bin"
            up.write_bytes(os.urandom(300_000))
            await ada.get_by_label("Send file").set_input_files(up)
            done = await wait_for_event(bot, ev.FileDone, lambda e: e.direction == "in")
            assert done.state == "received" and done.sha256 == _sha(up)
            assert _sha(Path(done.path)) == _sha(up)
            await expect(log(ada).locator(".file[data-state=sent]")).to_have_count(1)

            # ... and one from Python to the browser.
            down = tmp_path / "from-python.bin"
            down.write_bytes(os.urandom(200_000))
            await bot.send_file(down)
            offer = log(ada).locator(".file").filter(has_text="from-python.bin")
            await offer.get_by_role("button", name="Accept").click()
            out = await wait_for_event(bot, ev.FileDone, lambda e: e.direction == "out")
            assert out.state == "sent"
            await expect(log(ada).locator(".file[data-state=received]")).to_have_count(1)
            assert await _saved_sha256(ada, "from-python.bin", tmp_path) == _sha(down)
            assert not of_type(bot, ev.IgnoredInput), of_type(bot, ev.IgnoredInput)
        finally:
            await bot.close()


async def test_two_browsers_and_one_python_peer_in_one_room(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        bot = Room(server.ws_url, "trio", "Bot")
        try:
            ada = await join(browser, server.url, "trio", "Ada")
            await bot.start()
            bob = await join(browser, server.url, "trio", "Bob")
            await expect_connected(ada, "Bob", "Bot")
            await expect_connected(bob, "Ada", "Bot")
            await wait_until(
                lambda: len(bot.peers) == 2 and all(p.connected.is_set()
                                                    for p in bot.peers.values()), WAIT)  # fmt: skip
            await _same_safety_number(ada, bot, "Bot")
            await _same_safety_number(bob, bot, "Bot")
            assert len(set(bot.safety_numbers().values())) == 2

            bot.send_text("hello humans")
            await expect_message(ada, "hello humans")
            await expect_message(bob, "hello humans")
            await send(ada, "from Ada")
            await send(bob, "from Bob")
            await wait_until(lambda: {m.text for m in of_type(bot, ev.Message)} == {
                "from Ada", "from Bob"}, WAIT)  # fmt: skip
            await expect_message(bob, "from Ada")
            await expect_message(ada, "from Bob")
            assert {m.name for m in of_type(bot, ev.Message)} == {"Ada", "Bob"}
        finally:
            await bot.close()


async def test_browser_and_python_in_a_password_room(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "vault", "Ada", password="open sesame ✓")
        bot = Room(server.ws_url, "vault", "Bot", password="open sesame ✓")
        eve = Room(server.ws_url, "vault", "Eve", password="guess")
        try:
            await bot.start()
            await expect_connected(ada, "Bot")
            await _same_safety_number(ada, bot, "Bot")
            await send(ada, "sealed by WebCrypto, opened by Python")
            assert (await wait_for_event(bot, ev.Message)).text.startswith("sealed by WebCrypto")
            # A wrong password: Eve offers to both, both refuse, and Eve hears nothing.
            await eve.start()
            err = await wait_for_event(bot, ev.PeerError)
            assert (err.name, err.message) == ("Eve", "wrong password")
            await expect(
                log(ada).get_by_role("alert").filter(has_text="wrong password")
            ).to_have_count(1)
            assert not of_type(eve, ev.Connected)
        finally:
            await eve.close()
            await bot.close()


async def test_a_transfer_to_the_browser_cut_by_a_reconnect_resumes(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    """The browser makes a new connection midway (a new session): aiortc answers it with
    a fresh RTCPeerConnection, and the file resumes from the bytes the browser kept."""
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "cut", "Ada")
        bot = Room(server.ws_url, "cut", "Bot")
        try:
            await bot.start()
            await expect_connected(ada, "Bot")
            (link,) = bot.peers.values()
            number = link.safety_number
            path = tmp_path / "cut.bin"
            path.write_bytes(os.urandom(12 * 1024 * 1024))
            await bot.send_file(path)
            offer = log(ada).locator(".file").filter(has_text="cut.bin")
            await offer.get_by_role("button", name="Accept").click()
            bar = log(ada).get_by_label("cut.bin progress")
            await bar.wait_for()
            await ada.wait_for_function(
                "el => el.value > 1e6", arg=await bar.element_handle(), polling=20
            )
            peers = ada.get_by_role("list", name="Peers")
            await peers.get_by_text("Details").click()
            await peers.get_by_role("button", name="Reconnect").click()
            received = log(ada).locator(".file[data-state=received]")
            await expect(received).to_have_count(1, timeout=60_000)
            await expect(received).to_contain_text("resumed from")
            out = await wait_for_event(bot, ev.FileDone, lambda e: e.direction == "out", 60)
            assert out.state == "sent"
            assert link.outgoing[out.fid].offset > 1_000_000
            assert await _saved_sha256(ada, "cut.bin", tmp_path) == _sha(path)
            assert len(of_type(bot, ev.Connected)) == 2
            await expect(safety_number(ada, "Bot")).to_have_text(number or "")
        finally:
            await bot.close()


async def test_a_person_in_a_browser_and_a_bot_on_another_machine(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    """Issue 4's "done when": Chromium in one lab host, ``confide chat --echo`` in another;
    they chat and swap files, with the same safety number on both screens."""
    import json

    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        far = lab_host.lab.add_host("headless")
        inbox = tmp_path / "inbox"
        bot = await spawn_chat(
            far, server.url, "--room", "done", "--name", "Bot", "--echo", "--json",
            "--receive-dir", str(inbox), "--exit-after", str(TEST_TIMEOUT))  # fmt: skip
        try:
            browser = await chromium(launch_browser, lab_host, server.url)
            ada = await join(browser, server.url, "done", "Ada")
            await expect_connected(ada, "Bot")
            await send(ada, "are you there, bot?")
            await expect_message(ada, "are you there, bot?", count=2)  # mine and the echo
            path = tmp_path / "report.bin"
            path.write_bytes(os.urandom(250_000))
            await ada.get_by_label("Send file").set_input_files(path)
            echoed = log(ada).locator(".file").filter(has_text="report.bin").filter(
                has=ada.get_by_role("button", name="Accept"))  # fmt: skip
            await echoed.get_by_role("button", name="Accept").click()
            await expect(log(ada).locator(".file[data-state=received]")).to_have_count(1)
            assert await _saved_sha256(ada, "report.bin", tmp_path) == _sha(path)
            assert _sha(inbox / "report.bin") == _sha(path)
            shown = await safety_number(ada, "Bot").text_content()
        finally:
            bot.terminate()
            out, err = await asyncio.wait_for(bot.communicate(), 30)
        assert bot.returncode == 0, err.decode()
        events = [json.loads(line) for line in out.decode().splitlines()]
        (connected,) = [e for e in events if e["event"] == "connected"]
        assert connected["name"] == "Ada" and connected["safety_number"] == shown
        assert [e["text"] for e in events if e["event"] == "message"] == ["are you there, bot?"]
        done = [e for e in events if e["event"] == "file-done"]
        assert {(e["direction"], e["state"]) for e in done} == {("in", "received"), ("out", "sent")}
        assert all(e["sha256"] == _sha(path) for e in done)
