"""The sans-I/O Binding responder: one datagram in, the reply bytes (or ``None``) out.

Browsers ask it for their server-reflexive address (RFC 8445 §5.1.1.2). It only
ever answers Binding requests; it has no credentials, no TURN and no RFC 5780
behaviour discovery. Its one piece of state is a bounded cache of IPv4
XOR-MAPPED-ADDRESS attributes, owned by each :class:`BindingResponder`.
"""

from __future__ import annotations

import socket
import struct
from binascii import crc32
from typing import Any

from .message import (
    ATTR_FINGERPRINT,
    BINDING_REQUEST,
    BINDING_SUCCESS_RESPONSE,
    FINGERPRINT_XOR,
    HEADER_LENGTH,
    MAGIC_COOKIE,
    check_request,
    fingerprinted,
    xor_mapped_ipv4,
    xor_mapped_ipv6,
)

__all__ = ["ADDRESS_CACHE_SIZE", "BindingResponder"]

#: Most IPv4 addresses whose XOR-MAPPED-ADDRESS attribute is kept ready.
ADDRESS_CACHE_SIZE = 4096

# The first 8 bytes (type, length, cookie) of a Binding request without attributes.
_PLAIN_REQUEST_HEAD = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE)
# Success headers up to the transaction id; the lengths count XOR-MAPPED-ADDRESS
# (4 + 8 or 4 + 20 bytes) and FINGERPRINT (4 + 4).
_SUCCESS_V4_LENGTH = 12 + 8
_SUCCESS_V6_LENGTH = 24 + 8
_SUCCESS_V4_HEAD = struct.pack("!HHI", BINDING_SUCCESS_RESPONSE, _SUCCESS_V4_LENGTH, MAGIC_COOKIE)
_SUCCESS_V6_HEAD = struct.pack("!HHI", BINDING_SUCCESS_RESPONSE, _SUCCESS_V6_LENGTH, MAGIC_COOKIE)
_SUCCESS_V4_HEAD_CRC = crc32(_SUCCESS_V4_HEAD)
# A whole IPv4 success response: header, XOR-MAPPED-ADDRESS, FINGERPRINT.
_SUCCESS_V4 = struct.Struct("!HHI12s12sHHI")
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"

_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6


class BindingResponder:
    """Answers Binding requests; remembers IPv4 attributes, at most ``cache_size``."""

    __slots__ = ("_ipv4_attributes", "cache_size")

    def __init__(self, cache_size: int = ADDRESS_CACHE_SIZE) -> None:
        self.cache_size = cache_size
        # (host, port) -> its IPv4 XOR-MAPPED-ADDRESS attribute: it costs a
        # third of a reply to build, and a client asks again from the same
        # address. Cleared when full, so a spoofed-source flood only costs the
        # misses.
        self._ipv4_attributes: dict[tuple[Any, ...], bytes] = {}

    def cached_addresses(self) -> int:
        """How many IPv4 attributes are remembered (for tests of the bound)."""
        return len(self._ipv4_attributes)

    def handle_datagram(self, data: bytes, addr: tuple[Any, ...]) -> bytes | None:
        """The reply to the datagram ``data`` from ``addr``, or ``None`` to drop it.

        ``addr`` is the (host, port, ...) tuple the socket reports. The reply is
        a Binding success response with XOR-MAPPED-ADDRESS and FINGERPRINT, or
        a 420 error response. Never raises.
        """
        try:
            if len(data) == HEADER_LENGTH and data[:8] == _PLAIN_REQUEST_HEAD:
                # The request every STUN client sends for its reflexive address
                # (no attributes), recognised with one comparison.
                transaction_id = data[8:]
            else:
                checked_id, rejection = check_request(data)
                if checked_id is None:
                    return rejection  # a drop (None) or a 420 response
                transaction_id = checked_id

            # RFC 8489 §14.7: the CRC covers the message up to FINGERPRINT, with
            # the header's length already counting FINGERPRINT, as the heads' do.
            attribute = self._ipv4_attributes.get(addr)
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
            return fingerprinted(self._success_head(transaction_id, addr))
        except Exception:
            # The transport boundary: a datagram must never take the endpoint
            # down (a bad address tuple or a bug); it is dropped and counted.
            return None

    def _success_head(self, transaction_id: bytes, addr: tuple[Any, ...]) -> bytes:
        """The success response up to FINGERPRINT; remembers IPv4 attributes."""
        host: str = addr[0]
        port: int = addr[1]
        if ":" not in host:
            ipv4 = _inet_pton(_AF_INET, host)
        else:
            packed = _inet_pton(_AF_INET6, host.partition("%")[0])
            if packed[:12] != _V4_MAPPED_PREFIX:
                return (
                    _SUCCESS_V6_HEAD
                    + transaction_id
                    + xor_mapped_ipv6(packed, port, transaction_id)
                )
            # Report the IPv4 address the peer really has: ::ffff:a.b.c.d is
            # only how a dual-stack socket shows it (RFC 4291 §2.5.5.2).
            ipv4 = packed[12:]
        attribute = xor_mapped_ipv4(ipv4, port)
        # An IPv4 attribute depends on the address alone: remember it, within bounds.
        cache = self._ipv4_attributes
        if len(cache) >= self.cache_size:
            cache.clear()
        cache[addr] = attribute
        return _SUCCESS_V4_HEAD + transaction_id + attribute
