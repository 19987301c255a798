"""Processes, free ports and polling: what tests and benchmarks need to run things.

Each server and load client is a child process, pinned to a CPU when asked,
that dies with the bench (PR_SET_PDEATHSIG) and is always stopped at the end.
Its CPU use and the time it waited for a CPU come from /proc, so a report can
say which side was the bottleneck, and when the machine was too busy to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "STOP_TIMEOUT",
    "child_setup",
    "confide_serve_command",
    "exit_on_sigterm",
    "free_port",
    "process_cpu_seconds",
    "rss_bytes",
    "run_queue_wait_seconds",
    "stop_process",
    "wait_tcp_ready",
    "wait_until",
]

#: Seconds a process may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 5.0

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port free on ``host`` at the moment of the call, proven by binding it twice.

    coturn binds with SO_REUSEPORT and would share a busy port silently, so a
    UDP port is checked by binding it again before it is handed out.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    if kind == socket.SOCK_DGRAM:
        with socket.socket(family, kind) as sock:
            sock.bind((host, port))  # raises if someone took it meanwhile
    return port


def confide_serve_command(port: int, *options: str) -> list[str]:
    """``confide serve`` on loopback ``port`` for a benchmark: no STUN, warnings only."""
    return [
        sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--stun-port", "off", "--log-level", "warning", *options,
    ]  # fmt: skip


def child_setup(cpu: int | None = None) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM if the bench dies, and is pinned to ``cpu``.

    PR_SET_PDEATHSIG (prctl(2)) keeps a server from outliving a bench that
    was killed outright, when no ``finally`` could stop it. Start children
    with ``start_new_session`` too: with the kernel's autogroup scheduling each
    session shares the CPUs as one group, so a server and its load client in
    the bench's session would together get one session's share on a busy
    machine, and each gets its own instead.
    """

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return setup


def exit_on_sigterm() -> None:
    """SIGTERM ends the bench through its ``finally`` blocks, which stop every process."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``: the process is gone afterwards."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_tcp_ready(port: int, process: subprocess.Popen[Any], log: Path, timeout: float) -> None:
    """Poll until the server accepts a connection on ``port``; fail if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} not ready after {timeout} s")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_wait_seconds(pid: int) -> float:
    """Seconds ``pid``'s threads were runnable but waiting for a CPU (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc/PID/status (VmRSS, in kB)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` (sync or async) until it is true, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
