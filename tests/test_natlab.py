"""The NAT lab's reduced matrix: real Linux NATs in namespaces, real coturn, real server,
real aiortc peers (``python -m natlab.peer``) and one real Chromium pair.  Each expectation
of issue 10 is checked at least once; ``make natlab`` runs the full matrix."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import expect

from natlab.coturn import coturn_unavailable_reason
from natlab.fixtures import BrowserLauncher, lab_unavailable_reason
from natlab.lab import lab_namespaces
from natlab.matrix import Cell, Matrix, broken_expectations, running_matrix
from natlab.nat import KINDS, NatLab
from natlab.report import heat_map, table, write_json
from tests.browser import chromium, expect_message, join, people, send
from tests.peer_helpers import spawn_chat
from tests.signaling_client import joined

pytestmark = pytest.mark.coturn
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab() -> Iterator[NatLab]:
    """This module's lab is a NAT lab (so ``launch_browser`` starts Chromium in its sites)."""
    for reason in (lab_unavailable_reason(), coturn_unavailable_reason()):
        if reason is not None:
            pytest.skip(reason)
    with NatLab() as made:
        yield made


@pytest.fixture
async def matrix(lab: NatLab) -> AsyncIterator[Matrix]:
    async with running_matrix(lab=lab) as running:
        yield running


async def test_eim_pairs_connect_directly_through_srflx_without_turn(matrix: Matrix) -> None:
    cells = [await matrix.run_cell("eim", "eim", False),
             await matrix.run_cell("eim", "none", False)]  # fmt: skip
    assert all(c.connected for c in cells), cells
    assert broken_expectations(cells) == []
    # eim <-> eim: each reaches the other at its server-reflexive address.
    assert (cells[0].remote, cells[0].b_remote) == ("srflx", "srflx")
    assert cells[0].protocol == "udp" and not cells[0].relayed
    # eim <-> none: the public host is reached at its own address.
    assert (cells[1].remote, cells[1].b_remote) == ("host", "srflx")


async def test_symmetric_nats_need_the_relay(matrix: Matrix) -> None:
    without = await matrix.run_cell("apdm", "apdm", False)
    assert not without.connected, without
    relayed = await matrix.run_cell("apdm", "apdm", True)
    assert relayed.connected and relayed.relayed and relayed.protocol == "udp", relayed
    assert broken_expectations([without, relayed]) == []
    # The checker catches the opposite outcomes.
    assert broken_expectations([dataclasses.replace(without, connected=True)])


async def test_udp_blocked_connects_only_through_turn_over_tcp(matrix: Matrix) -> None:
    without = await matrix.run_cell("udp-blocked", "eim", False)
    assert not without.connected, without
    through = await matrix.run_cell("udp-blocked", "eim", True)
    assert through.connected, through
    # The blocked side sends from its relay, which it reaches over TCP.
    assert (through.local, through.protocol) == ("relay", "tcp"), through
    assert broken_expectations([without, through]) == []
    # The welcome and /api/ice-servers both list TURN over UDP and over TCP.
    async with joined(matrix.relayed.ws_url, "listing", "Lister") as client:
        from_welcome = client.welcome["iceServers"]
    async with aiohttp.ClientSession() as http:
        async with http.get(matrix.relayed.url + "/api/ice-servers") as response:
            from_http = (await response.json())["iceServers"]
    for servers in (from_welcome, from_http):
        turn = [u for s in servers for u in s["urls"] if u.startswith("turn:")]
        assert [u.rpartition("?")[2] for u in turn] == ["transport=udp", "transport=tcp"]


async def test_confide_chat_across_a_full_cone_and_a_symmetric_nat(matrix: Matrix) -> None:
    """The terminal peer itself (``confide chat``), scripted, with no relay offered."""
    url = matrix.plain.url
    text = "through two NATs"
    waiter = await spawn_chat(matrix.site("a", "eim").host, url, "--room", "chat",
                              "--name", "Wanda", "--expect", text, "--timeout", "60")  # fmt: skip
    sender = await spawn_chat(matrix.site("b", "apdm").host, url, "--room", "chat",
                              "--name", "Sid", "--send", text, "--timeout", "60")  # fmt: skip
    results = []
    for process in (sender, waiter):
        out, err = await asyncio.wait_for(process.communicate(), 90)
        results.append((process.returncode, out.decode(), err.decode()))
    (sent, sent_out, sent_err), (got, got_out, got_err) = results
    assert sent == 0 and "delivered to Wanda" in sent_out, sent_out + sent_err
    assert got == 0 and "[Sid] through two NATs" in got_out, got_out + got_err


def test_routes_stay_inside_the_lab(lab: NatLab) -> None:
    sites = [lab.add_site(f"s{i}", kind) for i, kind in enumerate(KINDS)]
    lab_networks = [ipaddress.ip_network(n) for n in ("10.231.0.0/24", "192.168.0.0/16",
                                                      "100.64.0.0/16")]  # fmt: skip
    for ns in lab.namespaces():
        shown = subprocess.run(["ip", "-n", ns, "-4", "route"], capture_output=True, text=True,
                               check=True, timeout=10)  # fmt: skip
        for route in shown.stdout.splitlines():
            words = route.split()
            # Every route is a connected lab network, or a default via a lab address.
            target = words[2] if words[0] == "default" else words[0]
            assert any(ipaddress.ip_address(target.split("/")[0]) in n for n in lab_networks), (
                ns, route)  # fmt: skip
    internet = lab.internet
    for site in sites:
        assert site.host.ping(internet.ip), site
        if site.routers:
            # Private addresses exist only behind their router.
            assert not internet.ping(site.host.ip), site
    assert not sites[1].host.ping("192.0.2.1")  # TEST-NET-1: nothing outside the lab answers


def test_expectation_checker_catches_each_kind_of_failure() -> None:
    direct = Cell("eim", "eim", False, True, 0.4, "host", "srflx", "udp", "host", "srflx")
    assert broken_expectations([direct]) == []
    # One side reached at a peer-reflexive address only: not "through srflx".
    assert broken_expectations([dataclasses.replace(direct, b_remote="prflx")])
    assert broken_expectations([dataclasses.replace(direct, remote="relay")])
    assert broken_expectations([dataclasses.replace(direct, connected=False)])
    assert broken_expectations([Cell("none", "apdm", True, False, None)])  # TURN must connect
    blocked = Cell("udp-blocked", "eim", True, True, 8.0, "relay", "srflx", "udp", "host", "relay")
    assert broken_expectations([blocked])  # through the relay, but not over TCP
    assert broken_expectations([dataclasses.replace(blocked, protocol="tcp")]) == []


def test_report_table_json_and_heat_map(tmp_path: Path) -> None:
    cells = [
        Cell("eim", "eim", False, True, 0.4, "host", "srflx", "udp", "host", "srflx"),
        Cell("apdm", "apdm", False, False, None),
        Cell("apdm", "apdm", True, True, 0.9, "host", "relay", "udp", "host", "relay"),
        Cell("udp-blocked", "eim", True, True, 8.1, "relay", "srflx", "tcp", "host", "relay"),
    ]
    text = table(cells)
    assert "eim" in text and "failed" in text and "relay/tcp" in text
    write_json(cells, tmp_path / "matrix.json")
    rows = json.loads((tmp_path / "matrix.json").read_text())
    assert [set(r) >= {"a", "b", "turn", "connected", "seconds", "local", "remote", "protocol"}
            for r in rows] == [True] * 4  # fmt: skip
    assert rows[1] == {**rows[1], "connected": False, "seconds": None}
    png = tmp_path / "matrix.png"
    heat_map(cells, png, KINDS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


async def test_chromium_pair_behind_eim_nats_connects_directly(
    matrix: Matrix, launch_browser: BrowserLauncher
) -> None:
    url = matrix.plain.url
    browsers = [await chromium(launch_browser, matrix.site(side, "eim").host, url) for side in "ab"]
    ada, bob = await people(browsers, url, "natlab", "Ada", "Bob")
    await send(ada, "across two NATs")
    await expect_message(bob, "across two NATs")
    peers = ada.get_by_role("list", name="Peers")
    await peers.get_by_text("Details").click()
    diag = peers.locator(".diag")
    # Ada sends from her host candidate to Bob's server-reflexive one (or the peer-
    # reflexive one his first check revealed: the same address), never through a relay.
    await expect(diag).to_contain_text("over udp")
    text = await diag.text_content() or ""
    assert "relay" not in text and ("↔ srflx" in text or "↔ prflx" in text), text
    # "Test connectivity" reads the NAT from the server's two STUN addresses.
    await ada.get_by_role("button", name="Test connectivity").click()
    out = ada.locator("#probeout")
    await expect(out).to_contain_text("In short: direct connections will work with most people.")
    await expect(out).to_contain_text("keeps one address for every destination and keeps your port")


#: What the browser's "Test connectivity" must say behind each kind of NAT.
BROWSER_SAYS = {
    "none": "Your address is public",
    "eim": "keeps one address for every destination and keeps your port",
    "eim-adf": "keeps one address for every destination and keeps your port",
    "apdm": "a new address for each destination",
    "udp-blocked": "No STUN answer: UDP is blocked on the way.",
    "double": "keeps one address for every destination and keeps your port",
}


async def test_browser_check_names_every_lab_nat_in_plain_words(
    matrix: Matrix, launch_browser: BrowserLauncher
) -> None:
    url = matrix.relayed.url
    for kind in KINDS:
        site = matrix.site("b", kind)
        browser = await chromium(launch_browser, site.host, url)
        page = await join(browser, url, f"check-{site.name}", "Sam")
        await page.get_by_role("button", name="Test connectivity").click()
        out = page.locator("#probeout")
        direct = kind in ("none", "eim", "eim-adf", "double")
        await expect(out).to_contain_text(
            "In short: direct connections will work with most people."
            if direct else "In short: you will need the relay."
        )  # fmt: skip
        await expect(out).to_contain_text(BROWSER_SAYS[kind])
        # Each TURN URL is tried alone, with the credentials the server handed out.
        udp = "no answer" if kind == "udp-blocked" else "answers"
        await expect(out).to_contain_text(f"transport=udp: {udp}")
        await expect(out).to_contain_text("transport=tcp: answers")
        await browser.close()


@pytest.mark.netns
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_an_interrupted_run_leaves_nothing_behind(signum: int, tmp_path: Path) -> None:
    for reason in (lab_unavailable_reason(), coturn_unavailable_reason()):
        if reason is not None:
            pytest.skip(reason)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "natlab", "--kinds", "apdm", "--out", str(tmp_path),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = b""
            while not line.startswith(b"lab up: "):
                line = await process.stdout.readline()
                assert line, "natlab ended before its lab was up"
        match = re.fullmatch(r"lab up: namespaces (\S+)\*, coturn in (\S+)", line.decode().strip())
        assert match is not None, line
        prefix, run_dir = match.groups()
        assert [n for n in lab_namespaces() if n.startswith(prefix)]
        assert _processes_mentioning(run_dir)  # coturn runs
        # A cell is under way (apdm <-> apdm fails slowly): stop the run now.
        process.send_signal(signum)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err.decode()
    assert b"interrupted" in err
    assert not [n for n in lab_namespaces() if n.startswith(prefix)]
    assert not _processes_mentioning(run_dir)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found
