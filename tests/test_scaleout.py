"""Several ``confide serve`` processes sharing rooms through a real redis-server.

Clients are spread over the processes (raw signaling with
tests/signaling_client.py; aiortc peers in a lab for "connect and chat"). One
process is killed with SIGKILL, and Redis is stopped and started again, while
the others keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client_py import events as ev
from client_py.room import Room
from natlab.lab import Host
from natlab.processes import wait_until
from natlab.redis import RedisServer
from natlab.servers import RunningServer, server_process
from server.protocol import ErrorCode
from tests.fixtures_redis import redis_for_test
from tests.peer_helpers import WAIT, fully_connected, wait_for_event
from tests.signaling_client import SignalingClient, connect, joined

pytest.importorskip("redis", reason="needs the redis package (the [redis] extra)")

#: Presence TTL of a process whose crash a test waits for (seconds).
TTL = 1.0
#: Of the others: a process held up on a busy machine must not lapse.
STEADY_TTL = 5.0


@contextlib.asynccontextmanager
async def cluster(
    redis: RedisServer, count: int, *options: str, host: str = "127.0.0.1"
) -> AsyncIterator[list[RunningServer]]:
    """``count`` server processes sharing rooms through ``redis``; all stopped at the end."""
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(
                server_process(
                    host,
                    None,
                    "--redis-url",
                    redis.url,
                    "--presence-ttl",
                    str(STEADY_TTL),
                    *options,
                )
            )
            for _ in range(count)
        ]
        yield servers


async def healthz(server: RunningServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(server.url + "/healthz") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def frames_until(client: SignalingClient, kind: str, **fields: Any) -> dict[str, Any]:
    """Read until a frame of ``kind`` with ``fields`` arrives (others are skipped)."""
    while True:
        frame = await client.receive()
        if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
            return frame


@pytest.mark.parametrize("count", [2, 3])
async def test_clients_on_different_processes_share_a_room(
    redis_server: RedisServer, count: int
) -> None:
    async with (
        cluster(redis_server, count) as servers,
        contextlib.AsyncExitStack() as stack,
    ):
        clients: list[SignalingClient] = []
        for index in range(count * 2):
            server = servers[index % count]
            client = await stack.enter_async_context(joined(server.ws_url, "mesh", f"p{index}"))
            # Each newcomer is listed to it in join order, whichever process holds the others.
            assert [p["id"] for p in client.welcome["peers"]] == [c.id for c in clients]
            for earlier in clients:
                announced = await earlier.expect("peer-joined")
                assert announced["peer"] == {"id": client.id, "name": f"p{index}"}
            clients.append(client)
        assert len({c.id for c in clients}) == 2 * count
        assert len({c.welcome["resume"] for c in clients}) == 2 * count
        # Every pair on two different processes: offer, answer, candidate.
        for a in clients:
            for b in clients:
                if a is b:
                    continue
                await a.send({"type": "offer", "to": b.id, "sdp": f"o {a.id}"})
                offer = await b.expect("offer")
                assert offer == {"type": "offer", "from": a.id, "sdp": f"o {a.id}"}
                await b.send({"type": "answer", "to": a.id, "sdp": f"a {b.id}"})
                assert (await a.expect("answer"))["from"] == b.id
                candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host"}
                await a.send({"type": "candidate", "to": b.id, "candidate": candidate})
                assert (await b.expect("candidate"))["candidate"] == candidate
        body = await healthz(servers[0])
        assert body["hub"] == {"kind": "redis", "redis": "reachable"}
        assert (body["rooms"], body["peers"], body["connections"]) == (1, 2 * count, 2)


async def test_a_killed_process_peers_leave_after_the_ttl_or_resume_elsewhere(
    redis_server: RedisServer,
) -> None:
    async with (
        cluster(redis_server, 1) as (survivor,),
        joined(survivor.ws_url, "r", "Stays") as stays,
        server_process(
            "127.0.0.1", None, "--redis-url", redis_server.url, "--presence-ttl", str(TTL)
        ) as doomed,
        joined(doomed.ws_url, "r", "Returns") as returns,
        joined(doomed.ws_url, "r", "Vanishes") as vanishes,
    ):
        await stays.expect("peer-joined")
        await stays.expect("peer-joined")
        assert doomed.process is not None
        os.killpg(doomed.process.pid, signal.SIGKILL)
        await doomed.process.wait()

        # One reconnects to the survivor with its resume token: same id, no peer-left.
        async with connect(survivor.ws_url) as back:
            welcome = await back.join("r", "Returns", resume=returns.welcome["resume"])
            assert welcome["resumed"] is True and welcome["id"] == returns.id
            assert {p["id"] for p in welcome["peers"]} == {stays.id, vanishes.id}
            # The other one never comes back: it is announced as left once the
            # dead process's presence lapses.
            left = await stays.expect("peer-left", timeout=TTL * 10)
            assert left["id"] == vanishes.id
            left_too = await back.expect("peer-left", timeout=TTL * 10)
            assert left_too["id"] == vanishes.id
            # And the resumed one is reachable on its new process.
            await stays.send({"type": "offer", "to": back.id, "sdp": "again"})
            assert (await back.expect("offer"))["sdp"] == "again"
            assert (await healthz(survivor))["peers"] == 2


async def test_signaling_recovers_when_redis_comes_back(redis_server: RedisServer) -> None:
    async with (
        cluster(redis_server, 2) as (one, two),
        joined(one.ws_url, "r", "A") as a,
        joined(two.ws_url, "r", "B") as b,
    ):
        await a.expect("peer-joined")
        await redis_server.stop()
        for client in (a, b):
            error = await client.expect("error", timeout=WAIT)
            assert error["code"] == ErrorCode.SIGNALING_DEGRADED
        # Pages and /healthz are still served, saying what is wrong.
        body = await healthz(one)
        assert body["status"] == "ok" and body["hub"]["redis"] == "unreachable"
        assert body["peers"] is None
        async with joined_or_error(one, "late") as (welcome, refusal):
            assert welcome is None and refusal is not None
            assert refusal["code"] == ErrorCode.SIGNALING_DEGRADED

        await redis_server.start()  # empty: the processes put their peers back

        async def recovered() -> bool:
            counts = [(await healthz(server))["peers"] for server in (one, two)]
            return counts == [2, 2]

        await wait_until(recovered, WAIT)
        # The servers were not restarted: the same connections signal again.
        await a.send({"type": "offer", "to": b.id, "sdp": "after the outage"})
        assert (await frames_until(b, "offer"))["sdp"] == "after the outage"
        async with joined(two.ws_url, "r", "C") as c:
            assert {p["id"] for p in c.welcome["peers"]} == {a.id, b.id}
            assert (await frames_until(a, "peer-joined"))["peer"]["id"] == c.id


@contextlib.asynccontextmanager
async def joined_or_error(
    server: RunningServer, name: str, room: str = "r"
) -> AsyncIterator[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Join ``room`` on ``server``: (welcome, None), or (None, the error frame)."""
    async with connect(server.ws_url) as client:
        await client.send({"type": "join", "room": room, "name": name})
        frame = await client.receive(timeout=WAIT)
        if frame["type"] == "welcome":
            yield frame, None
        else:
            yield None, frame


async def test_capacity_holds_when_40_clients_race_over_3_processes(
    redis_server: RedisServer,
) -> None:
    async with cluster(redis_server, 3) as servers, contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(servers[index % 3].ws_url))
            for index in range(40)
        ]
        await asyncio.gather(
            *(
                client.send({"type": "join", "room": "crowd", "name": f"p{index}"})
                for index, client in enumerate(clients)
            )
        )

        async def first_answer(client: SignalingClient) -> str:
            frame = await client.receive(timeout=WAIT)
            if frame["type"] == "welcome":
                return "welcome"
            assert frame["type"] == "error", frame
            return str(frame["code"])

        answers = await asyncio.gather(*(first_answer(client) for client in clients))
        assert answers.count("welcome") == 16
        assert answers.count(ErrorCode.ROOM_FULL) == 24
        assert (await healthz(servers[0]))["peers"] == 16


async def test_python_peers_on_two_processes_connect_and_chat(
    lab_host: Host, tmp_path: Path
) -> None:
    async with (
        redis_for_test(tmp_path, lab_host.ip) as redis,
        cluster(redis, 2, host=lab_host.ip) as (one, two),
        peers_on([one, two, two], "chat", ["Ada", "Bob", "Cy"]) as (ada, bob, cy),
    ):
        ada.send_text("hello from process one")
        for listener in (bob, cy):
            message = await wait_for_event(
                listener, ev.Message, lambda m: m.text == "hello from process one"
            )
            assert message.name == "Ada"
        bob.send_text("and back from two")
        got = await wait_for_event(ada, ev.Message, lambda m: m.text == "and back from two")
        assert got.name == "Bob"


@contextlib.asynccontextmanager
async def peers_on(
    servers: Sequence[RunningServer], room: str, names: Sequence[str]
) -> AsyncIterator[list[Room]]:
    """Python peers joined one after the other, each on its server; all closed at the end."""
    made: list[Room] = []
    try:
        for server, name in zip(servers, names, strict=True):
            peer = Room(server.ws_url, room, name)
            made.append(peer)
            await peer.start()
            await wait_until(lambda: all(len(m.names) >= len(made) - 1 for m in made), WAIT)
        await wait_until(lambda: fully_connected(*made), WAIT)
        yield made
    finally:
        await asyncio.gather(*(peer.close() for peer in made), return_exceptions=True)


async def test_a_stopped_process_clients_resume_elsewhere_with_what_was_sent_meanwhile(
    redis_server: RedisServer,
) -> None:
    async with (
        cluster(redis_server, 1) as (survivor,),
        joined(survivor.ws_url, "r", "Stays") as stays,
        contextlib.AsyncExitStack() as stack,
    ):
        async with server_process(
            "127.0.0.1", None, "--redis-url", redis_server.url, "--presence-ttl", "30"
        ) as stopping:
            moving = await stack.enter_async_context(joined(stopping.ws_url, "r", "Moves"))
            await stays.expect("peer-joined")
        # SIGTERM: the server closed its WebSockets (going away) and exited.
        await moving.expect_close()
        await stays.send({"type": "offer", "to": moving.id, "sdp": "while away"})
        async with connect(survivor.ws_url) as back:
            welcome = await back.join("r", "Moves", resume=moving.welcome["resume"])
            assert welcome["resumed"] is True and welcome["id"] == moving.id
            kept = await back.expect("offer")
            assert kept["sdp"] == "while away" and kept["from"] == stays.id


def test_redis_options_come_from_the_command_line_or_the_environment() -> None:
    from server.config import config_from_namespace
    from server.errors import ConfigError

    url = "redis://:pw@redis.example:6379/0"
    config = config_from_namespace({}, environ={"CONFIDE_REDIS_URL": url})
    assert config.redis_url == url and config.presence_ttl == 5.0
    assert "pw" not in repr(config)  # a password in the URL never reaches a log
    with pytest.raises(ConfigError) as refused:
        config_from_namespace({"redis_url": "http://redis.example"}, environ={})
    assert refused.value.option == "--redis-url"
    with pytest.raises(ConfigError) as refused:
        config_from_namespace({"presence_ttl": "0.01"}, environ={})
    assert refused.value.option == "--presence-ttl"


async def test_healthz_names_the_memory_hub_without_redis(server: RunningServer) -> None:
    body = await healthz(server)
    assert body["hub"] == {"kind": "memory"}
