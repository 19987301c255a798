"""Recovery in real Chromium: the server process killed mid-chat and restarted, and one
peer's network link cut and restored.  Nothing sent meanwhile is lost or shown twice."""

from __future__ import annotations

import asyncio
import os
import signal

from playwright.async_api import expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host, Lab
from natlab.servers import server_process
from tests.browser import chromium, expect_connected, expect_message, join, lab_server, people, send

TEST_TIMEOUT = 120.0


async def test_server_killed_mid_chat_then_restarted(
    lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    prefix = lab_host.exec_args([])
    async with asyncio.timeout(TEST_TIMEOUT), server_process(lab_host.ip, prefix=prefix) as first:
        url = first.url
        browser = await chromium(launch_browser, lab_host, url)
        ada, bob = await people(browser, url, "blink", "Ada", "Bob")

        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)
        await first.process.wait()
        for page in (ada, bob):
            await expect(page.get_by_role("banner").get_by_role("status")).to_contain_text(
                "server unreachable"
            )
        # The data channels do not need the server.
        await send(ada, "while the server is down")
        await expect_message(bob, "while the server is down")
        await send(bob, "still here")
        await expect_message(ada, "still here")

        async with server_process(lab_host.ip, first.port, prefix=prefix):
            for page in (ada, bob):
                await expect(page.get_by_role("banner").get_by_role("status")).to_have_text(
                    "online", timeout=30_000
                )
            cy = await join(browser, url, "blink", "Cy")
            await expect_connected(cy, "Ada", "Bob")
            await send(cy, "hello, newcomer here")
            await expect_message(ada, "hello, newcomer here")
            await expect_message(bob, "hello, newcomer here")
            await send(ada, "after the restart")
            await expect_message(bob, "after the restart")
            await expect_message(cy, "after the restart")
            # Ada and Bob came back under new ids and recognised each other: one entry each.
            for page in (ada, bob):
                await expect(
                    page.get_by_role("list", name="Peers").get_by_role("listitem")
                ).to_have_count(2)
            await expect_message(bob, "while the server is down")


async def test_a_peer_link_cut_and_restored_loses_nothing(
    lab: Lab, lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        host_b = lab.add_host("b")
        browser_a, browser_b = await asyncio.gather(
            chromium(launch_browser, lab_host, server.url),
            chromium(launch_browser, host_b, server.url),
        )
        ada, bob = await people((browser_a, browser_b), server.url, "cut", "Ada", "Bob")
        await send(ada, "before the cut")
        await expect_message(bob, "before the cut")

        ufrag_js = (
            "(which) => confide.mesh.peers.values().next().value.peer.pc"
            "[which].sdp.match(/a=ice-ufrag:(\\S+)/)[1]"
        )
        local = await ada.evaluate(ufrag_js, "localDescription")
        remote = await ada.evaluate(ufrag_js, "remoteDescription")
        host_b.link_down()
        sent_a = [f"from Ada while cut {i}" for i in range(3)]
        for text in sent_a:
            await send(ada, text)
        await send(bob, "from Bob while cut")
        # Ada's side notices (ICE consent checks fail) before the link comes back.
        peers = ada.get_by_role("list", name="Peers")
        await expect(peers.locator(".state")).to_have_text("disconnected", timeout=30_000)
        await expect_message(bob, sent_a[0], count=0)
        # Disconnected for more than a few seconds: Ada restarts ICE (a new offer, new
        # credentials), which waits in the server's queue for Bob until he is back.
        await ada.wait_for_function(
            f"() => ({ufrag_js})('localDescription') !== {local!r}", timeout=30_000
        )
        host_b.link_up()

        for text in sent_a:
            await expect_message(bob, text, timeout=45_000)
        await expect_message(ada, "from Bob while cut", timeout=45_000)
        await expect(peers.locator(".state")).to_have_text("connected", timeout=30_000)
        # The connection came back through an ICE restart (new credentials), not a new one.
        assert await ada.evaluate(ufrag_js, "remoteDescription") != remote
        await send(bob, "after the cut")
        await expect_message(ada, "after the cut")
        # Once each, in order.
        received = bob.get_by_role("log", name="Messages").locator(".m:not(.me) p")
        texts = await received.all_text_contents()
        assert texts == ["before the cut", *sent_a]
