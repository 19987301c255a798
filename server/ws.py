"""The thin WebSocket shell around the signaling core.

It reads frames, hands them to :class:`~server.signaling.Session`, carries out
the actions it returns through the :class:`~server.hub.Hub`, and writes frames
through its :class:`~server.ws_writer.Connection`, which bounds what is held
back for a client that does not read (so a slow client holds up nobody but
itself: past the bound it is closed with 1013 and may reconnect, and resume).
The per-address limits (open sockets, joins) live in the hub, so that every
process of a Redis hub counts the same address together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import WSCloseCode, WSMsgType, web

from .config import ServeConfig
from .errors import HubUnavailable, RoomFull
from .hub import Hub
from .protocol import ErrorCode, degraded_frame
from .signaling import Limits, Relay, Reply, RequestJoin, RequestLeave, Session
from .turn import ConnectionIce
from .ws_masking import MaskGuard
from .ws_writer import Connection

__all__ = ["run_session"]

_CLEAN_CLOSES = frozenset({WSCloseCode.OK, WSCloseCode.GOING_AWAY})


async def run_session(
    ws: web.WebSocketResponse,
    transport: asyncio.Transport | None,
    drained: Callable[[], Awaitable[None]],
    *,
    config: ServeConfig,
    hub: Hub,
    source: str,
    ice: ConnectionIce,
) -> None:
    """Serve one signaling connection until it closes.

    One loop: read a frame, hand it to the session, carry out the actions it
    returns. The hub's answers go back to the session, whose further actions
    are carried out in order before the next frame is read.
    """
    loop = asyncio.get_running_loop()
    limits = Limits(rate=config.rate, burst=config.burst, join_timeout=config.join_timeout)
    session = Session(limits, loop.time())
    connection = Connection(ws, transport, send_buffer=config.send_buffer, drained=drained)
    if transport is not None:
        # aiohttp reads unmasked client frames; RFC 6455 §5.1 says close.
        MaskGuard.install(transport, lambda: connection.protocol_error("unmasked frame"))
    clean = False
    renewal: _IceRenewal | None = None
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
            index = 0
            while index < len(actions):
                action = actions[index]
                index += 1
                # Relay first: it is nearly every frame.
                if isinstance(action, Relay):
                    try:
                        delivered = await hub.relay(action.room, action.to, action.frame)
                    except HubUnavailable:
                        actions[index:index] = [Reply(degraded_frame())]
                        continue
                    if not delivered:
                        actions[index:index] = session.relay_failed(action.to)
                elif isinstance(action, Reply):
                    connection.deliver(action.frame)
                elif isinstance(action, RequestJoin):
                    join = action.join
                    # Counted per address across connections (and processes):
                    # one join per connection would not slow a room scanner.
                    if not await hub.allow_join(
                        source, rate=config.join_rate, burst=config.join_burst
                    ):
                        actions[index:index] = session.join_refused(ErrorCode.RATE_LIMITED)
                        continue
                    try:
                        result = await hub.join(
                            join.room,
                            join.name,
                            connection,
                            capacity=config.room_capacity,
                            resume=join.resume,
                        )
                    except RoomFull:
                        actions[index:index] = session.join_refused(ErrorCode.ROOM_FULL)
                    except HubUnavailable:
                        actions[index:index] = session.join_refused(ErrorCode.SIGNALING_DEGRADED)
                    else:
                        actions[index:index] = session.joined(result, ice.servers())
                        if renewal is None and ice.renew_after is not None:
                            renewal = _IceRenewal(ice, ice.renew_after, session, connection)
                elif isinstance(action, RequestLeave):
                    clean = True
                else:
                    connection.close_after_queued(action.code, action.reason)
            # An idle connection keeps no frame it has sent (its welcome).
            actions.clear()
    finally:
        if renewal is not None:
            renewal.cancel()
        session.connection_lost()
        if session.room is not None and session.peer_id is not None:
            await hub.leave(
                session.room,
                session.peer_id,
                connection,
                clean=clean and not connection.was_replaced,
            )
        await connection.finish()


class _IceRenewal:
    """Sends a joined client new TURN credentials every ``interval`` seconds.

    An object made only when there are credentials to renew, rather than a
    closure in run_session, whose captured variables would cost every
    connection their cells (bench_signaling's idle row).
    """

    __slots__ = ("_ice", "_interval", "_session", "_connection", "_handle")

    def __init__(
        self, ice: ConnectionIce, interval: float, session: Session, connection: Connection
    ) -> None:
        self._ice = ice
        self._interval = interval
        self._session = session
        self._connection = connection
        self._handle = asyncio.get_running_loop().call_later(interval, self._renew)

    def _renew(self) -> None:
        for action in self._session.ice_servers_renewed(self._ice.servers()):
            if isinstance(action, Reply):
                self._connection.deliver(action.frame)
        self._handle = asyncio.get_running_loop().call_later(self._interval, self._renew)

    def cancel(self) -> None:
        self._handle.cancel()
