"""A real Confide server for tests and benchmarks: in-process on a free port, or as a process.

``running_server`` starts ``create_app`` on a real socket (port 0) in the
test's event loop; ``server_process`` runs ``python -m server serve`` as a
child process (for tests that kill and restart it). Both wait for readiness
by polling with a deadline and always stop what they started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from natlab.processes import free_port
from server.app import STUN, create_app
from server.config import ServeConfig

__all__ = [
    "RunningServer",
    "running_server",
    "server_process",
]

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 20.0


@dataclass
class RunningServer:
    host: str
    port: int
    stun_port: int | None
    app: web.Application | None = None
    process: asyncio.subprocess.Process | None = None
    #: The TLS certificate's SHA-256 the server printed, when it serves https.
    fingerprint: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.fingerprint else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"


def config_for_tests(host: str = "127.0.0.1", **overrides: Any) -> ServeConfig:
    """Config for tests: free ports everywhere, the rest as given."""
    base = ServeConfig(host=host, port=0, stun_port=0)
    return dataclasses.replace(base, **overrides)


@contextlib.asynccontextmanager
async def running_server(host: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[RunningServer]:
    """The app in this event loop on a real socket (port 0 unless given)."""
    config = config_for_tests(host, **overrides)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, config.port)
    await site.start()
    try:
        port = int(runner.addresses[0][1])
        stun = app.get(STUN)
        yield RunningServer(host, port, stun.port if stun else None, app=app)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def server_process(
    host: str = "127.0.0.1",
    port: int | None = None,
    *args: str,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[RunningServer]:
    """``python -m server serve`` as a child process (``prefix``: e.g. ``ip netns exec NS``)."""
    port = port or free_port(host)
    stun_port = free_port(host, socket.SOCK_DGRAM)
    argv = [
        *(prefix or []),
        sys.executable,
        "-m",
        "server",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--stun-port",
        str(stun_port),
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, start_new_session=True
    )
    running = RunningServer(host, port, stun_port, process=process)
    try:
        assert process.stdout is not None
        while True:
            line = await asyncio.wait_for(process.stdout.readline(), READY_TIMEOUT)
            if line.startswith(b"TLS certificate SHA-256: "):
                running.fingerprint = line.split(b": ", 1)[1].strip().decode()
            elif b"Confide is running" in line:
                break
            elif not line:
                raise RuntimeError("server exited before it was ready")
        yield running
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
