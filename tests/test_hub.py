"""The Hub contract, run against every implementation: MemoryHub and RedisHub (a real
redis-server from ``tests/fixtures_redis.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.errors import RoomFull
from server.hub import PENDING_LIMIT, Hub, MemoryHub, source_of
from tests.fixtures_redis import redis_for_test

GRACE = 0.2


class Inbox:
    """A mailbox that keeps what it is given."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.was_replaced = False
        self.arrived = asyncio.Event()

    def deliver(self, frame: str) -> None:
        self.frames.append(json.loads(frame))
        self.arrived.set()

    def replaced(self) -> None:
        self.was_replaced = True

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]


@pytest.fixture(params=["memory", "redis"])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    async with contextlib.AsyncExitStack() as stack:
        implementation: Hub
        if request.param == "redis":
            from server.hub_redis import RedisHub

            redis_server = await stack.enter_async_context(redis_for_test(tmp_path))
            implementation = RedisHub(redis_server.url, grace=GRACE)
        else:
            implementation = MemoryHub(grace=GRACE)
        await implementation.start()
        stack.push_async_callback(implementation.close)
        yield implementation


async def test_join_assigns_unique_ids_and_lists_earlier_peers(hub: Hub) -> None:
    a, b = Inbox(), Inbox()
    first = await hub.join("r", "Ada", a, capacity=4)
    second = await hub.join("r", "Ada", b, capacity=4)
    assert first.peer.id != second.peer.id
    assert first.peers == [] and [p.name for p in second.peers] == ["Ada"]
    assert a.frames == [{"type": "peer-joined", "peer": {"id": second.peer.id, "name": "Ada"}}]
    assert b.frames == []
    assert first.resume_token != second.resume_token


async def test_capacity_is_enforced(hub: Hub) -> None:
    await hub.join("r", "A", Inbox(), capacity=2)
    await hub.join("r", "B", Inbox(), capacity=2)
    with pytest.raises(RoomFull):
        await hub.join("r", "C", Inbox(), capacity=2)
    await hub.join("other", "C", Inbox(), capacity=2)


async def test_relay_reaches_only_the_addressee_of_the_same_room(hub: Hub) -> None:
    a, b, c = Inbox(), Inbox(), Inbox()
    await hub.join("r", "A", a, capacity=4)
    peer_b = await hub.join("r", "B", b, capacity=4)
    peer_c = await hub.join("q", "C", c, capacity=4)
    assert await hub.relay("r", peer_b.peer.id, '{"type":"offer"}')
    assert not await hub.relay("r", peer_c.peer.id, '{"type":"offer"}')
    assert b.types() == ["offer"] and c.types() == []


async def test_clean_leave_is_announced_at_once(hub: Hub) -> None:
    a, b = Inbox(), Inbox()
    await hub.join("r", "A", a, capacity=4)
    peer_b = await hub.join("r", "B", b, capacity=4)
    await hub.leave("r", peer_b.peer.id, b, clean=True)
    assert a.frames[-1] == {"type": "peer-left", "id": peer_b.peer.id}
    assert (await hub.stats()).peers == 1


async def test_a_drop_is_announced_only_after_the_grace_period(hub: Hub) -> None:
    a, b = Inbox(), Inbox()
    await hub.join("r", "A", a, capacity=4)
    peer_b = await hub.join("r", "B", b, capacity=4)
    a.arrived.clear()
    await hub.leave("r", peer_b.peer.id, b, clean=False)
    assert a.types() == ["peer-joined"]
    await asyncio.wait_for(a.arrived.wait(), GRACE * 20)
    assert a.frames[-1] == {"type": "peer-left", "id": peer_b.peer.id}


async def test_resume_within_grace_keeps_the_id_and_delivers_what_waited(hub: Hub) -> None:
    a, b, b2 = Inbox(), Inbox(), Inbox()
    await hub.join("r", "A", a, capacity=4)
    peer_b = await hub.join("r", "B", b, capacity=4)
    await hub.leave("r", peer_b.peer.id, b, clean=False)
    assert await hub.relay("r", peer_b.peer.id, '{"type":"candidate"}')
    again = await hub.join("r", "B", b2, capacity=4, resume=peer_b.resume_token)
    assert again.resumed and again.peer == peer_b.peer
    assert again.pending == ('{"type":"candidate"}',)
    a.arrived.clear()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(a.arrived.wait(), GRACE * 3)
    assert "peer-left" not in a.types()


async def test_resume_of_a_live_connection_replaces_it(hub: Hub) -> None:
    b, b2 = Inbox(), Inbox()
    peer_b = await hub.join("r", "B", b, capacity=4)
    again = await hub.join("r", "B", b2, capacity=4, resume=peer_b.resume_token)
    assert again.resumed and b.was_replaced
    # The old connection's end changes nothing now.
    await hub.leave("r", peer_b.peer.id, b, clean=True)
    assert (await hub.stats()).peers == 1


async def test_resume_after_grace_or_in_another_room_gets_a_fresh_id(hub: Hub) -> None:
    a, b = Inbox(), Inbox()
    await hub.join("r", "A", a, capacity=4)
    peer_b = await hub.join("r", "B", b, capacity=4)
    elsewhere = await hub.join("q", "B", Inbox(), capacity=4, resume=peer_b.resume_token)
    assert not elsewhere.resumed and elsewhere.peer.id != peer_b.peer.id
    await hub.leave("r", peer_b.peer.id, b, clean=False)
    a.arrived.clear()
    await asyncio.wait_for(a.arrived.wait(), GRACE * 20)
    late = await hub.join("r", "B", Inbox(), capacity=4, resume=peer_b.resume_token)
    assert not late.resumed and late.peer.id != peer_b.peer.id


async def test_resume_does_not_bypass_capacity_for_strangers(hub: Hub) -> None:
    b = Inbox()
    peer_b = await hub.join("r", "B", b, capacity=2)
    await hub.join("r", "C", Inbox(), capacity=2)
    await hub.leave("r", peer_b.peer.id, b, clean=False)
    with pytest.raises(RoomFull):
        await hub.join("r", "D", Inbox(), capacity=2)
    back = await hub.join("r", "B", Inbox(), capacity=2, resume=peer_b.resume_token)
    assert back.resumed


async def test_frames_kept_for_a_dropped_peer_are_bounded(hub: Hub) -> None:
    b = Inbox()
    peer_b = await hub.join("r", "B", b, capacity=4)
    await hub.leave("r", peer_b.peer.id, b, clean=False)
    for index in range(PENDING_LIMIT + 10):
        await hub.relay("r", peer_b.peer.id, json.dumps({"type": "candidate", "n": index}))
    again = await hub.join("r", "B", Inbox(), capacity=4, resume=peer_b.resume_token)
    assert len(again.pending) == PENDING_LIMIT
    assert json.loads(again.pending[-1])["n"] == PENDING_LIMIT + 9


async def test_stats_count_rooms_and_peers_and_empty_rooms_vanish(hub: Hub) -> None:
    a = Inbox()
    peer = await hub.join("r", "A", a, capacity=4)
    await hub.join("q", "B", Inbox(), capacity=4)
    stats = await hub.stats()
    assert (stats.rooms, stats.peers) == (2, 2)
    await hub.leave("r", peer.peer.id, a, clean=True)
    assert (await hub.stats()).rooms == 1


async def test_every_resume_hands_out_a_new_token_and_the_old_one_stops_working(
    hub: Hub,
) -> None:
    b = Inbox()
    first = await hub.join("r", "B", b, capacity=4)
    await hub.leave("r", first.peer.id, b, clean=False)
    again = await hub.join("r", "B", Inbox(), capacity=4, resume=first.resume_token)
    assert again.resumed and again.resume_token != first.resume_token
    stolen = await hub.join("r", "B", Inbox(), capacity=4, resume=first.resume_token)
    assert not stolen.resumed and stolen.peer.id != first.peer.id
    third = await hub.join("r", "B", Inbox(), capacity=4, resume=again.resume_token)
    assert third.resumed and third.peer.id == first.peer.id
    assert third.resume_token not in (first.resume_token, again.resume_token)


async def test_open_connections_are_counted_per_source(hub: Hub) -> None:
    assert await hub.open_connection("192.0.2.1", limit=2)
    assert await hub.open_connection("192.0.2.1", limit=2)
    assert not await hub.open_connection("192.0.2.1", limit=2)
    assert await hub.open_connection("192.0.2.2", limit=2)
    await hub.close_connection("192.0.2.1")
    assert await hub.open_connection("192.0.2.1", limit=2)
    assert not await hub.open_connection("192.0.2.1", limit=2)


async def test_joins_are_limited_per_source(hub: Hub) -> None:
    # A rate so low that nothing refills while the test runs.
    allowed = [await hub.allow_join("192.0.2.1", rate=0.001, burst=3) for _ in range(5)]
    assert allowed == [True, True, True, False, False]
    assert await hub.allow_join("192.0.2.2", rate=0.001, burst=3)


def test_sources_are_addresses_and_ipv6_counts_by_its_64() -> None:
    assert source_of("192.0.2.7") == "192.0.2.7"
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2")
    assert source_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of(None) == "-"
