"""One RTCPeerConnection with one peer of the room, on aiortc.

Negotiation follows "perfect negotiation": the peer with the smaller id is
polite. aiortc has neither rollback nor ICE restart, so where the browser
would roll back (a polite peer whose offer collided) or restart ICE (a failed
or renegotiated connection), this side starts a fresh RTCPeerConnection
instead. Every connection of one client presents the same DTLS certificate,
so a fresh connection keeps the safety number.

aiortc puts all of its candidates in the SDP once gathering ends (it does
not trickle), and accepts the browser's trickled candidates through
``addIceCandidate``; ones that arrive before the remote description wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.sdp import candidate_from_sdp

from . import events as ev
from . import ice_triggered
from .channel import (
    CHAT_CHANNEL_ID,
    CHAT_LABEL,
    ChatLink,
    Delivered,
    FileControlReceived,
    IgnoredInput,
    Received,
    TypingChanged,
)
from .files import (
    IncomingTransfer,
    OutgoingTransfer,
)
from .safety import local_fingerprint, remote_fingerprint, safety_number
from .transfers import AcceptFn, Transfers, contained

# Relay-only setups in one round trip instead of one ICE retransmission (500 ms).
ice_triggered.install()

__all__ = ["CONNECT_TIMEOUT", "PeerLink", "ice_configuration"]

logger = logging.getLogger(__name__)

#: Seconds from the start of a negotiation to an open chat channel before we give
#: up on that connection and start a fresh one (aiortc's connect() has no timeout).
CONNECT_TIMEOUT: Final = 20.0
#: A polite peer whose connection failed waits this long for the other's fresh offer.
RECOVER_WAIT: Final = 3.0
#: Seconds :meth:`PeerLink.drain` waits for the last messages to be acknowledged.
DRAIN_TIMEOUT: Final = 2.0
#: Fresh connections tried in a row before the peer is given up (until it rejoins).
MAX_RECOVERIES: Final = 5
#: Reasons for ignored input kept per peer (the count goes on; a flood cannot grow memory).
IGNORED_KEPT: Final = 100

SignalFn = Callable[[str, Any], Awaitable[None]]
EmitFn = Callable[[ev.Event], None]


def parse_candidate(value: Any) -> RTCIceCandidate | None:
    """A trickled candidate (``RTCIceCandidate.toJSON()``) for aiortc; None is the end
    of candidates (so is an empty ``candidate``). Raises ValueError for anything else."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("candidate"), str):
        raise ValueError("candidate is not an object with a 'candidate' string")
    text = value["candidate"]
    if not text:
        return None
    try:
        candidate = candidate_from_sdp(text.split(":", 1)[1] if ":" in text else text)
    except Exception as exc:  # noqa: BLE001 - aiortc's parser asserts, indexes, converts
        raise ValueError(f"unreadable candidate {text[:100]!r}") from exc
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # one m-line: it can only be that one
    return candidate


def session_of(sdp: str) -> str:
    """The ``o=`` line's session id, which stays the same for one connection."""
    for line in sdp.splitlines():
        if line.startswith("o="):
            parts = line.split()
            return parts[1] if len(parts) > 1 else ""
    return ""


def selected_candidates(pc: RTCPeerConnection | None) -> tuple[Any, Any] | None:
    """The local and remote candidate of the pair ICE nominated, or None before that.

    aiortc has no getStats pair for this, so it is read from aioice's connection;
    the types ("host", "srflx", "prflx", "relay") say whether the path is relayed.
    """
    if pc is None or pc.sctp is None:
        return None
    connection = pc.sctp.transport.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    return pair.local_candidate, pair.remote_candidate


def ice_configuration(ice_servers: list[dict[str, Any]], *, relay: bool) -> RTCConfiguration:
    """aiortc uses only the first STUN and the first TURN URL: pick them (UDP first)."""
    stun: str | None = None
    turn: tuple[str, str | None, str | None] | None = None
    for server in ice_servers:
        urls = server.get("urls")
        urls = [urls] if isinstance(urls, str) else list(urls or [])
        for url in urls:
            if not isinstance(url, str):
                continue
            if url.startswith("stun:") and stun is None:
                stun = url
            elif url.startswith(("turn:", "turns:")):
                better = turn is None or ("transport=tcp" in turn[0] and "transport=tcp" not in url)
                if better:
                    turn = (url, server.get("username"), server.get("credential"))
    servers = []
    if stun is not None:
        servers.append(RTCIceServer(urls=stun))
    if turn is not None:
        servers.append(RTCIceServer(urls=turn[0], username=turn[1], credential=turn[2]))
    policy = RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


class PeerLink:
    """Our side of the connection with one peer: negotiation, chat, files, safety."""

    def __init__(
        self,
        *,
        my_id: str,
        peer_id: str,
        name: str,
        configuration: RTCConfiguration,
        certificate: RTCCertificate,
        signal: SignalFn,
        emit: EmitFn,
        accept_file: AcceptFn,
    ) -> None:
        self.peer_id = peer_id
        self.name = name
        self.polite = my_id < peer_id
        self.configuration = configuration
        self.certificate = certificate
        self._signal = signal
        self._emit = emit
        self._accept_file = accept_file
        self.link = ChatLink()
        self.pc: RTCPeerConnection | None = None
        self.chat: RTCDataChannel | None = None
        self.safety_number: str | None = None
        self.safety_source: str | None = None
        self.connected = asyncio.Event()
        self.closed = False
        #: The latest reasons for input from this peer that we ignored, and how many in all.
        self.ignored: deque[str] = deque(maxlen=IGNORED_KEPT)
        self.ignored_count = 0
        #: Exceptions this peer's input raised in our handlers (caught at the channel).
        self.faults = 0
        #: A password refusal was sent to this peer (once is enough).
        self.refusal_sent = False
        self.files = Transfers(
            peer_id=peer_id,
            name=name,
            link=self.link,
            pc=lambda: self.pc,
            flush=self._flush,
            emit=emit,
            ignore=self._ignore,
            fault=self._fault,
            accept_file=accept_file,
        )
        self._generation = 0
        self._making_offer = False
        self._pending_candidates: list[RTCIceCandidate | None] = []
        self._timer: asyncio.TimerHandle | None = None
        self._recoveries = 0
        self._lost_generation = 0
        self._announced = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: set[asyncio.Future[None]] = set()
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    @property
    def outgoing(self) -> dict[str, OutgoingTransfer]:
        return self.files.outgoing

    @property
    def incoming(self) -> dict[str, IncomingTransfer]:
        return self.files.incoming

    async def send_file(self, path: Path, *, dm: bool = False, fid: str | None = None) -> str:
        """Offer ``path`` to this peer; the bytes go once the peer accepts."""
        return await self.files.send_file(path, dm=dm, fid=fid)

    def __repr__(self) -> str:
        return f"PeerLink({self.peer_id!r}, {self.name!r})"

    # -- the RTCPeerConnection --------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%r: task failed", self, exc_info=task.exception())

    def _new_pc(self) -> RTCPeerConnection:
        """A fresh connection (closing the old one) with the negotiated chat channel."""
        self._drop_pc()
        self._generation += 1
        generation = self._generation
        pc = RTCPeerConnection(self.configuration)
        # One certificate for every connection of this client (aiortc makes one per
        # connection and has no `certificates` option): the safety number then
        # survives a fresh connection, as the browser's does across ICE restarts.
        pc._RTCPeerConnection__certificates = [self.certificate]  # type: ignore[attr-defined]
        chat = pc.createDataChannel(CHAT_LABEL, negotiated=True, id=CHAT_CHANNEL_ID, ordered=True)
        self.pc, self.chat = pc, chat

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if generation != self._generation:
                return
            logger.debug("%r: connection %s", self, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                self._lost(generation, f"connection {pc.connectionState}")

        def on_datachannel(channel: RTCDataChannel) -> None:
            if generation == self._generation:
                self.files.channel(channel)

        pc.on("datachannel", contained("a data channel", on_datachannel, self._fault))

        @chat.on("open")
        def on_open() -> None:
            if generation == self._generation:
                self._chat_opened(pc)

        def on_message(data: str | bytes) -> None:
            if generation == self._generation:
                self._chat_message(data)

        chat.on("message", contained("a chat message", on_message, self._fault))

        @chat.on("close")
        def on_close() -> None:
            if generation == self._generation:
                self._chat_closed("chat channel closed")
                self._lost(generation, "chat channel closed")

        self._arm_timer()
        return pc

    def _drop_pc(self, *, close: bool = True) -> RTCPeerConnection | None:
        pc, self.pc, self.chat = self.pc, None, None
        self._pending_candidates.clear()
        self._making_offer = False
        if self.link.is_open:
            self._chat_closed("connection replaced")
        self.files.stop_sending()
        if pc is not None and close:
            # Never cancelled (a cancelled close leaves aiortc half-closed): awaited in close().
            closing = asyncio.ensure_future(pc.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closed_one)
        return pc

    def _closed_one(self, task: asyncio.Future[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.info("%r: closing a connection failed: %r", self, task.exception())

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        generation = self._generation
        self._timer = asyncio.get_running_loop().call_later(
            CONNECT_TIMEOUT, lambda: self._connect_timed_out(generation)
        )

    def _connect_timed_out(self, generation: int) -> None:
        if not self.link.is_open:
            self._lost(generation, f"no connection within {CONNECT_TIMEOUT:g} s")

    def _lost(self, generation: int, reason: str) -> None:
        """The connection of ``generation`` is gone: recover, once per connection."""
        if generation != self._generation or self.closed or generation == self._lost_generation:
            return
        self._lost_generation = generation
        self._spawn(self._recover(reason))

    async def _recover(self, reason: str) -> None:
        """A fresh connection: the impolite side offers, the polite one waits a little."""
        if self.closed:
            return
        if self._announced != self._generation:  # else _chat_closed has said so
            self._emit(ev.PeerDisconnected(self.peer_id, self.name, reason))
        self._recoveries += 1
        if self._recoveries > MAX_RECOVERIES:
            self.fail(f"giving up after {MAX_RECOVERIES} fresh connections: {reason}")
            return
        if self.polite:
            self._new_pc()
            generation = self._generation
            await asyncio.sleep(RECOVER_WAIT)
            if generation != self._generation or self.closed:
                return
            pc = self.pc
            if pc is not None and pc.signalingState == "stable" and pc.remoteDescription is None:
                await self.start(fresh=False)
        else:
            await self.start()

    def begin(self) -> None:
        """Start the connection in the background (see :meth:`start`)."""
        self._spawn(self.start())

    async def start(self, *, fresh: bool = True) -> None:
        """Offer a connection (the newcomer does this to every peer of its welcome)."""
        async with self._lock:
            if self.closed:
                return
            pc = self._new_pc() if fresh or self.pc is None else self.pc
            generation = self._generation
            self._making_offer = True
            try:
                await pc.setLocalDescription(await pc.createOffer())
            finally:
                if generation == self._generation:
                    self._making_offer = False
            if generation != self._generation:
                return  # a colliding offer replaced this connection meanwhile
            await self._signal("offer", pc.localDescription.sdp)

    def deliver(self, kind: str, value: Any) -> None:
        """Queue an offer, answer or candidate from the peer (opened if it was sealed);
        they are handled one at a time, in order."""
        if self.closed:
            return
        self._inbox.put_nowait((kind, value))
        if self._worker is None:
            self._worker = asyncio.ensure_future(self._work())

    async def _work(self) -> None:
        while not self.closed:
            kind, value = await self._inbox.get()
            await self.handle_signal(kind, value)

    async def handle_signal(self, kind: str, value: Any) -> None:
        """Handle one offer, answer or candidate now (see :meth:`deliver`)."""
        if self.closed:
            return
        try:
            if kind == "offer" and isinstance(value, str):
                await self._offer(value)
            elif kind == "answer" and isinstance(value, str):
                await self._answer(value)
            elif kind == "candidate":
                await self._candidate(value)
            else:
                self._ignore(f"{kind} with a payload of the wrong kind")
        except Exception as exc:  # noqa: BLE001
            # A broken description or candidate (aiortc raises ValueError, its own
            # InvalidStateError, ...) is the peer's fault and must not end this client.
            self._ignore(f"{kind} refused: {exc or repr(exc)}"[:300])

    async def _offer(self, sdp: str) -> None:
        if "\nm=application " not in sdp.replace("\r\n", "\n"):
            # aiortc would answer an offer without media; it is of no use to a chat.
            raise ValueError("no data channel (m=application) in the offer")
        pc = self.pc
        collision = self._making_offer or (pc is not None and pc.signalingState != "stable")
        if collision and not self.polite:
            logger.info("%r: ignoring a colliding offer (we are impolite)", self)
            return
        if (
            not collision
            and pc is not None
            and pc.remoteDescription is not None
            and session_of(pc.remoteDescription.sdp) == session_of(sdp)
        ):
            # The same session offered again: an ICE restart or a renegotiation, neither
            # of which aiortc can do. Answer with a fresh connection of our own instead
            # (a new session, which the other side takes as a new connection).
            logger.info("%r: renegotiation offered; starting a fresh connection", self)
            await self.start()
            return
        async with self._lock if not self._making_offer else contextlib.nullcontext():
            # No rollback in aiortc: a polite peer's colliding offer, and an offer of a new
            # session on a connection negotiated before, get a fresh connection.
            if pc is None or collision or pc.remoteDescription is not None:
                pc = self._new_pc()
            generation = self._generation
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self._flush_candidates(pc)
            await pc.setLocalDescription(await pc.createAnswer())
            if generation == self._generation:
                await self._signal("answer", pc.localDescription.sdp)

    async def _answer(self, sdp: str) -> None:
        pc = self.pc
        if pc is None or pc.signalingState != "have-local-offer":
            state = pc.signalingState if pc is not None else "no connection"
            self._ignore(f"an answer we did not ask for (signaling state {state})")
            return
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        await self._flush_candidates(pc)

    async def _candidate(self, value: Any) -> None:
        candidate = parse_candidate(value)  # raises ValueError for garbage: reported
        pc = self.pc
        if pc is None or pc.remoteDescription is None:
            self._pending_candidates.append(candidate)
            return
        await pc.addIceCandidate(candidate)

    async def _flush_candidates(self, pc: RTCPeerConnection) -> None:
        pending, self._pending_candidates = self._pending_candidates, []
        for candidate in pending:
            await pc.addIceCandidate(candidate)

    # -- the chat channel ---------------------------------------------------------

    def _flush(self) -> None:
        chat = self.chat
        frames = self.link.data_to_send()
        if chat is None or chat.readyState != "open":
            return
        for frame in frames:
            chat.send(frame)

    def _chat_opened(self, pc: RTCPeerConnection) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._recoveries = 0
        local = local_fingerprint(pc)
        remote = remote_fingerprint(pc)
        # No number rather than a stale one or one we cannot stand behind (safety.py).
        self.safety_number = self.safety_source = None
        if local is not None and remote is not None:
            self.safety_number = safety_number(local, remote[0])
            self.safety_source = remote[1]
        self.link.opened()
        # After a reconnect, the receiver accepts again with the bytes it kept.
        self.files.reopened()
        self._flush()
        self.connected.set()
        self._emit(
            ev.Connected(
                self.peer_id, self.name, self.safety_number or "", self.safety_source or ""
            )
        )

    def _chat_closed(self, reason: str) -> None:
        was_open = self.link.is_open
        self.link.closed()
        self.connected.clear()
        if was_open and not self.closed:
            self._announced = self._generation
            self._emit(ev.PeerDisconnected(self.peer_id, self.name, reason))

    def _ignore(self, reason: str) -> None:
        logger.info("%r: ignored: %s", self, reason)
        self.ignored.append(reason)
        self.ignored_count += 1
        self._emit(ev.IgnoredInput(self.peer_id, self.name, reason))

    def _fault(self, what: str, exc: Exception) -> None:
        """Our handler of ``what`` from this peer raised: a bug of ours the peer found.
        Counted and reported, and the connection goes on (see :func:`contained`)."""
        logger.warning("%r: handling %s failed", self, what, exc_info=exc)
        self.faults += 1
        self._ignore(f"handling {what} failed: {exc!r}"[:300])

    def _chat_message(self, data: str | bytes) -> None:
        loop = asyncio.get_running_loop()
        for event in self.link.receive(data, loop.time()):
            if isinstance(event, Received):
                if not event.duplicate:
                    m = event.message
                    self._emit(ev.Message(self.peer_id, self.name, m.id, m.text, m.dm, m.ts))
            elif isinstance(event, Delivered):
                self._emit(ev.Delivered(self.peer_id, self.name, event.id))
            elif isinstance(event, TypingChanged):
                self._emit(ev.Typing(self.peer_id, self.name, event.on))
            elif isinstance(event, IgnoredInput):
                self._ignore(event.reason)
            elif isinstance(event, FileControlReceived):
                self.files.control(event.message)
        self._flush()

    def send_text(self, text: str, *, dm: bool = False) -> str:
        """Send a chat message (queued until the channel is open); returns its id."""
        message = self.link.compose(text, dm=dm)
        self._flush()
        return message.id

    # -- the end ------------------------------------------------------------------------

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait (at most ``timeout``) until what we sent has been acknowledged by SCTP, so
        that a last ``ack`` or ``file-received`` is not lost when we leave right after."""
        pc = self.pc
        sctp = pc.sctp if pc is not None else None
        if sctp is None or self.chat is None or self.chat.readyState != "open":
            return

        def idle() -> bool:
            # aiortc keeps unsent and unacknowledged chunks in these queues.
            return (
                self.chat is None
                or self.chat.bufferedAmount == 0
                and not getattr(sctp, "_outbound_queue", ())
                and not getattr(sctp, "_sent_queue", ())
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not idle() and loop.time() < deadline:
            await asyncio.sleep(0.01)  # no event for "acknowledged": poll, with a deadline

    def fail(self, message: str) -> None:
        """Close this connection for good and say why (e.g. "wrong password")."""
        if self.closed:
            return
        self._emit(ev.PeerError(self.peer_id, self.name, message))
        self._spawn(self.close())

    async def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        pc = self._drop_pc(close=False)
        self.files.abandon()
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if pc is not None:
            await pc.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
