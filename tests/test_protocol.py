"""The message shapes of server/protocol.py, and docs/PROTOCOL.md checked against them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.errors import ProtocolError
from server.protocol import (
    ErrorCode,
    Join,
    Leave,
    Signal,
    error_frame,
    ice_servers_frame,
    parse_client_frame,
    peer_joined_frame,
    peer_left_frame,
    relayed_frame,
    welcome_frame,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"


def doc_examples(kind: str) -> list[dict[str, Any]]:
    """Every ```json <kind> block of docs/PROTOCOL.md, parsed."""
    blocks = re.findall(rf"```json {kind}\n(.*?)```", DOC.read_text(), flags=re.S)
    return [json.loads(block) for block in blocks]


def code_of(text: str) -> str:
    with pytest.raises(ProtocolError) as info:
        parse_client_frame(text)
    return info.value.code


def test_doc_has_examples_of_every_message() -> None:
    client = {example["type"] for example in doc_examples("client")}
    server = {example["type"] for example in doc_examples("server")}
    assert client == {"join", "offer", "answer", "candidate", "leave"}
    assert server == {
        "welcome",
        "peer-joined",
        "peer-left",
        "offer",
        "answer",
        "candidate",
        "error",
        "ice-servers",
    }


@pytest.mark.parametrize("example", doc_examples("client"), ids=lambda e: e["type"])
def test_doc_client_examples_parse(example: dict[str, Any]) -> None:
    message = parse_client_frame(json.dumps(example))
    assert isinstance(message, Join | Signal | Leave)


def test_doc_server_examples_match_what_the_server_builds() -> None:
    built = {
        "welcome": json.loads(
            welcome_frame("a", "r", "t", [{"id": "b", "name": "B"}], [], resumed=False)
        ),
        "peer-joined": json.loads(peer_joined_frame("a", "A")),
        "peer-left": json.loads(peer_left_frame("a")),
        "error": json.loads(error_frame("bad-json", "m")),
        "ice-servers": json.loads(ice_servers_frame([])),
        "offer": json.loads(relayed_frame(Signal("offer", "x", "s"), "a")),
        "answer": json.loads(relayed_frame(Signal("answer", "x", "s"), "a")),
        "candidate": json.loads(relayed_frame(Signal("candidate", "x", None), "a")),
    }
    for example in doc_examples("server"):
        assert set(example) == set(built[example["type"]]), example["type"]


def test_doc_error_table_lists_every_code() -> None:
    text = DOC.read_text()
    for code in ErrorCode:
        assert f"| `{code.value}` |" in text, code


def test_doc_relay_examples_are_the_client_ones_stamped() -> None:
    client = [e for e in doc_examples("client") if e["type"] in ("offer", "answer", "candidate")]
    server = [e for e in doc_examples("server") if e["type"] in ("offer", "answer", "candidate")]
    for sent in client:
        if isinstance(sent.get("sdp"), dict) or sent.get("candidate") is None:
            continue  # the sealed and end-of-candidates examples have no server twin
        relayed = json.loads(relayed_frame(parse_client_frame(json.dumps(sent)), "sender"))  # type: ignore[arg-type]
        assert any(
            {k: v for k, v in r.items() if k != "from"}
            == {k: v for k, v in relayed.items() if k != "from"}
            for r in server
        ), sent


def test_join_trims_the_name() -> None:
    assert parse_client_frame('{"type":"join","room":"r-1_A","name":"  Ada "}') == Join(
        "r-1_A", "Ada"
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{", "bad-json"),
        ("[" * 100_000, "bad-json"),
        ("[]", "bad-message"),
        ('"join"', "bad-message"),
        ('{"room":"r"}', "bad-message"),
        ('{"type":7}', "bad-message"),
        ('{"type":"hello"}', "unknown-type"),
        ('{"type":"join","room":"","name":"A"}', "bad-message"),
        ('{"type":"join","room":"a b","name":"A"}', "bad-message"),
        ('{"type":"join","room":"' + "r" * 65 + '","name":"A"}', "bad-message"),
        ('{"type":"join","room":"r","name":"   "}', "bad-message"),
        ('{"type":"join","room":"r","name":"' + "n" * 33 + '"}', "bad-message"),
        ('{"type":"join","room":"r","name":"a\\u0000b"}', "bad-message"),
        ('{"type":"join","room":"r","name":5}', "bad-message"),
        ('{"type":"join","room":"r","name":"A","resume":""}', "bad-message"),
        ('{"type":"join","room":"r","name":"A","resume":7}', "bad-message"),
        ('{"type":"offer","sdp":"x"}', "bad-message"),
        ('{"type":"offer","to":5,"sdp":"x"}', "bad-message"),
        ('{"type":"offer","to":"p"}', "bad-message"),
        ('{"type":"offer","to":"p","sdp":5}', "bad-message"),
        ('{"type":"answer","to":"p","sdp":null}', "bad-message"),
        ('{"type":"candidate","to":"p","candidate":"x"}', "bad-message"),
        ('{"type":"candidate","to":"p"}', "bad-message"),
    ],
)
def test_bad_frames_get_stable_codes(frame: str, code: str) -> None:
    assert code_of(frame) == code


def test_payloads_stay_opaque() -> None:
    sealed = {"alg": "A256GCM", "iv": "x", "ct": "y"}
    message = parse_client_frame(json.dumps({"type": "offer", "to": "p", "sdp": sealed}))
    assert message == Signal("offer", "p", sealed)
    message = parse_client_frame('{"type":"candidate","to":"p","candidate":null}')
    assert message == Signal("candidate", "p", None)


def test_relayed_frame_keeps_only_the_protocol_fields() -> None:
    message = parse_client_frame(
        '{"type":"offer","to":"p","sdp":"s","from":"forged","name":"Mallory","x":1}'
    )
    assert isinstance(message, Signal)
    assert json.loads(relayed_frame(message, "real")) == {
        "type": "offer",
        "from": "real",
        "sdp": "s",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    st.one_of(
        st.text(),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["join", "offer", "answer", "candidate", "leave", "x"])},
            optional={
                "room": json_values,
                "name": json_values,
                "to": json_values,
                "sdp": json_values,
                "candidate": json_values,
                "resume": json_values,
            },
        ).map(json.dumps),
    )
)
def test_fuzz_parser_only_ever_raises_protocol_errors(text: str) -> None:
    try:
        message = parse_client_frame(text)
    except ProtocolError as exc:
        assert exc.code in {code.value for code in ErrorCode}
    else:
        assert isinstance(message, Join | Signal | Leave)
