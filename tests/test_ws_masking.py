"""server/ws_masking.py: the check that every client frame is masked (RFC 6455 §5.1)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from server.ws_masking import MaskCheck, MaskGuard
from tests.raw_websocket import CLOSE, CONTINUATION, PING, TEXT, frame

# Every length encoding (§5.2: 7-bit, 16-bit, 64-bit), control frames and fragments.
frames = st.builds(
    lambda opcode, size, fin: frame(opcode, b"p" * size, fin=fin),
    st.sampled_from([TEXT, CONTINUATION, PING, CLOSE]),
    st.sampled_from([0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) | st.integers(0, 300),
    st.booleans(),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@given(st.lists(frames, max_size=6), st.lists(st.integers(0, 1 << 20), max_size=12))
def test_masked_frames_pass_however_the_reads_cut_them(sent: list[bytes], cuts: list[int]) -> None:
    check = MaskCheck()
    for chunk in split(b"".join(sent), cuts):
        assert check.feed(chunk)


@given(
    st.lists(frames, max_size=4),
    st.integers(0, 300),
    st.lists(st.integers(0, 1 << 20), max_size=12),
)
def test_the_first_unmasked_frame_is_caught_in_the_read_that_holds_its_header(
    before: list[bytes], size: int, cuts: list[int]
) -> None:
    masked = b"".join(before)
    data = masked + frame(TEXT, b"u" * size, mask=False) + frame(TEXT, b"after")
    check, seen = MaskCheck(), 0
    for chunk in split(data, cuts):
        seen += len(chunk)
        if not check.feed(chunk):
            # This read holds its second byte (the MASK bit): not an earlier one.
            assert seen - len(chunk) <= len(masked) + 1 < seen
            break
    else:
        raise AssertionError("an unmasked frame went through")
    assert not check.feed(frame(TEXT, b"masked again"))


class Inner(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class Transport(asyncio.Transport):
    def __init__(self, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.paused = False

    def get_protocol(self) -> Any:
        return self.protocol

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def pause_reading(self) -> None:
        self.paused = True


def test_the_guard_hands_on_masked_bytes_unchanged_and_stops_at_an_unmasked_frame() -> None:
    inner = Inner()
    transport = Transport(inner)
    calls: list[str] = []
    MaskGuard.install(transport, lambda: calls.append("unmasked"))
    guard = transport.protocol
    assert isinstance(guard, MaskGuard)
    good = frame(TEXT, b"hello") + frame(PING, b"p")
    guard.data_received(good[:3])
    guard.data_received(good[3:])
    assert inner.data == good and calls == []
    guard.data_received(frame(TEXT, b"bad", mask=False))
    guard.data_received(frame(TEXT, b"later"))
    assert inner.data == good
    assert calls == ["unmasked"] and transport.paused
    guard.connection_lost(None)
    assert inner.lost
