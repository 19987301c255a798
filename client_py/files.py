"""File transfers, sans I/O (docs/PROTOCOL.md, "Files").

Control messages travel on the chat channel; the bytes on a channel labelled
``file:<fid>:<offset>`` that the sender opens after ``file-accept``. The two are
not ordered with each other, so the receiver finishes only once it holds
``size`` bytes *and* has the ``file-end`` with the SHA-256 of the whole file.

States, named as the web client names them (docs/vectors.json
``client_rules.transfer_states``; docs/PROTOCOL.md, "Client rules")::

    incoming:  OFFERED ─accept─▶ WAITING ─file channel─▶ RECEIVING ─size bytes + file-end─▶
                  │ decline         ▲   at offset 0        (or RESUMED     RECEIVED | FAILED
                  ▼                 │                       from offset > 0)
               DECLINED             └─accept again── INTERRUPTED ◀─channel closed─┘

    outgoing:  OFFERED ─file-accept─▶ SENDING (RESUMED from offset > 0) ─file-received─▶
                  │ file-decline         │ ▲ file-accept again                SENT | FAILED
                  ▼                      ▼ │
               DECLINED               INTERRUPTED (the channel closed before the end)

Either side may cancel any transfer that has not ended (CANCELLED). The sender
stays SENDING after its last byte and its ``file-end``, until ``file-received``.
After a reconnect the receiver accepts again with the bytes it kept, and the
sender resumes from that offset.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Final

from .channel import (
    ID_PATTERN,
    FileAccept,
    FileCancel,
    FileEnd,
    FileOffer,
    FileReceived,
)
from .errors import Ignored

__all__ = [
    "ACCEPTED",
    "CHUNK_SIZE",
    "FINAL_STATES",
    "FLOWING",
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_INCOMING_FILES",
    "MAX_INCOMING_SIZE",
    "MAX_NAME_BYTES",
    "IncomingTransfer",
    "OutgoingTransfer",
    "ReceiveLimits",
    "State",
    "file_label",
    "parse_file_label",
    "refusal",
    "safe_filename",
    "sha256_of_file",
]

logger = logging.getLogger(__name__)

#: Bytes per binary message: well under aiortc's 64 KiB max-message-size.
CHUNK_SIZE: Final = 16 * 1024
#: The sender pauses while ``bufferedAmount`` is over this ...
HIGH_WATER: Final = 1024 * 1024
#: ... until ``bufferedamountlow`` fires at this threshold.
LOW_WATER: Final = 256 * 1024
#: Largest file accepted from a peer, in bytes (``--max-file-size``).
MAX_INCOMING_SIZE: Final = 4 * 1024**3
#: Files received at once from one peer (``--max-incoming-files``); more offers are declined.
MAX_INCOMING_FILES: Final = 4
#: A received file's name is cut to this many bytes of UTF-8 (docs/vectors.json).
MAX_NAME_BYTES: Final = 200
#: Code points removed from file names: C0 and C1 controls, bidi marks and controls.
_REMOVED_FROM_NAMES: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
#: White space as JavaScript's ``trim()`` sees it (Python's ``strip()`` keeps U+FEFF).
_EDGE_SPACE: Final = re.compile(r"^[\s\ufeff]+|[\s\ufeff]+$")
LABEL_PREFIX: Final = "file:"
_LABEL: Final = re.compile(r"file:([A-Za-z0-9_-]{1,64}):(0|[1-9][0-9]{0,15})")


class State(enum.Enum):
    """A transfer's state; the values are the web client's words (docs/vectors.json)."""

    OFFERED = "offered"
    WAITING = "waiting"
    SENDING = "sending"
    RECEIVING = "receiving"
    RESUMED = "resumed"
    INTERRUPTED = "interrupted"
    SENT = "sent"
    RECEIVED = "received"
    FAILED = "failed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


FINAL_STATES: Final = frozenset(
    {State.SENT, State.RECEIVED, State.FAILED, State.DECLINED, State.CANCELLED}
)
#: Bytes are flowing (on a file channel) in these states.
FLOWING: Final = frozenset({State.SENDING, State.RECEIVING, State.RESUMED})
#: An incoming transfer we accepted that has not ended: it holds or expects bytes.
ACCEPTED: Final = frozenset({State.WAITING, State.RECEIVING, State.RESUMED, State.INTERRUPTED})


def file_label(fid: str, offset: int) -> str:
    return f"{LABEL_PREFIX}{fid}:{offset}"


def parse_file_label(label: str) -> tuple[str, int]:
    """``file:<fid>:<offset>`` → (fid, offset), or raise :class:`Ignored`."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise Ignored(f"data channel with an unknown label {label[:80]!r}")
    return match[1], int(match[2])


def safe_filename(name: str) -> str:
    """The name a received file is saved under (docs/vectors.json ``client_rules.file_name``).

    The base name only, without control or bidi control characters (a name must not
    read differently from what it is: ``invoice\u202egpj.exe``), and at most
    :data:`MAX_NAME_BYTES` of UTF-8, so that it fits every file system's 255-byte limit
    with room for a `` (n)`` and ``.part`` (ENAMETOOLONG used to cut the connection).
    """
    name = re.split(r"[/\\]", name)[-1]
    name = _REMOVED_FROM_NAMES.sub("", name)
    name = _EDGE_SPACE.sub("", name).lstrip(".")
    # Cut whole code points only; a lone surrogate (from a file system name) is dropped.
    name = name.encode("utf-8", "surrogatepass")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return name or "file"


@dataclass(frozen=True, slots=True)
class ReceiveLimits:
    """What we accept from a peer: the file size, and files in flight at once per peer."""

    max_size: int = MAX_INCOMING_SIZE
    max_files: int = MAX_INCOMING_FILES


def refusal(offer: FileOffer, *, receiving: int, free: int, limits: ReceiveLimits) -> str | None:
    """Why ``offer`` is declined, or None to accept it.

    ``receiving``: this peer's files still arriving; ``free``: bytes free on the disk
    less those that files still arriving will take.
    """
    if offer.size > limits.max_size:
        return f"{offer.size} bytes is over the limit of {limits.max_size} (--max-file-size)"
    if receiving >= limits.max_files:
        return f"already receiving {receiving} files from this peer (--max-incoming-files)"
    if offer.size > free:
        return f"{offer.size} bytes, but only {max(free, 0)} bytes free on the disk"
    return None


def sha256_of_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class IncomingTransfer:
    """A file a peer offered us; the I/O shell writes the bytes :meth:`data` accepts."""

    offer: FileOffer
    state: State = State.OFFERED
    received: int = 0
    expected_sha256: str | None = None
    ok: bool | None = None
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    @property
    def fid(self) -> str:
        return self.offer.fid

    def _set_state(self, state: State) -> None:
        logger.debug("incoming %s: %s -> %s", self.fid, self.state.value, state.value)
        self.state = state

    def accept(self) -> FileAccept:
        """Accept (or, after a reconnect, accept again) from the bytes we hold."""
        if self.state is not State.OFFERED and self.state not in ACCEPTED:
            raise ValueError(f"cannot accept a transfer that is {self.state.value}")
        if self.state not in FLOWING:  # bytes flowing keep flowing until a new channel
            self._set_state(State.WAITING)
        return FileAccept(self.fid, self.received)

    def decline(self) -> None:
        self._set_state(State.DECLINED)

    def channel_opened(self, offset: int) -> None:
        """A ``file:<fid>:<offset>`` channel opened; raise :class:`Ignored` if unwanted."""
        if self.state not in ACCEPTED:
            raise Ignored(f"file channel for a transfer that is {self.state.value}")
        if offset != self.received:
            raise Ignored(f"file channel from offset {offset}, but we hold {self.received}")
        self._set_state(State.RESUMED if offset else State.RECEIVING)

    def interrupted(self) -> None:
        """The file channel (or the whole connection) closed before the end."""
        if self.state in FLOWING:
            self._set_state(State.INTERRUPTED)

    def data(self, chunk: bytes) -> list[FileCancel | FileReceived]:
        """Bytes arrived. Returns what to send: a cancel (bytes beyond ``size``), the
        result (once complete), or nothing. The caller writes ``chunk`` only while
        :attr:`state` is still flowing after this call or is ``RECEIVED``/``FAILED``
        with :attr:`received` counting it."""
        if self.state not in FLOWING:
            return []
        if self.received + len(chunk) > self.offer.size:
            self._set_state(State.CANCELLED)
            return [FileCancel(self.fid)]
        self.received += len(chunk)
        self._digest.update(chunk)
        return self._maybe_finish()

    def end(self, message: FileEnd) -> list[FileCancel | FileReceived]:
        if self.state not in ACCEPTED:
            return []
        self.expected_sha256 = message.sha256
        return self._maybe_finish()

    def cancelled_by_peer(self) -> None:
        if self.state not in FINAL_STATES:
            self._set_state(State.CANCELLED)

    def cancel(self) -> FileCancel:
        self._set_state(State.CANCELLED)
        return FileCancel(self.fid)

    def fail(self) -> FileCancel:
        """The bytes could not be kept (disk full, a write failed): stop the sender."""
        self._set_state(State.FAILED)
        return FileCancel(self.fid)

    def _maybe_finish(self) -> list[FileCancel | FileReceived]:
        if self.received < self.offer.size or self.expected_sha256 is None:
            return []
        self.ok = self._digest.hexdigest() == self.expected_sha256
        self._set_state(State.RECEIVED if self.ok else State.FAILED)
        return [FileReceived(self.fid, self.ok)]


@dataclass
class OutgoingTransfer:
    """A file we offer to one peer."""

    offer: FileOffer
    path: str
    sha256: str
    state: State = State.OFFERED
    offset: int = 0
    ok: bool | None = None

    @property
    def fid(self) -> str:
        return self.offer.fid

    def _set_state(self, state: State) -> None:
        logger.debug("outgoing %s: %s -> %s", self.fid, self.state.value, state.value)
        self.state = state

    def accepted(self, message: FileAccept) -> int:
        """The peer accepts from ``offset``: send from there (raise :class:`Ignored` if not)."""
        if self.state in FINAL_STATES:
            raise Ignored(f"file-accept for a transfer that is {self.state.value}")
        if message.offset > self.offer.size:
            raise Ignored(f"file-accept offset {message.offset} is beyond the size")
        self.offset = message.offset
        self._set_state(State.RESUMED if message.offset else State.SENDING)
        return message.offset

    def sent_all(self) -> FileEnd:
        """Every byte is out: the hash goes; the state stays until ``file-received``."""
        return FileEnd(self.fid, self.sha256)

    def interrupted(self) -> None:
        """The file channel (or the whole connection) closed before the end."""
        if self.state in FLOWING:
            self._set_state(State.INTERRUPTED)

    def result(self, message: FileReceived) -> None:
        if self.state in FINAL_STATES:
            return
        self.ok = message.ok
        self._set_state(State.SENT if message.ok else State.FAILED)

    def declined(self) -> None:
        if self.state is State.OFFERED:
            self._set_state(State.DECLINED)

    def cancelled_by_peer(self) -> None:
        if self.state not in FINAL_STATES:
            self._set_state(State.CANCELLED)


def make_offer(fid: str, name: str, size: int, mime: str = "", dm: bool = False) -> FileOffer:
    if not ID_PATTERN.fullmatch(fid):
        raise ValueError("bad file id")
    return FileOffer(fid, safe_filename(name), size, mime, dm)
