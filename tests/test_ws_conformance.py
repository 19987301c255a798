"""RFC 6455 conformance of ``GET /ws`` as a client sees it, over a real socket.

Masking (§5.1, §5.3), fragmentation (§5.4), control frames (§5.5), close
codes (§7.4) and UTF-8 (§8.1), each sent byte by byte by tests/raw_websocket.py.
aiohttp's reader does all of it but one: it accepts unmasked client frames,
which server/ws_masking.py refuses in front of it.
"""

from __future__ import annotations

import json

import pytest

from natlab.servers import RunningServer
from tests.raw_websocket import (
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    RawClient,
    frame,
    raw_client,
)

PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007

JOIN = json.dumps({"type": "join", "room": "r", "name": "Ada"}).encode()


async def welcome_of(client: RawClient) -> dict[str, object]:
    received = await client.read()
    assert received.opcode == TEXT, received
    welcome = json.loads(received.payload)
    assert welcome["type"] == "welcome", welcome
    return dict(welcome)


async def test_a_masked_frame_is_read(server: RunningServer) -> None:
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN))
        await welcome_of(client)


async def test_an_unmasked_client_frame_closes_with_1002(server: RunningServer) -> None:
    # aiohttp's reader accepts them; server/ws_masking.py does not.
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN, mask=False))
        assert (await client.read_until_close()).close_code == PROTOCOL_ERROR


async def test_an_unmasked_frame_after_masked_ones_closes_with_1002(
    server: RunningServer,
) -> None:
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN))
        await welcome_of(client)
        offer = json.dumps({"type": "offer", "to": "x", "sdp": "s"}).encode()
        client.send(frame(TEXT, offer) + frame(TEXT, offer, mask=False))
        assert (await client.read_until_close()).close_code == PROTOCOL_ERROR


async def test_a_fragmented_message_is_reassembled(server: RunningServer) -> None:
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN[:5], fin=False))
        client.send(frame(CONTINUATION, JOIN[5:20], fin=False))
        client.send(frame(CONTINUATION, JOIN[20:]))
        await welcome_of(client)


async def test_a_ping_inside_a_fragmented_message_is_answered_and_the_message_kept(
    server: RunningServer,
) -> None:
    # §5.4: control frames MAY be injected in the middle of a fragmented message.
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN[:10], fin=False))
        client.send(frame(PING, b"mid"))
        pong = await client.read()
        assert (pong.opcode, pong.payload) == (PONG, b"mid")
        client.send(frame(CONTINUATION, JOIN[10:]))
        await welcome_of(client)


async def test_utf8_split_across_fragments_is_valid(server: RunningServer) -> None:
    # §8.1: validity is of the whole message; "é" is two bytes, split here.
    join = json.dumps({"type": "join", "room": "r", "name": "Zoé"}, ensure_ascii=False).encode()
    cut = join.index("é".encode()) + 1
    async with raw_client(server) as client:
        client.send(frame(TEXT, join[:cut], fin=False))
        client.send(frame(CONTINUATION, join[cut:]))
        await welcome_of(client)


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([frame(CONTINUATION, JOIN)], id="continuation-without-a-start"),
        pytest.param(
            [frame(TEXT, JOIN[:5], fin=False), frame(TEXT, JOIN)], id="new-message-mid-message"
        ),
        pytest.param([frame(PING, b"x", fin=False)], id="fragmented-control-frame"),
        pytest.param([frame(PING, b"x" * 126)], id="control-frame-over-125-bytes"),
        pytest.param([frame(TEXT, JOIN, rsv=0b100)], id="rsv1-without-an-extension"),
        pytest.param([frame(0x3, b"x")], id="reserved-opcode"),
        pytest.param([frame(CLOSE, b"\x03")], id="close-payload-of-one-byte"),
        pytest.param([frame(CLOSE, (999).to_bytes(2, "big"))], id="close-code-999"),
        pytest.param([frame(CLOSE, (1005).to_bytes(2, "big"))], id="close-code-1005"),
        pytest.param([frame(CLOSE, (2999).to_bytes(2, "big"))], id="close-code-2999"),
    ],
)
async def test_protocol_errors_close_with_1002(server: RunningServer, frames: list[bytes]) -> None:
    async with raw_client(server) as client:
        for data in frames:
            client.send(data)
        assert (await client.read_until_close()).close_code == PROTOCOL_ERROR


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([frame(TEXT, b'{"type":"join","name":"\xff"}')], id="text"),
        pytest.param(
            [frame(TEXT, b'{"a":"\xc3', fin=False), frame(CONTINUATION, b'\x28"}')],
            id="across-fragments",
        ),
        pytest.param([frame(CLOSE, (1000).to_bytes(2, "big") + b"\xff")], id="close-reason"),
    ],
)
async def test_invalid_utf8_closes_with_1007(server: RunningServer, frames: list[bytes]) -> None:
    async with raw_client(server) as client:
        for data in frames:
            client.send(data)
        assert (await client.read_until_close()).close_code == INVALID_PAYLOAD


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
async def test_a_valid_close_is_echoed(server: RunningServer, code: int) -> None:
    # §5.5.1: the endpoint answers a close with a close ("typically" echoing the
    # code; aiohttp answers 1000, normal closure, which the RFC allows).
    async with raw_client(server) as client:
        client.send(frame(TEXT, JOIN))
        await welcome_of(client)
        client.send(frame(CLOSE, code.to_bytes(2, "big") + b"bye"))
        answer = await client.read_until_close()
        assert answer.close_code == 1000, answer


async def test_a_ping_is_answered_with_its_payload(server: RunningServer) -> None:
    async with raw_client(server) as client:
        client.send(frame(PING, b"are you there"))
        pong = await client.read()
        assert (pong.opcode, pong.payload) == (PONG, b"are you there")
