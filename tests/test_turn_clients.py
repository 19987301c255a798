"""The project's own clients on the relay: Chromium with ``?relay=1`` and the Python peer
with ``--relay``, through a real coturn (lab host "turn"), with credentials from the server.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from client_py import events as ev
from client_py.peer import selected_candidates
from client_py.room import Room
from natlab.coturn import Coturn
from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from natlab.servers import RunningServer
from tests.browser import chromium, expect_message, people, send
from tests.peer_helpers import spawn_chat, wait_for_event

ROOT = Path(__file__).resolve().parent.parent
#: Upper bound for one test.
TEST_TIMEOUT = 90.0
#: Seconds for a peer to connect through the relay, or a message to arrive.
WAIT = 30.0


async def expect_relayed(page: Page, name: str) -> None:
    """The peer's Details (the page's diagnostics, from getStats) say relay on both ends."""
    item = page.get_by_role("list", name="Peers").get_by_role("listitem").filter(has_text=name)
    await item.get_by_text("Details").click()
    diag = item.locator(".diag")
    await expect(diag).to_contain_text("relay ↔ relay")
    await expect(diag).to_contain_text("relayed (TURN)")


async def test_browsers_with_relay_1_chat_through_coturn(
    lab_host: Host,
    lab_coturn: Coturn,
    relay_server: RunningServer,
    launch_browser: BrowserLauncher,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        browser = await chromium(launch_browser, lab_host, relay_server.url)
        ada, bob = await people(browser, relay_server.url, "relayed", "Ada", "Bob", relay=True)
        await send(ada, "hello through the relay")
        await expect_message(bob, "hello through the relay")
        await send(bob, "and back")
        await expect_message(ada, "and back")
        await expect_relayed(ada, "Bob")
        await expect_relayed(bob, "Ada")
    # coturn bound channels (or permissions) for the two browsers' allocations.
    log = lab_coturn.log_text()
    assert "ALLOCATE processed, success" in log
    assert "CHANNEL_BIND processed, success" in log or "CREATE_PERMISSION processed, success" in log


async def test_python_peer_with_relay_chats_through_coturn(
    lab_host: Host, lab_coturn: Coturn, relay_server: RunningServer
) -> None:
    """``confide chat --relay`` in lab host "far" and an in-process relay-only Room."""
    far = lab_host.lab.add_host("far")
    cli = await spawn_chat(
        far, relay_server.url, "--room", "relayed", "--name", "Py", "--relay",
        "--send", "hello from the terminal", "--expect", "reply through the relay",
        "--timeout", str(WAIT))  # fmt: skip
    room = Room(relay_server.ws_url, "relayed", "Ada", relay=True)
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            await room.start()
            message = await wait_for_event(room, ev.Message, timeout=WAIT)
            assert (message.name, message.text) == ("Py", "hello from the terminal")
            # While both are here: our selected pair goes from our relayed candidate to the
            # terminal peer's, both on coturn (so its pair is relay-relay as well).
            (link,) = room.peers.values()
            pair = selected_candidates(link.pc)
            assert pair is not None
            local, remote = pair
            assert (local.type, remote.type) == ("relay", "relay")
            assert local.host == remote.host == lab_coturn.host
            room.send_text("reply through the relay")
            out, err = await cli.communicate()
            assert cli.returncode == 0, out.decode() + err.decode()
            assert "delivered to Ada" in out.decode()
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.communicate()
        await room.close()


async def test_peers_that_cannot_reach_each_other_chat_through_the_relay(
    lab_host: Host, lab_coturn: Coturn, relay_server: RunningServer
) -> None:
    """Issue 5's "done when": no relay-only option, but UDP between the two hosts is
    dropped (iptables inside lab host "far"), so ICE can only succeed through coturn."""
    if shutil.which("iptables") is None:
        pytest.skip("needs iptables (Debian package iptables) to wall the hosts off")
    far = lab_host.lab.add_host("far")
    for rule in (["INPUT", "-s"], ["OUTPUT", "-d"]):
        far.run(["iptables", "-A", rule[0], "-p", "udp", rule[1], lab_host.ip, "-j", "DROP"])
    cli = await spawn_chat(
        far, relay_server.url, "--room", "walled", "--name", "Far",
        "--send", "hello across the wall", "--expect", "reply across the wall",
        "--timeout", str(WAIT))  # fmt: skip
    room = Room(relay_server.ws_url, "walled", "Near")
    try:
        async with asyncio.timeout(TEST_TIMEOUT):
            await room.start()
            message = await wait_for_event(room, ev.Message, timeout=WAIT)
            assert (message.name, message.text) == ("Far", "hello across the wall")
            (link,) = room.peers.values()
            pair = selected_candidates(link.pc)
            assert pair is not None
            local, remote = pair
            # No host-host pair can work through the wall: at least one end is a relayed
            # address on coturn (ours, or Far's; coturn may relay to the other's host address).
            kinds = (local.type, remote.type)
            assert "relay" in kinds and set(kinds) <= {"host", "relay"}, kinds
            assert all(c.host == lab_coturn.host for c in (local, remote) if c.type == "relay")
            room.send_text("reply across the wall")
            out, err = await cli.communicate()
            assert cli.returncode == 0, out.decode() + err.decode()
            assert "delivered to Near" in out.decode()
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.communicate()
        await room.close()
