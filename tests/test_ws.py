"""Signaling over a real server on a real socket: every message, limit and close code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.processes import wait_until
from natlab.servers import RunningServer, running_server, server_process
from server import ws_writer
from server.turn import credential_for
from tests.raw_websocket import raw_client, text_frame
from tests.signaling_client import connect, joined

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


async def test_join_gets_a_server_assigned_id_and_the_ice_servers(server: RunningServer) -> None:
    async with connect(server.ws_url) as client:
        welcome = await client.join("room-1", "  Ada ")
    assert re.fullmatch(r"[0-9a-f]{16}", welcome["id"])
    assert welcome["room"] == "room-1" and welcome["resumed"] is False
    assert welcome["peers"] == [] and len(welcome["resume"]) >= 32
    assert welcome["iceServers"] == [{"urls": [f"stun:127.0.0.1:{server.stun_port}"]}]


async def test_peers_are_introduced_and_leave_cleanly(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "Ada") as ada:
        async with joined(server.ws_url, "r", "Grace") as grace:
            assert grace.welcome["peers"] == [{"id": ada.id, "name": "Ada"}]
            assert await ada.expect("peer-joined") == {
                "type": "peer-joined",
                "peer": {"id": grace.id, "name": "Grace"},
            }
            await grace.send({"type": "leave"})
            assert await grace.expect_close() == 1000
        assert await ada.expect("peer-left") == {"type": "peer-left", "id": grace.id}


async def test_closing_the_socket_is_a_clean_leave(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "Ada") as ada:
        async with joined(server.ws_url, "r", "Grace") as grace:
            await ada.expect("peer-joined")
            await grace.ws.close()
        assert (await ada.expect("peer-left"))["id"] == grace.id


async def test_offer_answer_candidate_are_forwarded_with_from_stamped(
    server: RunningServer,
) -> None:
    async with joined(server.ws_url, "r", "Ada") as ada, joined(server.ws_url, "r", "B") as bob:
        await ada.expect("peer-joined")
        sealed = {"alg": "A256GCM", "iv": "AAAA", "ct": "BBBB"}
        await ada.send({"type": "offer", "to": bob.id, "sdp": "v=0\r\n", "from": bob.id})
        assert await bob.receive() == {"type": "offer", "from": ada.id, "sdp": "v=0\r\n"}
        await bob.send({"type": "answer", "to": ada.id, "sdp": sealed})
        assert await ada.receive() == {"type": "answer", "from": bob.id, "sdp": sealed}
        candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"}
        await ada.send({"type": "candidate", "to": bob.id, "candidate": candidate})
        assert await bob.receive() == {"type": "candidate", "from": ada.id, "candidate": candidate}
        await ada.send({"type": "candidate", "to": bob.id, "candidate": None})
        assert await bob.receive() == {"type": "candidate", "from": ada.id, "candidate": None}


async def test_signals_never_cross_rooms(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "Ada") as ada, joined(server.ws_url, "q", "Eve") as eve:
        await eve.send({"type": "offer", "to": ada.id, "sdp": "x"})
        await eve.expect_error("unknown-peer")
        await eve.send({"type": "offer", "to": "0" * 16, "sdp": "x"})
        await eve.expect_error("unknown-peer")
        await eve.send({"type": "offer", "to": eve.id, "sdp": "x"})
        await eve.expect_error("unknown-peer")
        # Ada got nothing: the next frame she sees is one we send her now.
        async with joined(server.ws_url, "r", "Bob") as bob:
            assert (await ada.receive())["type"] == "peer-joined"
            await bob.send({"type": "offer", "to": ada.id, "sdp": "ok"})
            assert (await ada.receive())["sdp"] == "ok"


async def test_every_protocol_error_keeps_the_connection_open(server: RunningServer) -> None:
    async with connect(server.ws_url) as client:
        await client.send("{nope")
        await client.expect_error("bad-json")
        await client.send({"type": "offer", "to": "x", "sdp": "s"})
        await client.expect_error("not-joined")
        await client.send({"type": "join", "room": "bad room", "name": "A"})
        await client.expect_error("bad-message")
        await client.send({"type": "dance"})
        await client.expect_error("unknown-type")
        await client.join("r", "A")
        await client.send({"type": "join", "room": "r", "name": "A"})
        await client.expect_error("already-joined")
        await client.send({"type": "offer", "to": "x", "sdp": 42})
        await client.expect_error("bad-message")
        await client.send({"type": "offer", "to": "nobody", "sdp": "s"})
        await client.expect_error("unknown-peer")
        assert not client.ws.closed


async def test_room_capacity() -> None:
    async with running_server(room_capacity=2) as server:
        async with joined(server.ws_url, "r", "A"), joined(server.ws_url, "r", "B"):
            async with connect(server.ws_url) as third:
                await third.send({"type": "join", "room": "r", "name": "C"})
                await third.expect_error("room-full")
                # Still open: the client may join another room.
                await third.join("r2", "C")


async def test_rate_limit() -> None:
    async with running_server(rate=1.0, burst=3) as server:
        async with joined(server.ws_url, "r", "A") as client:
            for _ in range(3):
                await client.send({"type": "offer", "to": "x", "sdp": "s"})
            codes = [(await client.expect("error"))["code"] for _ in range(3)]
            # join spent a token: two frames fit, the third was dropped.
            assert codes == ["unknown-peer", "unknown-peer", "rate-limited"]


async def test_join_timeout_closes_with_1008() -> None:
    async with running_server(join_timeout=0.3) as server, connect(server.ws_url) as client:
        await client.expect_error("join-timeout")
        assert await client.expect_close() == 1008


async def test_oversized_frame_closes_with_1009() -> None:
    async with running_server(max_message_size=1024) as server:
        async with joined(server.ws_url, "r", "A") as client:
            await client.send({"type": "offer", "to": "x", "sdp": "x" * 2000})
            assert await client.expect_close() == 1009


async def test_binary_frame_closes_with_1003(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "A") as client:
        await client.ws.send_bytes(b"\x00\x01")
        assert await client.expect_close() == 1003


async def test_origin_allowlist(server: RunningServer) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        async with connect(server.ws_url, origin="http://evil.example"):
            pass
    assert info.value.status == 403
    async with connect(server.ws_url, origin=server.url) as same:
        await same.join("r", "A")
    async with running_server(allowed_origins=("https://app.example",)) as other:
        async with connect(other.ws_url, origin="https://app.example") as allowed:
            await allowed.join("r", "A")


UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_origin_refusal_is_a_json_error(server: RunningServer) -> None:
    headers = {"Origin": "http://evil.example", **UPGRADE_HEADERS}
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/ws", headers=headers) as response:
            assert response.status == 403
            assert (await response.json())["error"] == "origin-not-allowed"


async def test_resume_within_grace_keeps_the_id_silently(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "Ada") as ada:
        async with connect(server.ws_url) as bob:
            await bob.join("r", "Bob")
            await ada.expect("peer-joined")
            token, bob_id = bob.welcome["resume"], bob.id
            bob.drop()
        await ada.send({"type": "offer", "to": bob_id, "sdp": "while away"})
        async with connect(server.ws_url) as again:
            welcome = await again.join("r", "Bob", resume=token)
            assert welcome["id"] == bob_id and welcome["resumed"] is True
            assert welcome["peers"] == [{"id": ada.id, "name": "Ada"}]
            # What was addressed to Bob meanwhile was kept for him.
            assert await again.receive() == {"type": "offer", "from": ada.id, "sdp": "while away"}
            await again.send({"type": "answer", "to": ada.id, "sdp": "back"})
            # Ada never heard that Bob left: the next frame is his answer.
            assert await ada.receive() == {"type": "answer", "from": bob_id, "sdp": "back"}


async def test_resume_after_grace_is_a_new_peer() -> None:
    async with running_server(resume_grace=0.3) as server:
        async with joined(server.ws_url, "r", "Ada") as ada:
            async with connect(server.ws_url) as bob:
                await bob.join("r", "Bob")
                await ada.expect("peer-joined")
                token, bob_id = bob.welcome["resume"], bob.id
                bob.drop()
                assert await ada.expect("peer-left") == {"type": "peer-left", "id": bob_id}
            async with connect(server.ws_url) as again:
                welcome = await again.join("r", "Bob", resume=token)
                assert welcome["resumed"] is False and welcome["id"] != bob_id


async def test_resume_replaces_a_connection_that_is_still_open(server: RunningServer) -> None:
    async with connect(server.ws_url) as first, connect(server.ws_url) as second:
        await first.join("r", "A")
        welcome = await second.join("r", "A", resume=first.welcome["resume"])
        assert welcome["id"] == first.id
        assert await first.expect_close() == 4001


async def test_heartbeat_closes_a_client_that_does_not_answer_pings() -> None:
    async with running_server(heartbeat=0.2) as server:
        async with joined(server.ws_url, "r", "Alive") as alive:
            async with connect(server.ws_url, autoping=False) as silent:
                await silent.join("r", "Silent")
                await alive.expect("peer-joined")
                # A pending receive() is what answers pings in aiohttp's client.
                alive_next = asyncio.create_task(alive.receive(timeout=30))
                # The silent client reads but never answers the pings.
                while True:
                    msg = await silent.ws.receive(timeout=5)
                    if msg.type != aiohttp.WSMsgType.PING:
                        break
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            # The one that answers stayed through the same heartbeats.
            assert not alive.ws.closed
            await alive.send({"type": "offer", "to": "x", "sdp": "s"})
            frame = await alive_next
            if frame["type"] == "peer-left":
                frame = await alive.receive()
            assert frame["code"] == "unknown-peer"


async def test_a_slow_reader_is_closed_without_holding_up_the_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The slow client reads its close only after the flood: long after the
    # close began, which is then not to be cut short.
    monkeypatch.setattr(ws_writer, "CLOSE_TIMEOUT", 60.0)
    async with running_server(send_buffer=256 * 1024, rate=10_000.0, burst=10_000) as server:
        async with joined(server.ws_url, "r", "Fast") as fast:
            async with connect(server.ws_url) as slow:
                await slow.join("r", "Slow")
                await fast.expect("peer-joined")
                payload = "x" * 60_000
                # Slow never reads: once the kernel buffers are full its queue
                # fills and the server closes it with 1013.
                for _ in range(400):
                    await fast.send({"type": "offer", "to": slow.id, "sdp": payload})
                    if slow.ws.closed:
                        break
                await fast.send({"type": "offer", "to": "x", "sdp": "s"})
                while (frame := await fast.receive())["type"] != "error":
                    assert frame["type"] in ("peer-left",)
                assert await slow.expect_close(timeout=10) == 1013


async def test_shutdown_closes_websockets_with_1001() -> None:
    server_cm = running_server()
    server = await server_cm.__aenter__()
    async with joined(server.ws_url, "r", "A") as client:
        shutdown = asyncio.create_task(server_cm.__aexit__(None, None, None))
        assert await client.expect_close() == 1001
        await shutdown


# A fuzz test over the live server: it runs in a thread with its own loop so
# that hypothesis can drive plain synchronous examples against it.


@pytest.fixture(scope="module")
def live_server() -> Iterator[RunningServer]:
    ready: list[RunningServer] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with running_server(
            rate=10_000.0, burst=10_000, join_rate=10_000.0, join_burst=10_000
        ) as running:
            ready.append(running)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield ready[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


frames = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["join", "offer", "answer", "candidate", "leave", "?"])},
        optional={
            "room": st.text(max_size=70),
            "name": st.text(max_size=40),
            "to": st.text(max_size=20),
            "sdp": st.none() | st.integers() | st.text(max_size=50),
            "candidate": st.none() | st.text(max_size=5) | st.dictionaries(st.text(), st.text()),
            "resume": st.text(max_size=10) | st.integers(),
        },
    ).map(json.dumps),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=8))
def test_fuzz_live_server_keeps_answering(live_server: RunningServer, sent: list[str]) -> None:
    async def scenario() -> None:
        async with connect(live_server.ws_url) as fuzzer:
            for frame in sent:
                if fuzzer.ws.closed:
                    break
                await fuzzer.send(frame)
        # Whatever the fuzzer did, two fresh clients can still meet and talk.
        async with joined(live_server.ws_url, "fuzz-check", "A") as a:
            async with joined(live_server.ws_url, "fuzz-check", "B") as b:
                await a.expect("peer-joined")
                await b.send({"type": "offer", "to": a.id, "sdp": "still here"})
                assert (await a.receive())["sdp"] == "still here"

    asyncio.run(scenario())


async def test_healthz_counts_peers_and_rooms(server: RunningServer) -> None:
    async with joined(server.ws_url, "r", "A"), joined(server.ws_url, "q", "B"):
        async with aiohttp.ClientSession() as http:

            async def peers() -> bool:
                async with http.get(server.url + "/healthz") as response:
                    body = await response.json()
                return bool(body["peers"] == 2 and body["rooms"] == 2)

            await wait_until(peers)


async def test_a_burst_of_small_frames_in_one_write_reaches_its_addressee_in_full(
    server: RunningServer,
) -> None:
    # Issue 9 item 2: a member could close another with 1013 by sending it 280
    # candidates (18 KB, inside the rate limiter's burst) in one TCP write,
    # although it read everything.
    async with joined(server.ws_url, "r", "Victim") as victim, raw_client(server) as raw:
        attacker = await raw.join("Attacker")
        await victim.expect("peer-joined")
        candidate = {"type": "candidate", "to": victim.id, "candidate": None}
        burst = text_frame(json.dumps(candidate, separators=(",", ":"))) * 280
        assert 18_000 < len(burst) < 19_000
        raw.send(burst)
        for _ in range(280):
            assert await victim.receive() == {
                "type": "candidate",
                "from": attacker,
                "candidate": None,
            }
        # Still open, still heard.
        await victim.send({"type": "offer", "to": "nobody", "sdp": "s"})
        await victim.expect_error("unknown-peer")


TCP_CLOSE = 7  # tcpi_state of a socket that took a reset (linux/tcp_states.h)


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


async def test_a_client_that_stops_reading_is_cut_off_within_the_close_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 9 item 3: a close waits for the client to read what is queued, so
    # a client that never reads kept its socket (and the server's buffers)
    # for good. Now what is held back for it is bounded (1013 past
    # --send-buffer) and the transport is aborted when the close times out.
    monkeypatch.setattr(ws_writer, "CLOSE_TIMEOUT", 0.5)
    async with running_server(send_buffer=128 * 1024, rate=10_000.0, burst=10_000) as server:
        async with raw_client(server, receive_buffer=4096) as raw:
            victim = await raw.join("Victim")
            async with joined(server.ws_url, "r", "Flooder") as flooder:
                assert flooder.welcome["peers"] == [{"id": victim, "name": "Victim"}]
                offer = {"type": "offer", "to": victim, "sdp": "x" * 60_000}
                for _ in range(300):
                    await flooder.send(offer)
                    if tcp_state(raw.sock) == TCP_CLOSE:
                        break
                # Gone: the server reset the connection (its close could not be sent).
                await wait_until(lambda: tcp_state(raw.sock) == TCP_CLOSE, timeout=10)
                # The room carries on without it.
                await flooder.send({"type": "offer", "to": "nobody", "sdp": "s"})
                await flooder.expect_error("unknown-peer")


async def test_resuming_hands_out_a_new_token_and_the_old_one_no_longer_works(
    server: RunningServer,
) -> None:
    # Issue 9 item 7: a token that never changed let whoever held it take the
    # peer over again and again.
    async with connect(server.ws_url) as first:
        await first.join("r", "Ada")
        token = first.welcome["resume"]
        async with connect(server.ws_url) as second:
            welcome = await second.join("r", "Ada", resume=token)
            assert welcome["resumed"] is True and welcome["id"] == first.id
            assert welcome["resume"] != token
            assert await first.expect_close() == 4001
            async with connect(server.ws_url) as third:
                again = await third.join("r", "Ada", resume=token)
                assert again["resumed"] is False and again["id"] != first.id


async def test_joins_are_rate_limited_per_address_across_connections() -> None:
    # Issue 9 item 8: one connection per join made ~570 joins/s a room scanner.
    async with running_server(join_rate=0.01, join_burst=3) as server:
        async with contextlib.AsyncExitStack() as stack:
            for index in range(3):
                client = await stack.enter_async_context(connect(server.ws_url))
                await client.join(f"room-{index}", "Scanner")
            late = await stack.enter_async_context(connect(server.ws_url))
            await late.send({"type": "join", "room": "room-3", "name": "Scanner"})
            error = await late.expect_error("rate-limited")
            assert "joins" in error["message"]
            # The connection stays open; the refusal is only the join's.
            await late.send({"type": "offer", "to": "x", "sdp": "s"})
            await late.expect_error("not-joined")


async def test_open_websockets_are_capped_per_address() -> None:
    async with running_server(max_connections_per_ip=2) as server:
        async with connect(server.ws_url) as first, connect(server.ws_url):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                async with connect(server.ws_url):
                    pass
            assert info.value.status == 429
            async with (
                aiohttp.ClientSession() as http,
                http.get(server.url + "/ws", headers=UPGRADE_HEADERS) as response,
            ):
                assert response.status == 429
                assert (await response.json())["error"] == "too-many-connections"
            await first.ws.close()

            async def admitted() -> bool:
                try:
                    async with connect(server.ws_url) as again:
                        await again.join("r", "A")
                except aiohttp.WSServerHandshakeError:
                    return False
                return True

            # Its slot is freed once the server has seen the close.
            await wait_until(admitted, timeout=10)


def turn_entry(ice_servers: list[dict[str, Any]]) -> dict[str, Any]:
    (entry,) = [server for server in ice_servers if "username" in server]
    return entry


async def test_ice_servers_follow_the_host_the_client_used_or_the_public_host() -> None:
    async with running_server() as server:
        async with connect(server.ws_url, headers={"Host": "chat.lan:8080"}) as client:
            welcome = await client.join("r", "A")
        assert welcome["iceServers"] == [{"urls": [f"stun:chat.lan:{server.stun_port}"]}]
    async with running_server(public_host="203.0.113.7") as server:
        async with connect(server.ws_url) as client:
            welcome = await client.join("r", "A")
        assert welcome["iceServers"] == [{"urls": [f"stun:203.0.113.7:{server.stun_port}"]}]


TURN_SECRET = b"a-test-shared-secret-0123456789"
TURN_URLS = ("turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp")


async def test_turn_credentials_come_with_the_welcome_one_user_per_connection() -> None:
    # Issue 9 item 6: one TURN user per connection (and /api/ice-servers,
    # kept for tools, limited like joins: see test_http.py).
    async with running_server(turn_urls=TURN_URLS, turn_secret=TURN_SECRET) as server:
        async with joined(server.ws_url, "r", "A") as a, joined(server.ws_url, "r", "B") as b:
            turn_a, turn_b = (
                turn_entry(a.welcome["iceServers"]),
                turn_entry(b.welcome["iceServers"]),
            )
    # Both transports, TCP for networks that block UDP (the NAT lab relies on it).
    assert turn_a["urls"] == list(TURN_URLS)
    assert turn_a["username"].split(":")[1] != turn_b["username"].split(":")[1]
    expiry = int(turn_a["username"].split(":")[0])
    assert abs(expiry - (time.time() + 3600)) < 60
    assert turn_a["credential"] == credential_for(TURN_SECRET, turn_a["username"])
    assert TURN_SECRET.decode() not in json.dumps(a.welcome)


async def test_turn_credentials_are_renewed_over_the_socket_before_they_expire() -> None:
    # A 2 s lifetime: renewed after RENEW_AFTER of it, for the same user id.
    async with running_server(turn_urls=TURN_URLS, turn_secret=TURN_SECRET, turn_ttl=2) as server:
        async with joined(server.ws_url, "r", "A") as client:
            first = turn_entry(client.welcome["iceServers"])
            renewed = await client.expect("ice-servers", timeout=10)
            second = turn_entry(renewed["iceServers"])
            again = turn_entry((await client.expect("ice-servers", timeout=10))["iceServers"])
    expiries = [int(entry["username"].split(":")[0]) for entry in (first, second, again)]
    users = {entry["username"].split(":")[1] for entry in (first, second, again)}
    assert len(users) == 1
    assert expiries[0] <= expiries[1] <= expiries[2] and expiries[0] < expiries[2]
    assert second["credential"] == credential_for(TURN_SECRET, second["username"])
    assert set(renewed) == {"type", "iceServers"}


async def test_ice_servers_over_http_spend_the_address_join_tokens() -> None:
    # Issue 9 item 6: each answer mints a TURN user; a visitor cannot mint
    # them faster than it could join rooms.
    async with running_server(join_rate=0.01, join_burst=2) as server:
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.get(server.url + "/api/ice-servers") as response:
                    assert response.status == 200
            async with http.get(server.url + "/api/ice-servers") as response:
                assert response.status == 429
                assert (await response.json())["error"] == "rate-limited"
        async with connect(server.ws_url) as client:
            await client.send({"type": "join", "room": "r", "name": "A"})
            await client.expect_error("rate-limited")


async def test_behind_a_trusted_proxy_each_forwarded_client_counts_alone() -> None:
    async def opened(server: RunningServer, forwarded: str) -> int:
        headers = {**UPGRADE_HEADERS, "X-Forwarded-For": forwarded}
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.url + "/ws", headers=headers) as response,
        ):
            return response.status

    async with running_server(trusted_proxies=("127.0.0.1",), max_connections_per_ip=1) as server:
        async with connect(server.ws_url, headers={"X-Forwarded-For": "198.51.100.1"}):
            # What the client wrote itself (left of the proxy's entry) counts for nothing.
            assert await opened(server, "203.0.113.9, 198.51.100.1") == 429
            async with connect(server.ws_url, headers={"X-Forwarded-For": "198.51.100.2"}):
                pass
    async with running_server(max_connections_per_ip=1) as server:
        # Without a trusted proxy the header is anyone's to write: ignored.
        async with connect(server.ws_url, headers={"X-Forwarded-For": "198.51.100.1"}):
            assert await opened(server, "198.51.100.2") == 429


async def test_signaling_over_tls(tmp_path: Path) -> None:
    # The writer and the masking guard sit on the TLS transport then.
    async with server_process(
        "127.0.0.1", None, "--tls-self-signed", env={"XDG_STATE_HOME": str(tmp_path)}
    ) as running:
        context = ssl.create_default_context(
            cafile=str(tmp_path / "confide" / "selfsigned-cert.pem")
        )
        url = f"wss://localhost:{running.port}/ws"
        async with joined(url, "r", "Ada", ssl=context) as ada:
            async with joined(url, "r", "Bob", ssl=context) as bob:
                await ada.expect("peer-joined")
                await bob.send({"type": "offer", "to": ada.id, "sdp": "x" * 60_000})
                assert await ada.receive() == {
                    "type": "offer",
                    "from": bob.id,
                    "sdp": "x" * 60_000,
                }
