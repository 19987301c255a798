"""The hand-written frame writer: its frames read back by aiohttp's own reader, its queue.

The queue is driven through a fake transport (our own writer's unit test);
everything it integrates with runs for real in tests/test_ws.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_websocket import WebSocketReader
from aiohttp.streams import EofStream

from natlab.processes import wait_until
from server import ws_writer
from server.protocol import CloseCode
from server.ws_writer import Connection, text_frame


async def read_frames(data: bytes, max_msg_size: int = 1 << 20) -> list[str]:
    """Decode ``data`` with aiohttp's WebSocket reader, as its client would."""
    loop = asyncio.get_running_loop()
    queue = WebSocketDataQueue(BaseProtocol(loop), 1 << 22, loop=loop)
    reader = WebSocketReader(queue, max_msg_size, compress=False, decode_text=True)
    reader.feed_data(data)
    reader.feed_eof()
    texts: list[str] = []
    while True:
        try:
            message = await queue.read()
        except EofStream:
            return texts
        assert message.type is WSMsgType.TEXT, message
        texts.append(message.data)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
async def test_aiohttp_reads_back_every_length_encoding(size: int) -> None:
    # RFC 6455 §5.2: 7-bit lengths up to 125, 16-bit up to 65,535, 64-bit above
    # (a 64 KiB frame plus the stamped "from" reaches the last branch).
    text = "x" * size
    frame = text_frame(text)
    header = {True: 2, False: 4 if size < 65_536 else 10}[size < 126]
    assert len(frame) == header + size
    assert await read_frames(frame) == [text]


async def test_multibyte_text_and_frames_back_to_back() -> None:
    texts = ["é" * 63, "ü" * 40_000, "🦊" * 20_000, ""]
    assert await read_frames(b"".join(text_frame(t) for t in texts)) == texts


class FakeTransport(asyncio.Transport):
    """Keeps what is written; ``buffered`` plays the kernel not taking it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True

    async def texts(self) -> list[str]:
        return await read_frames(b"".join(self.writes))


class FakeSocket:
    """The one method of ``WebSocketResponse`` a Connection calls."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, bytes]] = []

    async def close(self, *, code: int, message: bytes) -> bool:
        self.closes.append((code, message))
        return True


async def next_turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_frames_of_one_turn_go_out_in_one_write() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    connection = Connection(socket, transport, queue_size=8)
    for index in range(5):
        connection.deliver(f"frame {index}")
    await next_turns()
    assert len(transport.writes) == 1
    assert await transport.texts() == [f"frame {i}" for i in range(5)]


async def test_a_full_queue_closes_with_1013_and_drops_the_rest() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    connection = Connection(socket, transport, queue_size=4)
    for index in range(6):
        connection.deliver(f"frame {index}")
    await next_turns()
    assert socket.closes == [(CloseCode.TRY_AGAIN_LATER, b"too slow")]
    assert transport.writes == []
    connection.deliver("after")
    await next_turns()
    assert transport.writes == []


async def test_close_after_queued_sends_what_was_queued_first() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    connection = Connection(socket, transport, queue_size=8)
    connection.deliver("why")
    connection.close_after_queued(CloseCode.POLICY_VIOLATION, "join timeout")
    connection.deliver("too late")
    await next_turns()
    assert await transport.texts() == ["why"]
    assert socket.closes == [(CloseCode.POLICY_VIOLATION, b"join timeout")]


async def test_frames_wait_while_the_transport_holds_more_than_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_writer, "DRAIN_POLL", 0.001)
    transport, socket = FakeTransport(), FakeSocket()
    transport.buffered = ws_writer.WRITE_BUFFER_LIMIT + 1
    connection = Connection(socket, transport, queue_size=8)
    connection.deliver("held")
    await next_turns()
    assert transport.writes == []
    transport.buffered = 0
    await wait_until(lambda: transport.writes, timeout=5, interval=0.001)
    assert await transport.texts() == ["held"]
    assert socket.closes == []
