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
    """Keeps what is written; while ``stalled`` the client does not read, so it piles up."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0
        self.stalled = False
        self.closing = False
        self.aborted = False
        self._resumed = asyncio.Event()

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))
        if self.stalled:
            self.buffered += len(data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        assert high == ws_writer.WRITE_BUFFER_LIMIT

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True
        self.buffered = 0
        self._resumed.set()

    def unstall(self) -> None:
        """The client reads everything (the protocol's resume_writing)."""
        self.stalled = False
        self.buffered = 0
        self._resumed.set()

    async def drained(self) -> None:
        """What aiohttp's ``StreamWriter.drain`` does: wait for resume_writing."""
        if self.buffered > ws_writer.WRITE_BUFFER_LIMIT:
            self._resumed.clear()
            await self._resumed.wait()

    async def texts(self) -> list[str]:
        return await read_frames(b"".join(self.writes))


class FakeSocket:
    """The part of ``WebSocketResponse`` a Connection uses: the close handshake."""

    def __init__(self, *, answers: bool = True) -> None:
        self.closes: list[tuple[int, bytes]] = []
        self.closed = False
        # A client that does not read never answers a close.
        self._answered = asyncio.Event()
        if answers:
            self._answered.set()

    async def close(self, *, code: int, message: bytes) -> bool:
        self.closes.append((code, message))
        self.closed = True
        await self._answered.wait()
        return True


def connection_on(transport: FakeTransport, socket: FakeSocket, send_buffer: int) -> Connection:
    return Connection(socket, transport, send_buffer=send_buffer, drained=transport.drained)


async def next_turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_an_idle_connection_writes_at_once() -> None:
    # At light load a frame costs no loop turn (issue 13 item 5).
    transport = FakeTransport()
    connection = connection_on(transport, FakeSocket(), 1 << 20)
    connection.deliver("now")
    assert await transport.texts() == ["now"]
    await next_turns()
    connection.deliver("and now")
    assert await transport.texts() == ["now", "and now"]
    assert len(transport.writes) == 2


async def test_frames_that_pile_up_in_one_turn_go_out_in_one_write() -> None:
    transport = FakeTransport()
    connection = connection_on(transport, FakeSocket(), 1 << 20)
    for index in range(280):
        connection.deliver(f"frame {index}")
    assert len(transport.writes) == 1
    await next_turns()
    assert len(transport.writes) == 2
    assert await transport.texts() == [f"frame {i}" for i in range(280)]


async def test_each_write_is_capped_at_the_high_water_mark() -> None:
    transport = FakeTransport()
    connection = connection_on(transport, FakeSocket(), 1 << 22)
    texts = ["first", *("y" * 10_000 for _ in range(40))]
    for text in texts:
        connection.deliver(text)
    await next_turns()
    assert len(transport.writes) > 6
    assert all(len(write) <= ws_writer.WRITE_BUFFER_LIMIT for write in transport.writes)
    assert await transport.texts() == texts


async def test_what_a_non_reading_client_costs_is_bounded_then_it_is_closed_with_1013() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    transport.stalled = True
    send_buffer = 200_000
    connection = connection_on(transport, socket, send_buffer)
    delivered = 0
    while not socket.closes:
        connection.deliver("z" * 10_000)
        delivered += 1
        assert connection.held <= send_buffer
        assert transport.buffered <= 2 * ws_writer.WRITE_BUFFER_LIMIT + 10_010
        if delivered % 7 == 0:
            await next_turns()
    assert delivered < 40
    assert socket.closes == [(CloseCode.TRY_AGAIN_LATER, b"too slow")]
    assert connection.held == 0
    written = len(transport.writes)
    connection.deliver("after")
    await next_turns()
    assert len(transport.writes) == written


async def test_held_frames_go_out_in_order_once_the_transport_drains() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    transport.stalled = True
    connection = connection_on(transport, socket, 1 << 20)
    texts = [f"{index}:" + "w" * 20_000 for index in range(10)]
    for text in texts[:5]:
        connection.deliver(text)
        await next_turns()
    assert connection.held > 0
    transport.unstall()
    await next_turns()
    assert connection.held == 0
    for text in texts[5:]:
        connection.deliver(text)
    await next_turns()
    assert await transport.texts() == texts
    assert socket.closes == []


async def test_close_after_queued_sends_what_was_queued_first() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    connection = connection_on(transport, socket, 1 << 20)
    connection.deliver("why")
    connection.close_after_queued(CloseCode.POLICY_VIOLATION, "join timeout")
    connection.deliver("too late")
    await next_turns()
    assert await transport.texts() == ["why"]
    assert socket.closes == [(CloseCode.POLICY_VIOLATION, b"join timeout")]


async def test_a_close_the_client_never_takes_aborts_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_writer, "CLOSE_TIMEOUT", 0.05)
    transport, socket = FakeTransport(), FakeSocket(answers=False)
    transport.stalled = True
    connection = connection_on(transport, socket, 100_000)
    while not socket.closes:
        connection.deliver("v" * 10_000)
        await next_turns()
    assert not transport.aborted
    await wait_until(lambda: transport.aborted, timeout=5, interval=0.01)
    await asyncio.wait_for(connection.finish(), 5)


async def test_finish_closes_with_1001_and_leaves_a_reading_client_its_bytes() -> None:
    transport, socket = FakeTransport(), FakeSocket()
    connection = connection_on(transport, socket, 1 << 20)
    connection.deliver("bye")
    await connection.finish()
    assert socket.closes == [(CloseCode.GOING_AWAY, b"")]
    assert await transport.texts() == ["bye"]
    assert not transport.aborted
