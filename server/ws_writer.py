"""The hand-written WebSocket frame writer: the only production code that goes around aiohttp.

The frames a connection receives during one turn of the event loop are framed
here (RFC 6455 §5.2: server frames are unmasked) and handed to the transport
in one write, instead of one ``WebSocketResponse.send_str`` each:
``send_str`` is a coroutine, so going through it costs a task switch and a
``write`` system call per frame, which was half of the server's time under
load (bench/bench_signaling.py). An idle connection then holds no task and no
queue object of its own.

Writing around aiohttp is only valid with the settings of
:func:`signaling_response`: ``compress=False``, so no permessage-deflate is
negotiated (RFC 7692 §6 would allow an uncompressed text frame anyway, since
RSV1 is clear, but nothing here should depend on that), and nothing else may
write data frames on that response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web

from .protocol import CloseCode

__all__ = ["CLOSE_TIMEOUT", "Closable", "Connection", "signaling_response", "text_frame"]

logger = logging.getLogger(__name__)

#: How long a close we started may take before the connection is dropped.
CLOSE_TIMEOUT = 5.0
#: Bytes the transport may hold unsent before frames wait in the send queue
#: instead (asyncio's default high-water mark for a transport's buffer).
WRITE_BUFFER_LIMIT = 64 * 1024
#: While frames wait for a client that does not read, how often to look again.
DRAIN_POLL = 0.01

_TEXT_FIN: Final = 0x81
_HEAD_16: Final = struct.Struct("!BBH").pack
_HEAD_64: Final = struct.Struct("!BBQ").pack


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame carrying ``text`` (RFC 6455 §5.2)."""
    data = text.encode("utf-8", "replace")
    size = len(data)
    if size < 126:
        return bytes((_TEXT_FIN, size)) + data
    if size < 65536:
        return _HEAD_16(_TEXT_FIN, 126, size) + data
    return _HEAD_64(_TEXT_FIN, 127, size) + data


class Closable(Protocol):
    """What a Connection needs of its ``WebSocketResponse``: the close handshake."""

    async def close(self, *, code: int, message: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class _CloseAfter:
    code: int
    reason: str


def signaling_response(*, heartbeat: float, max_message_size: int) -> web.WebSocketResponse:
    """The ``WebSocketResponse`` a :class:`Connection` may write around."""
    return web.WebSocketResponse(
        heartbeat=heartbeat,
        max_msg_size=max_message_size,
        # Signaling frames are small and mostly SDP: permessage-deflate would
        # cost CPU per frame and a zlib context per connection for little,
        # and Connection writes uncompressed frames itself.
        compress=False,
    )


class Connection:
    """One client's WebSocket and its bounded send queue (a hub Mailbox)."""

    __slots__ = (
        "ws",
        "was_replaced",
        "_transport",
        "_loop",
        "_queue_size",
        "_frames",
        "_flush_handle",
        "_close_after",
        "_closing",
        "_done",
    )

    def __init__(self, ws: Closable, transport: asyncio.Transport | None, queue_size: int) -> None:
        self.ws = ws
        self.was_replaced = False
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._queue_size = queue_size
        # Frames not yet handed to the transport: those of this turn of the
        # loop, or more while a client does not read.
        self._frames: list[str] = []
        self._flush_handle: asyncio.Handle | None = None
        self._close_after: _CloseAfter | None = None
        self._closing: asyncio.Future[bool] | None = None
        #: Nothing more is written (a close has begun).
        self._done = False

    def deliver(self, frame: str) -> None:
        if self._done or self._close_after is not None:
            return
        if len(self._frames) >= self._queue_size:
            logger.info("closing a connection whose send queue is full")
            self._close_now(CloseCode.TRY_AGAIN_LATER, "too slow")
            return
        self._frames.append(frame)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def replaced(self) -> None:
        self.was_replaced = True
        self._close_now(CloseCode.REPLACED, "resumed elsewhere")

    def close_after_queued(self, code: int, reason: str) -> None:
        """Close once the frames already queued (an error explaining why) are out."""
        if self._done or self._close_after is not None:
            return
        self._close_after = _CloseAfter(code, reason)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _close_now(self, code: int, reason: str) -> None:
        # Bypass the queue: the close must not wait behind frames it drops.
        self._done = True
        self._frames.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))

    def _flush(self) -> None:
        self._flush_handle = None
        if self._done:
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            # The client is gone; the read side sees it and ends the session.
            self._frames.clear()
            return
        if self._frames:
            if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                # The client does not read: keep the frames (the queue bound
                # applies) and look again soon.
                self._flush_handle = self._loop.call_later(DRAIN_POLL, self._flush)
                return
            frames, self._frames = self._frames, []
            if len(frames) == 1:
                transport.write(text_frame(frames[0]))
            else:
                transport.write(b"".join([text_frame(frame) for frame in frames]))
        if self._close_after is not None:
            close, self._close_after = self._close_after, None
            self._close_now(close.code, close.reason)

    async def stop(self) -> None:
        """Stop sending; a close that has begun is let finish (it ends the handshake)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._done = True
        self._frames.clear()
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._closing), CLOSE_TIMEOUT)
