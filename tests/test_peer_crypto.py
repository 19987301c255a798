"""Password rooms (client_py/crypto.py) against docs/vectors.json."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from client_py.crypto import ITERATIONS, derive_key, open_payload, seal_payload
from client_py.errors import NeedsPassword, NotSealed, WrongPassword
from tests.peer_helpers import vectors

ROOMS = vectors()["password_rooms"]


def test_the_kdf_is_the_documented_one() -> None:
    assert ROOMS["kdf"] == "PBKDF2-HMAC-SHA256"
    assert ROOMS["iterations"] == ITERATIONS


@pytest.mark.parametrize("vector", ROOMS["vectors"])
def test_key_derivation_and_sealing_vectors(vector: dict[str, Any]) -> None:
    key = derive_key(vector["password"], vector["room"])
    assert key.hex() == vector["key_hex"]
    iv = base64.b64decode(vector["sealed"]["iv"])
    sealed = seal_payload(key, vector["type"], vector["from"], vector["to"], vector["value"], iv=iv)
    assert sealed == vector["sealed"]
    opened = open_payload(key, vector["type"], vector["from"], vector["to"], vector["sealed"])
    assert opened == vector["value"]
    assert json.dumps(opened, separators=(",", ":"), ensure_ascii=False) == vector["plaintext"]


def test_refusals_say_why() -> None:
    vector = ROOMS["vectors"][0]
    key = bytes.fromhex(vector["key_hex"])
    args = (vector["type"], vector["from"], vector["to"])
    with pytest.raises(NeedsPassword, match="this room needs a password"):
        open_payload(None, *args, vector["sealed"])
    with pytest.raises(NotSealed, match="did not use the room password"):
        open_payload(key, *args, vector["value"])
    with pytest.raises(WrongPassword, match="wrong password"):
        open_payload(bytes(32), *args, vector["sealed"])
    # Replayed to another peer, or as another type: the additional data differs.
    with pytest.raises(WrongPassword):
        open_payload(key, vector["type"], vector["from"], "someone-else", vector["sealed"])
    with pytest.raises(WrongPassword):
        open_payload(key, "answer", vector["from"], vector["to"], vector["sealed"])
    with pytest.raises(WrongPassword):
        open_payload(key, *args, {**vector["sealed"], "iv": "not base64!"})
    assert open_payload(None, *args, vector["value"]) == vector["value"]


def test_fresh_ivs() -> None:
    key = bytes(32)
    a = seal_payload(key, "offer", "a", "b", "x")
    b = seal_payload(key, "offer", "a", "b", "x")
    assert a["iv"] != b["iv"]
    assert open_payload(key, "offer", "a", "b", a) == "x"
