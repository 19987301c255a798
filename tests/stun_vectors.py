"""The STUN test vectors of RFC 5769 (§2.1 to §2.4), as Python data.

Copied from the project's shared test data so that the tests read nothing
outside the repository at run time. The padding bytes of §2.1 to §2.3 are
0x20 (spaces), not zero, so the vectors are checked by parsing them, never by
re-encoding and comparing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "LONG_TERM_NONCE",
    "LONG_TERM_PASSWORD",
    "LONG_TERM_REALM",
    "LONG_TERM_REQUEST",
    "SAMPLE_IPV4_RESPONSE",
    "SAMPLE_IPV6_RESPONSE",
    "SAMPLE_REQUEST",
    "SHORT_TERM_PASSWORD",
    "StunVector",
    "VECTORS",
]

#: The short-term password of §2.1 to §2.3 (the MESSAGE-INTEGRITY key, RFC 8489 §9.1.1).
SHORT_TERM_PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"


@dataclass(frozen=True)
class StunVector:
    name: str
    data: bytes
    transaction_id: bytes
    software: str | None = None
    username: str | None = None
    xor_mapped_address: tuple[str, int] | None = None
    attributes: tuple[str, ...] = field(default=())


#: RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED,
#: USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
SAMPLE_REQUEST = StunVector(
    name="2.1 sample request",
    data=bytes.fromhex(
        "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e20746573"
        "7420636c69656e74002400046e0001ff80290008932ff9b151263b3600060009"
        "6576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249"
        "c1b571a280280004e57a3bcf"
    ),
    transaction_id=bytes.fromhex("b7e7a701bc34d686fa87dfae"),
    software="STUN test client",
    username="evtj:h6vY",
    attributes=(
        "SOFTWARE",
        "PRIORITY",
        "ICE-CONTROLLED",
        "USERNAME",
        "MESSAGE-INTEGRITY",
        "FINGERPRINT",
    ),
)

#: RFC 5769 §2.2: a Binding success response with an IPv4 XOR-MAPPED-ADDRESS.
SAMPLE_IPV4_RESPONSE = StunVector(
    name="2.2 sample IPv4 response",
    data=bytes.fromhex(
        "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563"
        "746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f9"
        "2af9ba53f06be7d780280004c07d4c96"
    ),
    transaction_id=bytes.fromhex("b7e7a701bc34d686fa87dfae"),
    software="test vector",
    xor_mapped_address=("192.0.2.1", 32853),
    attributes=("SOFTWARE", "XOR-MAPPED-ADDRESS", "MESSAGE-INTEGRITY", "FINGERPRINT"),
)

#: RFC 5769 §2.3: a Binding success response with an IPv6 XOR-MAPPED-ADDRESS.
SAMPLE_IPV6_RESPONSE = StunVector(
    name="2.3 sample IPv6 response",
    data=bytes.fromhex(
        "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563"
        "746f7220002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014"
        "a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c"
    ),
    transaction_id=bytes.fromhex("b7e7a701bc34d686fa87dfae"),
    software="test vector",
    xor_mapped_address=("2001:db8:1234:5678:11:2233:4455:6677", 32853),
    attributes=("SOFTWARE", "XOR-MAPPED-ADDRESS", "MESSAGE-INTEGRITY", "FINGERPRINT"),
)

#: RFC 5769 §2.4: a Binding request with long-term authentication (USERNAME,
#: NONCE, REALM, MESSAGE-INTEGRITY; no FINGERPRINT). Its key is
#: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
LONG_TERM_REQUEST = StunVector(
    name="2.4 sample request with long-term authentication",
    data=bytes.fromhex(
        "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383"
        "aae38383e382afe382b900000015001c662f2f3439396b39353464364f4c3334"
        "6f4c394653547679363473410014000b6578616d706c652e6f72670000080014"
        "f67024656dd64a3e02b8e0712e85c9a28ca89666"
    ),
    transaction_id=bytes.fromhex("78ad3433c6ad72c029da412e"),
    username="\u30de\u30c8\u30ea\u30c3\u30af\u30b9",  # "マトリックス"
    attributes=("USERNAME", "NONCE", "REALM", "MESSAGE-INTEGRITY"),
)
LONG_TERM_REALM = "example.org"
LONG_TERM_PASSWORD = "TheMatrIX"
LONG_TERM_NONCE = "f//499k954d6OL34oL9FSTvy64sA"

VECTORS = (SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE, LONG_TERM_REQUEST)
