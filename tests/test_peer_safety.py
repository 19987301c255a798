"""Safety numbers (client_py/safety.py) against docs/vectors.json."""

from __future__ import annotations

import pytest

from client_py.safety import fingerprint_of_der, normalise, safety_number
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
