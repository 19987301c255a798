"""The asyncio shell of the STUN responder: UDP sockets, counters and the per-source limit.

:class:`StunServer` moves datagrams between its socket(s) and a
:class:`~server.stun.responder.BindingResponder`, counts outcomes in
:class:`StunStats` and caps replies per source with a
:class:`~server.ratelimit.KeyedRateLimiter`, so the responder cannot be used
as a flood reflector: requests with a spoofed source would aim the replies at
a victim.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
import time
from dataclasses import dataclass
from typing import Any, cast

from ..config import ServeConfig
from ..ratelimit import KeyedRateLimiter, address_key
from .message import BINDING_SUCCESS_RESPONSE
from .responder import BindingResponder

__all__ = [
    "CLOSE_TIMEOUT",
    "RATE_LIMIT_MAX_SOURCES",
    "StunServer",
    "StunStats",
    "UDP_RECEIVE_BUFFER_SIZE",
]

logger = logging.getLogger(__name__)

#: Seconds :meth:`StunServer.stop` waits for each socket to report it is closed.
CLOSE_TIMEOUT = 5.0
#: Requested SO_RCVBUF: absorbs bursts while the event loop is busy elsewhere
#: (the kernel caps it at net.core.rmem_max).
UDP_RECEIVE_BUFFER_SIZE = 1 << 20
#: Most sources the rate limiter tracks at once (about 150 bytes each).
RATE_LIMIT_MAX_SOURCES = 16384
# The per-source limit's defaults are the server's (``--stun-rate``, ``--stun-burst``).
_DEFAULTS = ServeConfig()


@dataclass
class StunStats:
    """Counters of the responder; every received datagram lands in exactly one other."""

    received: int = 0  # datagrams received
    answered: int = 0  # success responses sent
    rejected: int = 0  # 420 error responses sent
    dropped_malformed: int = 0  # not a well-formed Binding request (incl. indications, responses)
    dropped_rate_limited: int = 0  # the source's bucket was empty (checked before parsing)
    failed: int = 0  # a reply was due but the transport refused it


class _StunProtocol(asyncio.DatagramProtocol):
    """The thin shell: datagram in, the responder, datagram out."""

    __slots__ = ("_handle", "_limiter", "_sendto", "_stats", "closed", "transport")

    def __init__(
        self, responder: BindingResponder, stats: StunStats, limiter: KeyedRateLimiter | None
    ) -> None:
        # Bound once: the per-datagram path then does no attribute lookups.
        self._handle = responder.handle_datagram
        self._stats = stats
        self._limiter = limiter
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._sendto = self.transport.sendto

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        stats = self._stats
        stats.received += 1
        limiter = self._limiter
        if limiter is not None:
            # Before parsing: a source over its budget costs a dict look-up,
            # whatever it sends (issue 9: the STUN CPU bomb).
            try:
                allowed = limiter.allow(address_key(addr[0]), time.monotonic())
            except Exception:
                stats.dropped_malformed += 1  # not an address a socket reports
                return
            if not allowed:
                stats.dropped_rate_limited += 1
                return
        reply = self._handle(data, addr)
        if reply is None:
            stats.dropped_malformed += 1
            return
        try:
            # Socket errors reach error_received later; this only catches a
            # transport refusing outright, which must not escape into the loop.
            self._sendto(reply, addr)
        except Exception as exc:
            stats.failed += 1
            logger.debug("STUN reply to %s not sent: %r", addr, exc)
            return
        if reply[1] == BINDING_SUCCESS_RESPONSE & 0xFF:
            stats.answered += 1
        else:
            stats.rejected += 1

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (RFC 1122 §4.1.3.3): nothing to undo.
        logger.debug("STUN socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            logger.warning("STUN socket lost: %s", exc)
        if not self.closed.done():
            self.closed.set_result(None)


_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
# Errors that mean "this host has no IPv6", as opposed to a real bind failure.
_NO_IPV6_ERRNOS = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


def _bind_udp(family: socket.AddressFamily, address: tuple[Any, ...]) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            # Without V6ONLY, [::]:P would claim IPv4 too and clash with 0.0.0.0:P.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_SIZE)
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class StunServer:
    """A STUN binding responder on UDP, started and stopped with the app.

    ``host`` ``""``, ``"0.0.0.0"`` or ``"::"`` binds both IPv4 and, where the
    host has it, IPv6; a literal address (or a name, resolved to its first
    address) binds just that one. With ``port`` 0 the IPv6 socket reuses the
    IPv4 socket's ephemeral port when it is free. ``rate`` and ``burst`` set the
    per-source token bucket; ``rate=math.inf`` turns rate limiting off (for
    benchmarks only).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float = _DEFAULTS.stun_rate,
        burst: int = _DEFAULTS.stun_burst,
        max_sources: int = RATE_LIMIT_MAX_SOURCES,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.stats = StunStats()
        #: The protocol's state (the address cache), shared by both sockets.
        self.responder = BindingResponder()
        self._limiter = (
            None if math.isinf(rate) and rate > 0 else KeyedRateLimiter(rate, burst, max_sources)
        )
        self._protocols: list[_StunProtocol] = []
        self._addresses: list[tuple[str, int]] = []

    @property
    def rate_limited(self) -> bool:
        """Whether replies are capped per source."""
        return self._limiter is not None

    @property
    def port(self) -> int:
        """The bound port (of the first socket, when there are two)."""
        if not self._addresses:
            raise RuntimeError("the STUN server is not started")
        return self._addresses[0][1]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) pairs, IPv4 first."""
        return list(self._addresses)

    async def start(self) -> None:
        """Bind the UDP socket(s) and start answering."""
        if self._protocols:
            raise RuntimeError("the STUN server is already started")
        loop = asyncio.get_running_loop()
        socks = await self._bind(loop)
        handed_over = 0
        try:
            for sock in socks:
                name = sock.getsockname()
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: _StunProtocol(self.responder, self.stats, self._limiter), sock=sock
                )
                handed_over += 1
                self._protocols.append(protocol)
                self._addresses.append((name[0], name[1]))
        except BaseException:
            # The transports own the sockets handed over so far; close the rest.
            for sock in socks[handed_over:]:
                sock.close()
            await self.stop()
            raise
        logger.info("STUN responder listening on %s", self._addresses)

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> list[socket.socket]:
        host, port = self.host, self.requested_port
        if host not in _WILDCARD_HOSTS:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, sockaddr = infos[0]
            return [_bind_udp(family, sockaddr)]

        v4 = _bind_udp(socket.AF_INET, ("0.0.0.0", port))
        if not socket.has_ipv6:
            return [v4]
        try:
            try:
                v6 = _bind_udp(socket.AF_INET6, ("::", port or v4.getsockname()[1]))
            except OSError as exc:
                if port != 0 or exc.errno != errno.EADDRINUSE:
                    raise
                # The IPv4 socket's ephemeral port is taken for IPv6: any will do.
                v6 = _bind_udp(socket.AF_INET6, ("::", 0))
        except OSError as exc:
            if exc.errno not in _NO_IPV6_ERRNOS:
                v4.close()
                raise
            logger.info("STUN responder: no IPv6 on this host (%s)", exc)
            return [v4]
        return [v4, v6]

    async def stop(self) -> None:
        """Close the socket(s); safe to call more than once."""
        protocols, self._protocols = self._protocols, []
        self._addresses = []
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.close()
        for protocol in protocols:
            try:
                await asyncio.wait_for(asyncio.shield(protocol.closed), CLOSE_TIMEOUT)
            except TimeoutError:
                logger.warning("STUN socket did not close within %s s", CLOSE_TIMEOUT)

    async def __aenter__(self) -> StunServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
