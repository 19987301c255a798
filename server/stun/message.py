"""STUN messages (RFC 8489): the constants, the request check and the reply encoders.

Pure functions on bytes, no state and no I/O. The replies are built with
:mod:`struct` and bytes concatenation rather than :class:`aioice.stun.Message`,
which is several times slower (bench/bench_stun.py); tests/test_stun.py proves
them byte-identical to what ``aioice.stun.Message(...)`` with
``add_fingerprint()`` builds.
"""

from __future__ import annotations

import struct
from binascii import crc32

__all__ = [
    "ATTR_ERROR_CODE",
    "ATTR_FINGERPRINT",
    "ATTR_MESSAGE_INTEGRITY",
    "ATTR_MESSAGE_INTEGRITY_SHA256",
    "ATTR_UNKNOWN_ATTRIBUTES",
    "ATTR_XOR_MAPPED_ADDRESS",
    "BINDING_ERROR_RESPONSE",
    "BINDING_REQUEST",
    "BINDING_SUCCESS_RESPONSE",
    "FINGERPRINT_XOR",
    "HEADER_LENGTH",
    "KNOWN_REQUIRED_ATTRIBUTES",
    "MAGIC_COOKIE",
    "MAX_ATTRIBUTES",
    "MAX_REQUEST_SIZE",
    "check_request",
    "fingerprinted",
    "unknown_attribute_response",
    "xor_mapped_ipv4",
    "xor_mapped_ipv6",
]

# RFC 8489 §5: header fields and message types (class bits 0x0110, method bits 0x3EEF).
MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
BINDING_REQUEST = 0x0001
BINDING_SUCCESS_RESPONSE = 0x0101
BINDING_ERROR_RESPONSE = 0x0111

#: Largest request read, in bytes: 576, the datagram every IPv4 host must
#: accept (RFC 791), less the IP and UDP headers, as RFC 8489 §6.1 sizes STUN
#: over UDP. A Binding request is 20 bytes, about 100 with ICE's attributes
#: (RFC 5769 §2.1 is 108); a larger one is dropped unread, so no datagram costs
#: more than this many bytes of parsing (issue 9: the STUN CPU bomb).
MAX_REQUEST_SIZE = 548
#: Most attributes read in a request; one with more is dropped. ICE's
#: requests carry about eight (RFC 8445 §7.1).
MAX_ATTRIBUTES = 32

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
# XOR-MAPPED-ADDRESS (RFC 8489 §14.2); the family is packed as one 16-bit field
# whose high byte is the reserved zero.
_XOR_MAPPED_V4 = struct.Struct("!HHHHI")
_XOR_MAPPED_V6 = struct.Struct("!HHHH16s")
_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02
_XPORT = MAGIC_COOKIE >> 16
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_FINGERPRINT_HEAD = _ATTRIBUTE.pack(ATTR_FINGERPRINT, 4)


def check_request(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(transaction id, None) to answer, (None, 420 response) or (None, None) to drop."""
    n = len(data)
    if n < HEADER_LENGTH or n > MAX_REQUEST_SIZE:
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
            return None, unknown_attribute_response(transaction_id, list(unknown))
    return transaction_id, None


def _unknown_attributes(data: bytes, n: int) -> dict[int, None] | None:
    """Walk the attributes: ``None`` if malformed, else the unknown required types.

    The types are the keys of a dict: a set's constant-time look-up that also
    keeps the order they came in, for the 420's list.
    """
    unknown: dict[int, None] = {}
    pos = HEADER_LENGTH
    after_integrity = False
    count = 0
    while pos < n:
        count += 1
        if count > MAX_ATTRIBUTES:
            return None
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
            unknown[attr_type] = None
        pos = end
    return unknown


def fingerprinted(head: bytes) -> bytes:
    """``head`` (its length already counting FINGERPRINT) with FINGERPRINT appended (§14.7)."""
    return head + _FINGERPRINT_HEAD + _UINT32.pack(crc32(head) ^ FINGERPRINT_XOR)


def unknown_attribute_response(transaction_id: bytes, unknown: list[int]) -> bytes:
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
    return fingerprinted(
        _HEADER.pack(BINDING_ERROR_RESPONSE, len(body) + 8, MAGIC_COOKIE, transaction_id) + body
    )


def xor_mapped_ipv4(packed: bytes, port: int) -> bytes:
    """The XOR-MAPPED-ADDRESS attribute of an IPv4 address (RFC 8489 §14.2)."""
    return _XOR_MAPPED_V4.pack(
        ATTR_XOR_MAPPED_ADDRESS,
        8,
        _FAMILY_IPV4,
        port ^ _XPORT,
        int.from_bytes(packed, "big") ^ MAGIC_COOKIE,
    )


def xor_mapped_ipv6(packed: bytes, port: int, transaction_id: bytes) -> bytes:
    """The XOR-MAPPED-ADDRESS attribute of an IPv6 address (RFC 8489 §14.2).

    The address is XORed with the cookie and the transaction id, so unlike the
    IPv4 one this attribute cannot be reused across requests.
    """
    key = int.from_bytes(_COOKIE_BYTES + transaction_id, "big")
    xaddr = (int.from_bytes(packed, "big") ^ key).to_bytes(16, "big")
    return _XOR_MAPPED_V6.pack(ATTR_XOR_MAPPED_ADDRESS, 20, _FAMILY_IPV6, port ^ _XPORT, xaddr)
