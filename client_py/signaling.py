"""The signaling WebSocket client (docs/PROTOCOL.md, "Signaling"), with resume and backoff.

:class:`SignalingClient` joins a room, hands what the server sends to the room
as events (an :class:`asyncio.Queue`), and sends offers, answers and
candidates. When the connection drops it reconnects with exponential backoff
and the ``resume`` token of its last ``welcome``, so the peer keeps its id
and the server hands over the frames queued meanwhile. Frames written while
disconnected wait (bounded) and go out after the next ``welcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_FACTOR",
    "BACKOFF_JITTER",
    "BACKOFF_MAX",
    "QUEUE_MAX",
    "Closed",
    "Disconnected",
    "IceServers",
    "PeerInfo",
    "PeerJoined",
    "PeerLeft",
    "Relayed",
    "ServerError",
    "SignalingClient",
    "SignalingEvent",
    "Welcome",
    "backoff_delay",
]

logger = logging.getLogger(__name__)

# The reconnect backoff both clients use (docs/vectors.json ``client_rules``,
# docs/PROTOCOL.md "Client rules"); tests may shorten BACKOFF_BASE and BACKOFF_MAX.
#: First reconnect delay in seconds ...
BACKOFF_BASE: Final = 0.25
#: ... multiplied by this after each failed attempt ...
BACKOFF_FACTOR: Final = 2
#: ... up to this many seconds ...
BACKOFF_MAX: Final = 8.0
#: ... and each delay times a random factor in this range, so that the clients of a
#: restarted server do not all come back in the same instant.
BACKOFF_JITTER: Final = (0.8, 1.2)
#: Seconds to wait for the WebSocket and then for the ``welcome``.
CONNECT_TIMEOUT: Final = 10.0
#: Frames held while disconnected; further ones are dropped (and counted).
QUEUE_MAX: Final = 200
#: Close codes after which reconnecting is pointless.
CLOSE_REPLACED: Final = 4001


@dataclass(frozen=True, slots=True)
class PeerInfo:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Welcome:
    id: str
    room: str
    resume: str
    resumed: bool
    peers: tuple[PeerInfo, ...]
    ice_servers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class IceServers:
    """Fresh ICE servers (TURN credentials renewed before they expire), for new connections."""

    ice_servers: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class PeerJoined:
    peer: PeerInfo


@dataclass(frozen=True, slots=True)
class PeerLeft:
    id: str


@dataclass(frozen=True, slots=True)
class Relayed:
    """An offer, answer or candidate from peer ``sender``; ``payload`` may be sealed."""

    type: str
    sender: str
    payload: Any


@dataclass(frozen=True, slots=True)
class ServerError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The WebSocket dropped; a reconnect follows after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class Closed:
    """Signaling is over for good (we left, or another connection took our id)."""

    reason: str


SignalingEvent = (
    Welcome | IceServers | PeerJoined | PeerLeft | Relayed | ServerError | Disconnected | Closed
)

_PAYLOAD: Final = {"offer": "sdp", "answer": "sdp", "candidate": "candidate"}


def _peer(data: Any) -> PeerInfo | None:
    if isinstance(data, dict) and isinstance(data.get("id"), str):
        name = data.get("name")
        return PeerInfo(data["id"], name if isinstance(name, str) else "?")
    return None


def parse_server_frame(text: str) -> SignalingEvent | None:
    """One server frame as an event, or None for anything unexpected (logged)."""
    try:
        data = json.loads(text)
    except ValueError:
        logger.warning("server sent a frame that is not JSON")
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "welcome":
        peers = tuple(p for p in map(_peer, data.get("peers") or ()) if p is not None)
        ice = data.get("iceServers")
        return Welcome(
            str(data.get("id")),
            str(data.get("room")),
            str(data.get("resume")),
            bool(data.get("resumed")),
            peers,
            ice if isinstance(ice, list) else [],
        )
    if kind == "ice-servers":
        ice = data.get("iceServers")
        return IceServers(ice) if isinstance(ice, list) else None
    if kind == "peer-joined":
        peer = _peer(data.get("peer"))
        return PeerJoined(peer) if peer else None
    if kind == "peer-left" and isinstance(data.get("id"), str):
        return PeerLeft(data["id"])
    if kind in _PAYLOAD and isinstance(data.get("from"), str):
        return Relayed(kind, data["from"], data.get(_PAYLOAD[kind]))
    if kind == "error":
        return ServerError(str(data.get("code")), str(data.get("message")))
    logger.info("ignoring a server frame of type %r", str(kind)[:32])
    return None


def backoff_delay(attempt: int, jitter: float) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based), ``jitter`` drawn from
    :data:`BACKOFF_JITTER`: ``min(max, base * factor ** attempt) * jitter``."""
    # The exponent stops growing once the cap is reached: 2**1100 is no float.
    growth = BACKOFF_FACTOR ** min(attempt, 64)
    return float(min(BACKOFF_MAX, BACKOFF_BASE * growth) * jitter)


class SignalingClient:
    """One peer's signaling connection; :attr:`events` receives what happens."""

    def __init__(self, url: str, room: str, name: str) -> None:
        self.url = url
        self.room = room
        self.name = name
        self.events: asyncio.Queue[SignalingEvent] = asyncio.Queue()
        self.welcome: Welcome | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbox: deque[str] = deque()
        #: Frames dropped because :data:`QUEUE_MAX` were held already.
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def id(self) -> str | None:
        return self.welcome.id if self.welcome else None

    async def start(self) -> Welcome:
        """Connect and join; raise OSError/TimeoutError if the first attempt fails."""
        self._session = aiohttp.ClientSession()
        try:
            await self._connect()
        except BaseException:
            await self._session.close()
            raise
        self._task = asyncio.create_task(self._run())
        assert self.welcome is not None
        return self.welcome

    async def _connect(self) -> None:
        assert self._session is not None
        join: dict[str, Any] = {"type": "join", "room": self.room, "name": self.name}
        if self.welcome is not None:
            join["resume"] = self.welcome.resume
        ws = await self._session.ws_connect(
            self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5.0), heartbeat=None,
            max_msg_size=1 << 20,
        )  # fmt: skip
        try:
            await ws.send_str(json.dumps(join))
            async with asyncio.timeout(CONNECT_TIMEOUT):
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise ConnectionError(f"signaling closed before welcome ({msg.data})")
                    event = parse_server_frame(msg.data)
                    if isinstance(event, Welcome):
                        break
                    if isinstance(event, ServerError):
                        raise ConnectionError(f"join refused: {event.code}: {event.message}")
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self.welcome = event
        self.connected.set()
        logger.info("joined room %s as %s (resumed: %s)", event.room, event.id, event.resumed)
        await self.events.put(event)
        while self._outbox:
            await ws.send_str(self._outbox.popleft())

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            ws = self._ws
            if ws is not None:
                attempt = 0
                close_code = await self._read(ws)
                self._ws = None
                self.connected.clear()
                if self._closing:
                    break
                if close_code == CLOSE_REPLACED:
                    await self.events.put(Closed("another connection resumed this peer"))
                    return
            delay = backoff_delay(attempt, random.uniform(*BACKOFF_JITTER))
            attempt += 1
            await self.events.put(Disconnected(delay))
            logger.info("signaling dropped; reconnecting in %.2f s", delay)
            await asyncio.sleep(delay)
            try:
                await self._connect()
                self.reconnects += 1
            except (OSError, TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                logger.info("signaling reconnect failed: %s", exc)
        await self.events.put(Closed("left the room"))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                event = parse_server_frame(msg.data)
                if event is not None:
                    await self.events.put(event)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                break
        return ws.close_code

    async def send(self, kind: str, to: str, payload: Any) -> None:
        """Send an offer, answer or candidate to peer ``to`` (kept while disconnected)."""
        frame = json.dumps({"type": kind, "to": to, _PAYLOAD[kind]: payload})
        ws = self._ws
        if ws is None or ws.closed:
            self._hold(frame)
            return
        try:
            await ws.send_str(frame)
        except (ConnectionError, RuntimeError):
            self._hold(frame)

    def _hold(self, frame: str) -> None:
        """Keep ``frame`` for the next connection, unless :data:`QUEUE_MAX` are held: then
        it is dropped, the newest first, so that what was queued stays in order."""
        if len(self._outbox) >= QUEUE_MAX:
            self.dropped += 1
            logger.info("signaling queue full (%d): frame dropped", QUEUE_MAX)
            return
        self._outbox.append(frame)

    def drop(self) -> None:
        """Cut the connection without a close frame, as a network failure would (tests)."""
        ws = self._ws
        if ws is not None:
            conn = ws._response.connection  # noqa: SLF001
            if conn is not None and conn.transport is not None:
                conn.transport.abort()

    async def close(self) -> None:
        """Leave the room (the others see ``peer-left`` at once) and stop."""
        self._closing = True
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str('{"type": "leave"}')
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
