"""The installable app (issue 12 item 2): manifest, icons, the service worker, and the
Web Share Target.

Chromium runs on loopback here, where plain http is a secure context, in a persistent
profile: Chromium refuses to call an off-the-record context installable ("in-incognito"),
and Playwright's ``new_context`` is one.  A "new server version" is the real server started
again on the same port from another client folder, as a deploy does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from natlab.fixtures import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLOSE_TIMEOUT,
    LAUNCH_TIMEOUT_MS,
    BrowserLauncher,
)
from natlab.lab import Host
from natlab.processes import free_port
from natlab.servers import running_server
from server import static
from server.static import SERVICE_WORKER, client_web_dir, load_static
from tests.browser import TIMEOUT_MS, chromium, expect_connected, join, lab_server, log

TEST_TIMEOUT = 90.0


@pytest.fixture
async def app_context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Chromium with a profile on disk (installable, service workers kept), on loopback."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs chromium at {CHROMIUM} (Debian package chromium)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            args=list(CHROMIUM_ARGS),
            headless=True,
            timeout=LAUNCH_TIMEOUT_MS,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)


async def controlled(page: Page) -> None:
    """Wait until the service worker controls ``page`` (it claims the first page)."""
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def test_service_worker_lists_the_shell_and_its_version_follows_every_file(
    tmp_path: Path,
) -> None:
    files = load_static()
    head = files[SERVICE_WORKER].body.split(b"\n", 2)
    assert head[0].startswith(b"const VERSION = ")
    shell = json.loads(head[1].removeprefix(b"const SHELL = ").rstrip(b";"))
    assert set(shell) == set(files) - {"/", SERVICE_WORKER}
    # Any file changed, the worker's bytes change: that is what makes browsers update it.
    copy = tmp_path / "client_web"
    shutil.copytree(client_web_dir(), copy)
    (copy / "style.css").write_text((copy / "style.css").read_text() + "\n/* v2 */\n")
    assert load_static(copy)[SERVICE_WORKER].body.split(b"\n")[0] != head[0]
    assert load_static(copy)["/index.html"].etag == files["/index.html"].etag


async def test_manifest_and_worker_types_and_headers() -> None:
    async with running_server() as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "/manifest.webmanifest") as response:
            assert response.headers["Content-Type"].startswith("application/manifest+json")
            manifest = json.loads(await response.read())
        async with http.get(server.url + SERVICE_WORKER) as response:
            assert response.headers["Content-Type"].startswith("text/javascript")
            assert response.headers["Cache-Control"] == "no-cache"
        for icon in manifest["icons"]:
            async with http.get(server.url + icon["src"]) as response:
                assert response.status == 200, icon
                assert response.headers["Content-Type"].startswith(icon["type"])
    assert manifest["display"] == "standalone"
    sizes = {(i["sizes"], i["purpose"]) for i in manifest["icons"] if i["type"] == "image/png"}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes


async def test_installable_offline_first_and_an_update_is_offered_not_swapped(
    app_context: BrowserContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    async with asyncio.timeout(TEST_TIMEOUT):
        page = app_context.pages[0] if app_context.pages else await app_context.new_page()
        async with running_server(port=port) as server:
            url = server.url
            await page.goto(url + "/")
            await controlled(page)
            cdp = await app_context.new_cdp_session(page)
            assert (await cdp.send("Page.getInstallabilityErrors")) == {"installabilityErrors": []}
            offline = page.get_by_role("status").filter(has_text="You are offline")
            await expect(offline).to_have_count(0)

        # The network is cut (the server is gone): a reload still draws the app, from the
        # worker's cache, and says it is offline.
        response = await page.reload()
        assert response is not None and response.from_service_worker
        await expect(page.get_by_role("button", name="Join")).to_be_visible()
        await expect(offline).to_be_visible()

        # A new version is deployed on the same address.
        deployed = tmp_path / "client_web"
        shutil.copytree(client_web_dir(), deployed)
        index = deployed / "index.html"
        index.write_text(
            index.read_text().replace("<title>", '<meta name="deploy" content="2">\n<title>')
        )
        monkeypatch.setattr(static, "client_web_dir", lambda: deployed)
        async with running_server(port=port):
            # Back online by itself (the page probes), then a visit: the page is still the
            # version that runs, and the new one is offered, not swapped in.
            await expect(offline).to_have_count(0, timeout=TIMEOUT_MS)
            await page.reload()
            reload = page.get_by_role("button", name="Reload for the new version")
            await expect(reload).to_be_visible()
            await expect(page.locator('meta[name="deploy"]')).to_have_count(0)
            assert await page.evaluate(
                "navigator.serviceWorker.getRegistration().then((r) => !!r.waiting)"
            )
            await reload.click()
            await expect(page.locator('meta[name="deploy"]')).to_have_count(1)
            await expect(reload).to_have_count(0)


async def test_files_shared_from_another_app_are_offered_after_a_tap(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    """Web Share Target: the share menu POSTs to /share (here a form does, as Android's
    share sheet would); the worker keeps the files, the page offers them once in a room."""
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        bob = await join(browser, server.url, "share", "Bob")
        ada = await (await browser.new_context()).new_page()
        await ada.goto(server.url + "/")
        await controlled(ada)
        await ada.evaluate(
            """() => {
                const form = Object.assign(document.createElement('form'), {
                    id: 'share-sheet', method: 'post', action: '/share',
                    enctype: 'multipart/form-data' });
                const files = Object.assign(document.createElement('input'), {
                    type: 'file', name: 'files', multiple: true });
                const text = Object.assign(document.createElement('input'), {
                    name: 'text', value: 'look at this' });
                form.append(files, text);
                document.body.append(form);
            }"""
        )
        photo = tmp_path / "photo.png"
        photo.write_bytes((client_web_dir() / "icon-192.png").read_bytes())
        await ada.locator("#share-sheet input[type=file]").set_input_files(photo)
        async with ada.expect_navigation(url="**/?shared=1"):
            await ada.evaluate("document.getElementById('share-sheet').submit()")
        await ada.get_by_label("Room", exact=True).fill("share")
        await ada.get_by_label("Your name").fill("Ada")
        await ada.get_by_role("button", name="Join").click()
        await expect(ada.get_by_role("status").filter(has_text="photo.png")).to_be_visible()
        await expect(ada.get_by_role("textbox", name="Message")).to_have_value("look at this")
        await expect_connected(ada, "Bob")
        # Nothing went out before the tap.
        await expect(log(bob).get_by_text("Ada offers photo.png")).to_have_count(0)
        await ada.get_by_role("button", name="Send shared files").click()
        await expect(log(bob).get_by_text("Ada offers photo.png")).to_be_visible()
        await expect(ada.get_by_role("button", name="Send shared files")).to_have_count(0)
