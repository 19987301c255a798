"""Rooms and fan-out: the :class:`Hub` interface and its in-memory implementation.

The hub owns who is in which room, hands out the server-assigned peer ids and
resume tokens, and delivers frames to the peers' mailboxes. The interface is
asynchronous on purpose: a Redis-backed hub shares rooms between several
server processes, and its every call is a round trip. ``MemoryHub`` is the
single-process implementation; tests/test_hub.py is the contract both run.

Resume (docs/PROTOCOL.md, "Resume"): a peer whose connection drops without a
close frame stays in its room for a grace period. Frames addressed to it
meanwhile are kept (a bounded number) and handed over, after the welcome, when
it resumes with its token; when the grace period ends, the others are told it left.

Why the hub, not the signaling core, builds ``peer-joined`` and ``peer-left``:
they go to every other member of a room, and with several server processes
(a Redis hub) those members live on other processes, whose sessions this
process never sees. Only the hub knows the whole room, and a peer dropped by
a crashed process is announced by whichever process notices its presence
lapse. The core builds what goes to its own client (``welcome``, errors) and
the relayed frames; the hub builds what it fans out.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

from .errors import RoomFull
from .protocol import peer_joined_frame, peer_left_frame
from .ratelimit import KeyedRateLimiter, address_key

__all__ = [
    "JOIN_SOURCES",
    "PENDING_LIMIT",
    "Hub",
    "HubStats",
    "JoinResult",
    "Mailbox",
    "MemoryHub",
    "PeerInfo",
    "source_of",
]

#: Frames kept for a peer in its grace period; older ones are dropped first.
PENDING_LIMIT: Final = 64
#: Client addresses whose join rate one process tracks at once (a full table
#: refuses joins from new addresses until buckets refill: fail closed).
JOIN_SOURCES: Final = 65536


def source_of(host: str | None) -> str:
    """The key of a client address for per-address limits: IPv4 as is, IPv6 by its /64."""
    if host is None:
        # Not a socket peer (a test transport): all such count as one.
        return "-"
    try:
        key = address_key(host)
    except OSError:
        # Not an address (a proxy's header): bounded, so as a key it costs little.
        return host[:64]
    if isinstance(key, bytes):
        return socket.inet_ntop(socket.AF_INET6, key + bytes(8)) + "/64"
    return key


class Mailbox(Protocol):
    """Where the hub delivers a connected peer's frames (the ws shell's send queue)."""

    def deliver(self, frame: str) -> None:
        """Queue ``frame`` for sending; never blocks."""

    def replaced(self) -> None:
        """Another connection resumed this peer: close this one."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    id: str
    name: str

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class JoinResult:
    peer: PeerInfo
    room: str
    resume_token: str
    #: The other peers of the room, in the order they joined.
    peers: list[PeerInfo]
    #: True when a resume token reclaimed an earlier id.
    resumed: bool
    #: Frames kept for the peer while it was away, to send after the welcome.
    pending: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HubStats:
    rooms: int
    peers: int


class Hub(ABC):
    """Room membership and delivery, shared by every connection of a server."""

    #: What /healthz reports as the hub's kind.
    kind: ClassVar[str] = "memory"

    async def start(self) -> None:  # noqa: B027 - optional: most hubs have nothing to start
        """Start what runs in the background (the app's ``cleanup_ctx`` calls it)."""

    async def health(self) -> dict[str, Any]:
        """What /healthz reports about the hub."""
        return {"kind": self.kind}

    @abstractmethod
    async def join(
        self,
        room: str,
        name: str,
        mailbox: Mailbox,
        *,
        capacity: int,
        resume: str | None = None,
    ) -> JoinResult:
        """Add a peer (or reattach one by its resume token); raise RoomFull."""

    @abstractmethod
    async def relay(self, room: str, to: str, frame: str) -> bool:
        """Deliver ``frame`` to peer ``to`` of ``room``; False if there is no such peer."""

    @abstractmethod
    async def leave(self, room: str, peer_id: str, mailbox: Mailbox, *, clean: bool) -> None:
        """The connection behind ``mailbox`` ended.

        ``clean`` (a leave message or a close frame): the peer is gone now.
        Otherwise it may resume within the grace period. A mailbox that was
        already replaced by a resumed connection changes nothing.
        """

    # Per client address (``source``: see :func:`source_of`). Shared by every
    # process of a Redis hub, so a client cannot spread over processes.

    @abstractmethod
    async def open_connection(self, source: str, *, limit: int) -> bool:
        """Count one more WebSocket from ``source``; False (and not counted) if it has ``limit``."""

    @abstractmethod
    async def close_connection(self, source: str) -> None:
        """A WebSocket counted by ``open_connection`` ended."""

    @abstractmethod
    async def allow_join(self, source: str, *, rate: float, burst: int) -> bool:
        """Spend one of ``source``'s join tokens (a token bucket: ``rate``/s, ``burst``)."""

    @abstractmethod
    async def stats(self) -> HubStats: ...

    @abstractmethod
    async def close(self) -> None:
        """Stop timers and forget every room."""


@dataclass(eq=False, slots=True)
class _Member:
    info: PeerInfo
    token: str
    mailbox: Mailbox | None
    #: Frames kept while it is away; made on first use, as most peers never
    #: need one (a deque is ~600 bytes, per idle connection: bench_signaling).
    pending: deque[str] | None = None
    grace_timer: asyncio.TimerHandle | None = None


class MemoryHub(Hub):
    """The hub of a single server process."""

    def __init__(self, *, grace: float = 30.0) -> None:
        self.grace = grace
        # room -> peer id -> member; dicts keep join order for the peer list.
        self._rooms: dict[str, dict[str, _Member]] = {}
        self._tokens: dict[str, tuple[str, str]] = {}
        # source -> open WebSockets (only sources with at least one).
        self._connections: dict[str, int] = {}
        # (rate, burst) -> join buckets per source (in practice one entry).
        self._join_limiters: dict[tuple[float, int], KeyedRateLimiter] = {}

    async def join(
        self,
        room: str,
        name: str,
        mailbox: Mailbox,
        *,
        capacity: int,
        resume: str | None = None,
    ) -> JoinResult:
        members = self._rooms.get(room, {})
        if resume is not None:
            member = self._resumable(room, resume)
            if member is not None:
                return self._reattach(room, member, mailbox)
        if len(members) >= capacity:
            raise RoomFull(room)
        peer_id = self._new_id()
        token = secrets.token_urlsafe(24)
        member = _Member(PeerInfo(peer_id, name), token, mailbox)
        others = [m.info for m in members.values()]
        frame = peer_joined_frame(peer_id, name)
        for other in members.values():
            self._send(other, frame)
        self._rooms.setdefault(room, {})[peer_id] = member
        self._tokens[token] = (room, peer_id)
        return JoinResult(member.info, room, token, others, resumed=False)

    def _resumable(self, room: str, token: str) -> _Member | None:
        found = self._tokens.get(token)
        if found is None or found[0] != room:
            return None
        return self._rooms[room][found[1]]

    def _reattach(self, room: str, member: _Member, mailbox: Mailbox) -> JoinResult:
        if member.grace_timer is not None:
            member.grace_timer.cancel()
            member.grace_timer = None
        # A new token on every resume: one that leaked (a log, a shoulder)
        # works once at most, and its owner's next resume shows it was used.
        del self._tokens[member.token]
        member.token = secrets.token_urlsafe(24)
        self._tokens[member.token] = (room, member.info.id)
        old, member.mailbox = member.mailbox, mailbox
        if old is not None:
            old.replaced()
        pending = tuple(member.pending) if member.pending is not None else ()
        member.pending = None
        others = [m.info for m in self._rooms[room].values() if m is not member]
        return JoinResult(member.info, room, member.token, others, resumed=True, pending=pending)

    def _new_id(self) -> str:
        while True:
            # 64 random bits: unguessable, so an id alone grants nothing.
            peer_id = secrets.token_hex(8)
            if all(peer_id not in members for members in self._rooms.values()):
                return peer_id

    @staticmethod
    def _send(member: _Member, frame: str) -> None:
        if member.mailbox is not None:
            member.mailbox.deliver(frame)
        else:
            if member.pending is None:
                member.pending = deque(maxlen=PENDING_LIMIT)
            member.pending.append(frame)

    async def relay(self, room: str, to: str, frame: str) -> bool:
        member = self._rooms.get(room, {}).get(to)
        if member is None:
            return False
        self._send(member, frame)
        return True

    async def leave(self, room: str, peer_id: str, mailbox: Mailbox, *, clean: bool) -> None:
        member = self._rooms.get(room, {}).get(peer_id)
        if member is None or member.mailbox is not mailbox:
            return
        if clean:
            self._remove(room, member)
            return
        member.mailbox = None
        loop = asyncio.get_running_loop()
        member.grace_timer = loop.call_later(self.grace, self._grace_over, room, member)

    def _grace_over(self, room: str, member: _Member) -> None:
        member.grace_timer = None
        if member.mailbox is None and self._rooms.get(room, {}).get(member.info.id) is member:
            self._remove(room, member)

    def _remove(self, room: str, member: _Member) -> None:
        members = self._rooms[room]
        del members[member.info.id]
        self._tokens.pop(member.token, None)
        if member.grace_timer is not None:
            member.grace_timer.cancel()
        if not members:
            del self._rooms[room]
            return
        frame = peer_left_frame(member.info.id)
        for other in members.values():
            self._send(other, frame)

    async def open_connection(self, source: str, *, limit: int) -> bool:
        count = self._connections.get(source, 0)
        if count >= limit:
            return False
        self._connections[source] = count + 1
        return True

    async def close_connection(self, source: str) -> None:
        count = self._connections.get(source, 0) - 1
        if count > 0:
            self._connections[source] = count
        else:
            self._connections.pop(source, None)

    async def allow_join(self, source: str, *, rate: float, burst: int) -> bool:
        limiter = self._join_limiters.get((rate, burst))
        if limiter is None:
            limiter = KeyedRateLimiter(rate, burst, JOIN_SOURCES)
            self._join_limiters[(rate, burst)] = limiter
        return limiter.allow(source, asyncio.get_running_loop().time())

    async def stats(self) -> HubStats:
        return HubStats(
            rooms=len(self._rooms),
            peers=sum(len(members) for members in self._rooms.values()),
        )

    async def close(self) -> None:
        for members in self._rooms.values():
            for member in members.values():
                if member.grace_timer is not None:
                    member.grace_timer.cancel()
        self._rooms.clear()
        self._tokens.clear()
        self._connections.clear()
        self._join_limiters.clear()
