"""Two Chromium pages on two server processes that share rooms through Redis.

Real redis-server, real ``confide serve`` processes and real Chromium, all in
lab host "main". The pages connect and chat although each one's signaling goes
to another process; then Redis is stopped, and the chat, being peer to peer,
goes on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from tests.browser import expect_connected, expect_message, join, send
from tests.fixtures_redis import redis_for_test
from tests.test_scaleout import cluster

pytest.importorskip("redis", reason="needs the redis package (the [redis] extra)")


async def test_pages_on_two_processes_chat_and_go_on_without_redis(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with (
        asyncio.timeout(120.0),
        redis_for_test(tmp_path, lab_host.ip) as redis,
        cluster(redis, 2, host=lab_host.ip) as (one, two),
    ):
        # Plain http on both processes' origins counts as a secure context.
        browser = await launch_browser(
            lab_host, args=[f"--unsafely-treat-insecure-origin-as-secure={one.url},{two.url}"]
        )
        ada = await join(browser, one.url, "split", "Ada")
        bob = await join(browser, two.url, "split", "Bob")
        await expect_connected(ada, "Bob")
        await expect_connected(bob, "Ada")
        await send(ada, "hello from process one")
        await expect_message(bob, "hello from process one")
        await send(bob, "and from process two")
        await expect_message(ada, "and from process two")

        await redis.stop()
        # Each page is told, and the chat goes on.
        for page in (ada, bob):
            await expect(page.get_by_text("signaling is degraded").first).to_be_visible()
        await send(ada, "Redis is gone, we are not")
        await expect_message(bob, "Redis is gone, we are not")
        await send(bob, "still here")
        await expect_message(ada, "still here")
