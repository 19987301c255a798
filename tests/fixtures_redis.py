"""Pytest fixtures for a real redis-server (the kit itself is :mod:`natlab.redis`).

- ``redis_server``: a fresh, empty redis-server on a free loopback port, with
  persistence off, stopped at teardown. Skips ("needs redis-server ...") when
  Debian's package is missing, which is a failure when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from natlab.redis import RedisServer, redis_unavailable_reason, running_redis

__all__ = ["redis_for_test", "redis_server", "skip_without_redis"]


def skip_without_redis() -> None:
    """Skip ("needs ...") when redis-server or the redis package is missing."""
    reason = redis_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        pytest.skip("needs the redis package (the [redis] extra)")


@contextlib.asynccontextmanager
async def redis_for_test(tmp_path: Path, host: str = "127.0.0.1") -> AsyncIterator[RedisServer]:
    """A fresh redis-server on ``host`` for one test, or a skip saying what is missing."""
    skip_without_redis()
    async with running_redis(tmp_path / "redis", host) as running:
        yield running


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    async with redis_for_test(tmp_path) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that run redis-server, so that ``-m "not redis"`` leaves them out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        hub_kind = callspec.params.get("hub") if callspec is not None else None
        if "redis_server" in getattr(item, "fixturenames", ()) or hub_kind == "redis":
            item.add_marker(pytest.mark.redis)
