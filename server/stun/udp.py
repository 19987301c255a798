"""The asyncio shell of the STUN responder: UDP sockets, counters and the per-source limit.

:class:`StunServer` moves datagrams between its socket(s) and a
:class:`~server.stun.responder.BindingResponder`, counts outcomes in
:class:`StunStats` and caps replies per source with a
:class:`~server.ratelimit.KeyedRateLimiter`, so the responder cannot be used
as a flood reflector: requests with a spoofed source would aim the replies at
a victim.

Two shells do the same job. On Linux a :class:`_BatchEndpoint` reads and
answers up to :data:`BATCH_SLOTS` datagrams per system call each way
(server/stun/mmsg.py) from ``loop.add_reader``; elsewhere, and for the RFC 5780
sockets, a :class:`_StunProtocol` takes asyncio's datagram transport, one call
per datagram each way.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import math
import socket
import time
from dataclasses import dataclass
from typing import Any, cast

from ..config import ServeConfig
from ..ratelimit import KeyedRateLimiter, address_key
from . import mmsg
from .discovery import DiscoveryResponder
from .message import BINDING_SUCCESS_RESPONSE, MAX_REQUEST_SIZE
from .responder import BindingResponder

__all__ = [
    "BATCH_SLOTS",
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
#: Datagrams read (and replies sent) per system call on Linux, and at most per
#: turn of the event loop, so a flood cannot hold the loop for long: 64 cut the
#: calls per reply from two to about 2/64 under bench/bench_stun.py's load.
BATCH_SLOTS = 64
# The per-source limit's defaults are the server's (``--stun-rate``, ``--stun-burst``).
_DEFAULTS = ServeConfig()
_SUCCESS_TYPE_LOW_BYTE = BINDING_SUCCESS_RESPONSE & 0xFF


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


class _DiscoveryProtocol(_StunProtocol):
    """One of an RFC 5780 responder's sockets: the same counting and limit as any, but the
    reply leaves from the socket the :class:`DiscoveryResponder` picks (CHANGE-REQUEST)."""

    def __init__(self, discovery: DiscoveryResponder, index: int, siblings: list[_StunProtocol],
                 stats: StunStats, limiter: KeyedRateLimiter | None) -> None:  # fmt: skip
        super().__init__(BindingResponder(0), stats, limiter)
        self._discovery = discovery
        self._index = index
        self._siblings = siblings
        self._from = index
        self._handle = self._discover

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Same calls as the transport's sendto; narrower parameter types than it declares.
        self._sendto = self._send_from_picked  # type: ignore[assignment]

    def _discover(self, data: bytes, addr: tuple[Any, ...]) -> bytes | None:
        answer = self._discovery.handle(data, addr, self._index)
        if answer is None:
            return None
        reply, self._from = answer
        return reply

    def _send_from_picked(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        transport = self._siblings[self._from].transport
        if transport is None:
            raise RuntimeError("that STUN socket is closed")
        transport.sendto(reply, addr)


def sockaddr_key(sockaddr: bytes) -> str | bytes:
    """:func:`~server.ratelimit.address_key` of the host in a raw ``sockaddr_in`` (16
    bytes: the address at 4-7) or ``sockaddr_in6`` (28: at 8-23)."""
    if len(sockaddr) == 16:
        return _inet_ntop(socket.AF_INET, sockaddr[4:8])  # IPv4 is its own key
    if len(sockaddr) == 28:
        return address_key(_inet_ntop(socket.AF_INET6, sockaddr[8:24]))
    raise ValueError(f"not a sockaddr_in or sockaddr_in6: {len(sockaddr)} bytes")


_inet_ntop = socket.inet_ntop


class _BatchEndpoint:
    """One UDP socket, read and answered a batch at a time (server/stun/mmsg.py).

    The same gates, in the same order, as :meth:`_StunProtocol.datagram_received`:
    the per-source limit before any parsing, then the responder, then the reply
    from the slot the request came in, sent with the other replies of the batch.
    """

    __slots__ = ("_batch", "_handle", "_limiter", "_loop", "_sock", "_stats", "fd")

    def __init__(self, sock: socket.socket, responder: BindingResponder, stats: StunStats,
                 limiter: KeyedRateLimiter | None) -> None:  # fmt: skip
        # One byte more than the largest request read, so a longer datagram
        # arrives cut to a size the responder drops (message.MAX_REQUEST_SIZE).
        self._batch = mmsg.DatagramBatch(sock.family, BATCH_SLOTS, MAX_REQUEST_SIZE + 1)
        self._handle = responder.handle_sockaddr
        self._stats = stats
        self._limiter = limiter
        self._sock = sock
        self.fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._on_readable)

    def close(self) -> None:
        """Stop reading and close the socket."""
        self._loop.remove_reader(self.fd)
        self._sock.close()

    def _on_readable(self) -> None:
        batch = self._batch
        try:
            count = batch.receive(self.fd)
        except OSError as exc:
            # ICMP errors for earlier replies (RFC 1122 §4.1.3.3): nothing to undo.
            logger.debug("STUN socket error: %s", exc)
            return
        if not count:
            return
        stats = self._stats
        stats.received += count
        limiter = self._limiter
        handle = self._handle
        # The datagrams of one batch arrived within moments: one clock read.
        now = time.monotonic() if limiter is not None else 0.0
        run_start = -1  # the first slot of the run of replies not sent yet
        rejections: list[int] = []  # slots holding a 420 (rare)
        for i in range(count):
            sockaddr = batch.name(i)
            reply: bytes | None = None
            if limiter is not None:
                # Before parsing: a source over its budget costs a dict look-up,
                # whatever it sends (issue 9: the STUN CPU bomb).
                try:
                    allowed = limiter.allow(sockaddr_key(sockaddr), now)
                except Exception:
                    stats.dropped_malformed += 1  # not an address a socket reports
                    allowed = None
                else:
                    if not allowed:
                        stats.dropped_rate_limited += 1
                if allowed:
                    reply = handle(batch.datagram(i), sockaddr)
                    if reply is None:
                        stats.dropped_malformed += 1
            else:
                reply = handle(batch.datagram(i), sockaddr)
                if reply is None:
                    stats.dropped_malformed += 1
            if reply is not None and not batch.set_reply(i, reply):
                stats.failed += 1
                logger.debug("STUN reply of %d bytes does not fit a slot", len(reply))
                reply = None
            if reply is None:
                if run_start >= 0:
                    self._send(run_start, i, rejections)
                    run_start = -1
                continue
            if reply[1] != _SUCCESS_TYPE_LOW_BYTE:
                rejections.append(i)
            if run_start < 0:
                run_start = i
        if run_start >= 0:
            self._send(run_start, count, rejections)

    def _send(self, start: int, stop: int, rejections: list[int]) -> None:
        """Send the replies in slots ``start..stop-1`` and count each as sent or failed."""
        stats = self._stats
        position = start
        while position < stop:
            try:
                position += self._batch.send(self.fd, position, stop)
            except OSError as exc:
                # Not sent, and nothing to undo: a full buffer (the rest would
                # fail too) or an address the kernel refuses (skip just that one).
                failed = stop - position if exc.errno in _SEND_AGAIN_ERRNOS else 1
                stats.failed += failed
                failed_rejections = sum(position <= i < position + failed for i in rejections)
                stats.rejected -= failed_rejections
                stats.answered -= failed - failed_rejections
                logger.debug("STUN replies not sent: %r", exc)
                position += failed
        run_rejections = sum(start <= i < stop for i in rejections) if rejections else 0
        stats.rejected += run_rejections
        stats.answered += stop - start - run_rejections


_SEND_AGAIN_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK)


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
    benchmarks only). ``batched`` picks the shell (module docstring): ``None``,
    batches where the platform has them; ``False``, asyncio's transport.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float = _DEFAULTS.stun_rate,
        burst: int = _DEFAULTS.stun_burst,
        max_sources: int = RATE_LIMIT_MAX_SOURCES,
        alt_port: int | None = None,
        alt_host: str | None = None,
        batched: bool | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        #: RFC 5780 (server/stun/discovery.py): a second port, and a second address.
        self.alt_port = alt_port
        self.alt_host = alt_host
        #: The discovery responder, once started with ``alt_port``.
        self.discovery: DiscoveryResponder | None = None
        self.stats = StunStats()
        #: The protocol's state (the address cache), shared by both sockets.
        self.responder = BindingResponder()
        self._limiter = (
            None if math.isinf(rate) and rate > 0 else KeyedRateLimiter(rate, burst, max_sources)
        )
        if batched and not mmsg.available():
            raise OSError(errno.ENOSYS, "batched STUN sockets need recvmmsg/sendmmsg (Linux)")
        if batched and alt_port is not None:
            # The discovery responder picks the socket a reply leaves from.
            raise ValueError("RFC 5780 (alt_port) sockets are not batched")
        #: Whether the sockets are read in batches (module docstring).
        self.batched = mmsg.available() and alt_port is None if batched is None else batched
        self._protocols: list[_StunProtocol] = []
        self._endpoints: list[_BatchEndpoint] = []
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
        if self._protocols or self._endpoints:
            raise RuntimeError("the STUN server is already started")
        loop = asyncio.get_running_loop()
        socks = await self._bind(loop) if self.alt_port is None else self._bind_discovery()
        if self.alt_port is not None:
            names = [sock.getsockname() for sock in socks]
            self.discovery = DiscoveryResponder([(n[0], n[1]) for n in names])
        handed_over = 0
        try:
            for index, sock in enumerate(socks):
                name = sock.getsockname()
                if self.batched:
                    self._endpoints.append(
                        _BatchEndpoint(sock, self.responder, self.stats, self._limiter)
                    )
                else:
                    _, protocol = await loop.create_datagram_endpoint(
                        functools.partial(self._protocol, index), sock=sock
                    )
                    self._protocols.append(protocol)
                handed_over += 1
                self._addresses.append((name[0], name[1]))
        except BaseException:
            # The transports and endpoints own the sockets handed over so far;
            # close the rest.
            for sock in socks[handed_over:]:
                sock.close()
            await self.stop()
            raise
        logger.info("STUN responder listening on %s", self._addresses)

    def _protocol(self, index: int) -> _StunProtocol:
        if self.discovery is None:
            return _StunProtocol(self.responder, self.stats, self._limiter)
        return _DiscoveryProtocol(self.discovery, index, self._protocols, self.stats,
                                  self._limiter)  # fmt: skip

    @property
    def other_address(self) -> tuple[str, int] | None:
        """RFC 5780 OTHER-ADDRESS, when discovery is on and started."""
        return None if self.discovery is None else self.discovery.other

    def _bind_discovery(self) -> list[socket.socket]:
        """The sockets in :func:`~server.stun.discovery.socket_index` order, on literal
        addresses (the config makes sure of that)."""
        assert self.alt_port is not None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        hosts = [self.host] if self.alt_host is None else [self.host, self.alt_host]
        socks: list[socket.socket] = []
        try:
            primary = _bind_udp(family, (self.host, self.requested_port))
            socks.append(primary)
            port = primary.getsockname()[1]
            other = _bind_udp(family, (self.host, self.alt_port))
            socks.append(other)
            alt_port = other.getsockname()[1]
            for host in hosts[1:]:
                socks.append(_bind_udp(family, (host, port)))
                socks.append(_bind_udp(family, (host, alt_port)))
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return socks

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
        endpoints, self._endpoints = self._endpoints, []
        self._addresses = []
        for endpoint in endpoints:
            endpoint.close()
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
