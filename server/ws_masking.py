"""RFC 6455 §5.1: a server MUST close the connection when a client frame is not masked.

aiohttp's frame reader accepts unmasked client frames (tests/test_ws_conformance.py
showed it), so the bytes a client sends pass :class:`MaskCheck` first: it reads
only the frame headers (§5.2), skips the payloads, and reports the first
frame without the MASK bit. :class:`MaskGuard` is the thin shell: it stands
between the transport and aiohttp's protocol (``transport.set_protocol``), hands
every byte on unchanged while the frames are masked, and otherwise stops
reading and calls ``on_unmasked`` (the shell closes with 1002; the client's
close reply is not read, so the close times out and the connection is reset,
server/ws_writer.py's CLOSE_TIMEOUT).

Cost: reading the headers takes about a microsecond a frame, a few per cent
of what relaying one costs (measured with a 154-byte candidate frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

__all__ = ["MaskCheck", "MaskGuard"]

_MASK_BIT: Final = 0x80
_LENGTH_BITS: Final = 0x7F


class MaskCheck:
    """Frame headers in, "still masked?" out: a sans-I/O reader of headers only."""

    __slots__ = ("_header", "_skip", "failed")

    def __init__(self) -> None:
        #: The start of a header split across reads (at most 13 bytes).
        self._header = b""
        #: Payload bytes of the current frame still to come.
        self._skip = 0
        #: An unmasked frame was seen; nothing is read after it.
        self.failed = False

    def feed(self, data: bytes) -> bool:
        """Read ``data``; False once a frame without the MASK bit has begun."""
        if self.failed:
            return False
        size = len(data)
        position = min(self._skip, size)
        self._skip -= position
        if self._header:
            data = self._header + data[position:]
            size = len(data)
            position = 0
            self._header = b""
        while position < size:
            if size - position < 2:
                self._header = data[position:]
                return True
            second = data[position + 1]
            if not second & _MASK_BIT:
                self.failed = True
                return False
            length = second & _LENGTH_BITS
            # 2 bytes, then 0, 2 or 8 of extended length, then the 4-byte key.
            extra = 0 if length < 126 else (2 if length == 126 else 8)
            header = 2 + extra + 4
            if size - position < header:
                self._header = data[position:]
                return True
            if extra:
                length = int.from_bytes(data[position + 2 : position + 2 + extra], "big")
            position += header
            available = size - position
            if length > available:
                self._skip = length - available
                return True
            position += length
        return True


class MaskGuard(asyncio.Protocol):
    """Passes a connection's bytes to ``inner`` (aiohttp's protocol) while they are masked."""

    __slots__ = ("_inner", "_check", "_on_unmasked", "_transport")

    def __init__(
        self,
        inner: asyncio.BaseProtocol,
        transport: asyncio.Transport,
        on_unmasked: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._transport = transport
        self._check = MaskCheck()
        self._on_unmasked = on_unmasked

    @classmethod
    def install(cls, transport: asyncio.Transport, on_unmasked: Callable[[], None]) -> None:
        """Put a guard between ``transport`` and its protocol, from the next read on."""
        transport.set_protocol(cls(transport.get_protocol(), transport, on_unmasked))

    def data_received(self, data: bytes) -> None:
        if self._check.feed(data):
            self._inner.data_received(data)  # type: ignore[attr-defined]
        elif data:
            # The rest of this read and everything after it is not read.
            self._transport.pause_reading()
            on_unmasked, self._on_unmasked = self._on_unmasked, _nothing
            on_unmasked()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[attr-defined, no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _nothing() -> None:
    pass
