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
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web

from .protocol import CloseCode

__all__ = ["CLOSE_TIMEOUT", "Closable", "Connection", "signaling_response", "text_frame"]

logger = logging.getLogger(__name__)

#: How long a close we started may take, and how long a closed connection's
#: unsent bytes may wait for a client that does not read, before the
#: transport is aborted (a plain close would keep the socket until the client
#: reads everything, which a hostile one never does).
CLOSE_TIMEOUT = 5.0
#: Bytes the transport may hold unsent (its high-water mark, asyncio's
#: default, set explicitly so that its pause_writing/resume_writing and this
#: module agree); frames beyond it wait in the connection instead. It also
#: caps each write, so a backlog never lands in the transport all at once.
WRITE_BUFFER_LIMIT = 64 * 1024
#: If the transport says it drained but still holds more than its limit (a
#: transport whose flow control differs), how often to look again.
DRAIN_POLL = 0.01

_FRAME_OVERHEAD: Final = 40
_LINGER_RESET: Final = struct.pack("ii", 1, 0)
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

    @property
    def closed(self) -> bool: ...

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
    """One client's WebSocket and what is held back for it (a hub Mailbox).

    Light load: a frame is written the moment it is delivered, when nothing is
    held back and the transport is under its limit (a frame per loop turn, as
    at light load, then costs no extra turn: issue 13, bench_signaling's
    latency rows). Frames that pile up in the same turn are written together
    at its end, in one system call. A client that does not read fills the
    transport to its limit; what comes after is held here, in bytes, until the
    transport drains (its protocol's resume_writing, through ``drained``).
    More than ``send_buffer`` bytes held back: the client is closed with 1013
    and may resume. What a non-reading client costs is so bounded by
    ``send_buffer`` plus about twice WRITE_BUFFER_LIMIT, however many frames
    its room sends it; a fast client reading a burst never comes near it.
    """

    __slots__ = (
        "ws",
        "was_replaced",
        "_transport",
        "_drained",
        "_loop",
        "_limit",
        "_held",
        "_held_bytes",
        "_turn",
        "_drain_task",
        "_close_after",
        "_closing",
        "_abort_handle",
        "_done",
    )

    def __init__(
        self,
        ws: Closable,
        transport: asyncio.Transport | None,
        *,
        send_buffer: int,
        drained: Callable[[], Awaitable[None]],
    ) -> None:
        self.ws = ws
        self.was_replaced = False
        self._transport = transport
        if transport is not None:
            transport.set_write_buffer_limits(high=WRITE_BUFFER_LIMIT)
        #: Returns once the transport is under its low-water mark again.
        self._drained = drained
        self._loop = asyncio.get_running_loop()
        self._limit = send_buffer
        #: Frames not yet handed to the transport (None: nothing), whole: a
        #: close may drop them and must not cut one in two.
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        #: The flush at the end of a turn in which something was written.
        self._turn: asyncio.Handle | None = None
        #: Waits for a transport over its limit to drain.
        self._drain_task: asyncio.Future[None] | None = None
        self._close_after: _CloseAfter | None = None
        self._closing: asyncio.Future[bool] | None = None
        self._abort_handle: asyncio.TimerHandle | None = None
        #: Nothing more is written (a close has begun).
        self._done = False

    @property
    def held(self) -> int:
        """Bytes held back for this client, not yet handed to the transport."""
        return self._held_bytes

    def deliver(self, frame: str) -> None:
        if self._done or self._close_after is not None:
            return
        data = text_frame(frame)
        held = self._held
        if held is None:
            transport = self._transport
            if self._turn is None and self._drain_task is None and transport is not None:
                if transport.is_closing():
                    # The client is gone; the read side sees it and ends the session.
                    return
                if transport.get_write_buffer_size() <= WRITE_BUFFER_LIMIT:
                    transport.write(data)
                    # Frames for this client later in this turn wait for its end.
                    self._turn = self._loop.call_soon(self._flush)
                    return
            held = self._held = []
        held.append(data)
        # Each frame also costs its object (about 40 bytes), which counts too.
        self._held_bytes += len(data) + _FRAME_OVERHEAD
        if self._held_bytes >= WRITE_BUFFER_LIMIT and self._drain_task is None:
            # A batch worth a write already: out with it, so that only what a
            # client does not read is ever held back, never a busy turn's frames.
            self._write_held()
        if self._held_bytes > self._limit:
            logger.info("closing a connection that holds %d unsent bytes", self._held_bytes)
            self._close_now(CloseCode.TRY_AGAIN_LATER, "too slow")
            return
        if self._turn is None and self._drain_task is None:
            self._turn = self._loop.call_soon(self._flush)

    def protocol_error(self, reason: str) -> None:
        """The client broke RFC 6455 itself: close with 1002 now, dropping what is held."""
        self._close_now(CloseCode.PROTOCOL_ERROR, reason)

    def replaced(self) -> None:
        self.was_replaced = True
        self._close_now(CloseCode.REPLACED, "resumed elsewhere")

    def close_after_queued(self, code: int, reason: str) -> None:
        """Close once the frames already queued (an error explaining why) are out."""
        if self._done or self._close_after is not None:
            return
        self._close_after = _CloseAfter(code, reason)
        if self._turn is None and self._drain_task is None:
            self._turn = self._loop.call_soon(self._flush)

    def _close_now(self, code: int, reason: str) -> None:
        # Bypass what is held: the close must not wait behind frames it drops.
        self._stop_sending()
        self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))
        # The close waits for the transport to drain; a client that does not
        # read never lets it, and the session would hang in its read.
        self._abort_later()

    def _stop_sending(self) -> None:
        self._done = True
        self._held = None
        self._held_bytes = 0
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        if self._drain_task is not None:
            self._drain_task.cancel()
            self._drain_task = None

    def _flush(self) -> None:
        """The end of a turn in which frames were delivered."""
        self._turn = None
        if self._done:
            return
        if self._held is not None and not self._write_held():
            return
        if self._close_after is not None:
            close, self._close_after = self._close_after, None
            self._close_now(close.code, close.reason)

    def _write_held(self) -> bool:
        """Hand held frames to the transport up to its limit; True if none are left."""
        transport = self._transport
        if transport is None or transport.is_closing():
            # The client is gone; the read side sees it and ends the session.
            self._held = None
            self._held_bytes = 0
            return True
        held = self._held
        while held:
            if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                # The client does not keep up: wait for resume_writing.
                if self._drain_task is None:
                    self._drain_task = asyncio.ensure_future(self._wait_drained())
                return False
            # Whole frames, at most the high-water mark a write (or one frame).
            count = size = 0
            for data in held:
                if count and size + len(data) > WRITE_BUFFER_LIMIT:
                    break
                count += 1
                size += len(data)
            transport.write(held[0] if count == 1 else b"".join(held[:count]))
            del held[:count]
            self._held_bytes -= size + count * _FRAME_OVERHEAD
        self._held = None
        return True

    async def _wait_drained(self) -> None:
        try:
            await self._drained()
        except ConnectionError:
            # The client is gone; the read side sees it and ends the session.
            pass
        self._drain_task = None
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self._turn = self._loop.call_later(DRAIN_POLL, self._flush)
        else:
            self._flush()

    def _abort_later(self) -> None:
        if self._abort_handle is None:
            self._abort_handle = self._loop.call_later(CLOSE_TIMEOUT, self._abort_if_stuck)

    def _abort_if_stuck(self) -> None:
        """Drop a connection whose close or unsent bytes outlived CLOSE_TIMEOUT."""
        self._abort_handle = None
        transport = self._transport
        if transport is None:
            return
        closing = self._closing
        if transport.get_write_buffer_size() > 0 or (closing is not None and not closing.done()):
            logger.info("aborting a connection that did not take its close in time")
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: a reset, so the kernel drops its unsent bytes too
                # (a plain close would keep sending them to a zero window).
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            transport.abort()

    async def finish(self) -> None:
        """The session ended: stop sending, close (1001 unless a close began), never hang."""
        if self._closing is None and not self.ws.closed:
            self._close_now(CloseCode.GOING_AWAY, "")
        self._stop_sending()
        if self._closing is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._closing), CLOSE_TIMEOUT)
            except TimeoutError:
                self._abort_if_stuck()
            except Exception:
                # The close failed: the transport is gone already.
                pass
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            # Closed (by either side, or by the heartbeat) with bytes unsent:
            # let a client that reads have them, then drop it.
            self._abort_later()
        elif self._abort_handle is not None:
            self._abort_handle.cancel()
            self._abort_handle = None
