"""The chat channel's messages and per-peer state (client_py/channel.py), sans I/O."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client_py.channel import (
    MAX_MESSAGE_BYTES,
    MAX_TEXT_BYTES,
    Ack,
    ChatLink,
    Delivered,
    FileControlReceived,
    FileOffer,
    IgnoredInput,
    Msg,
    Received,
    Typing,
    TypingChanged,
    encode,
    parse,
)
from client_py.errors import Ignored
from tests.peer_helpers import protocol_examples


def test_every_channel_example_of_protocol_md_parses_and_round_trips() -> None:
    examples = protocol_examples("channel")
    kinds = {json.loads(text)["t"] for text in examples}
    assert kinds == {"msg", "ack", "typing", "file-offer", "file-accept", "file-decline",
                     "file-end", "file-received", "file-cancel"}  # fmt: skip
    for text in examples:
        parsed = parse(text)
        assert parsed.unknown_fields == ()
        assert json.loads(encode(parsed.message)) == json.loads(text)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01", "binary"),
        ("{nope", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"t": 5}', "'t' must be a string"),
        ('{"t": "launch-missiles"}', "unknown message type"),
        ('{"t": "msg", "id": "a b", "ts": 1, "text": "x"}', "'id'"),
        ('{"t": "msg", "id": "a", "ts": true, "text": "x"}', "'ts'"),
        ('{"t": "msg", "id": "a", "ts": 1, "text": 5}', "'text'"),
        ('{"t": "msg", "id": "a", "ts": 1, "text": "x", "dm": "yes"}', "'dm'"),
        ('{"t": "msg", "id": "a", "ts": 1, "text": "\\ud800"}', "Unicode"),
        ('{"t": "ack"}', "'id'"),
        ('{"t": "typing", "on": 1}', "'on'"),
        ('{"t": "file-offer", "fid": "f", "name": "", "size": 1}', "'name'"),
        ('{"t": "file-offer", "fid": "f", "name": "a", "size": -1}', "'size'"),
        ('{"t": "file-offer", "fid": "f", "name": "a", "size": 9007199254740992}', "'size'"),
        ('{"t": "file-accept", "fid": "f", "offset": 1.5}', "'offset'"),
        ('{"t": "file-end", "fid": "f", "sha256": "xyz"}', "'sha256'"),
        ('{"t": "file-received", "fid": "f", "ok": null}', "'ok'"),
        ('{"t": "file-cancel", "fid": "../etc"}', "'fid'"),
        # Every listed field is required, as in client_web/chat.js.
        ('{"t": "msg", "id": "a", "ts": 1, "text": "x"}', "'dm'"),
        ('{"t": "file-offer", "fid": "f", "name": "a", "size": 1, "dm": false}', "'mime'"),
        ('{"t": "file-end", "fid": "f", "sha256": "' + "A" * 64 + '"}', "lower-case"),
    ],
)
def test_bad_messages_are_ignored_with_a_reason(data: str | bytes, reason: str) -> None:
    with pytest.raises(Ignored) as caught:
        parse(data)
    assert reason in caught.value.reason


def test_size_limits_are_the_protocols() -> None:
    text = "é" * (MAX_TEXT_BYTES // 2)
    assert parse(encode(Msg("a", 1, text))).message == Msg("a", 1, text)
    with pytest.raises(Ignored, match="over 16384 bytes"):
        parse(encode(Msg("a", 1, text + "x")))
    frame = '{"t": "typing", "on": true, "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(Ignored, match="over 65536 bytes"):
        parse(frame)


def test_a_forged_sender_field_is_reported_not_believed() -> None:
    parsed = parse('{"t": "msg", "id": "m1", "ts": 1, "text": "hi", "dm": false, "from": "Grace"}')
    assert parsed.message == Msg("m1", 1, "hi", False)
    assert parsed.unknown_fields == ("from",)
    events = ChatLink(is_open=True).receive(
        '{"t": "msg", "id": "m1", "ts": 1, "text": "hi", "dm": false, "name": "Grace"}'
    )
    assert events == [
        IgnoredInput("ignored unknown field(s) name"),
        Received(Msg("m1", 1, "hi", False)),
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["t", "id", "ts", "text", "dm", "fid", "size", "x"])
                    | st.text(),
                    children,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {
                "t": st.sampled_from(
                    [
                        "msg",
                        "ack",
                        "typing",
                        "file-offer",
                        "file-accept",
                        "file-end",
                        "file-received",
                        "file-cancel",
                        "nope",
                    ]
                )
            },  # fmt: skip
            optional={
                "id": st.text(max_size=70),
                "fid": st.text(max_size=70),
                "ts": st.integers() | st.floats() | st.booleans(),
                "text": st.text(),
                "dm": st.booleans() | st.integers(),
                "on": st.booleans() | st.none(),
                "name": st.text(max_size=300),
                "size": st.integers(min_value=-2, max_value=2**54),
                "offset": st.integers() | st.floats(),
                "sha256": st.text(alphabet="0123456789abcdefg", min_size=63, max_size=65),
                "ok": st.booleans() | st.text(),
            },
        ).map(json.dumps),
    )
)
def test_the_parser_never_raises_anything_but_ignored(data: str | bytes) -> None:
    link = ChatLink(is_open=True)
    events = link.receive(data)  # must not raise
    assert events
    try:
        parsed = parse(data)
    except Ignored as exc:
        assert exc.reason
        assert events == [IgnoredInput(exc.reason)]
    else:
        # What parses re-encodes to a message that parses to the same thing.
        assert parse(encode(parsed.message)).message == parsed.message


def test_messages_wait_until_open_then_go_in_order() -> None:
    link = ChatLink()
    first = link.compose("one", ts=1)
    second = link.compose("two", ts=2)
    link.send(Typing(False))
    assert link.data_to_send() == []
    link.opened()
    assert [json.loads(f) for f in link.data_to_send()] == [
        {"t": "msg", "id": first.id, "ts": 1, "text": "one", "dm": False},
        {"t": "msg", "id": second.id, "ts": 2, "text": "two", "dm": False},
        {"t": "typing", "on": False},
    ]
    third = link.compose("three", dm=True, ts=3)
    assert [json.loads(f)["id"] for f in link.data_to_send()] == [third.id]


def test_unacknowledged_messages_go_again_after_a_reconnect() -> None:
    link = ChatLink()
    link.opened()
    first = link.compose("one")
    second = link.compose("two")
    link.data_to_send()
    assert link.receive(encode(Ack(first.id))) == [Delivered(first.id)]
    assert link.receive(encode(Ack(first.id))) == []  # a second ack is harmless
    link.closed()
    link.opened()
    assert [json.loads(f)["id"] for f in link.data_to_send()] == [second.id]


def test_a_message_is_shown_once_but_acknowledged_every_time() -> None:
    link = ChatLink(is_open=True)
    frame = encode(Msg("m1", 5, "hello"))
    assert link.receive(frame) == [Received(Msg("m1", 5, "hello"))]
    assert link.receive(frame) == [Received(Msg("m1", 5, "hello"), duplicate=True)]
    assert link.data_to_send() == [encode(Ack("m1"))] * 2


def test_typing_indicator_expires_six_seconds_after_the_last_on() -> None:
    link = ChatLink(is_open=True)
    assert link.receive(encode(Typing(True)), now=100.0) == [TypingChanged(True)]
    assert link.typing_shown(105.9)
    assert not link.typing_shown(106.0)
    link.receive(encode(Typing(True)), now=103.0)
    link.receive(encode(Typing(False)), now=104.0)
    assert not link.typing_shown(104.0)


def test_file_control_messages_are_handed_up() -> None:
    offer = FileOffer("f1", "a.txt", 3, "text/plain", False)
    assert ChatLink().receive(encode(offer)) == [FileControlReceived(offer)]


def test_compose_refuses_text_over_the_limit() -> None:
    with pytest.raises(ValueError):
        ChatLink().compose("x" * (MAX_TEXT_BYTES + 1))
