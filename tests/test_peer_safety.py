"""Safety numbers (client_py/safety.py) against docs/vectors.json."""

from __future__ import annotations

import pytest

from client_py.safety import fingerprint_from_sdp, fingerprint_of_der, normalise, safety_number
from tests.peer_helpers import vectors


@pytest.mark.parametrize("vector", vectors()["safety_numbers"])
def test_safety_number_vectors_either_way_round(vector: dict[str, str]) -> None:
    assert safety_number(vector["local"], vector["remote"]) == vector["safety_number"]
    assert safety_number(vector["remote"], vector["local"]) == vector["safety_number"]


def test_normalise_upper_cases_and_rejects_other_algorithms() -> None:
    lower = "sha-256 " + ":".join(["ab"] * 32)
    assert normalise(lower) == "sha-256 " + ":".join(["AB"] * 32)
    with pytest.raises(ValueError):
        normalise("sha-1 " + ":".join(["AB"] * 20))
    with pytest.raises(ValueError):
        normalise("sha-256 AB:CD")


def test_fingerprint_of_der_is_sha256_in_colon_hex() -> None:
    fp = fingerprint_of_der(b"")
    empty = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
    assert fp == "sha-256 " + ":".join(empty[i : i + 2] for i in range(0, 64, 2))


def test_different_certificates_give_different_numbers() -> None:
    a, b, c = (fingerprint_of_der(bytes([i])) for i in range(3))
    assert safety_number(a, b) != safety_number(a, c)
    assert len(safety_number(a, b).split(" ")) == 6


FP = "sha-256 " + ":".join(["AB"] * 32)
OTHER = "sha-256 " + ":".join(["CD"] * 32)
SESSION = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
MEDIA = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:actpass\r\n"


def test_a_number_from_sdp_needs_exactly_one_fingerprint_line() -> None:
    # One line (what Chromium sends), at either level, in any case: that fingerprint.
    assert fingerprint_from_sdp(SESSION + MEDIA + f"a=fingerprint:{FP}\r\n") == FP
    assert fingerprint_from_sdp(SESSION + f"a=fingerprint:{FP.lower()}\r\n" + MEDIA) == FP
    # None at all, or two: one at session level, another at media level (which of them
    # was checked in the handshake depends on the implementation): no number.
    assert fingerprint_from_sdp(SESSION + MEDIA) is None
    two = SESSION + f"a=fingerprint:{OTHER}\r\n" + MEDIA + f"a=fingerprint:{FP}\r\n"
    assert fingerprint_from_sdp(two) is None
    assert fingerprint_from_sdp(SESSION + MEDIA + f"a=fingerprint:{FP}\r\n" * 2) is None
    # aiortc announces its one certificate three times (sha-256, -384, -512): no number.
    sha384 = "sha-384 " + ":".join(["EF"] * 48)
    assert fingerprint_from_sdp(MEDIA + f"a=fingerprint:{FP}\r\na=fingerprint:{sha384}") is None
    # One line of another algorithm, or unreadable: no number.
    assert fingerprint_from_sdp(MEDIA + "a=fingerprint:sha-1 " + ":".join(["AB"] * 20)) is None
    assert fingerprint_from_sdp(MEDIA + "a=fingerprint:sha-256 nonsense") is None
