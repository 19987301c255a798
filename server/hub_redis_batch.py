"""Calls of one Lua script, sent to Redis in pipelines: one round trip for many calls.

The Redis hub relays a frame with one script call, and an awaited call is a
round trip on a pool connection of its own: 500 connections relaying at once
queued for the pool and crawled (bench/bench_scaleout.py). A
:class:`ScriptBatcher` sends the calls made while a round trip is out together
once it is back, on one connection and in order, so one sender's frames stay
in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

__all__ = ["BATCH_MAX", "ScriptBatcher"]

#: Calls sent in one pipeline at most.
BATCH_MAX = 512


class ScriptBatcher:
    """Sends calls of ``script``: alone when nothing else waits, else in one pipeline."""

    def __init__(self, redis: Redis, script: AsyncScript) -> None:
        self._redis = redis
        self._script = script
        self._sha = script.sha
        self._queue: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                try:
                    if len(batch) == 1:
                        # Alone (a light load): a pipeline's set-up would cost more.
                        results = [await self._redis.evalsha(self._sha, 0, *batch[0][0])]
                    else:
                        results = await self._pipelined(batch)
                except (RedisError, OSError) as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sender = None
            for _, future in self._queue:
                if not future.done():
                    future.cancel()
            self._queue.clear()

    async def _pipelined(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            # EVALSHA alone: the script was loaded on connecting (``load``),
            # which spares a SCRIPT EXISTS per pipeline.
            for args, _ in batch:
                pipe.evalsha(self._sha, 0, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def load(self) -> None:
        """Load the script into Redis (on every connection: a restarted Redis has none)."""
        self._sha = str(await self._redis.script_load(self._script.script))

    def cancel(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
