"""The sans-I/O signaling core: one :class:`Session` per WebSocket connection.

A session takes frames in and hands actions out ("reply with this", "ask the
hub to join", "relay this frame to that peer", "close with this code"). It
never touches a socket or the hub: ``server/ws.py`` carries the actions out,
so every rule here is tested with plain function calls (tests/test_signaling.py).

States (one place changes them, :meth:`Session._set_state`)::

    AWAITING_JOIN ──join accepted──▶ JOINED ──leave / close──▶ CLOSED
          │                                                       ▲
          └──────────── deadline passed / close ──────────────────┘
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from .errors import ProtocolError
from .protocol import (
    CloseCode,
    ErrorCode,
    Join,
    Leave,
    Signal,
    error_frame,
    parse_client_frame,
    relayed_frame,
)
from .ratelimit import TokenBucket

__all__ = [
    "Action",
    "Close",
    "Limits",
    "Relay",
    "Reply",
    "RequestJoin",
    "RequestLeave",
    "Session",
    "State",
    "TokenBucket",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits (each one a ``confide serve`` option, defaults in ServeConfig)."""

    #: Sustained frames per second a client may send (token bucket rate).
    rate: float
    #: Frames a client may send in a burst: joining a full room means an
    #: offer and a dozen trickled candidates for each of up to 15 peers.
    burst: int
    #: Seconds a new connection has to send its join.
    join_timeout: float


class State(Enum):
    AWAITING_JOIN = "awaiting-join"
    JOINED = "joined"
    CLOSED = "closed"


# Reply and Relay are not frozen: one is made per frame, and a frozen
# dataclass's __init__ (object.__setattr__ per field) is about 5x slower.
@dataclass(slots=True)
class Reply:
    """Send ``frame`` to this connection's own client."""

    frame: str


@dataclass(frozen=True, slots=True)
class RequestJoin:
    """Ask the hub to add this client to a room (then call ``joined`` or ``join_refused``)."""

    join: Join


@dataclass(slots=True)
class Relay:
    """Ask the hub to deliver ``frame`` to peer ``to`` of this session's room."""

    to: str
    frame: str


@dataclass(frozen=True, slots=True)
class RequestLeave:
    """Ask the hub to remove this peer from its room now (a clean leave)."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Reply | RequestJoin | Relay | RequestLeave | Close


class Session:
    """The signaling state of one client connection."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.state = State.AWAITING_JOIN
        self.peer_id: str | None = None
        self.room: str | None = None
        self._join_pending = False
        self._deadline = now + limits.join_timeout
        self._bucket = TokenBucket(limits.rate, limits.burst, now)

    def _set_state(self, state: State) -> None:
        logger.debug("session %s: %s -> %s", self.peer_id or "-", self.state.value, state.value)
        self.state = state

    @property
    def join_deadline(self) -> float:
        return self._deadline

    def receive_text(self, text: str, now: float) -> list[Action]:
        """Handle one text frame from the client."""
        if self.state is State.CLOSED:
            return []
        if not self._bucket.take(now):
            return [Reply(error_frame(ErrorCode.RATE_LIMITED, "too many messages, slow down"))]
        try:
            message = parse_client_frame(text)
        except ProtocolError as exc:
            return [Reply(error_frame(exc.code, exc.message))]
        if isinstance(message, Join):
            if self.state is State.JOINED or self._join_pending:
                return [Reply(error_frame(ErrorCode.ALREADY_JOINED, "this connection has joined"))]
            self._join_pending = True
            return [RequestJoin(message)]
        if self.state is not State.JOINED:
            return [Reply(error_frame(ErrorCode.NOT_JOINED, "send 'join' first"))]
        if isinstance(message, Signal):
            assert self.peer_id is not None
            if message.to == self.peer_id:
                return [Reply(error_frame(ErrorCode.UNKNOWN_PEER, "cannot signal yourself"))]
            # The server stamps the sender: a client can never choose its 'from'.
            try:
                frame = relayed_frame(message, self.peer_id)
            except ProtocolError as exc:
                # A payload too deeply nested to write out again.
                return [Reply(error_frame(exc.code, exc.message))]
            return [Relay(message.to, frame)]
        assert isinstance(message, Leave)
        self._set_state(State.CLOSED)
        return [RequestLeave(), Close(CloseCode.NORMAL, "left")]

    def receive_binary(self) -> list[Action]:
        """Binary frames are not part of the protocol (RFC 6455 §7.4.1: 1003)."""
        self._set_state(State.CLOSED)
        return [Close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")]

    def joined(self, peer_id: str, room: str) -> None:
        """The hub accepted the join; the shell sends the welcome."""
        self._join_pending = False
        self.peer_id = peer_id
        self.room = room
        self._set_state(State.JOINED)

    def join_refused(self, code: ErrorCode, message: str) -> list[Action]:
        """The hub refused the join (room full): the client may try another room."""
        self._join_pending = False
        return [Reply(error_frame(code, message))]

    def relay_failed(self, to: str) -> list[Action]:
        return [Reply(error_frame(ErrorCode.UNKNOWN_PEER, f"no peer {to[:64]!r} in this room"))]

    def check_deadline(self, now: float) -> list[Action]:
        """Close a connection that has not joined in time."""
        if self.state is State.AWAITING_JOIN and not self._join_pending and now >= self._deadline:
            self._set_state(State.CLOSED)
            return [
                Reply(error_frame(ErrorCode.JOIN_TIMEOUT, "no join within the deadline")),
                Close(CloseCode.POLICY_VIOLATION, "join timeout"),
            ]
        return []

    def connection_lost(self) -> None:
        self._set_state(State.CLOSED)
