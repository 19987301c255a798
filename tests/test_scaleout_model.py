"""Two RedisHubs on one redis-server answer as one MemoryHub does, op for op (hypothesis).

Random sequences of joins (on either hub), leaves (clean or dropped) and relays
run against both: every join must be accepted or refused alike, every relay
found or not alike, and the counts of rooms and peers must agree after each
step. The grace period is long, so no timer fires in between.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.redis import RedisServer
from server.errors import RoomFull
from server.hub import Hub, JoinResult, MemoryHub
from tests.test_hub import Inbox

pytest.importorskip("redis", reason="needs the redis package (the [redis] extra)")

from server.hub_redis import RedisHub  # noqa: E402

CAPACITY = 3
GRACE = 600.0

_examples = itertools.count()


@dataclass
class Member:
    hub: Hub
    inbox: Inbox
    joined: JoinResult
    gone: bool = False


Op = tuple[Any, ...]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 1), st.sampled_from(["r", "q"])),
        st.tuples(st.just("leave"), st.integers(0, 7), st.booleans()),
        st.tuples(st.just("relay"), st.integers(0, 7), st.integers(0, 7)),
    ),
    max_size=16,
)


async def run(hubs: list[Hub], script: list[Op]) -> list[Any]:
    """Carry out ``script`` on ``hubs`` (joins alternate as told); what each step answered."""
    members: list[Member] = []
    answers: list[Any] = []
    for op in script:
        if op[0] == "join":
            hub, inbox = hubs[op[1] % len(hubs)], Inbox()
            try:
                joined = await hub.join(op[2], "P", inbox, capacity=CAPACITY)
            except RoomFull:
                answers.append("full")
            else:
                members.append(Member(hub, inbox, joined))
                answers.append(len(joined.peers))
        elif op[0] == "leave" and op[1] < len(members) and not members[op[1]].gone:
            member = members[op[1]]
            member.gone = True
            await member.hub.leave(
                member.joined.room, member.joined.peer.id, member.inbox, clean=op[2]
            )
            answers.append("left")
        elif op[0] == "relay" and max(op[1], op[2]) < len(members):
            sender, addressee = members[op[1]], members[op[2]]
            found = await sender.hub.relay(
                sender.joined.room, addressee.joined.peer.id, '{"type":"offer"}'
            )
            answers.append(found)
        else:
            answers.append(None)
        stats = await hubs[0].stats()
        answers.append((stats.rooms, stats.peers))
    return answers


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=ops)
async def test_two_redis_hubs_answer_as_one_memory_hub(
    redis_server: RedisServer, script: list[Op]
) -> None:
    model = MemoryHub(grace=GRACE)
    # A fresh key space per example, on the one redis-server of the test.
    prefix = f"model{next(_examples)}:"
    one = RedisHub(redis_server.url, grace=GRACE, presence_ttl=60.0, prefix=prefix)
    two = RedisHub(redis_server.url, grace=GRACE, presence_ttl=60.0, prefix=prefix)
    await one.start()
    await two.start()
    try:
        expected = await run([model], script)
        assert await run([one, two], script) == expected
    finally:
        await one.close()
        await two.close()
        await model.close()
