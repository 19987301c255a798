"""The thin WebSocket shell around the signaling core.

It reads frames, hands them to :class:`~server.signaling.Session`, carries out
the actions it returns through the :class:`~server.hub.Hub`, and writes frames.
Each connection has a bounded send queue drained by its own writer task, so a
slow client can hold up nobody but itself: when its queue is full it is closed
with 1013 and may reconnect (and resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .config import ServeConfig
from .errors import RoomFull
from .hub import Hub
from .protocol import CloseCode, ErrorCode, welcome_frame
from .signaling import Close, Limits, Relay, Reply, RequestJoin, RequestLeave, Session

__all__ = ["Connection", "run_session"]

logger = logging.getLogger(__name__)

#: How long a close we started may take before the connection is dropped.
CLOSE_TIMEOUT = 5.0

_CLEAN_CLOSES = frozenset({WSCloseCode.OK, WSCloseCode.GOING_AWAY})


@dataclass(frozen=True, slots=True)
class _CloseAfter:
    code: int
    reason: str


class Connection:
    """One client's WebSocket: its bounded send queue and writer (a hub Mailbox)."""

    def __init__(self, ws: web.WebSocketResponse, queue_size: int) -> None:
        self.ws = ws
        self._queue: asyncio.Queue[str | _CloseAfter] = asyncio.Queue(queue_size)
        self._writer = asyncio.create_task(self._write())
        self._closing_writer = False
        self._closing: asyncio.Future[bool] | None = None
        self.was_replaced = False

    def deliver(self, frame: str) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.info("closing a connection whose send queue is full")
            self._close_now(CloseCode.TRY_AGAIN_LATER, "too slow")

    def replaced(self) -> None:
        self.was_replaced = True
        self._close_now(CloseCode.REPLACED, "resumed elsewhere")

    def close_after_queued(self, code: int, reason: str) -> None:
        """Close once the frames already queued (an error explaining why) are out."""
        try:
            self._queue.put_nowait(_CloseAfter(code, reason))
        except asyncio.QueueFull:
            self._close_now(code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        # Bypass the queue: the close must not wait behind frames it drops.
        self._writer.cancel()
        self._closing = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _CloseAfter):
                    self._closing_writer = True
                    await self.ws.close(code=item.code, message=item.reason.encode())
                    return
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return

    async def stop(self) -> None:
        """Stop the writer; a close it has begun is let finish (it ends the handshake)."""
        if not self._closing_writer:
            self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._writer, CLOSE_TIMEOUT)
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing


async def run_session(
    request: web.Request,
    ws: web.WebSocketResponse,
    *,
    config: ServeConfig,
    hub: Hub,
    ice_servers: Any,
) -> None:
    """Serve one signaling connection until it closes."""
    loop = asyncio.get_running_loop()
    limits = Limits(rate=config.rate, burst=config.burst, join_timeout=config.join_timeout)
    session = Session(limits, loop.time())
    connection = Connection(ws, config.send_queue)
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
                if msg.type == WSMsgType.TEXT:
                    actions = session.receive_text(msg.data, loop.time())
                elif msg.type == WSMsgType.BINARY:
                    actions = session.receive_binary()
                else:
                    # CLOSE (the client said goodbye), CLOSING/CLOSED (we did,
                    # or the heartbeat found it dead) or ERROR (1009 too big).
                    clean = clean or (msg.type == WSMsgType.CLOSE and msg.data in _CLEAN_CLOSES)
                    break
            for action in actions:
                if isinstance(action, Reply):
                    connection.deliver(action.frame)
                elif isinstance(action, Relay):
                    assert session.room is not None
                    if not await hub.relay(session.room, action.to, action.frame):
                        for reply in session.relay_failed(action.to):
                            assert isinstance(reply, Reply)
                            connection.deliver(reply.frame)
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
