"""Pytest fixtures for a real coturn (the kit itself is :mod:`natlab.coturn`).

- ``lab_coturn``: coturn in lab host "turn" (10.231.0.3), the test's thread in
  host "main" (10.231.0.2, see ``lab_host``); the lab's own range is opened
  with ``allowed-peer-ip`` so that peers in the lab can be relayed to.
- ``relay_server``: the Confide server in "main" with ``lab_coturn``'s URLs and secret.
- ``coturn``: coturn on 127.0.0.1 (nothing can be relayed: loopback peers are
  denied), for tests of authentication alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from natlab.coturn import LAB_PEER_RANGE, Coturn, coturn_unavailable_reason, running_coturn
from natlab.lab import Host, Lab
from natlab.servers import RunningServer, running_server

__all__ = ["coturn", "lab_coturn", "relay_server"]


def _skip_without_coturn() -> None:
    reason = coturn_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn on 127.0.0.1 (authentication tests; nothing can be relayed)."""
    _skip_without_coturn()
    async with running_coturn("127.0.0.1", tmp_path / "coturn") as running:
        yield running


@pytest.fixture
async def relay_server(lab_coturn: Coturn, lab_host: Host) -> AsyncIterator[RunningServer]:
    """The Confide server in "main", minting credentials for ``lab_coturn`` (UDP first:
    aiortc uses only the first TURN URL; then TCP)."""
    async with running_server(
        lab_host.ip,
        turn_urls=(lab_coturn.url("udp"), lab_coturn.url("tcp")),
        turn_secret=lab_coturn.secret,
        turn_secret_file=lab_coturn.secret_file,
        turn_ttl=600,
    ) as running:
        yield running


@pytest.fixture
async def lab_coturn(lab: Lab, lab_host: Host, tmp_path: Path) -> AsyncIterator[Coturn]:
    """coturn in lab host "turn", reachable from "main" where the test runs."""
    _skip_without_coturn()
    turn_host = lab.add_host("turn")
    async with running_coturn(
        turn_host.ip,
        tmp_path / "coturn",
        netns=turn_host,
        allowed_peer_ips=(LAB_PEER_RANGE,),
    ) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that run coturn, so that ``-m "not coturn"`` leaves them out."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"coturn", "lab_coturn", "relay_server"} & set(names):
            item.add_marker(pytest.mark.coturn)
