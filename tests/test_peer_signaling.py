"""Server frames as the Python peer reads them (client_py/signaling.py), from the
``json server`` examples of docs/PROTOCOL.md."""

from __future__ import annotations

import json

from client_py.signaling import (
    BACKOFF_BASE,
    BACKOFF_FACTOR,
    BACKOFF_JITTER,
    BACKOFF_MAX,
    QUEUE_MAX,
    IceServers,
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Relayed,
    ServerError,
    SignalingClient,
    Welcome,
    backoff_delay,
    parse_server_frame,
)
from tests.peer_helpers import protocol_examples, vectors


def test_every_server_example_of_protocol_md_is_understood() -> None:
    parsed = [parse_server_frame(text) for text in protocol_examples("server")]
    kinds = {type(p) for p in parsed}
    assert kinds == {Welcome, IceServers, PeerJoined, PeerLeft, Relayed, ServerError}
    (renewed,) = [p for p in parsed if isinstance(p, IceServers)]
    assert any("?transport=tcp" in url for s in renewed.ice_servers for url in s["urls"])
    (welcome,) = [p for p in parsed if isinstance(p, Welcome)]
    assert welcome.id == "a1b2c3d4e5f60718" and welcome.resumed is False
    assert welcome.peers == (PeerInfo("0f1e2d3c4b5a6978", "Grace"),)
    assert welcome.ice_servers[0] == {"urls": ["stun:192.168.1.20:3478"]}
    relayed = [p for p in parsed if isinstance(p, Relayed)]
    assert {r.type for r in relayed} == {"offer", "answer", "candidate"}
    assert all(r.sender for r in relayed)


def test_the_client_examples_are_what_it_sends() -> None:
    # The join and leave the client writes have exactly the documented shape.
    examples = [json.loads(t) for t in protocol_examples("client")]
    assert {"type": "join", "room": "design-review", "name": "Ada"} in examples
    assert {"type": "leave"} in examples


def test_unexpected_frames_are_dropped_not_raised() -> None:
    bad = ["nope", "[]", '{"type": "mystery"}', '{"type": "peer-left"}',
           '{"type": "ice-servers", "iceServers": "x"}',
           '{"type": "offer", "sdp": "x"}', '{"type": "peer-joined", "peer": 5}']  # fmt: skip
    for text in bad:
        assert parse_server_frame(text) is None


def test_the_reconnect_backoff_is_the_shared_rule() -> None:
    rule = vectors()["client_rules"]["reconnect_backoff"]
    assert BACKOFF_BASE * 1000 == rule["base_ms"] and BACKOFF_FACTOR == rule["factor"]
    assert BACKOFF_MAX * 1000 == rule["max_ms"] and list(BACKOFF_JITTER) == rule["jitter"]
    low, high = rule["jitter"]
    for attempt in range(0, 2000, 7):
        plain = min(rule["max_ms"], rule["base_ms"] * rule["factor"] ** attempt) / 1000
        assert backoff_delay(attempt, 1.0) == plain  # no overflow after many attempts
        assert backoff_delay(attempt, low) == plain * low
        assert backoff_delay(attempt, high) == plain * high
    assert [backoff_delay(n, 1.0) for n in range(7)] == [0.25, 0.5, 1, 2, 4, 8, 8]


async def test_frames_written_while_disconnected_are_held_up_to_the_bound() -> None:
    bound = vectors()["client_rules"]["signaling_queue_max"]
    assert QUEUE_MAX == bound
    client = SignalingClient("ws://127.0.0.1:9/ws", "r", "Ada")  # never connected
    for i in range(bound + 5):
        await client.send("candidate", "b" * 16, {"candidate": f"candidate:{i}"})
    held = [json.loads(frame)["candidate"]["candidate"] for frame in client._outbox]
    # The first ones stay, in order; the newest are dropped and counted.
    assert held == [f"candidate:{i}" for i in range(bound)]
    assert client.dropped == 5
