"""Signaling message shapes, their validation and the error codes.

The contract is docs/PROTOCOL.md; ``tests/test_protocol.py`` loads every
example there and checks it against this module, so the two cannot drift.
Nothing here does I/O: a text frame goes in, a typed message (or a
:class:`~server.errors.ProtocolError` with a stable code) comes out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from .errors import ProtocolError

__all__ = [
    "MAX_NAME_LENGTH",
    "ROOM_PATTERN",
    "ClientMessage",
    "CloseCode",
    "ErrorCode",
    "Join",
    "Leave",
    "Signal",
    "SIGNAL_TYPES",
    "degraded_frame",
    "error_frame",
    "ice_servers_frame",
    "parse_client_frame",
    "peer_joined_frame",
    "peer_left_frame",
    "relayed_frame",
    "welcome_frame",
]

ROOM_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_NAME_LENGTH: Final = 32
MAX_RESUME_TOKEN_LENGTH: Final = 128

#: The three kinds of message the server relays between two peers, and the
#: field that carries each one's (opaque) payload.
SIGNAL_TYPES: Final[dict[str, str]] = {"offer": "sdp", "answer": "sdp", "candidate": "candidate"}


class ErrorCode(StrEnum):
    """Stable codes of ``{"type": "error"}`` frames (docs/PROTOCOL.md, "Errors")."""

    BAD_JSON = "bad-json"
    BAD_MESSAGE = "bad-message"
    UNKNOWN_TYPE = "unknown-type"
    NOT_JOINED = "not-joined"
    ALREADY_JOINED = "already-joined"
    UNKNOWN_PEER = "unknown-peer"
    RATE_LIMITED = "rate-limited"
    ROOM_FULL = "room-full"
    JOIN_TIMEOUT = "join-timeout"
    #: The shared rooms (Redis) are unreachable: joins and cross-process
    #: relays fail until they are back; open peer connections are unaffected.
    SIGNALING_DEGRADED = "signaling-degraded"


class CloseCode:
    """WebSocket close codes the server uses (RFC 6455 §7.4.1, plus 4000-4999 of our own)."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001
    PROTOCOL_ERROR: Final = 1002
    UNSUPPORTED_DATA: Final = 1003
    POLICY_VIOLATION: Final = 1008
    MESSAGE_TOO_BIG: Final = 1009
    TRY_AGAIN_LATER: Final = 1013
    #: Another connection resumed this peer's id with its resume token.
    REPLACED: Final = 4001


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    name: str
    resume: str | None = None


# Not frozen, like signaling.Relay: a frozen dataclass's __init__ goes through
# object.__setattr__ (about 5x slower), and one of each is made per relayed frame.
@dataclass(slots=True)
class Signal:
    """An offer, answer or candidate addressed to one peer; ``payload`` stays opaque."""

    type: str
    to: str
    payload: Any


@dataclass(frozen=True, slots=True)
class Leave:
    pass


ClientMessage = Join | Signal | Leave


def _fail(code: ErrorCode, message: str) -> ProtocolError:
    return ProtocolError(code.value, message)


# orjson parses and serialises a relayed frame several times faster than the
# json module, which was a third of the server's time per relayed frame
# (bench/bench_signaling.py). It refuses what is not JSON or cannot be sent on
# as UTF-8 (NaN, Infinity, 1e400, lone surrogates: "bad-json" then) and reads
# integers beyond 64 bits as floats.
_loads: Callable[[str], Any] = orjson.loads
_json_dump = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dump(frame: Any) -> str:
    """Compact JSON text; ProtocolError if a client's payload is nested too deeply for it."""
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:
        # orjson writes at most 254 levels of nesting but reads 1024: a
        # payload between the two goes through the json module instead.
        pass
    try:
        return _json_dump(frame)
    except RecursionError:
        raise _fail(ErrorCode.BAD_MESSAGE, "payload nested too deeply") from None


def parse_client_frame(text: str) -> ClientMessage:
    """Parse one text frame from a client, or raise ProtocolError with a stable code."""
    try:
        data = _loads(text)
    except (ValueError, RecursionError):
        # RecursionError: deeply nested arrays are valid JSON that CPython's
        # parser cannot hold; they are still the client's fault. (orjson's
        # JSONDecodeError is a ValueError.)
        raise _fail(ErrorCode.BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise _fail(ErrorCode.BAD_MESSAGE, "frame must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise _fail(ErrorCode.BAD_MESSAGE, "'type' must be a string")
    if kind == "join":
        return _parse_join(data)
    if kind in SIGNAL_TYPES:
        return _parse_signal(kind, data)
    if kind == "leave":
        return Leave()
    raise _fail(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:32]!r}")


def _parse_join(data: dict[str, Any]) -> Join:
    room = data.get("room")
    if not isinstance(room, str) or not ROOM_PATTERN.fullmatch(room):
        raise _fail(ErrorCode.BAD_MESSAGE, "'room' must be 1-64 of A-Z a-z 0-9 _ -")
    name = data.get("name")
    if not isinstance(name, str):
        raise _fail(ErrorCode.BAD_MESSAGE, "'name' must be a string")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise _fail(
            ErrorCode.BAD_MESSAGE,
            f"'name' must be 1-{MAX_NAME_LENGTH} printable characters",
        )
    resume = data.get("resume")
    if resume is not None and (
        not isinstance(resume, str) or not 0 < len(resume) <= MAX_RESUME_TOKEN_LENGTH
    ):
        raise _fail(ErrorCode.BAD_MESSAGE, "'resume' must be a token string")
    return Join(room=room, name=name, resume=resume)


def _parse_signal(kind: str, data: dict[str, Any]) -> Signal:
    to = data.get("to")
    if not isinstance(to, str) or not 0 < len(to) <= 64:
        raise _fail(ErrorCode.BAD_MESSAGE, "'to' must be a peer id")
    field = SIGNAL_TYPES[kind]
    if field not in data:
        raise _fail(ErrorCode.BAD_MESSAGE, f"'{kind}' needs '{field}'")
    payload = data[field]
    # The payload is opaque so that clients may encrypt it end to end
    # (password rooms); only its JSON kind is checked. The frame size limit
    # bounds its size.
    if kind == "candidate":
        if payload is not None and not isinstance(payload, dict):
            raise _fail(ErrorCode.BAD_MESSAGE, "'candidate' must be an object or null")
    elif not isinstance(payload, str | dict):
        raise _fail(ErrorCode.BAD_MESSAGE, "'sdp' must be a string or an object")
    return Signal(type=kind, to=to, payload=payload)


def relayed_frame(signal: Signal, sender: str) -> str:
    """The frame the addressee receives: the same message, ``to`` replaced by ``from``."""
    return _dump({"type": signal.type, "from": sender, SIGNAL_TYPES[signal.type]: signal.payload})


def welcome_frame(
    peer_id: str,
    room: str,
    resume: str,
    peers: list[dict[str, str]],
    ice_servers: list[dict[str, Any]],
    *,
    resumed: bool,
) -> str:
    return _dump(
        {
            "type": "welcome",
            "id": peer_id,
            "room": room,
            "resume": resume,
            "resumed": resumed,
            "peers": peers,
            "iceServers": ice_servers,
        }
    )


def ice_servers_frame(ice_servers: list[dict[str, Any]]) -> str:
    """Fresh TURN credentials for a connection, before those it holds expire."""
    return _dump({"type": "ice-servers", "iceServers": ice_servers})


def peer_joined_frame(peer_id: str, name: str) -> str:
    return _dump({"type": "peer-joined", "peer": {"id": peer_id, "name": name}})


def peer_left_frame(peer_id: str) -> str:
    return _dump({"type": "peer-left", "id": peer_id})


def error_frame(code: str, message: str) -> str:
    return _dump({"type": "error", "code": code, "message": message})


def degraded_frame() -> str:
    """The error frame of a Redis outage (docs/PROTOCOL.md, "Errors")."""
    return error_frame(
        ErrorCode.SIGNALING_DEGRADED,
        "signaling is degraded: open chats go on, joining and new connections wait",
    )
