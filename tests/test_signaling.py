"""The sans-I/O signaling core, driven by plain calls."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from server.hub import JoinResult, PeerInfo
from server.protocol import CloseCode, ErrorCode, Join
from server.signaling import (
    Close,
    Limits,
    Relay,
    Reply,
    RequestJoin,
    RequestLeave,
    Session,
    State,
    TokenBucket,
)

LIMITS = Limits(rate=10.0, burst=5, join_timeout=10.0)
ICE = [{"urls": ["stun:192.0.2.1:3478"]}]


def accepted(peer_id: str = "me", **changes: Any) -> JoinResult:
    """What the hub answers to a join into room "r"."""
    return replace(JoinResult(PeerInfo(peer_id, "A"), "r", "token", [], resumed=False), **changes)


def error_code(action: object) -> str:
    assert isinstance(action, Reply)
    frame = json.loads(action.frame)
    assert frame["type"] == "error"
    return str(frame["code"])


def joined_session(peer_id: str = "me") -> Session:
    session = Session(LIMITS, now=0.0)
    [request] = session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    assert request == RequestJoin(Join("r", "A"))
    session.joined(accepted(peer_id), ICE)
    return session


def test_states_follow_join_and_leave() -> None:
    session = Session(LIMITS, now=0.0)
    states = [session.state]
    session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    session.joined(accepted(), ICE)
    states.append(session.state)
    assert states == [State.AWAITING_JOIN, State.JOINED]
    assert session.receive_text('{"type":"leave"}', 0.1) == [
        RequestLeave(),
        Close(CloseCode.NORMAL, "left"),
    ]
    assert session.state is State.CLOSED
    assert session.receive_text('{"type":"leave"}', 0.2) == []


def test_signals_before_join_are_refused() -> None:
    session = Session(LIMITS, now=0.0)
    [reply] = session.receive_text('{"type":"offer","to":"x","sdp":"s"}', 0.0)
    assert error_code(reply) == "not-joined"


def test_a_second_join_is_refused_even_while_the_first_is_pending() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    [reply] = session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    assert error_code(reply) == "already-joined"
    session.joined(accepted(), ICE)
    [reply] = session.receive_text('{"type":"join","room":"q","name":"A"}', 0.0)
    assert error_code(reply) == "already-joined"


def test_welcome_carries_the_id_peers_token_and_ice_servers() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    result = accepted("me", peers=[PeerInfo("p1", "Grace")], resume_token="tok")
    [welcome] = session.joined(result, ICE)
    assert isinstance(welcome, Reply)
    assert json.loads(welcome.frame) == {
        "type": "welcome",
        "id": "me",
        "room": "r",
        "resume": "tok",
        "resumed": False,
        "peers": [{"id": "p1", "name": "Grace"}],
        "iceServers": ICE,
    }
    assert (session.state, session.peer_id, session.room) == (State.JOINED, "me", "r")


def test_a_resumed_welcome_is_followed_by_the_frames_kept_meanwhile() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"r","name":"A","resume":"old"}', 0.0)
    kept = ('{"type":"offer","from":"p1","sdp":"s"}', '{"type":"peer-left","id":"p2"}')
    welcome, *rest = session.joined(accepted(resumed=True, pending=kept), ICE)
    assert isinstance(welcome, Reply) and json.loads(welcome.frame)["resumed"] is True
    assert rest == [Reply(frame) for frame in kept]


def test_room_full_names_the_room_and_keeps_the_session_waiting() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"lobby","name":"A"}', 0.0)
    [reply] = session.join_refused(ErrorCode.ROOM_FULL)
    assert isinstance(reply, Reply)
    assert json.loads(reply.frame) == {
        "type": "error",
        "code": "room-full",
        "message": "room 'lobby' is full",
    }
    assert session.state is State.AWAITING_JOIN and session.peer_id is None
    # A refused join does not stop the join deadline.
    assert [error_code(a) for a in session.check_deadline(10.0)[:1]] == ["join-timeout"]


def test_a_failed_relay_is_an_unknown_peer() -> None:
    session = joined_session("me")
    [relay] = session.receive_text('{"type":"offer","to":"gone","sdp":"s"}', 0.0)
    assert isinstance(relay, Relay) and relay.room == "r"
    [reply] = session.relay_failed(relay.to)
    assert error_code(reply) == "unknown-peer"


def test_a_refused_join_may_be_retried() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    [reply] = session.join_refused(ErrorCode.ROOM_FULL)
    assert error_code(reply) == "room-full"
    [request] = session.receive_text('{"type":"join","room":"q","name":"A"}', 0.0)
    assert isinstance(request, RequestJoin)


def test_relay_is_stamped_with_the_sender_and_ignores_a_forged_from() -> None:
    session = joined_session("me")
    [relay] = session.receive_text('{"type":"answer","to":"you","sdp":"s","from":"boss"}', 0.0)
    assert isinstance(relay, Relay)
    assert relay.to == "you"
    assert json.loads(relay.frame) == {"type": "answer", "from": "me", "sdp": "s"}


def test_signalling_oneself_is_an_unknown_peer() -> None:
    session = joined_session("me")
    [reply] = session.receive_text('{"type":"offer","to":"me","sdp":"s"}', 0.0)
    assert error_code(reply) == "unknown-peer"


def test_rate_limit_drops_frames_beyond_the_bucket_then_refills() -> None:
    session = joined_session()
    frame = '{"type":"candidate","to":"x","candidate":null}'
    results = [session.receive_text(frame, 1.0) for _ in range(LIMITS.burst + 2)]
    # joining spent one token at t=0, which refilled by t=1.
    assert all(isinstance(r[0], Relay) for r in results[: LIMITS.burst])
    assert [error_code(r[0]) for r in results[LIMITS.burst :]] == ["rate-limited"] * 2
    [later] = session.receive_text(frame, 1.0 + 1.0 / LIMITS.rate)
    assert isinstance(later, Relay)


def test_join_deadline_closes_with_policy_violation() -> None:
    session = Session(LIMITS, now=0.0)
    assert session.check_deadline(9.9) == []
    reply, close = session.check_deadline(10.0)
    assert error_code(reply) == "join-timeout"
    assert close == Close(CloseCode.POLICY_VIOLATION, "join timeout")
    assert session.state is State.CLOSED


def test_deadline_does_not_apply_once_joined() -> None:
    session = joined_session()
    assert session.check_deadline(100.0) == []


def test_binary_frames_close_with_1003() -> None:
    session = joined_session()
    assert session.receive_binary() == [
        Close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
    ]


def test_token_bucket_never_exceeds_its_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=3, now=0.0)
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]


@given(st.lists(st.text(max_size=200), max_size=30))
def test_fuzz_session_always_answers_with_actions(frames: list[str]) -> None:
    session = joined_session()
    for index, frame in enumerate(frames):
        actions = session.receive_text(frame, index * 0.2)
        assert all(
            isinstance(a, Reply | Relay | RequestJoin | RequestLeave | Close) for a in actions
        )
    # Whatever came before, a well-formed frame still works (if the session is open).
    if session.state is State.JOINED:
        [relay] = session.receive_text('{"type":"offer","to":"x","sdp":"s"}', 1000.0)
        assert isinstance(relay, Relay)


def test_a_join_over_the_address_rate_is_refused_and_may_be_retried() -> None:
    session = Session(LIMITS, now=0.0)
    session.receive_text('{"type":"join","room":"r","name":"A"}', 0.0)
    [reply] = session.join_refused(ErrorCode.RATE_LIMITED)
    assert error_code(reply) == "rate-limited"
    [request] = session.receive_text('{"type":"join","room":"r","name":"A"}', 1.0)
    assert isinstance(request, RequestJoin)


def test_renewed_ice_servers_go_only_to_a_joined_client() -> None:
    waiting = Session(LIMITS, now=0.0)
    assert waiting.ice_servers_renewed(ICE) == []
    session = joined_session()
    [reply] = session.ice_servers_renewed(ICE)
    assert isinstance(reply, Reply)
    assert json.loads(reply.frame) == {"type": "ice-servers", "iceServers": ICE}
    session.receive_text('{"type":"leave"}', 1.0)
    assert session.ice_servers_renewed(ICE) == []
