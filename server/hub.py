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
"""

from __future__ import annotations

import asyncio
import secrets
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

from .errors import RoomFull
from .protocol import peer_joined_frame, peer_left_frame

__all__ = ["Hub", "HubStats", "JoinResult", "Mailbox", "MemoryHub", "PeerInfo"]

#: Frames kept for a peer in its grace period; older ones are dropped first.
PENDING_LIMIT: Final = 64


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
