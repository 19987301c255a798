"""Tests of the embedded STUN binding responder (server/stun/), RFC 8489.

aioice is the reference: every reply of the struct fast path is compared byte
for byte with what ``aioice.stun.Message`` builds, and the real aioice client
path and coturn's real client are run against a live responder. Live tests use
real UDP sockets on 127.0.0.1 and ::1 with port 0; waits are futures or polls
with a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import math
import os
import re
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
import aioice
import pytest
from aioice import stun
from aioice.ice import StunProtocol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.fixtures import ci_fatal_skip
from natlab.processes import wait_until
from natlab.servers import server_process
from server.stun import (
    ADDRESS_CACHE_SIZE,
    KNOWN_REQUIRED_ATTRIBUTES,
    MAX_ATTRIBUTES,
    MAX_REQUEST_SIZE,
    BindingResponder,
    StunServer,
    StunStats,
)
from tests.stun_vectors import (
    LONG_TERM_PASSWORD,
    LONG_TERM_REALM,
    LONG_TERM_REQUEST,
    SAMPLE_IPV4_RESPONSE,
    SAMPLE_IPV6_RESPONSE,
    SAMPLE_REQUEST,
    SHORT_TERM_PASSWORD,
    StunVector,
)

#: Seconds any single reply, poll or subprocess may take before a test fails.
REPLY_TIMEOUT = 5.0
#: Seconds coturn's client may run.
STUNCLIENT_TIMEOUT = 10.0
REPO_ROOT = Path(__file__).resolve().parent.parent

COOKIE = 0x2112A442
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_UNKNOWN_ATTRIBUTES = 0x000A
ATTR_MESSAGE_INTEGRITY = 0x0008


# --- helpers -----------------------------------------------------------------

#: One responder for the plain-call tests; its address cache carries over
#: between them, as a live server's does between requests.
handle_datagram = BindingResponder().handle_datagram


def binding_request(
    transaction_id: bytes | None = None,
    attributes: dict[str, Any] | None = None,
    *,
    fingerprint: bool = False,
) -> bytes:
    """A Binding request as aioice builds it."""
    message = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.REQUEST,
        transaction_id=transaction_id or os.urandom(12),
        attributes=dict(attributes or {}),
    )
    if fingerprint:
        message.add_fingerprint()
    return bytes(message)


def unmapped(addr: tuple[Any, ...]) -> tuple[str, int]:
    """The (host, port) a client should learn: IPv4-mapped IPv6 shown as IPv4."""
    ip = ipaddress.ip_address(addr[0].partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped), addr[1]
    return str(ip), addr[1]


def expected_success(transaction_id: bytes, addr: tuple[Any, ...]) -> bytes:
    """The reference reply: aioice's Message with XOR-MAPPED-ADDRESS, then add_fingerprint()."""
    message = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=transaction_id,
        attributes={"XOR-MAPPED-ADDRESS": unmapped(addr)},
    )
    message.add_fingerprint()
    return bytes(message)


def expected_unknown_attribute(transaction_id: bytes, unknown: list[int]) -> bytes:
    """A 420 reply from aioice's encoders; aioice has no UNKNOWN-ATTRIBUTES codec,
    so that one TLV is appended by hand (RFC 8489 §14.9, zero padding)."""
    message = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=transaction_id,
        attributes={"ERROR-CODE": (420, "Unknown Attribute")},
    )
    value = b"".join(t.to_bytes(2, "big") for t in unknown)
    body = bytes(message)[20:] + struct.pack("!HH", ATTR_UNKNOWN_ATTRIBUTES, len(value))
    body += value + bytes(stun.padding_length(len(value)))
    head = struct.pack("!HHI12s", 0x0111, len(body) + 8, COOKIE, transaction_id) + body
    return head + struct.pack("!HHI", ATTR_FINGERPRINT, 4, stun.message_fingerprint(head))


def raw_message(
    msg_type: int,
    attributes: Sequence[tuple[int, bytes]] = (),
    *,
    transaction_id: bytes | None = None,
    cookie: int = COOKIE,
    fingerprint: bool = False,
) -> bytes:
    """A message built attribute by attribute, for what aioice cannot encode."""
    body = b""
    for attr_type, value in attributes:
        body += struct.pack("!HH", attr_type, len(value)) + value
        body += bytes(-len(value) % 4)
    tid = transaction_id or os.urandom(12)
    data = struct.pack("!HHI12s", msg_type, len(body), cookie, tid) + body
    if fingerprint:
        data = stun.set_body_length(data, len(body) + 8)
        data += struct.pack("!HHI", ATTR_FINGERPRINT, 4, stun.message_fingerprint(data))
    return data


def attribute_types(data: bytes) -> list[int]:
    """The attribute types of a message in order, including ones aioice skips."""
    types = []
    pos = 20
    while pos < len(data):
        attr_type, attr_length = struct.unpack_from("!HH", data, pos)
        types.append(attr_type)
        pos += 4 + attr_length + stun.padding_length(attr_length)
    return types


def attribute_offset(data: bytes, wanted: int) -> tuple[int, int]:
    """Where the value, with its padding, of the first ``wanted`` attribute starts and ends."""
    pos = 20
    while pos < len(data):
        attr_type, attr_length = struct.unpack_from("!HH", data, pos)
        end = pos + 4 + attr_length + stun.padding_length(attr_length)
        if attr_type == wanted:
            return pos + 4, end
        pos = end
    raise AssertionError(f"no attribute {wanted:#06x}")


def attribute_value(data: bytes, wanted: int) -> bytes:
    """The raw value, with its padding, of the first attribute of type ``wanted``."""
    start, end = attribute_offset(data, wanted)
    return data[start:end]


def check_reply(request: bytes, addr: tuple[Any, ...], reply: bytes | None) -> None:
    """Whatever the request, a reply is well formed and answers that request."""
    if reply is None:
        return
    message = stun.parse_message(reply)  # also verifies FINGERPRINT
    assert message.message_method == stun.Method.BINDING
    assert message.transaction_id == request[8:20]
    assert attribute_types(reply)[-1] == ATTR_FINGERPRINT
    if message.message_class == stun.Class.RESPONSE:
        assert reply == expected_success(request[8:20], addr)
    else:
        assert message.message_class == stun.Class.ERROR
        assert message.error_code == 420


class UdpClient:
    """A plain UDP socket on loopback whose replies are awaited with a deadline.

    A socket rather than a transport: transports silently skip empty
    datagrams, which the tests need to send.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        name = sock.getsockname()
        self.address: tuple[str, int] = (name[0], name[1])

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sock.sendto(data, addr)

    async def recv(self) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 2048), REPLY_TIMEOUT)

    async def request(self, data: bytes, addr: tuple[str, int]) -> bytes:
        self.send(data, addr)
        return await self.recv()


@asynccontextmanager
async def udp_client(host: str = "127.0.0.1") -> AsyncIterator[UdpClient]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.setblocking(False)
        yield UdpClient(sock)


def total(stats: StunStats) -> int:
    return (
        stats.answered
        + stats.rejected
        + stats.dropped_malformed
        + stats.dropped_rate_limited
        + stats.failed
    )


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


#: A "needs " skip fails under CI=true (natlab.fixtures.ci_fatal_skip): CI must run it.
NO_IPV6_LOOPBACK = "needs an IPv6 loopback (::1)"
UVLOOP_MISSING = "needs uvloop (installed with the server on CPython)"
needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason=NO_IPV6_LOOPBACK)


def test_machine_skips_fail_under_ci() -> None:
    for reason in (NO_IPV6_LOOPBACK, UVLOOP_MISSING):
        assert ci_fatal_skip(reason, {"CI": "true"}) and not ci_fatal_skip(reason, {})


@pytest.fixture
async def server() -> AsyncIterator[StunServer]:
    async with StunServer("127.0.0.1", 0) as srv:
        yield srv


# --- RFC 5769 vectors --------------------------------------------------------


async def test_rfc5769_sample_request_answered_by_live_server(server: StunServer) -> None:
    async with udp_client() as client:
        reply = await client.request(SAMPLE_REQUEST.data, ("127.0.0.1", server.port))
    message = stun.parse_message(reply)  # raises if FINGERPRINT is wrong
    assert message.message_class == stun.Class.RESPONSE
    assert message.message_method == stun.Method.BINDING
    assert message.transaction_id == SAMPLE_REQUEST.transaction_id
    assert message.attributes["XOR-MAPPED-ADDRESS"] == client.address
    assert attribute_types(reply) == [ATTR_XOR_MAPPED_ADDRESS, ATTR_FINGERPRINT]
    assert reply == expected_success(SAMPLE_REQUEST.transaction_id, client.address)
    assert server.stats == StunStats(received=1, answered=1)


def test_rfc5769_sample_request_verifies_through_aioice() -> None:
    message = stun.parse_message(SAMPLE_REQUEST.data)
    assert message.check_message_integrity(SHORT_TERM_PASSWORD.encode())
    assert message.attributes["SOFTWARE"] == SAMPLE_REQUEST.software
    assert message.attributes["USERNAME"] == SAMPLE_REQUEST.username
    assert tuple(message.attributes) == SAMPLE_REQUEST.attributes


@pytest.mark.parametrize(
    "vector", [SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE], ids=lambda v: v.name
)
def test_rfc5769_sample_responses_verify_through_aioice(vector: StunVector) -> None:
    message = stun.parse_message(vector.data)  # raises if FINGERPRINT is wrong
    assert message.message_class == stun.Class.RESPONSE
    assert message.transaction_id == vector.transaction_id
    assert message.check_message_integrity(SHORT_TERM_PASSWORD.encode())
    assert not message.check_message_integrity(b"not the password")
    assert message.attributes["XOR-MAPPED-ADDRESS"] == vector.xor_mapped_address
    assert message.attributes["SOFTWARE"] == vector.software


@pytest.mark.parametrize(
    "vector", [SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE], ids=lambda v: v.name
)
def test_rfc5769_sample_response_with_altered_byte_fails(vector: StunVector) -> None:
    # One bit of the mapped address flipped: FINGERPRINT no longer matches.
    data = bytearray(vector.data)
    start, _ = attribute_offset(vector.data, ATTR_XOR_MAPPED_ADDRESS)
    data[start + 4] ^= 0x01
    with pytest.raises(ValueError, match="fingerprint"):
        stun.parse_message(bytes(data))


def test_rfc5769_long_term_request_verifies_and_is_answered() -> None:
    message = stun.parse_message(LONG_TERM_REQUEST.data)
    key = f"{LONG_TERM_REQUEST.username}:{LONG_TERM_REALM}:{LONG_TERM_PASSWORD}"
    assert message.check_message_integrity(hashlib.md5(key.encode()).digest())
    # The responder needs no credentials (RFC 8489 §9): it answers regardless.
    addr = ("192.0.2.1", 32853)
    reply = handle_datagram(LONG_TERM_REQUEST.data, addr)
    assert reply == expected_success(LONG_TERM_REQUEST.transaction_id, addr)


def test_rfc5769_sample_request_reply_is_aioices() -> None:
    for addr in [("192.0.2.1", 32853), ("2001:db8:1234:5678:11:2233:4455:6677", 32853)]:
        reply = handle_datagram(SAMPLE_REQUEST.data, addr)
        assert reply == expected_success(SAMPLE_REQUEST.transaction_id, addr)


# --- byte identity with aioice -----------------------------------------------

ports = st.integers(min_value=0, max_value=65535)
source_addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4).map(str), ports),
    st.tuples(st.ip_addresses(v=6).map(str), ports, st.just(0), st.just(0)),
    st.tuples(st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"), ports, st.just(0), st.just(0)),
)
request_attributes = st.fixed_dictionaries(
    {},
    optional={
        "SOFTWARE": st.text(max_size=40),
        "PRIORITY": st.integers(0, 2**32 - 1),
        "ICE-CONTROLLING": st.integers(0, 2**64 - 1),
        "USE-CANDIDATE": st.none(),
        "USERNAME": st.text(min_size=1, max_size=20),
    },
)


@given(
    transaction_id=st.binary(min_size=12, max_size=12),
    addr=source_addresses,
    attributes=request_attributes,
    fingerprint=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_replies_are_byte_identical_to_aioice(
    transaction_id: bytes, addr: tuple[Any, ...], attributes: dict[str, Any], fingerprint: bool
) -> None:
    request = binding_request(transaction_id, attributes, fingerprint=fingerprint)
    expected = expected_success(transaction_id, addr)
    assert handle_datagram(request, addr) == expected
    # Again, now that an IPv4 attribute is remembered.
    assert handle_datagram(request, addr) == expected


def test_replies_with_message_integrity_are_answered() -> None:
    tid = os.urandom(12)
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, tid, {"USERNAME": "a:b"})
    message.add_message_integrity(b"key")  # adds FINGERPRINT too
    addr = ("198.51.100.7", 40000)
    assert handle_datagram(bytes(message), addr) == expected_success(tid, addr)


def test_address_memo_stays_bounded() -> None:
    responder = BindingResponder()
    request = binding_request()
    for i in range(ADDRESS_CACHE_SIZE + 10):
        addr = (str(ipaddress.IPv4Address(0x0A000000 + i)), 1000 + i % 7)
        assert responder.handle_datagram(request, addr) == expected_success(request[8:20], addr)
        assert responder.cached_addresses() <= ADDRESS_CACHE_SIZE
    assert responder.cached_addresses() > 0


def test_each_server_has_its_own_address_memo() -> None:
    first, second = StunServer("127.0.0.1", 0), StunServer("127.0.0.1", 0)
    first.responder.handle_datagram(binding_request(), ("192.0.2.1", 1))
    assert (first.responder.cached_addresses(), second.responder.cached_addresses()) == (1, 0)


# --- header and attribute checks (RFC 8489 §6.3) -----------------------------

SOFTWARE = (ATTR_SOFTWARE, b"confide test")
VALID = raw_message(0x0001, [SOFTWARE])


def _with_fingerprint_value(delta: int) -> bytes:
    data = raw_message(0x0001, [SOFTWARE], fingerprint=True)
    (value,) = struct.unpack_from("!I", data, len(data) - 4)
    return data[:-4] + struct.pack("!I", value ^ delta)


MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "truncated header": VALID[:19],
    "truncated body": VALID[:-4],
    "top bit set": struct.pack("!H", 0x8001) + VALID[2:],
    "second top bit set": struct.pack("!H", 0x4001) + VALID[2:],
    "bad cookie": raw_message(0x0001, [SOFTWARE], cookie=0x2112A443),
    "RFC 3489 request without cookie": raw_message(0x0001, cookie=0x01020304),
    "length not a multiple of 4": stun.set_body_length(VALID + b"\x00\x00", len(VALID) - 18),
    "length beyond datagram": stun.set_body_length(VALID, len(VALID) - 16),
    "length short of datagram": VALID + bytes(4),
    "success response": raw_message(0x0101, [SOFTWARE]),
    "error response": raw_message(0x0111, [SOFTWARE]),
    "binding indication": raw_message(0x0011, [SOFTWARE]),
    "allocate request (unsupported method)": raw_message(0x0003, [SOFTWARE]),
    "shared-secret request (unsupported method)": raw_message(0x0002),
    "attribute overruns message": struct.pack("!HHI12s", 0x0001, 8, COOKIE, bytes(12))
    + struct.pack("!HH", ATTR_SOFTWARE, 200)
    + bytes(4),
    "attribute padding overruns message": struct.pack("!HHI12s", 0x0001, 8, COOKIE, bytes(12))
    + struct.pack("!HH", ATTR_SOFTWARE, 5)
    + bytes(4),
    "fingerprint not last": raw_message(0x0001, [(ATTR_FINGERPRINT, bytes(4)), SOFTWARE]),
    "fingerprint of 8 bytes": raw_message(0x0001, [(ATTR_FINGERPRINT, bytes(8))]),
    "bad fingerprint": _with_fingerprint_value(1),
    "bad fingerprint (inverted)": _with_fingerprint_value(0xFFFFFFFF),
}


def test_malformed_cases_differ_from_valid_ones_only_as_named() -> None:
    # The fixtures are valid but for the one fault they are named after.
    for name in ("bad cookie", "top bit set", "success response", "bad fingerprint"):
        data = MALFORMED[name]
        assert len(data) == 20 + struct.unpack_from("!H", data, 2)[0]
    assert handle_datagram(VALID, ("127.0.0.1", 1)) is not None
    fingerprinted = raw_message(0x0001, [SOFTWARE], fingerprint=True)
    assert stun.parse_message(fingerprinted).attributes["FINGERPRINT"]
    assert handle_datagram(fingerprinted, ("127.0.0.1", 1)) is not None


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_datagram_is_dropped(name: str) -> None:
    assert handle_datagram(MALFORMED[name], ("127.0.0.1", 5000)) is None


async def test_malformed_datagrams_dropped_and_counted_by_live_server(server: StunServer) -> None:
    target = ("127.0.0.1", server.port)
    tid = os.urandom(12)
    async with udp_client() as client:
        for data in MALFORMED.values():
            client.send(data, target)
        # Datagrams of one socket pair arrive in order on loopback, so the first
        # reply being this one's proves the others got none.
        reply = await client.request(binding_request(tid), target)
    assert stun.parse_message(reply).transaction_id == tid
    assert server.stats == StunStats(
        received=len(MALFORMED) + 1, answered=1, dropped_malformed=len(MALFORMED)
    )


@pytest.mark.parametrize(
    ("attributes", "unknown"),
    [
        ([(0x0003, bytes(4))], [0x0003]),  # CHANGE-REQUEST: no RFC 5780 here, so 420
        ([SOFTWARE, (0x7FFF, b"x")], [0x7FFF]),
        ([(0x0030, b""), (0x0031, bytes(5)), (0x0030, b"")], [0x0030, 0x0031]),
    ],
    ids=["change-request", "one", "two-with-repeat"],
)
def test_unknown_comprehension_required_attribute_gets_420(
    attributes: list[tuple[int, bytes]], unknown: list[int]
) -> None:
    for fingerprint in (False, True):
        request = raw_message(0x0001, attributes, fingerprint=fingerprint)
        reply = handle_datagram(request, ("127.0.0.1", 5000))
        assert reply is not None
        message = stun.parse_message(reply)  # verifies FINGERPRINT
        assert message.message_class == stun.Class.ERROR
        assert message.transaction_id == request[8:20]
        assert message.attributes["ERROR-CODE"] == (420, "Unknown Attribute")
        assert attribute_types(reply) == [0x0009, ATTR_UNKNOWN_ATTRIBUTES, ATTR_FINGERPRINT]
        value = attribute_value(reply, ATTR_UNKNOWN_ATTRIBUTES)
        listed = [int.from_bytes(value[i : i + 2], "big") for i in range(0, 2 * len(unknown), 2)]
        assert listed == unknown
        assert value[2 * len(unknown) :] == bytes(len(value) - 2 * len(unknown))
        assert reply == expected_unknown_attribute(request[8:20], unknown)


async def test_unknown_attribute_420_counted_by_live_server(server: StunServer) -> None:
    request = raw_message(0x0001, [(0x7FFE, b"")])
    async with udp_client() as client:
        reply = await client.request(request, ("127.0.0.1", server.port))
    assert reply == expected_unknown_attribute(request[8:20], [0x7FFE])
    assert server.stats == StunStats(received=1, rejected=1)


def test_unknown_comprehension_optional_attribute_is_answered() -> None:
    request = raw_message(0x0001, [(0x8055, b"optional"), (0xFFFF, b"")], fingerprint=True)
    addr = ("127.0.0.1", 5000)
    assert handle_datagram(request, addr) == expected_success(request[8:20], addr)


def test_known_comprehension_required_attributes_are_answered() -> None:
    addr = ("127.0.0.1", 5000)
    for attr_type in sorted(KNOWN_REQUIRED_ATTRIBUTES):
        request = raw_message(0x0001, [(attr_type, bytes(4))])
        assert handle_datagram(request, addr) == expected_success(request[8:20], addr)


def test_unknown_attribute_after_message_integrity_is_ignored() -> None:
    # RFC 8489 §9: attributes after MESSAGE-INTEGRITY (bar FINGERPRINT) are ignored.
    request = raw_message(
        0x0001, [(ATTR_MESSAGE_INTEGRITY, bytes(20)), (0x7FFF, b"")], fingerprint=True
    )
    addr = ("127.0.0.1", 5000)
    assert handle_datagram(request, addr) == expected_success(request[8:20], addr)


# --- hostile requests (issue 9: the STUN CPU bomb) ----------------------------


def stun_bomb(count: int = 16_000) -> bytes:
    """The worst request of the attack: ~64 KB of distinct unknown required attributes."""
    return raw_message(0x0001, [(0x4000 + i, b"") for i in range(count)])


def test_stun_bomb_is_dropped_unread() -> None:
    bomb = stun_bomb()
    assert len(bomb) > 60_000
    assert handle_datagram(bomb, ("192.0.2.1", 1)) is None


def test_request_of_the_largest_size_is_answered_and_one_word_more_dropped() -> None:
    addr = ("192.0.2.1", 1)
    # One SOFTWARE attribute padded to fill the datagram exactly.
    largest = raw_message(0x0001, [(ATTR_SOFTWARE, bytes(MAX_REQUEST_SIZE - 24))])
    assert len(largest) == MAX_REQUEST_SIZE
    assert handle_datagram(largest, addr) == expected_success(largest[8:20], addr)
    larger = raw_message(0x0001, [(ATTR_SOFTWARE, bytes(MAX_REQUEST_SIZE - 20))])
    assert handle_datagram(larger, addr) is None


def test_the_worst_request_within_the_limits_gets_a_420_listing_each_type_once() -> None:
    # As many distinct unknown types as may be read, with repeats: bounded work.
    types = [0x4000 + i % (MAX_ATTRIBUTES // 2) for i in range(MAX_ATTRIBUTES)]
    request = raw_message(0x0001, [(t, b"") for t in types])
    assert len(request) <= MAX_REQUEST_SIZE
    unknown = list(dict.fromkeys(types))
    assert handle_datagram(request, ("192.0.2.1", 1)) == expected_unknown_attribute(
        request[8:20], unknown
    )


def test_request_with_too_many_attributes_is_dropped() -> None:
    addr = ("192.0.2.1", 1)
    most = raw_message(0x0001, [(ATTR_SOFTWARE, b"")] * MAX_ATTRIBUTES)
    assert handle_datagram(most, addr) == expected_success(most[8:20], addr)
    too_many = raw_message(0x0001, [(ATTR_SOFTWARE, b"")] * (MAX_ATTRIBUTES + 1))
    assert len(too_many) <= MAX_REQUEST_SIZE  # dropped for its count, not its size
    assert handle_datagram(too_many, addr) is None


async def test_rate_limit_is_checked_before_parsing() -> None:
    # A source's budget is spent by whatever it sends, malformed or not.
    async with StunServer("127.0.0.1", 0, rate=0.001, burst=2) as server:
        target = ("127.0.0.1", server.port)
        async with udp_client() as flooder, udp_client("127.0.0.2") as other:
            for _ in range(2):
                flooder.send(stun_bomb(1000), target)
            for _ in range(3):
                flooder.send(binding_request(), target)
            await other.request(binding_request(), target)
            await wait_until(lambda: server.stats.received == 6, REPLY_TIMEOUT)
    assert server.stats == StunStats(
        received=6, answered=1, dropped_malformed=2, dropped_rate_limited=3
    )


#: Seconds /healthz may take during the flood: generous (it answers in
#: milliseconds); before the fix five bombs held it for seconds.
HEALTHZ_DEADLINE = 3.0
FLOOD_SOURCES = 16
#: Seconds the flooding thread may take to get its first bombs to the server.
FLOOD_START_TIMEOUT = 30.0
#: Seconds between rounds of the flood (one bomb from each source): pacing,
#: so the flooding thread leaves the test's own event loop some CPU.
FLOOD_PACE = 0.01


async def test_healthz_keeps_answering_during_a_stun_bomb_flood() -> None:
    bomb = stun_bomb()
    stop = threading.Event()
    async with server_process() as running:
        assert running.stun_port is not None
        target = ("127.0.0.1", running.stun_port)
        sockets = []
        for i in range(FLOOD_SOURCES):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.0.{2 + i}", 0))
            sockets.append(sock)

        def flood() -> None:
            while not stop.is_set():
                for sock in sockets:
                    sock.sendto(bomb, target)
                stop.wait(FLOOD_PACE)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        try:
            timeout = aiohttp.ClientTimeout(total=HEALTHZ_DEADLINE)
            loop = asyncio.get_running_loop()
            give_up = loop.time() + FLOOD_START_TIMEOUT
            checks_under_flood = 0
            async with aiohttp.ClientSession(timeout=timeout) as http:
                # Every answer within the deadline; ten of them once the flood is arriving.
                while checks_under_flood < 10:
                    assert loop.time() < give_up, "the flood never reached the server"
                    async with http.get(running.url + "/healthz") as response:
                        assert response.status == 200
                        stun_stats = (await response.json())["stun"]
                    if stun_stats["received"] >= FLOOD_SOURCES:
                        checks_under_flood += 1
        finally:
            stop.set()
            flooder.join(REPLY_TIMEOUT)
            for sock in sockets:
                sock.close()
    # The flood arrived, and not one bomb was parsed into a reply.
    assert stun_stats["received"] >= FLOOD_SOURCES, stun_stats
    assert stun_stats["answered"] == stun_stats["rejected"] == 0, stun_stats


@pytest.mark.parametrize(
    "addr",
    [("127.0.0.1",), ("not an address", 1), ("127.0.0.1", 70000), ("127.0.0.1", "80"), ()],
    ids=repr,
)
def test_bad_address_tuple_is_dropped_not_raised(addr: tuple[Any, ...]) -> None:
    assert handle_datagram(binding_request(), addr) is None


# --- IPv4-mapped sources ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "mapped"),
    [
        (("::ffff:192.0.2.7", 4242, 0, 0), ("192.0.2.7", 4242)),
        (("::ffff:c000:207", 4242), ("192.0.2.7", 4242)),
        (("::FFFF:10.1.2.3", 1), ("10.1.2.3", 1)),
        (("fe80::1%lo", 9, 0, 1), ("fe80::1", 9)),
    ],
    ids=["dotted", "hex", "upper case", "scoped link-local (not mapped)"],
)
def test_ipv4_mapped_source_is_unmapped(source: tuple[Any, ...], mapped: tuple[str, int]) -> None:
    tid = os.urandom(12)
    reply = handle_datagram(binding_request(tid), source)
    assert reply is not None
    assert stun.parse_message(reply).attributes["XOR-MAPPED-ADDRESS"] == mapped
    assert reply == expected_success(tid, mapped)


# --- rate limiting -----------------------------------------------------------


async def test_rate_limiter_drops_a_burst_but_answers_another_source() -> None:
    burst, extra = 5, 10
    async with StunServer("127.0.0.1", 0, rate=0.001, burst=burst) as server:
        target = ("127.0.0.1", server.port)
        async with udp_client() as flooder, udp_client("127.0.0.2") as other:
            for _ in range(burst + extra):
                flooder.send(binding_request(), target)
            reply = await other.request(binding_request(), target)
            assert stun.parse_message(reply).attributes["XOR-MAPPED-ADDRESS"] == other.address
            await wait_until(lambda: server.stats.received == burst + extra + 1, REPLY_TIMEOUT)
            for _ in range(burst):
                answer = stun.parse_message(await flooder.recv())
                assert answer.attributes["XOR-MAPPED-ADDRESS"] == flooder.address
    assert server.stats == StunStats(
        received=burst + extra + 1, answered=burst + 1, dropped_rate_limited=extra
    )


def test_infinite_rate_disables_rate_limiting() -> None:
    assert not StunServer("127.0.0.1", 0, rate=math.inf).rate_limited
    assert StunServer("127.0.0.1", 0).rate_limited


# --- real clients ------------------------------------------------------------


async def test_aioice_connection_gathers_server_reflexive_candidate(server: StunServer) -> None:
    # aioice leaves loopback out of gather_candidates(), so the gathering step
    # it runs per component is called with the loopback address instead: the
    # same StunProtocol, Transaction and server_reflexive_candidate() path.
    connection = aioice.Connection(ice_controlling=True, stun_server=("127.0.0.1", server.port))
    try:
        candidates = await connection.get_component_candidates(
            component=1, addresses=["127.0.0.1"], timeout=int(REPLY_TIMEOUT)
        )
    finally:
        await connection.close()
    (host,) = [c for c in candidates if c.type == "host"]
    (srflx,) = [c for c in candidates if c.type == "srflx"]
    assert (srflx.host, srflx.port) == (host.host, host.port) == ("127.0.0.1", host.port)
    assert (srflx.related_address, srflx.related_port) == (host.host, host.port)
    assert server.stats.answered == 1


async def test_aioice_server_reflexive_candidate_over_ipv6() -> None:
    if not has_ipv6_loopback():
        pytest.skip(NO_IPV6_LOOPBACK)
    # aioice only queries STUN from IPv4 host candidates, so its own
    # StunProtocol.request() is driven directly from an IPv6 socket.
    async with StunServer("::1", 0) as server:
        connection = aioice.Connection(ice_controlling=True)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: StunProtocol(connection), local_addr=("::1", 0)
        )
        try:
            request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
            response, _ = await asyncio.wait_for(
                protocol.request(request, ("::1", server.port)), REPLY_TIMEOUT
            )
        finally:
            transport.close()
            await connection.close()
    sockname = transport.get_extra_info("sockname")
    assert response.attributes["XOR-MAPPED-ADDRESS"] == ("::1", sockname[1])


async def run_stunclient(port: int) -> str:
    process = await asyncio.create_subprocess_exec(
        "turnutils_stunclient",
        "-p",
        str(port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), STUNCLIENT_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output
    return output.decode(errors="replace")


REFLEXIVE = re.compile(r"UDP reflexive addr: (\S+):(\d+)")


@pytest.mark.coturn
@pytest.mark.skipif(
    shutil.which("turnutils_stunclient") is None, reason="needs coturn (Debian package coturn)"
)
async def test_coturn_stunclient_gets_its_reflexive_address(server: StunServer) -> None:
    # Against the live responder: the answer names 127.0.0.1 and a client port.
    output = await run_stunclient(server.port)
    found = set(REFLEXIVE.findall(output))
    assert len(found) == 1, output
    ((host, port),) = found
    assert host == "127.0.0.1"
    assert 0 < int(port) < 65536 and int(port) != server.port
    assert server.stats.answered >= 1 and server.stats.answered == server.stats.received

    # Against the same core behind a socket that records the client's source,
    # to prove the port coturn's client prints is its own.
    sources: list[tuple[str, int]] = []

    class Recording(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
            sources.append((addr[0], addr[1]))
            reply = handle_datagram(data, addr)
            if reply is not None:
                self.transport.sendto(reply, addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Recording, local_addr=("127.0.0.1", 0))
    try:
        output = await run_stunclient(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()
    assert {(h, int(p)) for h, p in REFLEXIVE.findall(output)} == set(sources)


# --- lifecycle and addresses ---------------------------------------------------


@needs_ipv6
async def test_ipv6_request_answered_on_loopback() -> None:
    async with StunServer("::1", 0) as server:
        assert server.addresses == [("::1", server.port)]
        tid = os.urandom(12)
        async with udp_client("::1") as client:
            reply = await client.request(binding_request(tid), ("::1", server.port))
    assert stun.parse_message(reply).attributes["XOR-MAPPED-ADDRESS"] == client.address
    assert reply == expected_success(tid, client.address)


async def test_wildcard_host_binds_both_families_on_one_port() -> None:
    async with StunServer("0.0.0.0", 0) as server:
        addresses = server.addresses
        assert addresses[0] == ("0.0.0.0", server.port)
        targets = [("127.0.0.1", "127.0.0.1")]
        if has_ipv6_loopback():
            assert addresses[1] == ("::", server.port)
            targets.append(("::1", "::1"))
        else:
            assert len(addresses) == 1
        for local, remote in targets:
            async with udp_client(local) as client:
                reply = await client.request(binding_request(), (remote, server.port))
                assert stun.parse_message(reply).attributes["XOR-MAPPED-ADDRESS"] == client.address
        assert server.stats.answered == len(targets)


async def test_literal_host_binds_only_that_address(server: StunServer) -> None:
    assert server.addresses == [("127.0.0.1", server.port)]
    assert server.port != 0


async def test_lifecycle_errors_and_idempotent_stop() -> None:
    server = StunServer("127.0.0.1", 0)
    with pytest.raises(RuntimeError):
        _ = server.port
    await server.start()
    try:
        with pytest.raises(RuntimeError):
            await server.start()
    finally:
        await server.stop()
    await server.stop()
    assert server.addresses == []


async def test_port_in_use_raises() -> None:
    async with StunServer("127.0.0.1", 0) as first:
        with pytest.raises(OSError):
            await StunServer("127.0.0.1", first.port).start()


def test_works_under_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        pytest.skip(UVLOOP_MISSING)

    async def exchange() -> tuple[bytes, tuple[str, int]]:
        async with StunServer("127.0.0.1", 0) as server, udp_client() as client:
            return await client.request(VALID, ("127.0.0.1", server.port)), client.address

    reply, address = uvloop.run(exchange())
    assert reply == expected_success(VALID[8:20], address)


def test_command_line_serves_and_writes_stats(tmp_path: Path) -> None:
    import subprocess

    stats_file = tmp_path / "stats.json"
    completed = subprocess.run(
        [sys.executable, "-m", "server", "stun", "--host", "127.0.0.1", "--port", "0"]
        + ["--duration", "0.2", "--stats-file", str(stats_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=STUNCLIENT_TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(stats_file.read_text()) == {
        "received": 0,
        "answered": 0,
        "rejected": 0,
        "dropped_malformed": 0,
        "dropped_rate_limited": 0,
        "failed": 0,
    }


# --- fuzzing -----------------------------------------------------------------

VALID_REQUESTS = [
    SAMPLE_REQUEST.data,
    LONG_TERM_REQUEST.data,
    binding_request(),
    binding_request(fingerprint=True),
    raw_message(0x0001, [SOFTWARE, (0x0024, bytes(4))], fingerprint=True),
]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=12), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple[str, Any, int]]) -> bytes:
    buf = bytearray(data)
    for kind, arg, bit in mutations:
        if kind == "flip" and buf:
            buf[arg % len(buf)] ^= 1 << bit
        elif kind == "truncate":
            del buf[arg % (len(buf) + 1) :]
        elif kind == "append":
            buf += arg
    return bytes(buf)


fuzz_datagrams = st.one_of(
    st.binary(max_size=120),
    st.builds(mutate, st.sampled_from(VALID_REQUESTS), st.lists(mutation, min_size=1, max_size=4)),
)


@given(data=fuzz_datagrams, addr=source_addresses)
@settings(max_examples=300, deadline=None)
def test_fuzz_handle_datagram_never_raises(data: bytes, addr: tuple[Any, ...]) -> None:
    reply = handle_datagram(data, addr)
    check_reply(data, addr, reply)


class ThreadedServer:
    """A StunServer on its own event loop thread, for synchronous hypothesis tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = StunServer("127.0.0.1", 0, rate=math.inf)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(REPLY_TIMEOUT)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(REPLY_TIMEOUT)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(REPLY_TIMEOUT)
            self.loop.close()


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedServer]:
    with ThreadedServer() as server:
        yield server


@given(datagrams=st.lists(fuzz_datagrams, min_size=1, max_size=5))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fuzz_live_server_keeps_answering(
    threaded_server: ThreadedServer, datagrams: list[bytes]
) -> None:
    target = ("127.0.0.1", threaded_server.server.port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(REPLY_TIMEOUT)
        for data in datagrams:
            sock.sendto(data, target)
        tid = os.urandom(12)
        sock.sendto(binding_request(tid), target)
        # Mutations that stay valid are answered too; read up to ours.
        for _ in range(len(datagrams) + 1):
            reply = sock.recv(2048)
            if reply[8:20] == tid:
                break
        else:
            raise AssertionError("no reply to the valid request")
        assert reply == expected_success(tid, sock.getsockname())
    # Every datagram lands in exactly one counter (read across threads, so polled).
    stats = threaded_server.server.stats
    deadline = time.monotonic() + REPLY_TIMEOUT
    while stats.received != total(stats):
        assert time.monotonic() < deadline, stats
        time.sleep(0.001)
