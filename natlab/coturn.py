"""A real coturn for tests and benchmarks, started with the project's own configuration.

``running_coturn`` runs ``turn/run-coturn.sh`` (which renders
``turn/turnserver.conf.template`` and execs Debian's ``turnserver``) with a fresh
secret, free ports, and its pid file, database and log in a folder of the test;
it waits for a STUN Binding answer from *our* process, and always stops it.

The pytest fixtures built on it (``coturn``, ``lab_coturn``, ``relay_server``) are in
``tests/fixtures_coturn.py``.

And a TURN client on aioice's own code path (``aioice.turn``) for requests that
aiortc never makes on purpose: ``turn_allocation`` (an Allocate with long-term
credentials), ``create_permission`` and ``channel_bind``. These are messages to
coturn only: asking for a permission sends nothing to the peer it names, so
tests may name addresses they must never reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aioice import stun, turn

from natlab.lab import SUBNET4, Host
from server.turn import TurnCredentials, mint_credentials

__all__ = [
    "LAB_PEER_RANGE",
    "Coturn",
    "channel_bind",
    "coturn_unavailable_reason",
    "create_permission",
    "error_code_of",
    "find_turnserver",
    "port_is_free",
    "running_coturn",
    "turn_allocation",
]

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "turn" / "run-coturn.sh"
#: Seconds coturn may take to answer its first Binding request (about 0.1 s here).
READY_TIMEOUT = 15.0
#: Seconds one readiness probe waits for its answer.
PROBE_TIMEOUT = 0.2
#: Seconds coturn may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: The lab's addresses as coturn writes a range. The template denies 10/8 (as it
#: must: a relay must not reach into the network it runs in); the lab opens its own
#: /24 with ``allowed-peer-ip``, exactly as a deployment would open a range it means
#: to relay to. Everything else in 10/8, 192.168/16, 127/8, ... stays denied.
LAB_PEER_RANGE = f"{SUBNET4.network_address}-{SUBNET4.broadcast_address}"
#: Seconds one TURN request may take; coturn answers in about a millisecond.
REQUEST_TIMEOUT = 10.0
#: A test's relay ports; small, so two tests never need the same one.
RELAY_PORTS = 200


def find_turnserver() -> str | None:
    """Debian puts coturn's server in /usr/bin; other builds in /usr/sbin."""
    for candidate in (shutil.which("turnserver"), "/usr/bin/turnserver", "/usr/sbin/turnserver"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def coturn_unavailable_reason() -> str | None:
    """A skip reason when this machine cannot run coturn, else None."""
    if find_turnserver() is None:
        return "needs coturn (Debian package coturn: turnserver)"
    return None


def port_is_free(host: str, port: int) -> bool:
    """Whether nobody holds ``port`` on ``host``, for UDP and TCP.

    This matters: coturn sets SO_REUSEPORT, so a second coturn on a port in use
    starts without complaint and the kernel splits the clients between the two.
    A plain bind (without SO_REUSEPORT) fails on any port already bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _free_port_pair(host: str) -> int:
    """A port free for both UDP and TCP on ``host`` (the kernel picks it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port_is_free(host, port):
            return port
    raise RuntimeError(f"no free UDP+TCP port on {host}")


def _relay_range(host: str) -> tuple[int, int]:
    """A random window of relay ports whose first port is free."""
    for _ in range(50):
        low = 20000 + secrets.randbelow(30000)
        if port_is_free(host, low):
            return low, low + RELAY_PORTS - 1
    raise RuntimeError(f"no free relay port range on {host}")


@dataclass(frozen=True)
class Coturn:
    """A running coturn: where it listens and how to get credentials for it."""

    host: str
    port: int
    realm: str
    run_dir: Path
    secret_file: Path
    min_port: int
    max_port: int
    pid: int
    secret: bytes = field(repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def log_file(self) -> Path:
        return self.run_dir / "turnserver.log"

    @property
    def conf_file(self) -> Path:
        return self.run_dir / "turnserver.conf"

    def url(self, transport: str = "udp") -> str:
        """``turn:HOST:PORT?transport=...`` (RFC 7065)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"turn:{host}:{self.port}?transport={transport}"

    def credentials(self, ttl: int = 600, now: float | None = None) -> TurnCredentials:
        """A pair minted the way the Confide server mints them."""
        return mint_credentials(self.secret, ttl, now)

    def stderr_text(self) -> str:
        """What the launcher and coturn wrote to stderr (beside the log)."""
        try:
            return (self.run_dir.parent / "stderr.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def _inside(netns: Host | None) -> Iterator[None]:
    if netns is None:
        yield
    else:
        with netns.entered():
            yield


def _binding_request() -> tuple[bytes, bytes]:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    return bytes(request), request.transaction_id


async def _answers_binding(host: str, port: int, netns: Host | None) -> bool:
    """One STUN Binding request (RFC 8489 §6) to coturn; True when it answered."""
    loop = asyncio.get_running_loop()
    with _inside(netns):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        sock.connect((host, port))
        data, transaction_id = _binding_request()
        try:
            await loop.sock_sendall(sock, data)
            reply = await asyncio.wait_for(loop.sock_recv(sock, 2048), PROBE_TIMEOUT)
        except (TimeoutError, ConnectionRefusedError):
            return False
    try:
        message = stun.parse_message(reply)
    except ValueError:
        return False
    return message.transaction_id == transaction_id and (
        message.message_class == stun.Class.RESPONSE
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


@contextlib.asynccontextmanager
async def running_coturn(
    host: str,
    run_dir: Path,
    *,
    netns: Host | None = None,
    port: int | None = None,
    allowed_peer_ips: Sequence[str] = (),
    realm: str = "confide.test",
    extra_env: dict[str, str] | None = None,
    args: Sequence[str] = ("--verbose",),
) -> AsyncIterator[Coturn]:
    """coturn listening and relaying on ``host`` (inside ``netns`` when given).

    ``run_dir`` receives the secret file, the rendered config, the pid file, the
    database and the log. ``port`` defaults to a free one; a given port that is
    in use fails at once rather than sharing it with another coturn. ``args`` go to
    turnserver; ``--verbose`` by default, so that the log names every session and
    user (and tests can check that it never names the secret).
    """
    turnserver = find_turnserver()
    if turnserver is None:
        raise RuntimeError("coturn is not installed")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _inside(netns):
        if port is None:
            port = _free_port_pair(host)
        elif not port_is_free(host, port):
            raise RuntimeError(f"port {port} on {host} is in use: coturn would share it")
        min_port, max_port = _relay_range(host)
    secret = secrets.token_hex(32).encode()
    secret_file = run_dir / "secret"
    secret_file.write_bytes(secret + b"\n")
    secret_file.chmod(0o600)
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "TURNSERVER": turnserver,
        "TURN_SECRET_FILE": str(secret_file),
        "TURN_REALM": realm,
        "TURN_PORT": str(port),
        "TURN_MIN_PORT": str(min_port),
        "TURN_MAX_PORT": str(max_port),
        "TURN_LISTEN_IPS": host,
        "TURN_RELAY_IPS": host,
        "TURN_ALLOWED_PEER_IPS": ",".join(allowed_peer_ips),
        **(extra_env or {}),
    }
    argv = ["/bin/sh", str(LAUNCHER), str(run_dir / "run"), *args]
    if netns is not None:
        argv = netns.exec_args(argv)
    # A file, not a pipe: nobody has to keep reading it while coturn runs.
    with (run_dir / "stderr.log").open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    coturn = Coturn(
        host=host,
        port=port,
        realm=realm,
        run_dir=run_dir / "run",
        secret_file=secret_file,
        min_port=min_port,
        max_port=max_port,
        pid=process.pid,
        secret=secret,
    )
    try:
        await _wait_ready(coturn, process, netns)
        yield coturn
    finally:
        await _stop(process)


async def _wait_ready(
    coturn: Coturn, process: asyncio.subprocess.Process, netns: Host | None
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while not await _answers_binding(coturn.host, coturn.port, netns):
        if process.returncode is not None:
            raise RuntimeError(
                f"coturn exited with {process.returncode}: {coturn.stderr_text().strip()}\n"
                + coturn.log_text()
            )
        if loop.time() >= deadline:
            raise TimeoutError(f"coturn did not answer within {READY_TIMEOUT} s")
        await asyncio.sleep(0.02)
    # The answer must come from our process and no other (`ip netns exec` and the
    # launcher both exec, so coturn keeps the pid we started).
    pid_file = coturn.run_dir / "turnserver.pid"
    written = pid_file.read_text().strip() if pid_file.exists() else ""
    if written != str(process.pid):
        raise RuntimeError(f"coturn's pid file says {written!r}, we started {process.pid}")


# --- a TURN client for refusals ----------------------------------------------------


def error_code_of(exc: stun.TransactionFailed) -> int | None:
    """The ERROR-CODE of a failed transaction (RFC 8489 §14.8)."""
    code: int | None = exc.response.error_code
    return code


@contextlib.asynccontextmanager
async def turn_allocation(
    server: tuple[str, int], username: str, password: str
) -> AsyncIterator[turn.TurnClientUdpProtocol]:
    """An Allocate (RFC 8656 §7) with long-term credentials, deleted on the way out.

    A refused Allocate raises ``aioice.stun.TransactionFailed``.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(
            server, username=username, password=password, lifetime=600, channel_refresh_time=500
        ),
        remote_addr=server,
    )
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            await protocol.connect()
        try:
            yield protocol
        finally:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await protocol.delete()
    finally:
        transport.close()


async def create_permission(protocol: turn.TurnClientUdpProtocol, peer: tuple[str, int]) -> None:
    """CreatePermission for ``peer`` (RFC 8656 §9); raises TransactionFailed if refused."""
    request = stun.Message(
        message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
    )
    request.attributes["XOR-PEER-ADDRESS"] = peer
    async with asyncio.timeout(REQUEST_TIMEOUT):
        await protocol.request_with_retry(request)


async def channel_bind(
    protocol: turn.TurnClientUdpProtocol, peer: tuple[str, int], number: int = 0x4000
) -> None:
    """ChannelBind ``number`` to ``peer`` (RFC 8656 §12); raises TransactionFailed if refused."""
    async with asyncio.timeout(REQUEST_TIMEOUT):
        await protocol.channel_bind(number, peer)
