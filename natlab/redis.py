"""A real redis-server for tests and benchmarks (Debian's ``redis-server`` package).

``running_redis`` starts it on a free loopback port with persistence off
(``--save '' --appendonly no``: a restart starts empty, as a lost Redis would),
polls ``PING`` with a deadline until it answers, and always stops it. The
:class:`RedisServer` it yields can be stopped and started again on the same
port, for tests of a Redis outage.

The pytest fixture built on it (``redis_server``) is in ``tests/fixtures_redis.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from natlab.processes import free_port

__all__ = [
    "READY_TIMEOUT",
    "RedisServer",
    "find_redis_server",
    "redis_server_command",
    "redis_unavailable_reason",
    "running_redis",
]

#: Seconds redis-server may take to answer its first PING (a few ms here).
READY_TIMEOUT = 10.0
#: Seconds it may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def redis_unavailable_reason() -> str | None:
    """Why no redis-server can run here ("needs ..."), or None."""
    if find_redis_server() is None:
        return "needs redis-server (Debian package redis-server)"
    return None


def redis_server_command(host: str, port: int, workdir: Path) -> list[str]:
    """redis-server on ``host:port``, persistence off, its log in ``workdir`` (made here)."""
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "--bind", host, "--port", str(port),
        "--save", "", "--appendonly", "no",
        "--dir", str(workdir), "--logfile", str(workdir / "redis.log"),
        "--daemonize", "no", "--protected-mode", "no",
    ]  # fmt: skip


async def _answers_ping(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 1.0)
        return line == b"+PONG\r\n"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@dataclass
class RedisServer:
    """One redis-server on ``host:port``; ``stop`` and ``start`` keep the port."""

    host: str
    port: int
    workdir: Path
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.workdir / "redis.log"  # where redis_server_command logs

    async def start(self) -> None:
        """Start redis-server (empty: nothing is persisted) and wait until it answers PING."""
        argv = redis_server_command(self.host, self.port, self.workdir)
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while not await _answers_ping(self.host, self.port):
            if self.process.returncode is not None:
                raise RuntimeError(f"redis-server exited: {self.log_text()[-2000:]}")
            if loop.time() >= deadline:
                await self.stop()
                raise RuntimeError(f"redis-server not ready after {READY_TIMEOUT} s")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT: the process is gone afterwards."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def running_redis(workdir: Path, host: str = "127.0.0.1") -> AsyncIterator[RedisServer]:
    """redis-server on a free port of ``host``, stopped at the end whatever happened."""
    server = RedisServer(host, free_port(host), workdir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
