"""Password rooms: signaling payloads sealed end to end (docs/PROTOCOL.md, "Password rooms").

PBKDF2-HMAC-SHA256 (600 000 iterations, salt ``confide-room-v1|<room>``) gives
an AES-256-GCM key; each ``sdp``/``candidate`` payload becomes
``{"alg": "A256GCM", "iv": ..., "ct": ...}`` with additional data
``confide-signal-v1|<type>|<from>|<to>``, so a server can neither read nor
replay it to another peer or as another type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import NeedsPassword, NotSealed, WrongPassword

__all__ = ["ITERATIONS", "derive_key", "is_sealed", "open_payload", "seal_payload"]

ITERATIONS: Final = 600_000
ALG: Final = "A256GCM"
IV_BYTES: Final = 12


def derive_key(password: str, room: str, iterations: int = ITERATIONS) -> bytes:
    """The room key (about half a second of CPU: call it once, off the event loop)."""
    salt = f"confide-room-v1|{room}".encode()
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)


def _aad(kind: str, sender: str, recipient: str) -> bytes:
    return f"confide-signal-v1|{kind}|{sender}|{recipient}".encode()


def is_sealed(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("alg") == ALG and "ct" in payload


def seal_payload(
    key: bytes, kind: str, sender: str, recipient: str, value: Any, *, iv: bytes | None = None
) -> dict[str, str]:
    """Seal ``value`` (a SDP string, a candidate object or None) for ``recipient``."""
    iv = os.urandom(IV_BYTES) if iv is None else iv
    # JSON.stringify's form: compact, non-ASCII kept.
    plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    ct = AESGCM(key).encrypt(iv, plaintext, _aad(kind, sender, recipient))
    return {"alg": ALG, "iv": base64.b64encode(iv).decode(), "ct": base64.b64encode(ct).decode()}


def open_payload(key: bytes | None, kind: str, sender: str, recipient: str, payload: Any) -> Any:
    """The value inside ``payload``, or raise a :class:`~client_py.errors.SealError`.

    With ``key`` None (no password), a plain payload is returned as it is.
    """
    if key is None:
        if is_sealed(payload):
            raise NeedsPassword()
        return payload
    if not is_sealed(payload):
        raise NotSealed()
    try:
        iv = base64.b64decode(payload["iv"], validate=True)
        ct = base64.b64decode(payload["ct"], validate=True)
        if len(iv) != IV_BYTES:
            raise WrongPassword()
        plaintext = AESGCM(key).decrypt(iv, ct, _aad(kind, sender, recipient))
        return json.loads(plaintext.decode())
    except (InvalidTag, binascii.Error, TypeError, ValueError, KeyError):
        raise WrongPassword() from None
