"""RFC 5780 NAT behaviour discovery, sans-I/O: which of the responder's sockets answers.

With ``--stun-alt-port`` (and ``--stun-alt-host``) the responder listens on up to four
transport addresses, numbered by :func:`socket_index`: the primary (A1, P1), the other
port (A1, P2), the other address (A2, P1) and both (A2, P2).  Every Binding response then
carries RESPONSE-ORIGIN, the address it leaves from, and OTHER-ADDRESS, (A2, P2) or
(A1, P2) without a second address (RFC 5780 §6, §7.3, §7.4); a request's CHANGE-REQUEST
(§7.2) asks for the answer to leave from the other address and/or port, which is how a
client learns how its NAT filters (§4.4).  A change the server cannot make (another
address when it has none) gets a 420 naming CHANGE-REQUEST, as a server without RFC 5780
does.  Plain responders (the default) never see this module: their replies stay byte
identical to aioice's.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, Final

from .message import (
    ATTR_FINGERPRINT,
    ATTR_UNKNOWN_ATTRIBUTES,
    BINDING_SUCCESS_RESPONSE,
    HEADER_LENGTH,
    MAGIC_COOKIE,
    check_request,
    fingerprinted,
    unknown_attribute_response,
    xor_mapped_ipv4,
    xor_mapped_ipv6,
)

__all__ = [
    "ATTR_CHANGE_REQUEST",
    "ATTR_OTHER_ADDRESS",
    "ATTR_RESPONSE_ORIGIN",
    "CHANGE_IP",
    "CHANGE_PORT",
    "DiscoveryResponder",
    "change_request_of",
    "socket_index",
]

#: RFC 5780 §7: attribute types and the CHANGE-REQUEST flags.
ATTR_CHANGE_REQUEST: Final = 0x0003
ATTR_RESPONSE_ORIGIN: Final = 0x802B
ATTR_OTHER_ADDRESS: Final = 0x802C
CHANGE_IP: Final = 0x04
CHANGE_PORT: Final = 0x02

_ATTRIBUTE = struct.Struct("!HH")
_UINT32 = struct.Struct("!I")
_HEADER = struct.Struct("!HHI12s")
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"

Address = tuple[str, int]


def socket_index(other_ip: bool, other_port: bool) -> int:
    """Index of a socket: bit 1 for the second address, bit 0 for the second port."""
    return (2 if other_ip else 0) | (1 if other_port else 0)


def change_request_of(data: bytes) -> int:
    """The CHANGE-REQUEST flags of a request (0 without one).

    Called only on requests that :func:`check_request` found well formed (lengths,
    FINGERPRINT) but for CHANGE-REQUEST, so the walk is bounded by the datagram.
    """
    flags = 0
    pos = HEADER_LENGTH
    n = len(data)
    while pos + 4 <= n:
        attr_type, attr_length = _ATTRIBUTE.unpack_from(data, pos)
        if attr_type == ATTR_CHANGE_REQUEST and attr_length == 4:
            flags = _UINT32.unpack_from(data, pos + 4)[0] & (CHANGE_IP | CHANGE_PORT)
        pos += 4 + ((attr_length + 3) & ~3)
    return flags


def _address_attribute(attr_type: int, address: Address) -> bytes:
    """An attribute in MAPPED-ADDRESS form (RFC 8489 §14.1: not XORed), as RFC 5780 §7.3
    and §7.4 define OTHER-ADDRESS and RESPONSE-ORIGIN."""
    host, port = address
    if ":" in host:
        return _ATTRIBUTE.pack(attr_type, 20) + struct.pack(
            "!BBH16s", 0, 2, port, socket.inet_pton(socket.AF_INET6, host)
        )
    return _ATTRIBUTE.pack(attr_type, 8) + struct.pack(
        "!BBH4s", 0, 1, port, socket.inet_pton(socket.AF_INET, host)
    )


def _xor_mapped(addr: tuple[Any, ...], transaction_id: bytes) -> bytes:
    host: str = addr[0]
    port: int = addr[1]
    if ":" not in host:
        return xor_mapped_ipv4(socket.inet_pton(socket.AF_INET, host), port)
    packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    if packed[:12] == _V4_MAPPED_PREFIX:
        return xor_mapped_ipv4(packed[12:], port)
    return xor_mapped_ipv6(packed, port, transaction_id)


class DiscoveryResponder:
    """Answers Binding requests arriving on any of ``addresses`` (indexed as
    :func:`socket_index`; index 2 and 3 only with a second address)."""

    __slots__ = ("addresses", "other")

    def __init__(self, addresses: list[Address]) -> None:
        if len(addresses) not in (2, 4):
            raise ValueError("RFC 5780 needs two sockets (another port) or four")
        self.addresses = addresses
        #: OTHER-ADDRESS: the address that differs in both parts (or in the port only).
        self.other = addresses[socket_index(len(addresses) == 4, True)]

    @property
    def has_other_ip(self) -> bool:
        return len(self.addresses) == 4

    def handle(self, data: bytes, addr: tuple[Any, ...], arrived: int) -> tuple[bytes, int] | None:
        """The reply to ``data`` from ``addr`` that arrived on socket ``arrived``, and the
        index of the socket to send it from; None to drop it.  Never raises."""
        try:
            transaction_id, rejection = check_request(data)
            flags = 0
            if transaction_id is None:
                if rejection is None:
                    return None
                # A 420: fine if CHANGE-REQUEST was the only unknown attribute.
                unknown = _unknown_types(rejection)
                if unknown != [ATTR_CHANGE_REQUEST]:
                    return rejection, arrived
                flags = change_request_of(data)
                transaction_id = data[8:HEADER_LENGTH]
            change_ip, change_port = bool(flags & CHANGE_IP), bool(flags & CHANGE_PORT)
            if change_ip and not self.has_other_ip:
                return unknown_attribute_response(transaction_id, [ATTR_CHANGE_REQUEST]), arrived
            here_ip, here_port = bool(arrived & 2), bool(arrived & 1)
            index = socket_index(here_ip != change_ip, here_port != change_port)
            body = (
                _xor_mapped(addr, transaction_id)
                + _address_attribute(ATTR_RESPONSE_ORIGIN, self.addresses[index])
                + _address_attribute(ATTR_OTHER_ADDRESS, self.other)
            )
            head = _HEADER.pack(BINDING_SUCCESS_RESPONSE, len(body) + 8, MAGIC_COOKIE,
                                transaction_id)  # fmt: skip
            return fingerprinted(head + body), index
        except Exception:
            # The transport boundary, as in BindingResponder: drop, never raise.
            return None


def _unknown_types(error_response: bytes) -> list[int]:
    """The types listed in a 420 response's UNKNOWN-ATTRIBUTES (RFC 8489 §14.9)."""
    pos = HEADER_LENGTH
    while pos + 4 <= len(error_response):
        attr_type, attr_length = _ATTRIBUTE.unpack_from(error_response, pos)
        if attr_type == ATTR_UNKNOWN_ATTRIBUTES:
            value = error_response[pos + 4 : pos + 4 + attr_length]
            return list(struct.unpack(f"!{len(value) // 2}H", value))
        if attr_type == ATTR_FINGERPRINT:
            break
        pos += 4 + ((attr_length + 3) & ~3)
    return []
