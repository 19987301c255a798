"""Server frames as the Python peer reads them (client_py/signaling.py), from the
``json server`` examples of docs/PROTOCOL.md."""

from __future__ import annotations

import json

from client_py.signaling import (
    PeerInfo,
    PeerJoined,
    PeerLeft,
    Relayed,
    ServerError,
    Welcome,
    parse_server_frame,
)
from tests.peer_helpers import protocol_examples


def test_every_server_example_of_protocol_md_is_understood() -> None:
    parsed = [parse_server_frame(text) for text in protocol_examples("server")]
    kinds = {type(p) for p in parsed}
    assert kinds == {Welcome, PeerJoined, PeerLeft, Relayed, ServerError}
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
           '{"type": "offer", "sdp": "x"}', '{"type": "peer-joined", "peer": 5}']  # fmt: skip
    for text in bad:
        assert parse_server_frame(text) is None
