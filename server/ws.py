"""The thin WebSocket shell around the signaling core.

It reads frames, hands them to :class:`~server.signaling.Session`, carries out
the actions it returns through the :class:`~server.hub.Hub`, and writes frames.
Each connection has a bounded send queue, so a slow client can hold up nobody
but itself: when its queue is full it is closed with 1013 and may reconnect
(and resume).

The queue is drained by a callback, not by a writer task per connection:
``WebSocketResponse.send_str`` is a coroutine, so going through it costs a
task switch and a ``write`` system call per frame, which was half of the
server's time under load (bench/bench_signaling.py). The frames a connection
receives during one turn of the event loop are framed here (RFC 6455 §5.2,
server frames are unmasked and, being text frames without RSV1, are valid
uncompressed messages even when permessage-deflate was negotiated, RFC 7692
§6) and handed to the transport in one write. An idle connection then holds
no task and no queue object of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from .config import ServeConfig
from .errors import HubUnavailable, RoomFull
from .hub import Hub
from .protocol import CloseCode, ErrorCode, degraded_frame, welcome_frame
from .signaling import Close, Limits, Relay, Reply, RequestJoin, RequestLeave, Session

__all__ = ["Connection", "run_session"]

logger = logging.getLogger(__name__)

#: How long a close we started may take before the connection is dropped.
CLOSE_TIMEOUT = 5.0
#: Bytes the transport may hold unsent before frames wait in the send queue
#: instead (asyncio's default high-water mark for a transport's buffer).
WRITE_BUFFER_LIMIT = 64 * 1024
#: While frames wait for a client that does not read, how often to look again.
DRAIN_POLL = 0.01

_CLEAN_CLOSES = frozenset({WSCloseCode.OK, WSCloseCode.GOING_AWAY})

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


@dataclass(frozen=True, slots=True)
class _CloseAfter:
    code: int
    reason: str


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

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, queue_size: int
    ) -> None:
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


async def run_session(
    request: web.Request,
    ws: web.WebSocketResponse,
    *,
    config: ServeConfig,
    hub: Hub,
    ice_servers: Callable[[web.Request], list[dict[str, Any]]],
) -> None:
    """Serve one signaling connection until it closes."""
    loop = asyncio.get_running_loop()
    limits = Limits(rate=config.rate, burst=config.burst, join_timeout=config.join_timeout)
    session = Session(limits, loop.time())
    connection = Connection(ws, request.transport, config.send_queue)
    clean = False
    try:
        while not ws.closed:
            timeout = None
            if session.peer_id is None:
                timeout = max(0.0, session.join_deadline - loop.time())
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                actions = session.check_deadline(loop.time())
            else:
                if msg.type is WSMsgType.TEXT:
                    actions = session.receive_text(msg.data, loop.time())
                elif msg.type is WSMsgType.BINARY:
                    actions = session.receive_binary()
                else:
                    # CLOSE (the client said goodbye), CLOSING/CLOSED (we did,
                    # or the heartbeat found it dead) or ERROR (1009 too big).
                    clean = clean or (msg.type == WSMsgType.CLOSE and msg.data in _CLEAN_CLOSES)
                    break
            for action in actions:
                # Relay first: it is nearly every frame.
                if isinstance(action, Relay):
                    assert session.room is not None
                    try:
                        delivered = await hub.relay(session.room, action.to, action.frame)
                    except HubUnavailable:
                        connection.deliver(degraded_frame())
                        continue
                    if not delivered:
                        for reply in session.relay_failed(action.to):
                            assert isinstance(reply, Reply)
                            connection.deliver(reply.frame)
                elif isinstance(action, Reply):
                    connection.deliver(action.frame)
                elif isinstance(action, RequestJoin):
                    join = action.join
                    try:
                        result = await hub.join(
                            join.room,
                            join.name,
                            connection,
                            capacity=config.room_capacity,
                            resume=join.resume,
                        )
                    except RoomFull:
                        for reply in session.join_refused(
                            ErrorCode.ROOM_FULL, f"room {join.room!r} is full"
                        ):
                            assert isinstance(reply, Reply)
                            connection.deliver(reply.frame)
                        continue
                    except HubUnavailable:
                        for reply in session.join_refused(
                            ErrorCode.SIGNALING_DEGRADED, "signaling is degraded: try again soon"
                        ):
                            assert isinstance(reply, Reply)
                            connection.deliver(reply.frame)
                        continue
                    session.joined(result.peer.id, result.room)
                    connection.deliver(
                        welcome_frame(
                            result.peer.id,
                            result.room,
                            result.resume_token,
                            [peer.as_json() for peer in result.peers],
                            ice_servers(request),
                            resumed=result.resumed,
                        )
                    )
                    for frame in result.pending:
                        connection.deliver(frame)
                elif isinstance(action, RequestLeave):
                    clean = True
                elif isinstance(action, Close):
                    connection.close_after_queued(action.code, action.reason)
    finally:
        session.connection_lost()
        if session.room is not None and session.peer_id is not None:
            await hub.leave(
                session.room,
                session.peer_id,
                connection,
                clean=clean and not connection.was_replaced,
            )
        await connection.stop()
        if not ws.closed:
            await ws.close(code=CloseCode.GOING_AWAY)
