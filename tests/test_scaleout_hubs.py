"""Two RedisHubs on one real redis-server: what only a shared hub must do.

Each hub stands for one server process (its own id, presence and channel); they
share an event loop here, so the cases are quick and exact. The same behaviours
across real server processes are in tests/test_scaleout.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from natlab.processes import wait_until
from natlab.redis import RedisServer
from server.errors import HubUnavailable, RoomFull
from server.protocol import ErrorCode
from tests.test_hub import Inbox

pytest.importorskip("redis", reason="needs the redis package (the [redis] extra)")

from server.hub_redis import RedisHub  # noqa: E402

GRACE = 5.0
#: Presence TTL of a hub whose lapse a test waits for.
TTL = 0.6
#: Of the others: long enough that a loop held up on a busy machine never
#: lapses (the other hub would then sweep its peers in the middle of a test).
STEADY_TTL = 10.0
WAIT = 10.0


@pytest.fixture
def make_hub(redis_server: RedisServer) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[RedisHub]:
        hub = RedisHub(redis_server.url, **{"grace": GRACE, "presence_ttl": STEADY_TTL, **options})
        await hub.start()
        try:
            yield hub
        finally:
            await hub.close()

    return make


@pytest.fixture
async def two_hubs(make_hub: Callable[..., Any]) -> AsyncIterator[tuple[RedisHub, RedisHub]]:
    async with make_hub() as one, make_hub() as two:
        yield one, two


async def arrival(inbox: Inbox, kind: str, timeout: float = WAIT) -> dict[str, Any]:
    """The first frame of type ``kind`` that ``inbox`` got, waiting for it if need be."""
    await wait_until(lambda: kind in inbox.types(), timeout)
    return next(frame for frame in inbox.frames if frame["type"] == kind)


async def test_a_relay_reaches_a_peer_held_by_the_other_process(
    two_hubs: tuple[RedisHub, RedisHub],
) -> None:
    one, two = two_hubs
    a, b = Inbox(), Inbox()
    peer_a = await one.join("r", "A", a, capacity=4)
    peer_b = await two.join("r", "B", b, capacity=4)
    assert peer_a.peer.id != peer_b.peer.id and peer_a.resume_token != peer_b.resume_token
    assert [p.id for p in peer_b.peers] == [peer_a.peer.id]
    joined = await arrival(a, "peer-joined")
    assert joined["peer"] == {"id": peer_b.peer.id, "name": "B"}
    assert await one.relay("r", peer_b.peer.id, '{"type":"offer","from":"x"}')
    assert (await arrival(b, "offer"))["from"] == "x"
    assert not await one.relay("q", peer_b.peer.id, '{"type":"offer"}')


async def test_resume_on_the_other_process_keeps_the_id_and_the_kept_frames(
    two_hubs: tuple[RedisHub, RedisHub],
) -> None:
    one, two = two_hubs
    a, b, b2 = Inbox(), Inbox(), Inbox()
    await one.join("r", "A", a, capacity=4)
    peer_b = await one.join("r", "B", b, capacity=4)
    await one.leave("r", peer_b.peer.id, b, clean=False)
    assert await one.relay("r", peer_b.peer.id, '{"type":"candidate","n":1}')
    again = await two.join("r", "B", b2, capacity=4, resume=peer_b.resume_token)
    assert again.resumed and again.peer == peer_b.peer
    assert again.pending == ('{"type":"candidate","n":1}',)
    # Frames from the first process now cross to the second one.
    assert await one.relay("r", peer_b.peer.id, '{"type":"offer"}')
    await arrival(b2, "offer")
    assert "peer-left" not in a.types()


async def test_resume_elsewhere_replaces_a_live_connection(
    two_hubs: tuple[RedisHub, RedisHub],
) -> None:
    one, two = two_hubs
    b, b2 = Inbox(), Inbox()
    peer_b = await one.join("r", "B", b, capacity=4)
    await two.join("r", "B", b2, capacity=4, resume=peer_b.resume_token)
    await wait_until(lambda: b.was_replaced, WAIT)
    # The replaced connection's end changes nothing.
    await one.leave("r", peer_b.peer.id, b, clean=True)
    assert (await two.stats()).peers == 1


async def test_capacity_holds_when_processes_race(
    two_hubs: tuple[RedisHub, RedisHub],
) -> None:
    hubs = two_hubs

    async def attempt(index: int) -> bool:
        try:
            await hubs[index % 2].join("race", f"p{index}", Inbox(), capacity=16)
        except RoomFull:
            return False
        return True

    results = await asyncio.gather(*(attempt(index) for index in range(40)))
    assert sum(results) == 16
    assert (await hubs[0].stats()).peers == 16


async def test_a_lapsed_process_peers_are_announced_as_left(
    make_hub: Callable[..., Any],
) -> None:
    async with make_hub(presence_ttl=TTL) as survivor:
        a = Inbox()
        await survivor.join("r", "A", a, capacity=4)
        async with make_hub(presence_ttl=TTL) as doomed:
            peer_b = await doomed.join("r", "B", Inbox(), capacity=4)
            await arrival(a, "peer-joined")
        # ``close`` stops the presence refresh and leaves the peers for their TTL.
        assert (await survivor.stats()).peers == 2
        left = await arrival(a, "peer-left", timeout=TTL * 10)
        assert left["id"] == peer_b.peer.id
        assert (await survivor.stats()).peers == 1


async def test_a_peer_of_a_lapsed_process_resumes_before_the_ttl(
    make_hub: Callable[..., Any],
) -> None:
    async with make_hub(presence_ttl=30.0) as survivor:
        a = Inbox()
        await survivor.join("r", "A", a, capacity=4)
        async with make_hub(presence_ttl=30.0) as doomed:
            peer_b = await doomed.join("r", "B", Inbox(), capacity=4)
        again = await survivor.join("r", "B", Inbox(), capacity=4, resume=peer_b.resume_token)
        assert again.resumed and again.peer == peer_b.peer


async def test_a_redis_outage_degrades_then_membership_is_restored(
    two_hubs: tuple[RedisHub, RedisHub], redis_server: RedisServer
) -> None:
    one, two = two_hubs
    a, b, c = Inbox(), Inbox(), Inbox()
    await one.join("r", "A", a, capacity=4)
    peer_b = await two.join("r", "B", b, capacity=4)
    peer_c = await two.join("r", "C", c, capacity=4)
    await wait_until(lambda: a.types().count("peer-joined") == 2, WAIT)

    await redis_server.stop()
    for inbox in (a, b, c):
        frame = await arrival(inbox, "error")
        assert frame["code"] == ErrorCode.SIGNALING_DEGRADED
    with pytest.raises(HubUnavailable):
        await one.relay("r", peer_b.peer.id, '{"type":"offer"}')
    with pytest.raises(HubUnavailable):
        await one.join("r", "D", Inbox(), capacity=4)
    assert (await one.health())["redis"] == "unreachable"
    # Peers of one process still reach each other meanwhile.
    assert await two.relay("r", peer_c.peer.id, '{"type":"answer"}')
    await arrival(c, "answer")
    # C leaves while Redis is away: announced once it is back.
    await two.leave("r", peer_c.peer.id, c, clean=True)

    await redis_server.start()  # empty: nothing was persisted

    await wait_until(lambda: one.connected and two.connected, WAIT)
    assert (await one.health())["redis"] == "reachable"
    assert (await one.stats()).peers == 2
    assert await one.relay("r", peer_b.peer.id, '{"type":"offer","n":2}')
    offer = await arrival(b, "offer")
    assert offer["n"] == 2
    # A new peer sees both restored ones, and the one that left is gone.
    late = await one.join("r", "D", Inbox(), capacity=4)
    assert sorted(p.name for p in late.peers) == ["A", "B"]
    # A, on the other process, is told that C left while Redis was away.
    left = await arrival(a, "peer-left")
    assert left["id"] == peer_c.peer.id
    # Redis came back empty: nobody was told the restored peers left, so
    # nobody is told they joined again; only D's join is news.
    await wait_until(lambda: b.types().count("peer-joined") == 2, WAIT)

    def joined_ids(inbox: Inbox) -> list[str]:
        return [f["peer"]["id"] for f in inbox.frames if f["type"] == "peer-joined"]

    assert joined_ids(a) == [peer_b.peer.id, peer_c.peer.id, late.peer.id]
    assert joined_ids(b) == [peer_c.peer.id, late.peer.id]


async def test_connection_and_join_limits_count_every_process(
    two_hubs: tuple[RedisHub, RedisHub],
) -> None:
    one, two = two_hubs
    assert await one.open_connection("192.0.2.1", limit=3)
    assert await two.open_connection("192.0.2.1", limit=3)
    assert await one.open_connection("192.0.2.1", limit=3)
    assert not await two.open_connection("192.0.2.1", limit=3)
    await one.close_connection("192.0.2.1")
    assert await two.open_connection("192.0.2.1", limit=3)
    # One bucket per address, whichever process the joins come through.
    allowed = [
        await (one, two)[i % 2].allow_join("192.0.2.9", rate=0.001, burst=3) for i in range(5)
    ]
    assert allowed == [True, True, True, False, False]


async def test_a_lapsed_process_connections_stop_counting(make_hub: Callable[..., Any]) -> None:
    async with make_hub(presence_ttl=TTL) as survivor:
        async with make_hub(presence_ttl=TTL) as doomed:
            assert await doomed.open_connection("192.0.2.1", limit=1)
            assert not await survivor.open_connection("192.0.2.1", limit=1)
        await wait_until(lambda: survivor.open_connection("192.0.2.1", limit=1), TTL * 10)


async def test_a_process_whose_presence_lapsed_puts_its_peers_back(
    make_hub: Callable[..., Any], redis_server: RedisServer
) -> None:
    from redis.asyncio import Redis

    async with make_hub(presence_ttl=2.0) as survivor, make_hub(presence_ttl=60.0) as stalled:
        a, b = Inbox(), Inbox()
        await survivor.join("r", "A", a, capacity=4)
        peer_b = await stalled.join("r", "B", b, capacity=4)
        await arrival(a, "peer-joined")
        # As if the stalled process had not refreshed in time: its presence is gone.
        client = Redis.from_url(redis_server.url)
        try:
            assert await client.delete(f"{stalled.prefix}alive:{stalled.proc}") == 1
        finally:
            await client.aclose()
        left = await arrival(a, "peer-left")
        assert left["id"] == peer_b.peer.id
        # Its next refresh finds its presence lapsed: B is back, and announced.
        await stalled.refresh()
        await wait_until(lambda: a.types().count("peer-joined") == 2, WAIT)
        assert a.frames[-1] == {"type": "peer-joined", "peer": {"id": peer_b.peer.id, "name": "B"}}
        assert await survivor.relay("r", peer_b.peer.id, '{"type":"offer"}')
        await arrival(b, "offer")


async def test_a_frame_in_flight_to_a_peer_that_just_dropped_is_kept_for_its_resume(
    two_hubs: tuple[RedisHub, RedisHub], redis_server: RedisServer
) -> None:
    from redis.asyncio import Redis

    one, two = two_hubs
    b = Inbox()
    peer_b = await two.join("r", "B", b, capacity=4)
    client = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        conn = str(await client.hget(f"{two.prefix}m:{peer_b.peer.id}", "conn"))
        await two.leave("r", peer_b.peer.id, b, clean=False)
        # A relay published before the drop reached Redis arrives only now.
        frame = '{"type":"candidate","late":true}'
        assert await client.publish(f"{two.prefix}ch:{two.proc}", f"{conn}\n{frame}") == 1

        async def kept() -> bool:
            return bool(await client.llen(f"{two.prefix}p:{peer_b.peer.id}") == 1)

        await wait_until(kept, WAIT)
    finally:
        await client.aclose()
    again = await one.join("r", "B", Inbox(), capacity=4, resume=peer_b.resume_token)
    assert again.resumed and again.pending == (frame,)
    assert b.frames == []
