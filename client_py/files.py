"""File transfers, sans I/O (docs/PROTOCOL.md, "Files").

Control messages travel on the chat channel; the bytes on a channel labelled
``file:<fid>:<offset>`` that the sender opens after ``file-accept``. The two are
not ordered with each other, so the receiver finishes only once it holds
``size`` bytes *and* has the ``file-end`` with the SHA-256 of the whole file.

States::

    incoming:  OFFERED ─accept─▶ RECEIVING ─size bytes + file-end─▶ DONE | FAILED
                  │ decline          │ cancel / bytes beyond size
                  ▼                  ▼
               DECLINED          CANCELLED

    outgoing:  OFFERED ─file-accept─▶ SENDING ─all sent─▶ SENT ─file-received─▶ DONE | FAILED
                  │ file-decline        │ file-cancel (either side)
                  ▼                     ▼
               DECLINED             CANCELLED

After a reconnect the receiver accepts again with the bytes it kept, and the
sender resumes from that offset (``SENDING`` or ``SENT`` go back to ``SENDING``).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from .channel import (
    ID_PATTERN,
    MAX_FILE_NAME,
    FileAccept,
    FileCancel,
    FileEnd,
    FileOffer,
    FileReceived,
)
from .errors import Ignored

__all__ = [
    "CHUNK_SIZE",
    "HIGH_WATER",
    "LOW_WATER",
    "IncomingTransfer",
    "OutgoingTransfer",
    "State",
    "file_label",
    "parse_file_label",
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
LABEL_PREFIX: Final = "file:"
_LABEL: Final = re.compile(r"file:([A-Za-z0-9_-]{1,64}):(0|[1-9][0-9]{0,15})")


class State(enum.Enum):
    OFFERED = "offered"
    RECEIVING = "receiving"
    SENDING = "sending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


FINAL_STATES: Final = frozenset({State.DONE, State.FAILED, State.DECLINED, State.CANCELLED})


def file_label(fid: str, offset: int) -> str:
    return f"{LABEL_PREFIX}{fid}:{offset}"


def parse_file_label(label: str) -> tuple[str, int]:
    """``file:<fid>:<offset>`` → (fid, offset), or raise :class:`Ignored`."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise Ignored(f"data channel with an unknown label {label[:80]!r}")
    return match[1], int(match[2])


def safe_filename(name: str) -> str:
    """The base name only: no directories, path separators or control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip().lstrip(".")
    return name[:MAX_FILE_NAME] or "file"


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
        if self.state not in (State.OFFERED, State.RECEIVING):
            raise ValueError(f"cannot accept a transfer that is {self.state.value}")
        self._set_state(State.RECEIVING)
        return FileAccept(self.fid, self.received)

    def decline(self) -> None:
        self._set_state(State.DECLINED)

    def channel_opened(self, offset: int) -> None:
        """A ``file:<fid>:<offset>`` channel opened; raise :class:`Ignored` if unwanted."""
        if self.state is not State.RECEIVING:
            raise Ignored(f"file channel for a transfer that is {self.state.value}")
        if offset != self.received:
            raise Ignored(f"file channel from offset {offset}, but we hold {self.received}")

    def data(self, chunk: bytes) -> list[FileCancel | FileReceived]:
        """Bytes arrived. Returns what to send: a cancel (bytes beyond ``size``), the
        result (once complete), or nothing. The caller writes ``chunk`` only while
        :attr:`state` is still ``RECEIVING`` after this call or is ``DONE``/``FAILED``
        with :attr:`received` counting it."""
        if self.state is not State.RECEIVING:
            return []
        if self.received + len(chunk) > self.offer.size:
            self._set_state(State.CANCELLED)
            return [FileCancel(self.fid)]
        self.received += len(chunk)
        self._digest.update(chunk)
        return self._maybe_finish()

    def end(self, message: FileEnd) -> list[FileCancel | FileReceived]:
        if self.state is not State.RECEIVING:
            return []
        self.expected_sha256 = message.sha256
        return self._maybe_finish()

    def cancelled_by_peer(self) -> None:
        if self.state not in FINAL_STATES:
            self._set_state(State.CANCELLED)

    def cancel(self) -> FileCancel:
        self._set_state(State.CANCELLED)
        return FileCancel(self.fid)

    def _maybe_finish(self) -> list[FileCancel | FileReceived]:
        if self.received < self.offer.size or self.expected_sha256 is None:
            return []
        self.ok = self._digest.hexdigest() == self.expected_sha256
        self._set_state(State.DONE if self.ok else State.FAILED)
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
        if self.state not in (State.OFFERED, State.SENDING, State.SENT):
            raise Ignored(f"file-accept for a transfer that is {self.state.value}")
        if message.offset > self.offer.size:
            raise Ignored(f"file-accept offset {message.offset} is beyond the size")
        self.offset = message.offset
        self._set_state(State.SENDING)
        return message.offset

    def sent_all(self) -> FileEnd:
        self._set_state(State.SENT)
        return FileEnd(self.fid, self.sha256)

    def result(self, message: FileReceived) -> None:
        if self.state in FINAL_STATES:
            return
        self.ok = message.ok
        self._set_state(State.DONE if message.ok else State.FAILED)

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
