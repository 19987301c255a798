"""The ``chat`` data channel, sans I/O (docs/PROTOCOL.md, "Data channels").

:func:`parse` turns one received data-channel message into a typed message or
raises :class:`~client_py.errors.Ignored` (never anything else), and
:func:`encode` does the reverse. :class:`ChatLink` is the per-peer state of
the chat channel: messages wait in order until the channel is open, stay
queued until acknowledged (and go out again after a reconnect), and a
received message is shown once per (peer, ``id``) but acknowledged every time.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import Ignored

__all__ = [
    "CHAT_LABEL",
    "MAX_MESSAGE_BYTES",
    "MAX_SIZE",
    "MAX_TEXT_BYTES",
    "Ack",
    "ChannelMessage",
    "ChatEvent",
    "ChatLink",
    "Delivered",
    "FileAccept",
    "FileCancel",
    "FileControl",
    "FileControlReceived",
    "FileDecline",
    "FileEnd",
    "FileOffer",
    "FileReceived",
    "IgnoredInput",
    "Msg",
    "Parsed",
    "Received",
    "Typing",
    "TypingChanged",
    "encode",
    "new_id",
    "parse",
]

CHAT_LABEL: Final = "chat"
#: The chat channel is negotiated out of band with this SCTP stream id on both sides.
CHAT_CHANNEL_ID: Final = 0
#: Every chat-channel message is a JSON text of at most this many bytes.
MAX_MESSAGE_BYTES: Final = 64 * 1024
#: A ``msg``'s text, in bytes of UTF-8.
MAX_TEXT_BYTES: Final = 16_384
#: Largest file size and offset: 2^53 − 1, the largest integer JavaScript holds exactly.
MAX_SIZE: Final = 2**53 - 1
MAX_FILE_NAME: Final = 255
MAX_MIME: Final = 255
#: Message ids remembered per peer for deduplication (oldest forgotten first).
SEEN_IDS: Final = 10_000
#: A receiver drops the typing indicator this long after the last ``on: true``.
TYPING_TIMEOUT: Final = 6.0

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256_PATTERN: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Msg:
    id: str
    ts: int
    text: str
    dm: bool = False


@dataclass(frozen=True, slots=True)
class Ack:
    id: str


@dataclass(frozen=True, slots=True)
class Typing:
    on: bool


@dataclass(frozen=True, slots=True)
class FileOffer:
    fid: str
    name: str
    size: int
    mime: str = ""
    dm: bool = False


@dataclass(frozen=True, slots=True)
class FileAccept:
    fid: str
    offset: int


@dataclass(frozen=True, slots=True)
class FileDecline:
    fid: str


@dataclass(frozen=True, slots=True)
class FileEnd:
    fid: str
    sha256: str


@dataclass(frozen=True, slots=True)
class FileReceived:
    fid: str
    ok: bool


@dataclass(frozen=True, slots=True)
class FileCancel:
    fid: str


FileControl = FileOffer | FileAccept | FileDecline | FileEnd | FileReceived | FileCancel
ChannelMessage = Msg | Ack | Typing | FileControl

_TYPES: Final[dict[type[Any], str]] = {
    Msg: "msg",
    Ack: "ack",
    Typing: "typing",
    FileOffer: "file-offer",
    FileAccept: "file-accept",
    FileDecline: "file-decline",
    FileEnd: "file-end",
    FileReceived: "file-received",
    FileCancel: "file-cancel",
}
_FIELDS: Final[dict[str, frozenset[str]]] = {
    "msg": frozenset({"t", "id", "ts", "text", "dm"}),
    "ack": frozenset({"t", "id"}),
    "typing": frozenset({"t", "on"}),
    "file-offer": frozenset({"t", "fid", "name", "size", "mime", "dm"}),
    "file-accept": frozenset({"t", "fid", "offset"}),
    "file-decline": frozenset({"t", "fid"}),
    "file-end": frozenset({"t", "fid", "sha256"}),
    "file-received": frozenset({"t", "fid", "ok"}),
    "file-cancel": frozenset({"t", "fid"}),
}


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid message, and the names of fields it carried that the protocol lacks
    (ignored, but reported: a ``from`` or ``name`` there is a forged sender)."""

    message: ChannelMessage
    unknown_fields: tuple[str, ...] = ()


def new_id() -> str:
    """A fresh message or file id: a random UUID. The web client uses 32 random hex
    digits (``newId`` in client_web/chat.js); the protocol asks only for 1-64 of
    ``A-Z a-z 0-9 _ -``, unique per sender, which both are."""
    return str(uuid.uuid4())


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(message: ChannelMessage) -> str:
    """The JSON text of ``message`` (compact, UTF-8 kept as is)."""
    data: dict[str, Any] = {"t": _TYPES[type(message)]}
    for name in message.__slots__:
        data[name] = getattr(message, name)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _utf8_len(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800") is valid JSON but not text.
        raise Ignored("text is not valid Unicode") from None


def _ident(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise Ignored(f"'{key}' must be 1-64 of A-Z a-z 0-9 _ -")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise Ignored(f"'{key}' must be true or false")
    return value


def _whole(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 5.0 is 5
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise Ignored(f"'{key}' must be a whole number from 0 to 2^53-1")
    return value


def _string(data: dict[str, Any], key: str, low: int, high: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise Ignored(f"'{key}' must be a string of {low}-{high} characters")
    _utf8_len(value)
    return value


def _parse_object(data: dict[str, Any]) -> ChannelMessage:
    kind = data["t"]
    if kind == "msg":
        ts = data.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise Ignored("'ts' must be a number of milliseconds")
        text = data.get("text")
        if not isinstance(text, str):
            raise Ignored("'text' must be a string")
        if _utf8_len(text) > MAX_TEXT_BYTES:
            raise Ignored(f"'text' is over {MAX_TEXT_BYTES} bytes")
        return Msg(_ident(data, "id"), int(ts), text, _bool(data, "dm"))
    if kind == "ack":
        return Ack(_ident(data, "id"))
    if kind == "typing":
        return Typing(_bool(data, "on"))
    fid = _ident(data, "fid")
    if kind == "file-offer":
        return FileOffer(
            fid,
            _string(data, "name", 1, MAX_FILE_NAME),
            _whole(data, "size"),
            _string(data, "mime", 0, MAX_MIME),
            _bool(data, "dm"),
        )
    if kind == "file-accept":
        return FileAccept(fid, _whole(data, "offset"))
    if kind == "file-decline":
        return FileDecline(fid)
    if kind == "file-end":
        digest = data.get("sha256")
        if not isinstance(digest, str) or not _SHA256_PATTERN.fullmatch(digest):
            raise Ignored("'sha256' must be 64 lower-case hex digits")
        return FileEnd(fid, digest)
    if kind == "file-received":
        return FileReceived(fid, _bool(data, "ok"))
    if kind == "file-cancel":
        return FileCancel(fid)
    raise AssertionError(kind)  # pragma: no cover - _FIELDS lists every kind


def parse(data: str | bytes) -> Parsed:
    """Parse one chat-channel message, or raise :class:`Ignored` saying why."""
    if not isinstance(data, str):
        raise Ignored(f"binary message of {len(data)} bytes on the chat channel")
    if len(data) > MAX_MESSAGE_BYTES or _utf8_len(data) > MAX_MESSAGE_BYTES:
        raise Ignored(f"message over {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise Ignored("not valid JSON") from None
    if not isinstance(obj, dict):
        raise Ignored("not a JSON object")
    kind = obj.get("t")
    if not isinstance(kind, str):
        raise Ignored("'t' must be a string")
    known = _FIELDS.get(kind)
    if known is None:
        raise Ignored(f"unknown message type {kind[:32]!r}")
    message = _parse_object(obj)
    unknown = tuple(sorted(k[:32] for k in obj if k not in known))
    return Parsed(message, unknown)


# Events that ChatLink.receive hands out.


@dataclass(frozen=True, slots=True)
class Received:
    """A chat message; ``duplicate`` when this (peer, id) was shown before."""

    message: Msg
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Delivered:
    """The peer acknowledged our message ``id``."""

    id: str


@dataclass(frozen=True, slots=True)
class TypingChanged:
    on: bool


@dataclass(frozen=True, slots=True)
class FileControlReceived:
    message: FileControl


@dataclass(frozen=True, slots=True)
class IgnoredInput:
    """Input ignored (entirely, or only some fields of it); ``reason`` is for the log."""

    reason: str


ChatEvent = Received | Delivered | TypingChanged | FileControlReceived | IgnoredInput


@dataclass
class ChatLink:
    """The chat channel with one peer, without the channel.

    Feed it what arrives (:meth:`receive`) and channel state changes
    (:meth:`opened`, :meth:`closed`); send what :meth:`data_to_send` returns.
    """

    is_open: bool = False
    #: Our messages not yet acknowledged, in the order written.
    unacked: OrderedDict[str, Msg] = field(default_factory=OrderedDict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _outgoing: list[str] = field(default_factory=list)
    #: Control messages (files, typing) written while closed, sent on open.
    _pending: list[str] = field(default_factory=list)
    _typing_until: float = 0.0

    def compose(self, text: str, *, dm: bool = False, ts: int | None = None) -> Msg:
        """Write a chat message; it goes out now if open, else when the channel opens."""
        if _utf8_len(text) > MAX_TEXT_BYTES:
            raise ValueError(f"text is over {MAX_TEXT_BYTES} bytes")
        message = Msg(new_id(), now_ms() if ts is None else ts, text, dm)
        self.unacked[message.id] = message
        if self.is_open:
            self._outgoing.append(encode(message))
        return message

    def send(self, message: ChannelMessage) -> None:
        """Send a control message (not acknowledged): now if open, else on open."""
        (self._outgoing if self.is_open else self._pending).append(encode(message))

    def opened(self) -> None:
        """The channel opened (again): everything unacknowledged goes out, in order."""
        self.is_open = True
        self._outgoing.extend(encode(m) for m in self.unacked.values())
        self._outgoing.extend(self._pending)
        self._pending.clear()

    def closed(self) -> None:
        """The channel closed: what was not handed out yet waits for the next open."""
        self.is_open = False
        self._outgoing.clear()

    def data_to_send(self) -> list[str]:
        out, self._outgoing = self._outgoing, []
        return out

    def typing_shown(self, now: float) -> bool:
        """Whether the peer's typing indicator shows at ``now`` (a monotonic time)."""
        return now < self._typing_until

    def receive(self, data: str | bytes, now: float = 0.0) -> list[ChatEvent]:
        """Handle one received message; never raises."""
        try:
            parsed = parse(data)
        except Ignored as exc:
            return [IgnoredInput(exc.reason)]
        events: list[ChatEvent] = []
        if parsed.unknown_fields:
            names = ", ".join(parsed.unknown_fields)
            events.append(IgnoredInput(f"ignored unknown field(s) {names}"))
        message = parsed.message
        if isinstance(message, Msg):
            self._outgoing.append(encode(Ack(message.id)))
            duplicate = message.id in self._seen
            if not duplicate:
                self._seen[message.id] = None
                while len(self._seen) > SEEN_IDS:
                    self._seen.popitem(last=False)
            events.append(Received(message, duplicate))
        elif isinstance(message, Ack):
            # An ack of an unknown id is normal: a message resent after a reconnect
            # is acknowledged twice.
            if self.unacked.pop(message.id, None) is not None:
                events.append(Delivered(message.id))
        elif isinstance(message, Typing):
            self._typing_until = now + TYPING_TIMEOUT if message.on else 0.0
            events.append(TypingChanged(message.on))
        else:
            events.append(FileControlReceived(message))
        return events
