"""File transfer between two real Chromium pages: 20 MB with its SHA-256, and a transfer
cut midway (the receiver's connection to the sender is closed and made again) that resumes
from the bytes the receiver kept."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from playwright.async_api import Page, expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import chromium, lab_server, log, people

TEST_TIMEOUT = 120.0
SIZE = 20 * 1024 * 1024


def make_file(path: Path, size: int = SIZE) -> str:
    path.write_bytes(os.urandom(size))
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def offer_file(sender: Page, receiver: Page, path: Path) -> None:
    await sender.get_by_label("Send file").set_input_files(path)
    offer = log(receiver).locator(".file").filter(has_text=path.name)
    await offer.get_by_role("button", name="Accept").click()


async def saved_sha256(page: Page, name: str, tmp: Path) -> str:
    """Click the page's save link for ``name``; the SHA-256 of the bytes that came out."""
    link = log(page).get_by_role("link", name=f"Save {name}")
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    target = tmp / f"downloaded-{name}"
    await download.save_as(target)
    return hashlib.sha256(target.read_bytes()).hexdigest()


async def test_a_20_mb_file_arrives_with_the_right_sha256(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "files", "Ada", "Bob")
        path = tmp_path / "big.bin"
        digest = make_file(path)

        await offer_file(ada, bob, path)
        await expect(log(bob).locator(".file[data-state=received]")).to_have_count(
            1, timeout=60_000
        )
        await expect(log(ada).locator(".file[data-state=sent]")).to_have_count(1)
        assert await saved_sha256(bob, "big.bin", tmp_path) == digest

        # A file dropped on the chat is offered too; declining it is heard by the sender.
        drop = await ada.evaluate_handle(
            "() => { const d = new DataTransfer();"
            " d.items.add(new File(['not wanted'], 'small.txt', { type: 'text/plain' }));"
            " return d; }"
        )
        await ada.get_by_role("main").dispatch_event("drop", {"dataTransfer": drop})
        offer = log(bob).locator(".file").filter(has_text="small.txt")
        await offer.get_by_role("button", name="Decline").click()
        await expect(log(ada).locator(".file[data-state=declined]")).to_have_count(1)


async def test_a_transfer_cut_midway_resumes_from_the_bytes_kept(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob = await people(browser, server.url, "resume", "Ada", "Bob")
        path = tmp_path / "cut.bin"
        digest = make_file(path)
        await offer_file(ada, bob, path)

        # Midway, Bob's connection to Ada is closed and made again (a new DTLS session).
        bar = log(bob).get_by_label("cut.bin progress")
        await bar.wait_for()
        await bob.wait_for_function(
            "el => el.value > 2e6", arg=await bar.element_handle(), polling=20
        )
        peers = bob.get_by_role("list", name="Peers")
        await peers.get_by_text("Details").click()
        await peers.get_by_role("button", name="Reconnect").click()

        received = log(bob).locator(".file[data-state=received]")
        await expect(received).to_have_count(1, timeout=60_000)
        await expect(received).to_contain_text("resumed from")
        await expect(log(ada).locator(".file[data-state=sent]")).to_contain_text("resumed from")
        assert await saved_sha256(bob, "cut.bin", tmp_path) == digest


async def test_a_direct_file_reaches_one_peer_and_a_cancel_stops_both_sides(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada, bob, cy = await people(browser, server.url, "dm-files", "Ada", "Bob", "Cy")

        path = tmp_path / "private.bin"
        make_file(path)
        await ada.get_by_label("To").select_option(label="Bob")
        await offer_file(ada, bob, path)
        await expect(log(bob).locator(".file").filter(has_text="private.bin")).to_contain_text(
            "private"
        )
        # Ada's side of the transfer, cancelled midway: both sides stop, nothing to save.
        bar = log(ada).get_by_label("private.bin progress")
        await ada.wait_for_function(
            "el => el.value > 1e6", arg=await bar.element_handle(), polling=20
        )
        await log(ada).get_by_role("button", name="Cancel").click()
        await expect(log(ada).locator(".file[data-state=cancelled]")).to_have_count(1)
        await expect(log(bob).locator(".file[data-state=cancelled]")).to_have_count(1)
        await expect(log(bob).get_by_role("link", name="Save private.bin")).to_have_count(0)
        # Cy was never offered it.
        await send_and_check(ada, cy)


async def send_and_check(ada: Page, cy: Page) -> None:
    """A later room message reaches Cy, and Cy's log holds no file at all."""
    await ada.get_by_label("To").select_option(label="Everyone")
    await ada.get_by_role("textbox", name="Message").fill("files done")
    await ada.get_by_role("button", name="Send").click()
    await expect(log(cy).locator(".m p").filter(has_text="files done")).to_have_count(1)
    await expect(log(cy).locator(".file")).to_have_count(0)
