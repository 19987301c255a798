"""The embedded STUN binding responder (RFC 8489), over UDP.

Browsers ask it for their server-reflexive address (RFC 8445 §5.1.1.2), so a
room works without a third-party STUN server. It only ever answers Binding
requests; it has no credentials, no TURN and no RFC 5780 behaviour discovery.

The protocol is a sans-I/O function, :func:`handle_datagram`, which maps one
datagram to the reply bytes or ``None`` (drop) and never raises. The asyncio
shell, :class:`StunServer`, moves datagrams between the socket and that
function, counts outcomes in :class:`StunStats` and caps replies per source
with :class:`SourceRateLimiter` so the responder cannot be used as a flood
reflector: requests with a spoofed source would aim the replies at a victim.

The replies are built with :mod:`struct` and bytes concatenation rather than
:class:`aioice.stun.Message`, which is several times slower; the tests prove
them byte-identical to what ``aioice.stun.Message(...)`` with
``add_fingerprint()`` builds.

Run standalone with ``python -m server.stun --port 3478`` (uses uvloop when
installed).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import math
import signal
import socket
import struct
import sys
import time
from binascii import crc32
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

__all__ = [
    "BINDING_REQUEST",
    "BINDING_ERROR_RESPONSE",
    "BINDING_SUCCESS_RESPONSE",
    "ADDRESS_CACHE_SIZE",
    "CLOSE_TIMEOUT",
    "KNOWN_REQUIRED_ATTRIBUTES",
    "MAGIC_COOKIE",
    "RATE_LIMIT_MAX_SOURCES",
    "SourceRateLimiter",
    "StunServer",
    "StunStats",
    "UDP_RECEIVE_BUFFER_SIZE",
    "handle_datagram",
    "main",
]

logger = logging.getLogger(__name__)

#: Seconds :meth:`StunServer.stop` waits for each socket to report it is closed.
CLOSE_TIMEOUT = 5.0
#: Requested SO_RCVBUF: absorbs bursts while the event loop is busy elsewhere
#: (the kernel caps it at net.core.rmem_max).
UDP_RECEIVE_BUFFER_SIZE = 1 << 20
#: Most sources the rate limiter tracks at once (about 150 bytes each).
RATE_LIMIT_MAX_SOURCES = 16384
#: Most IPv4 addresses whose XOR-MAPPED-ADDRESS attribute is kept ready.
ADDRESS_CACHE_SIZE = 4096

# RFC 8489 §5: header fields and message types (class bits 0x0110, method bits 0x3EEF).
MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
BINDING_REQUEST = 0x0001
BINDING_SUCCESS_RESPONSE = 0x0101
BINDING_ERROR_RESPONSE = 0x0111

# RFC 8489 §18.3 attribute types.
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_ERROR_CODE = 0x0009
ATTR_UNKNOWN_ATTRIBUTES = 0x000A
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C
ATTR_FINGERPRINT = 0x8028
FINGERPRINT_XOR = 0x5354554E  # RFC 8489 §14.7: "STUN" XORed into the CRC-32

#: Comprehension-required attributes (type < 0x8000) this responder understands,
#: so they never cause a 420. It processes none of them: a Binding request for
#: NAT discovery needs no authentication (RFC 8489 §9), so the credential
#: attributes are read past, and the ICE ones appear when a client reuses its
#: connectivity-check code (RFC 8445 §16.1). CHANGE-REQUEST (0x0003) is left out
#: on purpose: it is comprehension-required, so a server without RFC 5780
#: behaviour discovery answers it with 420, which is how the client learns that.
KNOWN_REQUIRED_ATTRIBUTES = frozenset(
    {
        0x0001,  # MAPPED-ADDRESS
        0x0006,  # USERNAME
        ATTR_MESSAGE_INTEGRITY,
        ATTR_ERROR_CODE,
        ATTR_UNKNOWN_ATTRIBUTES,
        0x0014,  # REALM
        0x0015,  # NONCE
        ATTR_MESSAGE_INTEGRITY_SHA256,
        0x001D,  # PASSWORD-ALGORITHM
        0x001E,  # USERHASH
        ATTR_XOR_MAPPED_ADDRESS,
        0x0024,  # PRIORITY (RFC 8445)
        0x0025,  # USE-CANDIDATE (RFC 8445)
    }
)

# RFC 8489 §14.8: class 4, number 20, with the RFC's reason phrase.
_UNKNOWN_ATTRIBUTE_REASON = b"Unknown Attribute"

_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE = struct.Struct("!HH")
_UINT32 = struct.Struct("!I")
# The first 8 bytes (type, length, cookie) of a Binding request without attributes.
_PLAIN_REQUEST_HEAD = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE)
# XOR-MAPPED-ADDRESS (RFC 8489 §14.2); the family is packed as one 16-bit field
# whose high byte is the reserved zero.
_XOR_MAPPED_V4 = struct.Struct("!HHHHI")
_XOR_MAPPED_V6 = struct.Struct("!HHHH16s")
_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02
_XPORT = MAGIC_COOKIE >> 16
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
# Success headers up to the transaction id; the lengths count XOR-MAPPED-ADDRESS
# (4 + 8 or 4 + 20 bytes) and FINGERPRINT (4 + 4).
_SUCCESS_V4_LENGTH = 12 + 8
_SUCCESS_V6_LENGTH = 24 + 8
_SUCCESS_V4_HEAD = struct.pack("!HHI", BINDING_SUCCESS_RESPONSE, _SUCCESS_V4_LENGTH, MAGIC_COOKIE)
_SUCCESS_V6_HEAD = struct.pack("!HHI", BINDING_SUCCESS_RESPONSE, _SUCCESS_V6_LENGTH, MAGIC_COOKIE)
_SUCCESS_V4_HEAD_CRC = crc32(_SUCCESS_V4_HEAD)
# A whole IPv4 success response: header, XOR-MAPPED-ADDRESS, FINGERPRINT.
_SUCCESS_V4 = struct.Struct("!HHI12s12sHHI")
_FINGERPRINT_HEAD = _ATTRIBUTE.pack(ATTR_FINGERPRINT, 4)
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
# (host, port) -> its IPv4 XOR-MAPPED-ADDRESS attribute: it costs a third of
# a reply to build, and a client asks again from the same address. Bounded by
# ADDRESS_CACHE_SIZE (cleared when full, so a spoofed-source flood only costs
# the misses).
_ipv4_attributes: dict[tuple[Any, ...], bytes] = {}

_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


@dataclass
class StunStats:
    """Counters of the responder; every received datagram lands in exactly one other."""

    received: int = 0  # datagrams received
    answered: int = 0  # success responses sent
    rejected: int = 0  # 420 error responses sent
    dropped_malformed: int = 0  # not a well-formed Binding request (incl. indications, responses)
    dropped_rate_limited: int = 0  # a reply was due but the source's bucket was empty
    failed: int = 0  # a reply was due but the transport refused it


def handle_datagram(data: bytes, addr: tuple[Any, ...]) -> bytes | None:
    """The reply to the datagram ``data`` from ``addr``, or ``None`` to drop it.

    ``addr`` is the (host, port, ...) tuple the socket reports. The reply is a
    Binding success response with XOR-MAPPED-ADDRESS and FINGERPRINT, or a 420
    error response. Never raises.
    """
    try:
        if len(data) == HEADER_LENGTH and data[:8] == _PLAIN_REQUEST_HEAD:
            # The request every STUN client sends for its reflexive address
            # (no attributes), recognised with one comparison.
            transaction_id = data[8:]
        else:
            checked_id, rejection = _check_request(data)
            if checked_id is None:
                return rejection  # a drop (None) or a 420 response
            transaction_id = checked_id

        # RFC 8489 §14.7: the CRC covers the message up to FINGERPRINT, with the
        # header's length already counting FINGERPRINT, as the heads' lengths do.
        attribute = _ipv4_attributes.get(addr)
        if attribute is not None:
            # One pack, the CRC run on over the constant head's: no copies.
            crc = crc32(attribute, crc32(transaction_id, _SUCCESS_V4_HEAD_CRC))
            return _SUCCESS_V4.pack(
                BINDING_SUCCESS_RESPONSE,
                _SUCCESS_V4_LENGTH,
                MAGIC_COOKIE,
                transaction_id,
                attribute,
                ATTR_FINGERPRINT,
                4,
                crc ^ FINGERPRINT_XOR,
            )
        head = _success_head(transaction_id, addr)
        return head + _FINGERPRINT_HEAD + _UINT32.pack(crc32(head) ^ FINGERPRINT_XOR)
    except Exception:
        # The transport boundary: a datagram must never take the endpoint down
        # (a bad address tuple or a bug); it is dropped and counted instead.
        return None


def _check_request(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(transaction id, None) to answer, (None, 420 response) or (None, None) to drop."""
    n = len(data)
    if n < HEADER_LENGTH:
        return None, None
    msg_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
    # RFC 8489 §6.3: the top two bits are zero, the cookie is right and the
    # length is sensible (a multiple of 4, §5, covering the rest of the
    # datagram), else silently discard. Only Binding requests get a reply:
    # indications need none (§6.3.2), responses match no transaction of ours,
    # and a request of an unsupported method is discarded too (§6.3).
    if msg_type != BINDING_REQUEST or cookie != MAGIC_COOKIE:
        return None, None
    if length != n - HEADER_LENGTH or length & 3:
        return None, None
    if length:
        unknown = _unknown_attributes(data, n)
        if unknown is None:
            return None, None
        if unknown:
            return None, _unknown_attribute_response(transaction_id, unknown)
    return transaction_id, None


def _success_head(transaction_id: bytes, addr: tuple[Any, ...]) -> bytes:
    """The success response up to FINGERPRINT; remembers IPv4 attributes."""
    host: str = addr[0]
    port: int = addr[1]
    if ":" not in host:
        ipv4 = _inet_pton(_AF_INET, host)
    else:
        packed = _inet_pton(_AF_INET6, host.partition("%")[0])
        if packed[:12] != _V4_MAPPED_PREFIX:
            # RFC 8489 §14.2: IPv6 is XORed with the cookie and transaction id,
            # so this attribute cannot be remembered across requests.
            key = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
            xaddr = (int.from_bytes(packed, "big") ^ key).to_bytes(16, "big")
            return (
                _SUCCESS_V6_HEAD
                + transaction_id
                + _XOR_MAPPED_V6.pack(
                    ATTR_XOR_MAPPED_ADDRESS, 20, _FAMILY_IPV6, port ^ _XPORT, xaddr
                )
            )
        # Report the IPv4 address the peer really has: ::ffff:a.b.c.d is only
        # how a dual-stack socket shows it (RFC 4291 §2.5.5.2).
        ipv4 = packed[12:]
    attribute = _XOR_MAPPED_V4.pack(
        ATTR_XOR_MAPPED_ADDRESS,
        8,
        _FAMILY_IPV4,
        port ^ _XPORT,
        int.from_bytes(ipv4, "big") ^ MAGIC_COOKIE,
    )
    # An IPv4 attribute depends on the address alone: remember it, within bounds.
    if len(_ipv4_attributes) >= ADDRESS_CACHE_SIZE:
        _ipv4_attributes.clear()
    _ipv4_attributes[addr] = attribute
    return _SUCCESS_V4_HEAD + transaction_id + attribute


def _unknown_attributes(data: bytes, n: int) -> list[int] | None:
    """Walk the attributes: ``None`` if malformed, else the unknown required types."""
    unknown: list[int] = []
    pos = HEADER_LENGTH
    after_integrity = False
    while pos < n:
        # pos and n are multiples of 4 here, so the 4-byte TLV header fits.
        attr_type, attr_length = _ATTRIBUTE.unpack_from(data, pos)
        end = pos + 4 + ((attr_length + 3) & ~3)
        if end > n:
            return None  # RFC 8489 §14: the value and its padding overrun the message
        if attr_type == ATTR_FINGERPRINT:
            # RFC 8489 §14.7: FINGERPRINT is last, 4 bytes, and must verify (§7).
            if attr_length != 4 or end != n:
                return None
            if crc32(data[:pos]) ^ FINGERPRINT_XOR != _UINT32.unpack_from(data, pos + 4)[0]:
                return None
        elif after_integrity:
            pass  # RFC 8489 §9: attributes after MESSAGE-INTEGRITY are ignored
        elif attr_type in (ATTR_MESSAGE_INTEGRITY, ATTR_MESSAGE_INTEGRITY_SHA256):
            after_integrity = True
        elif attr_type < 0x8000 and attr_type not in KNOWN_REQUIRED_ATTRIBUTES:
            if attr_type not in unknown:
                unknown.append(attr_type)
        pos = end
    return unknown


def _unknown_attribute_response(transaction_id: bytes, unknown: list[int]) -> bytes:
    """A 420 error response listing ``unknown`` (RFC 8489 §6.3.1.1, §14.8, §14.9)."""
    error_value = struct.pack("!HBB", 0, 4, 20) + _UNKNOWN_ATTRIBUTE_REASON
    unknown_value = struct.pack(f"!{len(unknown)}H", *unknown)
    # RFC 8489 §14.9: ordinary zero padding, not RFC 3489's repeated last type.
    body = (
        _ATTRIBUTE.pack(ATTR_ERROR_CODE, len(error_value))
        + error_value
        + bytes(-len(error_value) % 4)
        + _ATTRIBUTE.pack(ATTR_UNKNOWN_ATTRIBUTES, len(unknown_value))
        + unknown_value
        + bytes(-len(unknown_value) % 4)
    )
    head = _HEADER.pack(BINDING_ERROR_RESPONSE, len(body) + 8, MAGIC_COOKIE, transaction_id) + body
    return head + _FINGERPRINT_HEAD + _UINT32.pack(crc32(head) ^ FINGERPRINT_XOR)


class SourceRateLimiter:
    """A token bucket per source: ``rate`` replies a second, bursts of ``burst``.

    IPv4 sources are keyed by address, IPv6 ones by their /64, since one host
    commonly holds a whole /64 (RFC 7421) and could otherwise spread a flood
    over it. The table holds at most ``max_sources`` buckets: when full, the
    buckets that have refilled (and so carry no state) are pruned, at most once
    per refill time so a flood of new sources cannot make every packet scan the
    table; a new source that still finds no room is refused, which keeps the
    reflector closed under a spoofed-source flood.
    """

    __slots__ = ("_buckets", "_burst", "_max_sources", "_next_prune", "_rate", "_refill_time")

    def __init__(
        self, rate: float, burst: int, *, max_sources: int = RATE_LIMIT_MAX_SOURCES
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be positive and finite, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if max_sources < 1:
            raise ValueError(f"max_sources must be at least 1, not {max_sources!r}")
        self._rate = float(rate)
        self._burst = float(burst)
        self._max_sources = max_sources
        self._refill_time = self._burst / self._rate
        self._next_prune = -math.inf
        # key -> [tokens, time of last update]; a list so an update allocates nothing.
        self._buckets: dict[str | bytes, list[float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, host: str, now: float | None = None) -> bool:
        """Take a token from ``host``'s bucket; ``False`` if it is empty."""
        if now is None:
            now = time.monotonic()
        key = _source_key(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._prune(now)
                if len(self._buckets) >= self._max_sources:
                    return False
            self._buckets[key] = [self._burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + self._refill_time
        burst, rate = self._burst, self._rate
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if bucket[0] + (now - bucket[1]) * rate < burst
        }


def _source_key(host: str) -> str | bytes:
    if ":" not in host:
        return host
    packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    if packed[:12] == _V4_MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return packed[:8]


class _StunProtocol(asyncio.DatagramProtocol):
    """The thin shell: datagram in, :func:`handle_datagram`, datagram out."""

    __slots__ = ("_limiter", "_sendto", "_stats", "closed", "transport")

    def __init__(self, stats: StunStats, limiter: SourceRateLimiter | None) -> None:
        self._stats = stats
        self._limiter = limiter
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        # Bound once: the per-datagram path then does no attribute lookups on it.
        self._sendto = self.transport.sendto

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        stats = self._stats
        stats.received += 1
        reply = handle_datagram(data, addr)
        if reply is None:
            stats.dropped_malformed += 1
            return
        try:
            limiter = self._limiter
            if limiter is not None and not limiter.allow(addr[0]):
                stats.dropped_rate_limited += 1
                return
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
        rate: float = 20.0,
        burst: int = 40,
        max_sources: int = RATE_LIMIT_MAX_SOURCES,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.stats = StunStats()
        self._limiter = (
            None
            if math.isinf(rate) and rate > 0
            else SourceRateLimiter(rate, burst, max_sources=max_sources)
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
                    lambda: _StunProtocol(self.stats, self._limiter), sock=sock
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


async def _serve(args: argparse.Namespace) -> StunStats:
    rate = math.inf if args.no_rate_limit else args.rate
    server = StunServer(args.host, args.port, rate=rate, burst=args.burst)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        # The duration bounds an unattended run (a benchmark whose parent died).
        await asyncio.wait_for(stop.wait(), args.duration)
    except TimeoutError:
        pass
    finally:
        await server.stop()
    return server.stats


def main(argv: Sequence[str] | None = None) -> int:
    """Serve STUN until SIGINT/SIGTERM or ``--duration`` seconds."""
    parser = argparse.ArgumentParser(prog="python -m server.stun", description=main.__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=3478)
    parser.add_argument("--rate", type=float, default=20.0, help="replies/s per source")
    parser.add_argument("--burst", type=int, default=40, help="bucket size per source")
    parser.add_argument("--no-rate-limit", action="store_true", help="for benchmarks only")
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--stats-file", default=None, help="write the counters here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        stats = asyncio.run(_serve(args))
    else:
        stats = uvloop.run(_serve(args))
    logger.info("STUN responder stopped: %s", stats)
    if args.stats_file:
        with open(args.stats_file, "w", encoding="utf-8") as f:
            json.dump(asdict(stats), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
