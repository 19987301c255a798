"""Smoke tests of the network lab: namespaces, links, Chromium and aiortc inside them.

Real Chromium, real aiortc, no mocks.  Every wait is on an event or bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from playwright.async_api import Page

from natlab.fixtures import BrowserLauncher, ci_fatal_skip, lab_unavailable_reason
from natlab.lab import NETNS_DIR, Host, Lab, LabError, cleanup_stale, lab_namespaces

pytest_plugins = ["pytester"]

PAGE = Path(__file__).parent / "pages" / "lab_smoke.html"
LAB4 = ipaddress.ip_network("10.231.0.0/24")
LAB6 = ipaddress.ip_network("fd77:231::/64")
#: Upper bound for one browser test; each takes 1-3 s here.
TEST_TIMEOUT = 45.0
BOTH_FAMILIES = pytest.mark.parametrize(
    "lab", [{}, {"ipv6": True}], indirect=True, ids=["ipv4", "ipv6"]
)


@pytest.fixture
def can_build_lab() -> None:
    """For tests that make their own Lab: the same skip as the ``lab`` fixture."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _ns_inode(path: str | os.PathLike[str] = "/proc/thread-self/ns/net") -> int:
    return os.stat(path).st_ino


@asynccontextmanager
async def serve_page(host: Host) -> AsyncIterator[str]:
    """Serve the smoke page from this process on ``host``'s address; yields its URL."""

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE)

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host.ip, 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://{host.ip}:{port}/"
    finally:
        await runner.cleanup()


def _candidate_address(line: str) -> str:
    # "candidate:<foundation> <component> <proto> <priority> <address> <port> typ <type> ..."
    return line.removeprefix("a=").removeprefix("candidate:").split()[4]


def _in_lab(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip in LAB4 or ip in LAB6


# 1. Hosts, links, commands ------------------------------------------------------------


def test_hosts_reach_each_other_and_a_cut_link_stops_it(lab: Lab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    assert (a.ip, b.ip) == ("10.231.0.2", "10.231.0.3")

    # Commands run in the host: its own address and default route, nothing of the machine.
    shown = subprocess.run(
        a.exec_args(["ip", "-o", "-4", "addr", "show"]),
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    assert f"inet {a.ip}/24" in shown and "192.0.2.2" not in shown
    assert "default via 10.231.0.1 dev lab0" in a.run(["ip", "route"]).stdout
    assert a.ping(b.ip) and b.ping(a.ip) and a.ping(lab.gateway)

    a.link_down()
    assert not a.link_is_up()
    assert not a.ping(b.ip, timeout=0.5)
    assert not b.ping(a.ip, timeout=0.5)
    a.link_up()
    assert a.link_is_up()
    assert a.ping(b.ip) and b.ping(a.ip)

    # A silent cut: the host keeps its link and route, packets just vanish at the switch.
    a.link_down(silent=True)
    assert "default via" in a.run(["ip", "route"]).stdout
    assert not a.ping(b.ip, timeout=0.5)
    a.link_up()
    assert a.ping(b.ip)


def test_nothing_leaves_the_lab(lab: Lab) -> None:
    a = lab.add_host("a")
    # The machine's own address and a public one: the switch routes nowhere.
    assert not a.ping("192.0.2.2", timeout=0.5)
    assert not a.ping("198.51.100.1", timeout=0.5)


def test_host_names_are_checked(lab: Lab) -> None:
    lab.add_host("a")
    for bad in ("a", "switch", "Main", "with-dash", "x" * 17, ""):
        with pytest.raises(ValueError):
            lab.add_host(bad)


@pytest.mark.parametrize("lab", [{"ipv6": True}], indirect=True, ids=["ipv6"])
def test_ipv6_lab(lab: Lab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    assert (a.ip6, b.ip6) == ("fd77:231::2", "fd77:231::3")
    with b.entered():
        receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with a.entered():
        sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind((b.ip6, 0))
        receiver.settimeout(5)
        sender.sendto(b"over v6", receiver.getsockname())
        data, source = receiver.recvfrom(100)
    assert (data, source[0]) == (b"over v6", a.ip6)
    # The address survives a cut link (keep_addr_on_down) and its route comes back.
    a.link_down()
    a.link_up()
    assert f"{a.ip6}/64" in a.run(["ip", "-6", "-o", "addr"]).stdout
    assert "default via fd77:231::1" in a.run(["ip", "-6", "route"]).stdout


# 2. The current thread in a host --------------------------------------------------------


def test_entered_moves_only_the_current_thread(lab: Lab) -> None:
    a, b = lab.add_host("a"), lab.add_host("b")
    root = _ns_inode()
    seen: list[int] = []
    with a.entered():
        assert _ns_inode() == _ns_inode(a.ns_path)
        with b.entered():
            assert _ns_inode() == _ns_inode(b.ns_path)
        assert _ns_inode() == _ns_inode(a.ns_path)
        # A thread started inside inherits the namespace of the thread that started it.
        thread = threading.Thread(target=lambda: seen.append(_ns_inode()))
        thread.start()
        thread.join(10)
        with socket.socket() as sock:
            sock.bind((a.ip, 0))  # only possible inside a
    assert _ns_inode() == root
    assert seen == [_ns_inode(a.ns_path)]
    with pytest.raises(OSError), socket.socket() as sock:
        sock.bind((a.ip, 0))


async def test_lab_host_puts_the_test_and_its_executor_in_the_lab(lab_host: Host) -> None:
    assert lab_host.ip == "10.231.0.2"
    assert _ns_inode() == _ns_inode(lab_host.ns_path)
    # getaddrinfo and friends run in the loop's default executor: it must be in the lab too.
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, _ns_inode) == _ns_inode(lab_host.ns_path)
    # A numeric address never needs DNS, so it also works from any thread.
    infos = await loop.getaddrinfo(lab_host.ip, 80, type=socket.SOCK_STREAM)
    assert infos[0][4][0] == lab_host.ip
    # Subprocesses started from the test inherit it as well.
    proc = await asyncio.create_subprocess_exec(
        "ip", "-o", "-4", "addr", "show", "dev", "lab0", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert f"inet {lab_host.ip}/24" in out.decode()


# 3. Two Chromiums in two hosts ----------------------------------------------------------


async def _open_smoke_page(page: Page, url: str) -> None:
    response = await page.goto(url)
    assert response is not None and response.ok
    await page.wait_for_function("() => window.smoke !== undefined")


@BOTH_FAMILIES
async def test_two_browsers_in_two_hosts_exchange_a_message(
    lab: Lab, lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serve_page(lab_host) as url:
        host_a, host_b = lab.add_host("a"), lab.add_host("b")
        browser_a, browser_b = await asyncio.gather(launch_browser(host_a), launch_browser(host_b))
        page_a, page_b = await browser_a.new_page(), await browser_b.new_page()

        # Trickle: each page hands its candidates to the test, which adds them to the other.
        async def to_b(candidate: dict[str, Any] | None) -> None:
            await page_b.evaluate("c => smoke.addCandidate(c)", candidate)

        async def to_a(candidate: dict[str, Any] | None) -> None:
            await page_a.evaluate("c => smoke.addCandidate(c)", candidate)

        await page_a.expose_function("labSendCandidate", to_b)
        await page_b.expose_function("labSendCandidate", to_a)
        await asyncio.gather(_open_smoke_page(page_a, url), _open_smoke_page(page_b, url))

        offer = await page_a.evaluate("smoke.offer()")
        answer = await page_b.evaluate("o => smoke.answer(o)", offer)
        await page_a.evaluate("d => smoke.accept(d)", answer)
        await page_a.evaluate("smoke.opened")
        await page_a.evaluate("smoke.channel.send('hello from a')")
        assert await page_b.evaluate("smoke.messagesAtLeast(1)") == ["hello from a"]

        for page, host in ((page_a, host_a), (page_b, host_b)):
            # The channel can open on the first pair before the other family is gathered.
            await page.evaluate("smoke.gatheredDescription()")
            lines: list[str] = await page.evaluate("smoke.localCandidates")
            hosts = [_candidate_address(c) for c in lines if " typ host" in c]
            # The flag keeps real addresses (no random .local names), and they are the lab's.
            assert host.ip in hosts
            assert all(_in_lab(address) for address in hosts), hosts
            if host.ip6 is not None:
                assert host.ip6 in hosts

        # Each Chromium runs in its own host, with Playwright's feature list kept.
        for host in (host_a, host_b):
            cmdlines = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in host.pids()]
            # The browser process: its helpers (renderer, GPU, ...) carry a --type.
            chromium = [
                c.split(b"\0")
                for c in cmdlines
                if b"--remote-debugging-pipe" in c and b"--type=" not in c
            ]
            assert len(chromium) == 1
            disabled = [a for a in chromium[0] if a.startswith(b"--disable-features=")]
            assert len(disabled) == 1
            assert b"WebRtcHideLocalIpsWithMdns" in disabled[0]
            assert b"OptimizationHints" in disabled[0]  # one of Playwright's


# 4. aiortc here, Chromium there -------------------------------------------------------


@BOTH_FAMILIES
async def test_aiortc_in_process_and_chromium_talk_both_ways(
    lab: Lab, lab_host: Host, launch_browser: BrowserLauncher
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serve_page(lab_host) as url:
        remote = lab.add_host("b")
        browser = await launch_browser(remote)
        page = await browser.new_page()
        trickled: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        await page.expose_function("labSendCandidate", trickled.put_nowait)
        await _open_smoke_page(page, url)

        # No ICE servers: aiortc's default is Google's STUN server, whose name it would try
        # to resolve (and wait for) in the middle of gathering.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            channel = pc.createDataChannel("smoke")
            opened = asyncio.Event()
            received: asyncio.Queue[str] = asyncio.Queue()
            channel.on("open", opened.set)
            channel.on("message", received.put_nowait)

            # aiortc does not trickle: its SDP carries every candidate once gathered.
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription
            ours = [
                _candidate_address(line)
                for line in offer.sdp.splitlines()
                if line.startswith("a=candidate:")
            ]
            assert lab_host.ip in ours and all(_in_lab(a) for a in ours), ours

            answer = await page.evaluate(
                "o => smoke.answer(o)", {"type": offer.type, "sdp": offer.sdp}
            )
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            # Chromium does trickle: add its candidates as they come, until its null.
            while (init := await trickled.get()) is not None:
                candidate = candidate_from_sdp(init["candidate"].removeprefix("candidate:"))
                candidate.sdpMid = init["sdpMid"]
                candidate.sdpMLineIndex = init["sdpMLineIndex"]
                assert _in_lab(candidate.ip)
                await pc.addIceCandidate(candidate)
            await pc.addIceCandidate(None)

            await opened.wait()
            await page.evaluate("smoke.opened")
            channel.send("hello from aiortc")
            assert await page.evaluate("smoke.messagesAtLeast(1)") == ["hello from aiortc"]
            await page.evaluate("smoke.channel.send('hello from chromium')")
            assert await received.get() == "hello from chromium"
        finally:
            await pc.close()


# 5. Cleanup -----------------------------------------------------------------------------


def _veths(ns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", ns, "-o", "link", "show", "type", "veth"],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout  # fmt: skip
    # "3: p2@if2: <...>": the name without the peer's index.
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


@pytest.mark.netns
def test_close_removes_every_namespace_and_veth(can_build_lab: None) -> None:
    made = Lab()
    try:
        host_a, host_b = made.add_host("a"), made.add_host("b")
        assert set(made.namespaces()) == {made.switch_ns, host_a.ns, host_b.ns}
        assert sorted(_veths(made.switch_ns)) == ["p2", "p3"]
        assert _veths(host_a.ns) == ["lab0"]
        # A process left in a host does not keep the lab alive: close kills it by pid.
        sleeper = subprocess.Popen(host_a.exec_args(["sleep", "60"]))
        deadline = time.monotonic() + 10
        while sleeper.pid not in host_a.pids():  # until `ip netns exec` has entered
            assert time.monotonic() < deadline and sleeper.poll() is None
    finally:
        made.close()
    assert sleeper.wait(10) != 0
    assert made.namespaces() == []
    assert not any(n.startswith(made.prefix) for n in os.listdir(NETNS_DIR))
    made.close()  # twice is fine
    with pytest.raises(LabError):
        made.add_host("c")


@pytest.mark.netns
def test_a_failed_host_leaves_nothing_and_the_lab_goes_on(
    can_build_lab: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Lab() as made:
        made.add_host("a")
        # Longer than IFNAMSIZ: `ip link add` fails after the host's namespace exists.
        monkeypatch.setattr("natlab.lab.HOST_IFNAME", "x" * 20)
        with pytest.raises(LabError):
            made.add_host("b")
        assert not any(n.endswith("-b") for n in made.namespaces())
        monkeypatch.undo()
        c = made.add_host("c")
        assert c.ping(made.hosts["a"].ip)
    assert made.namespaces() == []


def test_stale_namespaces_of_dead_runs_go_and_live_ones_stay(lab: Lab) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait(10)
    stale = f"confide-lab-{dead.pid}-0ff1ce-a"
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
    try:
        removed = cleanup_stale()
        assert stale in removed
        assert stale not in lab_namespaces()
        assert lab.switch_ns in lab_namespaces()  # this run is alive
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, timeout=10)


# 6. The CI rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "environ", "fatal"),
    [
        ("needs root to create network namespaces", {"CI": "true"}, True),
        ("Skipped: needs root to create network namespaces", {"CI": "1"}, True),
        ("needs chromium at /usr/bin/chromium", {"CI": "true"}, True),
        ("needs root to create network namespaces", {}, False),
        ("needs root to create network namespaces", {"CI": ""}, False),
        ("needs root to create network namespaces", {"CI": "false"}, False),
        ("not relevant on this platform", {"CI": "true"}, False),
    ],
)
def test_ci_fatal_skip(reason: str, environ: dict[str, str], fatal: bool) -> None:
    assert ci_fatal_skip(reason, environ) is fatal


INNER_TESTS = """
import pytest

def test_root_skip():
    pytest.skip("needs root to create network namespaces")

@pytest.mark.skip(reason="needs root to create network namespaces")
def test_root_skip_mark():
    pass

def test_other_skip():
    pytest.skip("something else")

@pytest.fixture
def needs_root_fixture():
    pytest.skip("needs root to create network namespaces")

def test_root_skip_in_fixture(needs_root_fixture):
    pass
"""


@pytest.mark.parametrize("ci", [None, "true"])
def test_root_skips_fail_only_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_inner=INNER_TESTS)
    # A separate interpreter: the hook under test must not also run in this session.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent.parent))
    result = pytester.runpytest_subprocess(
        "-p", "natlab.fixtures", "-p", "no:cacheprovider",
        "-o", "asyncio_default_fixture_loop_scope=function",
    )  # fmt: skip
    if ci is None:
        result.assert_outcomes(skipped=4)
    else:
        # pytest reports a failed setup as an error: a skip from a fixture or a skip mark.
        result.assert_outcomes(failed=1, errors=2, skipped=1)
        result.stdout.fnmatch_lines(["*needs root*a failure, not a skip, because CI is set*"])
