"""A raw WebSocket client for tests: what aiohttp's client will not do on purpose.

Frames are built byte by byte (RFC 6455 §5.2), so a test can send many frames
in one TCP write, unmasked or fragmented frames, bad close codes or bad UTF-8,
and can stop reading altogether.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from natlab.servers import RunningServer

__all__ = [
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "RawClient",
    "frame",
    "raw_client",
    "text_frame",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
READ_TIMEOUT = 5.0


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
) -> bytes:
    """One client frame, masked (RFC 6455 §5.3) with ``key`` or a random one unless ``mask``
    is false."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        header = bytes((first, bit | size))
    elif size < 65536:
        header = bytes((first, bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, bit | 127)) + size.to_bytes(8, "big")
    if not mask:
        return header + payload
    key = os.urandom(4) if key is None else key
    if key == bytes(4):
        return header + key + payload
    return header + key + bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def text_frame(text: str) -> bytes:
    """A final, masked text frame (with the all-zero key, quick to build for big ones)."""
    return frame(TEXT, text.encode(), key=bytes(4))


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The code of a close frame (None for an empty one)."""
        assert self.opcode == CLOSE, self
        return int.from_bytes(self.payload[:2], "big") if self.payload else None


@dataclass
class RawClient:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    sock: socket.socket

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, timeout: float = READ_TIMEOUT) -> Frame:
        """The next server frame (server frames are never masked)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        assert not head[1] & 0x80, "a server frame must not be masked"
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        payload = await asyncio.wait_for(self.reader.readexactly(size), timeout)
        return Frame(bool(head[0] & 0x80), head[0] & 0x0F, payload)

    async def read_until_close(self, timeout: float = READ_TIMEOUT) -> Frame:
        """Skip other frames up to the server's close frame."""
        while (received := await self.read(timeout)).opcode != CLOSE:
            pass
        return received

    async def join(self, name: str, room: str = "r") -> str:
        """Join ``room``; the welcome's id."""
        self.send(text_frame(json.dumps({"type": "join", "room": room, "name": name})))
        welcome = json.loads((await self.read()).payload)
        assert welcome["type"] == "welcome", welcome
        return str(welcome["id"])


@contextlib.asynccontextmanager
async def raw_client(
    server: RunningServer, *, receive_buffer: int | None = None
) -> AsyncIterator[RawClient]:
    """An upgraded socket; ``receive_buffer`` shrinks the kernel's buffer before connecting."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        yield RawClient(reader, writer, sock)
    finally:
        writer.transport.abort()
