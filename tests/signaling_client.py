"""A minimal signaling client for tests: a real aiohttp WebSocket with typed waits."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

RECEIVE_TIMEOUT = 5.0


class SignalingClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    @property
    def id(self) -> str:
        return str(self.welcome["id"])

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        frame = json.loads(msg.data)
        assert isinstance(frame, dict)
        return frame

    async def expect(self, kind: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        frame = await self.receive(timeout)
        assert frame["type"] == kind, frame
        return frame

    async def expect_error(self, code: str) -> dict[str, Any]:
        frame = await self.expect("error")
        assert frame["code"] == code, frame
        return frame

    async def join(self, room: str, name: str, resume: str | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "join", "room": room, "name": name}
        if resume is not None:
            frame["resume"] = resume
        await self.send(frame)
        self.welcome = await self.expect("welcome")
        return self.welcome

    async def expect_close(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Read until the server closes; return its close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code
            if msg.type == aiohttp.WSMsgType.ERROR:
                return self.ws.close_code

    def drop(self) -> None:
        """Vanish without a close frame, as a lost network does."""
        sock = self.ws.get_extra_info("socket")
        sock.shutdown(socket.SHUT_RDWR)


@contextlib.asynccontextmanager
async def connect(ws_url: str, **kwargs: Any) -> AsyncIterator[SignalingClient]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_url, **kwargs) as ws,
    ):
        yield SignalingClient(ws)


@contextlib.asynccontextmanager
async def joined(
    ws_url: str, room: str, name: str, **kwargs: Any
) -> AsyncIterator[SignalingClient]:
    async with connect(ws_url, **kwargs) as client:
        await client.join(room, name)
        yield client


__all__ = ["RECEIVE_TIMEOUT", "SignalingClient", "connect", "joined"]
