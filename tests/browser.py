"""Page objects for the end-to-end tests of the browser client (``client_web/``).

Every handle is an accessible role or name from issue 3: the textbox "Message", the button
"Send", the list "Peers", the log "Messages", "Safety number with <name>", and the one button
"Join <room> as <name>" a room link needs (it never joins by itself).  Waits go through
Playwright's ``expect`` with bounded timeouts, never sleeps.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from playwright.async_api import expect

from natlab.lab import Host
from natlab.servers import RunningServer, running_server

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

    from natlab.fixtures import BrowserLauncher

__all__ = [
    "TIMEOUT_MS",
    "certificate_of",
    "chromium",
    "expect_connected",
    "expect_message",
    "join",
    "lab_server",
    "lab_tls_server",
    "log",
    "open_link",
    "people",
    "safety_number",
    "safety_number_of",
    "send",
]

LOG = logging.getLogger(__name__)
NUMBER = re.compile(r"^\d{5}( \d{5}){5}$")
#: Milliseconds any one expectation may take (a connection forms in well under 2 s here).
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@asynccontextmanager
async def lab_server(host: Host, **overrides: object) -> AsyncIterator[RunningServer]:
    """The real server in-process on ``host``'s lab address (the test runs inside ``host``)."""
    async with running_server(host=host.ip, **overrides) as server:
        yield server


@asynccontextmanager
async def lab_tls_server(host: Host, directory: Path) -> AsyncIterator[str]:
    """The server over https with the self-signed certificate that ``confide serve
    --tls-self-signed`` makes (kept in ``directory``), in-process on ``host``; yields the URL."""
    from aiohttp import web

    from natlab.processes import free_port
    from natlab.servers import config_for_tests
    from server.app import create_app
    from server.tls import self_signed_paths, server_ssl_context

    port = free_port(host.ip)
    app = create_app(config_for_tests(host.ip, port=port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = server_ssl_context(*self_signed_paths([host.ip], directory))
    await web.TCPSite(runner, host.ip, port, ssl_context=context).start()
    try:
        yield f"https://{host.ip}:{port}"
    finally:
        await runner.cleanup()


async def chromium(
    launch_browser: BrowserLauncher, host: Host, origin: str | None = None
) -> Browser:
    """Chromium in ``host``; with ``origin``, plain http there counts as a secure context."""
    args = [f"--unsafely-treat-insecure-origin-as-secure={origin}"] if origin else []
    return await launch_browser(host, args=args)


async def join(
    browser: Browser,
    url: str,
    room: str,
    name: str,
    password: str | None = None,
    *,
    relay: bool = False,
) -> Page:
    """A new person (own context: own storage) in ``room``: the link (``?relay=1`` with
    ``relay``) or, with a password, the join form."""
    context = await browser.new_context(
        viewport={"width": 1000, "height": 700}, ignore_https_errors=url.startswith("https:")
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("console", lambda m: LOG.warning("%s console %s: %s", name, m.type, m.text))
    page.on("pageerror", lambda e: LOG.warning("%s page error: %s", name, e))
    if password is None:
        await open_link(page, url, room, name, relay=relay)
    else:
        await page.goto(f"{url}/?room={quote(room)}")
        await page.get_by_label("Your name").fill(name)
        await page.get_by_label("Room password (optional)").fill(password)
        await page.get_by_role("button", name="Join").click()
    await page.get_by_role("textbox", name="Message").wait_for()
    return page


async def people(
    browser: Browser | Sequence[Browser],
    url: str,
    room: str,
    *names: str,
    password: str | None = None,
    relay: bool = False,
) -> list[Page]:
    """Each of ``names`` joins ``room`` in turn (in ``browser``, or the i-th name in the i-th of
    a sequence of browsers); returns their pages once every page shows every other connected."""
    browsers = list(browser) if isinstance(browser, Sequence) else [browser] * len(names)
    pages = [
        await join(each, url, room, name, password, relay=relay)
        for each, name in zip(browsers, names, strict=True)
    ]
    for page, name in zip(pages, names, strict=True):
        await expect_connected(page, *(other for other in names if other != name))
    return pages


async def open_link(page: Page, url: str, room: str, name: str, *, relay: bool = False) -> None:
    """Open the room link that names ``room`` and ``name``, and click its one "Join" button
    (a link never joins by itself, issue 9 item 11)."""
    await page.goto(f"{url}/?room={quote(room)}&name={quote(name)}{'&relay=1' if relay else ''}")
    await page.get_by_role("button", name=f"Join {room} as {name}", exact=True).click()


def log(page: Page) -> Locator:
    return page.get_by_role("log", name="Messages")


async def send(page: Page, text: str, to: str | None = None) -> None:
    """Write ``text`` and press Send (to one peer, privately, when ``to`` names it)."""
    await page.get_by_label("To").select_option(label=to or "Everyone")
    await page.get_by_role("textbox", name="Message").fill(text)
    await page.get_by_role("button", name="Send").click()


async def expect_message(
    page: Page, text: str, count: int = 1, timeout: float = TIMEOUT_MS
) -> None:
    """Wait until the log shows exactly ``count`` messages whose text is ``text``."""
    await expect(log(page).locator(".m p").filter(has_text=text)).to_have_count(
        count, timeout=timeout
    )


def safety_number(page: Page, name: str) -> Locator:
    return page.get_by_label(f"Safety number with {name}")


async def expect_connected(page: Page, *names: str) -> None:
    """Wait until the peer list shows a safety number (an open channel) for each name."""
    peers = page.get_by_role("list", name="Peers")
    for name in names:
        await expect(peers.get_by_label(f"Safety number with {name}")).to_have_text(NUMBER)


async def certificate_of(page: Page, name: str | None = None) -> str:
    """The fingerprint the page shows: its own (``name`` None) or the one ``name`` presented."""
    label = f"Certificate of {name}" if name else "Your certificate"
    return (await page.get_by_label(label).first.text_content() or "").strip()


def safety_number_of(local: str, remote: str) -> str:
    """docs/PROTOCOL.md "Safety numbers", written again in Python for the tests."""

    def norm(fp: str) -> str:
        alg, value = fp.split()
        return f"{alg.lower()} {value.upper()}"

    first, second = sorted([norm(local), norm(remote)])
    digest = hashlib.sha256(f"confide-safety-v1\n{first}\n{second}".encode()).digest()
    return " ".join(
        f"{int.from_bytes(digest[5 * i : 5 * i + 5], 'big') % 100000:05d}" for i in range(6)
    )
