"""Pytest fixtures for the network lab (``natlab/lab.py``) and Chromium inside it.

- ``lab``: a fresh :class:`~natlab.lab.Lab` per test, deleted at teardown (skips when not
  root; ``@pytest.mark.parametrize("lab", [{"ipv6": True}], indirect=True)`` adds IPv6).
- ``lab_host``: host "main" of that lab, with the test's thread *inside* it for the whole
  test, so in-process servers, aiohttp clients and aiortc peers all live in the lab.
- ``launch_browser``: ``await launch_browser(host)`` starts headless Chromium in ``host``;
  every browser and Playwright itself are closed at teardown.

CI rule: a test skipped because the machine cannot run it ("needs root ...", "needs
chromium ...") is a failure when the ``CI`` environment variable is set, so that a green CI
never hides lab tests that did not run (see :func:`ci_fatal_skip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
from collections.abc import AsyncIterator, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from natlab.lab import Host, Lab

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CI_FATAL_SKIP_PREFIXES",
    "BrowserLauncher",
    "ci_fatal_skip",
    "lab_unavailable_reason",
    "launch_browser",
    "lab",
    "lab_host",
]

#: Debian's Chromium; Playwright's own browser builds cannot be downloaded here.
CHROMIUM = os.environ.get("CONFIDE_CHROMIUM", "/usr/bin/chromium")
#: Flags for every lab browser.  Root needs --no-sandbox; the background-networking
#: flags keep Chromium from calling Google's services; WebRtcHideLocalIpsWithMdns off makes
#: host candidates carry the lab address instead of a random ``.local`` name, which nobody
#: in the lab could resolve (mDNS would otherwise be the only way to reach them).
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)
#: Milliseconds Playwright waits for Chromium to start (about 0.3-0.7 s here).
LAUNCH_TIMEOUT_MS = 30_000
#: Seconds teardown waits for one browser to close before the lab kills what is left.
CLOSE_TIMEOUT = 10.0
#: Skip reasons that mean "this machine cannot run the test" rather than "not applicable".
#: A test that cannot run here says what it "needs"; in CI every one of those must be there.
CI_FATAL_SKIP_PREFIXES: tuple[str, ...] = ("needs ", "shellcheck is not installed")

ROOT_SKIP_REASON = "needs root to create network namespaces"


def lab_unavailable_reason() -> str | None:
    """Why this machine cannot build a lab (a skip reason), or None when it can."""
    if os.geteuid() != 0:
        return ROOT_SKIP_REASON
    if shutil.which("ip") is None or shutil.which("bridge") is None:
        return "needs iproute2 (ip, bridge) to build the lab"
    return None


def _ci_is_set(environ: Mapping[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def ci_fatal_skip(reason: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a skip with ``reason`` must count as a failure: CI is set and the reason
    is one of :data:`CI_FATAL_SKIP_PREFIXES` (an optional "Skipped: " prefix is ignored)."""
    env = os.environ if environ is None else environ
    text = reason.removeprefix("Skipped: ").strip()
    return _ci_is_set(env) and text.startswith(CI_FATAL_SKIP_PREFIXES)


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Turn a machine-capability skip into a failure under CI (see :func:`ci_fatal_skip`)."""
    report = yield
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if reason is not None and ci_fatal_skip(reason):
            report.outcome = "failed"
            report.longrepr = (
                f"{reason} -- a failure, not a skip, because CI is set: CI must run every test"
            )
    return report


def pytest_configure(config: pytest.Config) -> None:
    """Register the marks this plugin sets, so that it also works outside this repo's ini."""
    config.addinivalue_line("markers", "netns: needs root to create network namespaces")
    config.addinivalue_line("markers", "chromium: drives Debian's chromium through Playwright")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by what they use, so that ``-m "not netns"`` or ``-m "not chromium"``
    select without each test repeating the marks."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "lab" in names:
            item.add_marker(pytest.mark.netns)
        if "launch_browser" in names:
            item.add_marker(pytest.mark.chromium)


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A new lab (switch only; add hosts with ``lab.add_host``), deleted at teardown."""
    reason = lab_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    options: dict[str, Any] = getattr(request, "param", None) or {}
    with Lab(**options) as made:
        yield made


@pytest.fixture
async def lab_host(lab: Lab) -> AsyncIterator[Host]:
    """Host "main" (10.231.0.2) with the test's thread inside it until teardown."""
    host = lab.add_host("main")
    with host.entered():
        # Threads inherit the namespace of the thread that starts them.  A fresh default
        # executor starts its workers lazily from this (entered) thread, so run_in_executor
        # work such as getaddrinfo runs in the lab too, where a name lookup cannot leave the
        # machine, even if something used the loop's previous pool before this fixture.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(thread_name_prefix=f"lab-{host.name}")
        )
        yield host


class BrowserLauncher(Protocol):
    """Type of the ``launch_browser`` fixture."""

    async def __call__(self, host: Host, *, args: Sequence[str] = ()) -> Browser:
        """Start headless Chromium inside ``host`` with :data:`CHROMIUM_ARGS` + ``args``."""
        ...


_WRAPPER = """#!/bin/sh
# Chromium in lab host {host}.  Playwright speaks to Chromium over inherited pipes
# (--remote-debugging-pipe), which `ip netns exec` and `exec` pass on untouched.
# Chromium honours only the last --disable-features (and --enable-features) switch, and
# Playwright puts its own list before ours: join them, or Playwright's list is lost.
disabled=""
enabled=""
for arg do
  shift
  case $arg in
    --disable-features=*) disabled="$disabled${{disabled:+,}}${{arg#--disable-features=}}" ;;
    --enable-features=*) enabled="$enabled${{enabled:+,}}${{arg#--enable-features=}}" ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec ip netns exec {ns} {chromium} \\
  ${{disabled:+"--disable-features=$disabled"}} ${{enabled:+"--enable-features=$enabled"}} "$@"
"""


def _write_wrapper(directory: Path, host: Host) -> Path:
    wrapper = directory / f"chromium-in-{host.name}"
    if not wrapper.exists():
        # Written aside and renamed: a shell still reading it must never see it half-written.
        partial = wrapper.with_suffix(".partial")
        partial.write_text(
            _WRAPPER.format(host=host.name, ns=shlex.quote(host.ns), chromium=shlex.quote(CHROMIUM))
        )
        partial.chmod(0o755)
        partial.replace(wrapper)
    return wrapper


@pytest.fixture
async def launch_browser(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BrowserLauncher]:
    """Factory starting Chromium in a lab host; closes all browsers and Playwright after."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs chromium at {CHROMIUM} (Debian package chromium)")
    from playwright.async_api import async_playwright

    wrappers = tmp_path_factory.mktemp("chromium-wrappers")
    # Started here, not on the first launch: two launches gathered at once would each start
    # a driver otherwise, and one of them would never be stopped.
    playwright: Playwright = await async_playwright().start()
    browsers: list[Browser] = []

    async def launch(host: Host, *, args: Sequence[str] = ()) -> Browser:
        if host.lab is not lab:
            raise ValueError(f"{host!r} is not in this test's lab")
        browser = await playwright.chromium.launch(
            executable_path=str(_write_wrapper(wrappers, host)),
            args=[*CHROMIUM_ARGS, *args],
            headless=True,
            timeout=LAUNCH_TIMEOUT_MS,
        )
        browsers.append(browser)
        return browser

    try:
        yield launch
    finally:
        for browser in browsers:
            # A browser that will not close is no reason to fail teardown: the lab's close
            # kills, by pid, whatever still runs in its hosts.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT)
        await asyncio.wait_for(playwright.stop(), CLOSE_TIMEOUT)
