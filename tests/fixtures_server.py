"""Pytest fixtures for a real Confide server (the kit itself is :mod:`natlab.servers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from natlab.lab import Host
from natlab.servers import RunningServer, running_server

__all__ = ["http", "lab_server", "server"]


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """A Confide server with default limits on loopback."""
    async with running_server() as running:
        yield running


@pytest.fixture
async def lab_server(lab_host: Host) -> AsyncIterator[RunningServer]:
    """A Confide server in-process on the lab host's address (the test runs inside it);
    browser tests, which pass overrides, use :func:`tests.browser.lab_server` instead."""
    async with running_server(host=lab_host.ip) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
