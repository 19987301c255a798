"""Pytest fixtures for a real Confide server (the kit itself is :mod:`natlab.servers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from natlab.servers import RunningServer, running_server

__all__ = ["http", "server"]


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    """A Confide server with default limits on loopback."""
    async with running_server() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
