"""The mesh: one :class:`~client_py.peer.PeerLink` per other peer of the room.

:class:`Room` joins through :class:`~client_py.signaling.SignalingClient`,
seals and opens signaling payloads in password rooms, starts connections as
the newcomer (to every peer of its ``welcome``) and answers the ones that
newcomers start, and reports everything as :mod:`client_py.events` on
:attr:`Room.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import deque
from pathlib import Path
from typing import Any, Final

from aiortc.rtcdtlstransport import RTCCertificate

from . import events as ev
from .channel import FileOffer
from .crypto import derive_key, open_payload, seal_payload
from .errors import SealError
from .files import ReceiveLimits, refusal, safe_filename
from .natcheck import usable_ice_servers
from .peer import PeerLink, ice_configuration
from .signaling import (
    Closed,
    Disconnected,
    IceServers,
    PeerJoined,
    PeerLeft,
    Relayed,
    ServerError,
    SignalingClient,
    Welcome,
)
from .transfers import Declined

__all__ = ["HISTORY", "SUFFIX_LENGTH", "Room"]

logger = logging.getLogger(__name__)

#: Events kept in :attr:`Room.history` (for ``/peers`` and for tests).
HISTORY: Final = 10_000
#: Hex digits of the peer id that tell apart two peers of one name ("Bob#3f2a").
SUFFIX_LENGTH: Final = 4


class Room:
    """A room of the mesh, seen from this peer."""

    def __init__(
        self,
        url: str,
        room: str,
        name: str,
        *,
        password: str | None = None,
        relay: bool = False,
        receive_dir: Path | None = None,
        limits: ReceiveLimits | None = None,
    ) -> None:
        self.room = room
        self.name = name
        self.relay = relay
        self.receive_dir = receive_dir
        self.limits = limits or ReceiveLimits()
        self.signaling = SignalingClient(url, room, name)
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.history: deque[ev.Event] = deque(maxlen=HISTORY)
        self.peers: dict[str, PeerLink] = {}
        self.names: dict[str, str] = {}
        self.certificate = RTCCertificate.generateCertificate()
        self._password = password
        self._key: bytes | None = None
        self._ice: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self.my_id: str | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> Welcome:
        """Join the room (deriving the room key first, off the event loop)."""
        if self._password is not None:
            loop = asyncio.get_running_loop()
            self._key = await loop.run_in_executor(None, derive_key, self._password, self.room)
            self._password = None
        welcome = await self.signaling.start()
        self._task = asyncio.create_task(self._run())
        return welcome

    async def close(self) -> None:
        """Leave: let the last messages out, then close every connection and the signaling."""
        await asyncio.gather(*(link.drain() for link in self.peers.values()))
        await self.signaling.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*(link.close() for link in self.peers.values()))
        self.peers.clear()

    def _emit(self, event: ev.Event) -> None:
        self.history.append(event)
        self.events.put_nowait(event)

    async def _run(self) -> None:
        while True:
            event = await self.signaling.events.get()
            try:
                await self._handle(event)
            except Exception:  # noqa: BLE001 - one bad event must not end the room
                logger.exception("handling %r failed", event)

    async def _handle(self, event: object) -> None:
        if isinstance(event, Welcome):
            await self._welcome(event)
        elif isinstance(event, IceServers):
            # Renewed TURN credentials: connections made from now on use them.
            self._ice = await usable_ice_servers(event.ice_servers)
        elif isinstance(event, PeerJoined):
            self.names[event.peer.id] = event.peer.name
            self._link(event.peer.id)
            self._emit(ev.PeerJoined(event.peer.id, event.peer.name))
        elif isinstance(event, PeerLeft):
            await self._drop(event.id)
        elif isinstance(event, Relayed):
            await self._relayed(event)
        elif isinstance(event, ServerError):
            self._emit(ev.SignalingState("error", f"{event.code}: {event.message}"))
        elif isinstance(event, Disconnected):
            self._emit(ev.SignalingState("disconnected", f"reconnecting in {event.delay:.1f} s"))
        elif isinstance(event, Closed):
            self._emit(ev.SignalingState("closed", event.reason))

    async def _welcome(self, welcome: Welcome) -> None:
        # TURN over TCP only, when UDP does not reach the server (natcheck.py).
        self._ice = await usable_ice_servers(welcome.ice_servers)
        fresh = welcome.id != self.my_id
        if fresh and self.my_id is not None:
            # The server gave us a new id: to the others we are a newcomer now.
            for peer_id in list(self.peers):
                await self._drop(peer_id, announce=False)
        self.my_id = welcome.id
        listed = {p.id for p in welcome.peers}
        for peer_id in [p for p in self.peers if p not in listed]:
            await self._drop(peer_id)
        new: list[PeerLink] = []
        for info in welcome.peers:
            known = info.id in self.peers
            self.names[info.id] = info.name
            link = self._link(info.id)
            if fresh and not known:
                new.append(link)
        # Who is here, each one shown so that two of one name can be told apart.
        here = tuple(self.label(p.id) for p in welcome.peers)
        self._emit(ev.Joined(welcome.id, welcome.room, welcome.resumed, here))
        for link in new:
            link.begin()  # the newcomer starts the connection to every peer of its welcome

    def _link(self, peer_id: str) -> PeerLink:
        link = self.peers.get(peer_id)
        if link is None:
            assert self.my_id is not None
            link = PeerLink(
                my_id=self.my_id,
                peer_id=peer_id,
                name=self.names.get(peer_id, "?"),
                configuration=ice_configuration(self._ice, relay=self.relay),
                certificate=self.certificate,
                signal=lambda kind, value: self._signal(peer_id, kind, value),
                emit=self._emit,
                accept_file=self._accept_file,
            )
            self.peers[peer_id] = link
        return link

    async def _drop(self, peer_id: str, *, announce: bool = True) -> None:
        link = self.peers.pop(peer_id, None)
        if link is not None:
            await link.close()
        if announce:
            self._emit(ev.PeerLeft(peer_id, self.names.get(peer_id, "?")))

    async def _signal(self, peer_id: str, kind: str, value: Any) -> None:
        payload = value
        if self._key is not None:
            assert self.my_id is not None
            payload = seal_payload(self._key, kind, self.my_id, peer_id, value)
        await self.signaling.send(kind, peer_id, payload)

    async def _relayed(self, event: Relayed) -> None:
        link = self.peers.get(event.sender)
        if link is None:
            logger.info("signal from %s, who is not in our peer list", event.sender)
            link = self._link(event.sender)
        assert self.my_id is not None
        try:
            value = open_payload(self._key, event.type, event.sender, self.my_id, event.payload)
        except SealError as exc:
            link.fail(str(exc))
            if event.type == "offer" and not link.refusal_sent:
                # Tell the offerer too, as the browser does: one end-of-candidates in our
                # own form, which it cannot open either, so it stops and says why.
                link.refusal_sent = True
                await self._signal(event.sender, "candidate", None)
            return
        link.deliver(event.type, value)

    def _accept_file(self, peer_id: str, offer: FileOffer) -> Path | Declined:
        if self.receive_dir is None:
            return Declined("no --receive-dir")
        try:
            self.receive_dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.receive_dir).free
        except OSError as exc:
            return Declined(f"cannot use --receive-dir: {exc.strerror or exc}")
        link = self.peers.get(peer_id)
        receiving = link.files.receiving() if link is not None else []
        # What files still arriving (from anyone) will take is not free any more.
        for other in self.peers.values():
            free -= sum(t.offer.size - t.received for t in other.files.receiving())
        reason = refusal(offer, receiving=len(receiving), free=free, limits=self.limits)
        if reason is not None:
            return Declined(reason)
        name = safe_filename(offer.name)
        stem, dot, suffix = name.partition(".")
        path = self.receive_dir / name
        n = 1
        while path.exists() or path.with_name(path.name + ".part").exists():
            path = self.receive_dir / f"{stem} ({n}){dot}{suffix}"
            n += 1
        return path

    # -- what the user does --------------------------------------------------------------

    def label(self, peer_id: str) -> str:
        """How we show and address a peer: its name, and when another peer here has the
        same name, ``#`` and the shortest id prefix (at least :data:`SUFFIX_LENGTH`
        digits) that no such twin shares (docs/PROTOCOL.md, "Two peers with one name")."""
        name = self.names.get(peer_id, "?")
        twins = [p for p in self.peers if p != peer_id and self.names.get(p) == name]
        if not twins:
            return name
        n = SUFFIX_LENGTH
        while n < len(peer_id) and any(t.startswith(peer_id[:n]) for t in twins):
            n += 1
        return f"{name}#{peer_id[:n]}"

    def labels(self) -> dict[str, str]:
        """Every peer's :meth:`label`, by peer id."""
        return {peer_id: self.label(peer_id) for peer_id in self.peers}

    def find(self, who: str) -> PeerLink | None:
        """The peer ``who``: an id, a name, or a name with ``#`` and an id prefix.

        Raises LookupError when a name belongs to more than one peer: a message meant
        for one Bob must not go to another."""
        if who in self.peers:
            return self.peers[who]
        named = [p for p in self.peers if self.names.get(p) == who]
        if not named and "#" in who:
            name, _, prefix = who.rpartition("#")
            named = [p for p in self.peers if self.names.get(p) == name and p.startswith(prefix)]
        if len(named) > 1:
            which = ", ".join(sorted(self.label(p) for p in named))
            raise LookupError(f"{len(named)} peers are called {who!r}: say which, {which}")
        return self.peers[named[0]] if named else None

    def send_text(self, text: str, to: str | None = None) -> list[str]:
        """Send to the room (one copy per peer), or a direct message to peer ``to``."""
        if to is not None:
            link = self.find(to)
            if link is None:
                raise LookupError(f"no peer called {to!r} in the room")
            return [link.send_text(text, dm=True)]
        return [link.send_text(text) for link in self.peers.values()]

    async def send_file(self, path: Path, to: str | None = None) -> list[str]:
        """Offer a file to the room (each peer) or to peer ``to``."""
        if to is not None:
            link = self.find(to)
            if link is None:
                raise LookupError(f"no peer called {to!r} in the room")
            return [await link.send_file(path, dm=True)]
        return [await link.send_file(path) for link in list(self.peers.values())]

    def safety_numbers(self) -> dict[str, str | None]:
        """The safety number with each peer (None until connected), by :meth:`label`."""
        return {self.label(pid): link.safety_number for pid, link in self.peers.items()}
