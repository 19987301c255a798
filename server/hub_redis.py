"""The Redis-backed :class:`~server.hub.Hub`: several server processes share rooms.

Each process has a random id, a presence key it refreshes every third of the
presence TTL, and one pub/sub channel. Membership lives in Redis and changes
only through the Lua scripts of :mod:`server.hub_redis_scripts` (one atomic
step each: capacity cannot be raced, a resume cannot cross a removal). A
frame for a peer held by another process is one ``PUBLISH`` to that process's
channel; a frame for a peer of this process is delivered directly. Relays
go out batched (:mod:`server.hub_redis_batch`).

Per client address, the open WebSockets are counted by each process in
Redis (a crashed process's counts go with its presence) and the join token
bucket is one for all processes; while Redis is away, each process applies
the limits to what it sees itself.

Presence: when a process's presence lapses (it crashed, or lost Redis for
longer than the TTL), any other process's refresher removes its peers and
announces them as left; until then they may resume on any process with their
tokens, and get the frames kept for them.

A Redis outage: calls that need Redis raise :class:`~server.errors.HubUnavailable`
(the client gets a ``signaling-degraded`` error frame), every local peer is
told once, frames between two peers of this process still flow, and a
supervisor reconnects with exponential backoff. Back online it first renews
its presence, then restores its peers (announcing them as joined only when
the others had been told they left: same Redis run, presence lapsed), and
announces the peers that left meanwhile.

Needs the ``redis`` package (the ``[redis]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import hub_redis_scripts as scripts
from .errors import HubUnavailable, RoomFull
from .hub import PENDING_LIMIT, Hub, HubStats, JoinResult, Mailbox, MemoryHub, PeerInfo
from .hub_redis_batch import ScriptBatcher
from .protocol import degraded_frame, peer_joined_frame, peer_left_frame

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "COMMAND_TIMEOUT", "RedisHub"]

logger = logging.getLogger(__name__)

#: First and longest wait between reconnection attempts (doubling, with jitter).
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
#: Seconds a Redis command or connection attempt may take before Redis counts
#: as unreachable.
COMMAND_TIMEOUT = 2.0
#: Connections to Redis per process (commands beyond that wait for one).
POOL_SIZE = 32
#: Seconds ``start`` waits for the first connection before serving degraded.
START_TIMEOUT = 5.0
#: Seconds a peer that left during an outage is remembered once Redis is back
#: empty, so that peers restored later by slower processes hear it left.
TOMBSTONE_TTL = 60.0
#: Attempts at a fresh id and token (a collision of 64 random bits: never, in practice).
ID_ATTEMPTS: Final = 8


@dataclass(eq=False, slots=True)
class _Local:
    """A peer this process holds: attached to a mailbox, or away in its grace period."""

    peer: PeerInfo
    room: str
    token: str
    conn: str
    mailbox: Mailbox
    #: False until ``join`` returns: frames meanwhile wait, to follow the welcome.
    ready: bool = False
    early: list[str] | None = None
    grace_timer: asyncio.TimerHandle | None = None


class RedisHub(Hub):
    """Rooms in Redis, shared by every process pointed at the same ``url`` and ``prefix``."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        grace: float = 30.0,
        presence_ttl: float = 5.0,
        prefix: str = "confide:",
    ) -> None:
        self.grace = grace
        self.presence_ttl = presence_ttl
        self.prefix = prefix
        self.proc = secrets.token_hex(8)
        # A bounded pool that queues callers: a burst of joins waits for a
        # connection instead of opening one each (redis-py then refuses with
        # "Too many connections": bench/bench_scaleout.py, 250 joins at once).
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_SIZE,
            # Waiting for a free connection is not an outage: no limit here;
            # an unreachable Redis shows in the socket timeouts below.
            timeout=None,
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT,
            # Outages are handled here (degraded, then a reconnect with backoff),
            # not hidden behind the client's own retries.
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis.from_pool(pool)
        self._join = self._redis.register_script(scripts.JOIN)
        relay = scripts.relay_script(prefix, self.proc, PENDING_LIMIT)
        self._relay = ScriptBatcher(self._redis, self._redis.register_script(relay))
        self._keep = ScriptBatcher(self._redis, self._redis.register_script(scripts.KEEP))
        self._set_away = self._redis.register_script(scripts.SET_AWAY)
        self._remove = self._redis.register_script(scripts.REMOVE)
        self._restore = self._redis.register_script(scripts.RESTORE)
        self._heartbeat = self._redis.register_script(scripts.HEARTBEAT)
        self._forget_proc = self._redis.register_script(scripts.FORGET_PROC)
        self._open_connection = self._redis.register_script(scripts.OPEN_CONNECTION)
        self._close_connection = self._redis.register_script(scripts.CLOSE_CONNECTION)
        self._set_connections = self._redis.register_script(scripts.SET_CONNECTIONS)
        self._allow_join = self._redis.register_script(scripts.ALLOW_JOIN)
        #: This process's open WebSockets per client address: the truth its
        #: count in Redis is restored from, and the limit while Redis is away.
        self._connections: dict[str, int] = {}
        #: Join buckets while Redis is away (per process, as a memory hub's).
        self._fallback = MemoryHub()
        self._conn_ids = itertools.count()
        #: Attached peers by id and by attachment.
        self._by_peer: dict[str, _Local] = {}
        self._by_conn: dict[str, _Local] = {}
        #: Peers in their grace period, by id and by their last attachment.
        self._away: dict[str, _Local] = {}
        self._away_conns: dict[str, _Local] = {}
        #: Peers that left while Redis was unreachable: announced once it is back.
        self._departed: list[_Local] = []
        #: Joins whose answer was lost with the connection: removed if they happened.
        self._unsure: list[_Local] = []
        self._up = False
        self._connected = asyncio.Event()
        self._broken = asyncio.Event()
        self._run_id: str | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Connect (or go on degraded, reconnecting) and keep presence alive until ``close``."""
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-hub")
        try:
            await asyncio.wait_for(asyncio.shield(self._connected.wait()), START_TIMEOUT)
        except TimeoutError:
            logger.warning("Redis is unreachable: signaling is degraded until it is back")

    async def close(self) -> None:
        # Presence is left to lapse, not deleted: the peers this process held
        # may resume on another one until then (a graceful restart loses nothing).
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for local in self._away.values():
            if local.grace_timer is not None:
                local.grace_timer.cancel()
        self._relay.cancel()
        self._keep.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._by_peer.clear()
        self._by_conn.clear()
        self._away.clear()
        self._away_conns.clear()
        self._up = False
        await self._redis.aclose()

    @property
    def connected(self) -> bool:
        """Connected to Redis, with this process's peers restored: joins work."""
        return self._up

    async def health(self) -> dict[str, Any]:
        try:
            reachable = bool(await asyncio.wait_for(self._redis.ping(), COMMAND_TIMEOUT))
        except (RedisError, OSError, TimeoutError):
            reachable = False
        return {"kind": self.kind, "redis": "reachable" if reachable else "unreachable"}

    async def _supervise(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                await self._serve()
            except Exception as exc:  # noqa: BLE001 - whatever it was, reconnect; never crash
                if not _is_outage(exc):
                    logger.exception("hub %s: unexpected error; reconnecting", self.proc)
                self._lost(exc)
                if self._connected.is_set():
                    backoff = BACKOFF_MIN
            self._connected.clear()
            # Full jitter: processes that lost Redis together do not return in step.
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _serve(self) -> None:
        """One connected period: subscribe, renew presence, restore, then listen and refresh."""
        self._broken.clear()
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            await self._relay.load()
            await self._keep.load()
            run_id = await self._current_run_id()
            await self._renew_presence()
            # Same Redis run: whatever is missing was swept, the others were told it left.
            await self._restore_all(announce=run_id == self._run_id)
            self._run_id = run_id
            self._up = True
            self._connected.set()
            logger.info("hub %s: connected to Redis", self.proc)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._listen(pubsub))
                group.create_task(self._refresh())
                group.create_task(self._wait_broken())
        finally:
            # ``_up`` stays as it was: ``_lost`` turns it off and tells the peers.
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _wait_broken(self) -> None:
        await self._broken.wait()
        raise ConnectionError("a Redis command failed")

    def _lost(self, exc: BaseException) -> None:
        """Redis is unreachable: say so once to every local peer, and reconnect."""
        was_up, self._up = self._up, False
        self._broken.set()
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        if was_up:
            logger.warning("hub %s: lost Redis (%s): signaling is degraded", self.proc, exc)
            frame = degraded_frame()
            for local in list(self._by_peer.values()):
                self._deliver_local(local, frame)

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            data = message.get("data")
            if not isinstance(data, str):
                continue
            conn, _, frame = data.partition("\n")
            if frame:
                self._deliver_to(conn, frame)
                continue
            local = self._by_conn.get(conn)
            if local is not None:
                self._detach(local)
                local.mailbox.replaced()

    async def _refresh(self) -> None:
        interval = self.presence_ttl / 3
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def refresh(self) -> None:
        """Renew this process's presence, and sweep the processes whose presence lapsed."""
        if not await self._renew_presence():
            if await self._current_run_id() != self._run_id:
                # A new, empty Redis behind a connection that came back by
                # itself: go through the whole reconnection (subscribe again).
                raise ConnectionError("Redis restarted")
            # Our presence lapsed (this loop was held up longer than the TTL):
            # the others were told our peers left; put them back.
            await self._restore_all(announce=True)
        await self._sweep()

    async def _current_run_id(self) -> str:
        """The Redis server's run id: a new one after every restart (INFO server)."""
        return str((await self._redis.info("server"))["run_id"])

    async def _renew_presence(self) -> bool:
        ttl_ms = max(1, int(self.presence_ttl * 1000))
        return bool(await self._heartbeat(args=[self.prefix, self.proc, ttl_ms]))

    async def _sweep(self) -> None:
        """Remove the peers of processes whose presence lapsed, announcing them as left."""
        for proc in map(str, await self._redis.smembers(self.prefix + "procs")):
            if proc == self.proc or await self._redis.exists(self._key("alive:", proc)):
                continue
            for peer in map(str, await self._redis.smembers(self._key("pm:", proc))):
                await self._run_remove(peer, holder=proc)
            await self._forget_proc(args=[self.prefix, proc])

    async def _restore_all(self, *, announce: bool) -> None:
        for local in [*self._by_peer.values(), *self._away.values()]:
            away = "0" if local.peer.id in self._by_peer else "1"
            reply = await self._restore(
                args=[
                    self.prefix,
                    self.proc,
                    local.peer.id,
                    local.room,
                    local.peer.name,
                    local.token,
                    local.conn,
                    away,
                    "1" if announce else "0",
                    peer_joined_frame(local.peer.id, local.peer.name),
                    PENDING_LIMIT,
                ]
            )
            if reply[0] == "moved":
                # It resumed on another process meanwhile: this attachment is stale.
                self._detach(local)
                if away == "0":
                    local.mailbox.replaced()
                elif self._away.get(local.peer.id) is local:
                    del self._away[local.peer.id]
                    self._away_conns.pop(local.conn, None)
                    if local.grace_timer is not None:
                        local.grace_timer.cancel()
            self._deliver_out(reply[1])
        counts = [str(item) for pair in self._connections.items() for item in pair]
        await self._set_connections(args=[self.prefix, self.proc, *counts])
        unsure, self._unsure = self._unsure, []
        for local in unsure:
            await self._run_remove(local.peer.id, conn=local.conn)
        departed, self._departed = self._departed, []
        for local in departed:
            # Same Redis run: it is there to remove, or was swept (and announced)
            # already. A new run: the others are being restored, and each must
            # hear that it left.
            await self._run_remove(
                local.peer.id, conn=local.conn, tombstone=None if announce else local.room
            )

    # -- the Hub interface -----------------------------------------------

    async def join(
        self,
        room: str,
        name: str,
        mailbox: Mailbox,
        *,
        capacity: int,
        resume: str | None = None,
    ) -> JoinResult:
        self._require_up()
        conn = f"{self.proc}.{next(self._conn_ids)}"
        for _ in range(ID_ATTEMPTS):
            peer_id = secrets.token_hex(8)
            token = secrets.token_urlsafe(24)
            local = _Local(PeerInfo(peer_id, name), room, token, conn, mailbox)
            # Registered before the script runs: a frame published to this
            # attachment can arrive before the script's reply does.
            self._by_conn[conn] = local
            try:
                reply = await self._join(
                    args=[
                        self.prefix,
                        self.proc,
                        room,
                        name,
                        capacity,
                        peer_id,
                        token,
                        conn,
                        peer_joined_frame(peer_id, name),
                        resume or "",
                        PENDING_LIMIT,
                    ]
                )
            except (RedisError, OSError) as exc:
                self._by_conn.pop(conn, None)
                if not resume:
                    # The script may have run before the connection failed:
                    # once Redis is back, remove the member it may have added.
                    self._unsure.append(local)
                self._lost(exc)
                raise HubUnavailable(str(exc)) from exc
            status = reply[0]
            if status == "retry":
                continue
            if status == "full":
                self._by_conn.pop(conn, None)
                raise RoomFull(room)
            if status == "resumed":
                return self._resumed(local, reply)
            self._by_peer[peer_id] = local
            self._deliver_out(reply[2])
            early, local.early = tuple(local.early or ()), None
            local.ready = True
            return JoinResult(
                local.peer, room, token, _peers(reply[1]), resumed=False, pending=early
            )
        self._by_conn.pop(conn, None)
        raise HubUnavailable("no free peer id")

    def _resumed(self, local: _Local, reply: list[Any]) -> JoinResult:
        peer_id, name, token = reply[1]
        old_conn: str = reply[4]
        previous = self._by_conn.get(old_conn) if old_conn else None
        if previous is not None:
            self._detach(previous)
            previous.mailbox.replaced()
        away = self._away.pop(peer_id, None)
        if away is not None:
            self._away_conns.pop(away.conn, None)
            if away.grace_timer is not None:
                away.grace_timer.cancel()
        resumed = _Local(PeerInfo(peer_id, name), local.room, token, local.conn, local.mailbox)
        resumed.early = local.early
        self._by_conn[resumed.conn] = resumed
        self._by_peer[peer_id] = resumed
        pending = (*reply[3], *(resumed.early or ()))
        resumed.early = None
        resumed.ready = True
        return JoinResult(
            resumed.peer, local.room, token, _peers(reply[2]), resumed=True, pending=pending
        )

    async def relay(self, room: str, to: str, frame: str) -> bool:
        local = self._by_peer.get(to)
        if local is not None and local.room == room:
            # Both peers are ours: no round trip to Redis.
            self._deliver_local(local, frame)
            return True
        self._require_up()
        try:
            reply = await self._relay.call([room, to, frame])
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise HubUnavailable(str(exc)) from exc
        if not reply:
            return False
        self._deliver_out(reply[1])
        return True

    async def leave(self, room: str, peer_id: str, mailbox: Mailbox, *, clean: bool) -> None:
        local = self._by_peer.get(peer_id)
        if local is None or local.mailbox is not mailbox:
            return
        self._detach(local)
        if clean:
            await self._remove_or_defer(local)
            return
        self._away[peer_id] = local
        self._away_conns[local.conn] = local
        loop = asyncio.get_running_loop()
        local.grace_timer = loop.call_later(self.grace, self._grace_over, local)
        if self._up:
            try:
                await self._set_away(args=[self.prefix, peer_id, local.conn])
            except (RedisError, OSError) as exc:
                # Restored as away once Redis is back.
                self._lost(exc)

    def _grace_over(self, local: _Local) -> None:
        local.grace_timer = None
        self._away_conns.pop(local.conn, None)
        if self._away.get(local.peer.id) is not local:
            return
        del self._away[local.peer.id]
        task = asyncio.create_task(self._remove_or_defer(local, must_be_away=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove_or_defer(self, local: _Local, *, must_be_away: bool = False) -> None:
        if self._up:
            try:
                await self._run_remove(local.peer.id, conn=local.conn, must_be_away=must_be_away)
                return
            except (RedisError, OSError) as exc:
                self._lost(exc)
        self._departed.append(local)

    async def _run_remove(
        self,
        peer_id: str,
        *,
        conn: str = "",
        must_be_away: bool = False,
        holder: str = "",
        tombstone: str | None = None,
    ) -> None:
        reply = await self._remove(
            args=[
                self.prefix,
                self.proc,
                peer_id,
                conn,
                "1" if must_be_away else "0",
                holder,
                peer_left_frame(peer_id),
                PENDING_LIMIT,
                tombstone or "",
                0 if tombstone is None else int(TOMBSTONE_TTL * 1000),
            ]
        )
        self._deliver_out(reply[1])

    # -- per client address, across processes --------------------------

    async def open_connection(self, source: str, *, limit: int) -> bool:
        mine = self._connections.get(source, 0)
        allowed = mine < limit
        if self._up:
            try:
                allowed = bool(
                    await self._open_connection(args=[self.prefix, self.proc, source, limit])
                )
            except (RedisError, OSError) as exc:
                # Degraded: this process's own count is all that can be checked.
                self._lost(exc)
                allowed = self._connections.get(source, 0) < limit
        if allowed:
            self._connections[source] = self._connections.get(source, 0) + 1
        return allowed

    async def close_connection(self, source: str) -> None:
        count = self._connections.get(source, 0) - 1
        if count > 0:
            self._connections[source] = count
        else:
            self._connections.pop(source, None)
        if self._up:
            try:
                await self._close_connection(args=[self.prefix, self.proc, source])
            except (RedisError, OSError) as exc:
                self._lost(exc)  # the count is rewritten from ours once Redis is back

    async def allow_join(self, source: str, *, rate: float, burst: int) -> bool:
        if self._up:
            try:
                return bool(await self._allow_join(args=[self.prefix, source, rate, burst]))
            except (RedisError, OSError) as exc:
                self._lost(exc)
        return await self._fallback.allow_join(source, rate=rate, burst=burst)

    async def stats(self) -> HubStats:
        self._require_up()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.scard(self.prefix + "rooms")
                pipe.scard(self.prefix + "peers")
                rooms, peers = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise HubUnavailable(str(exc)) from exc
        return HubStats(rooms=int(rooms), peers=int(peers))

    # -- helpers ---------------------------------------------------------

    @property
    def _channel(self) -> str:
        return self._key("ch:", self.proc)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}{name}"

    def _require_up(self) -> None:
        if not self._up:
            raise HubUnavailable("Redis is unreachable")

    def _detach(self, local: _Local) -> None:
        if self._by_conn.get(local.conn) is local:
            del self._by_conn[local.conn]
        if self._by_peer.get(local.peer.id) is local:
            del self._by_peer[local.peer.id]

    @staticmethod
    def _deliver_local(local: _Local, frame: str) -> None:
        if local.ready:
            local.mailbox.deliver(frame)
        else:
            if local.early is None:
                local.early = []
            local.early.append(frame)

    def _deliver_out(self, out: list[str]) -> None:
        """Deliver the (conn, frame, …) pairs a script left for this process's peers."""
        for index in range(0, len(out), 2):
            self._deliver_to(out[index], out[index + 1])

    def _deliver_to(self, conn: str, frame: str) -> None:
        local = self._by_conn.get(conn)
        if local is not None:
            self._deliver_local(local, frame)
            return
        away = self._away_conns.get(conn)
        if away is not None and self._up:
            # Sent before Redis learnt the peer is away: keep it for its resume.
            task = asyncio.create_task(self._keep_for(away, frame))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _keep_for(self, local: _Local, frame: str) -> None:
        try:
            await self._keep.call([self.prefix, local.peer.id, local.conn, frame, PENDING_LIMIT])
        except (RedisError, OSError) as exc:
            self._lost(exc)


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or every exception of a group) says Redis is unreachable."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_outage(inner) for inner in exc.exceptions)
    return isinstance(exc, RedisError | OSError | TimeoutError)


def _peers(flat: list[str]) -> list[PeerInfo]:
    return [PeerInfo(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
