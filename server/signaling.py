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
from typing import Any

from .errors import ProtocolError
from .hub import JoinResult
from .protocol import (
    CloseCode,
    ErrorCode,
    Join,
    Signal,
    error_frame,
    ice_servers_frame,
    parse_client_frame,
    relayed_frame,
    welcome_frame,
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
    """Ask the hub to deliver ``frame`` to peer ``to`` of ``room`` (else ``relay_failed``)."""

    room: str
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


@dataclass(frozen=True, slots=True)
class _Member:
    """Who this session is, once the hub accepted its join."""

    peer_id: str
    room: str


#: What a client is told when the hub refuses its join, by error code.
_REFUSALS: dict[ErrorCode, str] = {
    ErrorCode.ROOM_FULL: "room {room!r} is full",
    ErrorCode.RATE_LIMITED: "too many joins from your address, wait a moment",
    ErrorCode.SIGNALING_DEGRADED: "signaling is degraded: try again soon",
}


class Session:
    """The signaling state of one client connection."""

    # One per open WebSocket, idle ones included (bench_signaling's idle row).
    __slots__ = ("limits", "state", "_member", "_pending_join", "_deadline", "_bucket")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.state = State.AWAITING_JOIN
        self._member: _Member | None = None
        #: The join the hub is deciding on, if any.
        self._pending_join: Join | None = None
        self._deadline = now + limits.join_timeout
        self._bucket = TokenBucket(limits.rate, limits.burst, now)

    @property
    def peer_id(self) -> str | None:
        return self._member.peer_id if self._member is not None else None

    @property
    def room(self) -> str | None:
        return self._member.room if self._member is not None else None

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
            if self.state is State.JOINED or self._pending_join is not None:
                return [Reply(error_frame(ErrorCode.ALREADY_JOINED, "this connection has joined"))]
            self._pending_join = message
            return [RequestJoin(message)]
        member = self._member
        if member is None or self.state is not State.JOINED:
            return [Reply(error_frame(ErrorCode.NOT_JOINED, "send 'join' first"))]
        if isinstance(message, Signal):
            if message.to == member.peer_id:
                return [Reply(error_frame(ErrorCode.UNKNOWN_PEER, "cannot signal yourself"))]
            # The server stamps the sender: a client can never choose its 'from'.
            try:
                frame = relayed_frame(message, member.peer_id)
            except ProtocolError as exc:
                # A payload too deeply nested to write out again.
                return [Reply(error_frame(exc.code, exc.message))]
            return [Relay(member.room, message.to, frame)]
        # What is left is a Leave (the parser returns nothing else).
        self._set_state(State.CLOSED)
        return [RequestLeave(), Close(CloseCode.NORMAL, "left")]

    def receive_binary(self) -> list[Action]:
        """Binary frames are not part of the protocol (RFC 6455 §7.4.1: 1003)."""
        self._set_state(State.CLOSED)
        return [Close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")]

    def joined(self, result: JoinResult, ice_servers: list[dict[str, Any]]) -> list[Action]:
        """The hub accepted the join: the welcome, then what was kept while it was away."""
        self._pending_join = None
        self._member = _Member(result.peer.id, result.room)
        self._set_state(State.JOINED)
        welcome = welcome_frame(
            result.peer.id,
            result.room,
            result.resume_token,
            [peer.as_json() for peer in result.peers],
            ice_servers,
            resumed=result.resumed,
        )
        return [Reply(welcome), *[Reply(frame) for frame in result.pending]]

    def ice_servers_renewed(self, ice_servers: list[dict[str, Any]]) -> list[Action]:
        """New TURN credentials for the client, if it is (still) in a room."""
        if self.state is not State.JOINED:
            return []
        return [Reply(ice_servers_frame(ice_servers))]

    def join_refused(self, code: ErrorCode) -> list[Action]:
        """The hub refused the join (room full, too many joins): the client may try again."""
        join, self._pending_join = self._pending_join, None
        room = join.room if join is not None else ""
        message = _REFUSALS.get(code, "join refused").format(room=room)
        return [Reply(error_frame(code, message))]

    def relay_failed(self, to: str) -> list[Action]:
        """The hub has no peer ``to`` in this room."""
        return [Reply(error_frame(ErrorCode.UNKNOWN_PEER, f"no peer {to[:64]!r} in this room"))]

    def check_deadline(self, now: float) -> list[Action]:
        """Close a connection that has not joined in time."""
        if (
            self.state is State.AWAITING_JOIN
            and self._pending_join is None
            and now >= self._deadline
        ):
            self._set_state(State.CLOSED)
            return [
                Reply(error_frame(ErrorCode.JOIN_TIMEOUT, "no join within the deadline")),
                Close(CloseCode.POLICY_VIOLATION, "join timeout"),
            ]
        return []

    def connection_lost(self) -> None:
        self._set_state(State.CLOSED)
