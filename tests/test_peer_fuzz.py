"""Hypothesis against the terminal peer's handlers of what a peer sends (issue 9).

A state machine plays a hostile peer: chat-channel frames of any JSON shape (the
known types with fields of every kind, and anything else), binary frames, data
channels of any label, and bytes or text on the file channels it opened. They go
to the real handlers of a real :class:`~client_py.room.Room`'s peer link (its
receive limits, its files on disk) with real aiortc data channels; only the
network is absent. No handler may raise (``faults`` stays 0: nothing even
reached the boundary that would have caught it), and the state stays
consistent with the disk after every step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiortc import (
    RTCDataChannel,
    RTCDataChannelParameters,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceTransport,
    RTCSctpTransport,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from client_py.channel import SEEN_IDS
from client_py.files import ACCEPTED, ReceiveLimits, State
from client_py.peer import IGNORED_KEPT
from client_py.room import Room

LIMITS = ReceiveLimits(max_size=4096, max_files=2)
FIDS = ["f1", "f2"]

_any_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
#: Each field of the chat channel's messages: right kinds, edge values and wrong kinds.
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["m1", "m2", "", "x" * 65, "a b"]) | _any_json,
    "fid": st.sampled_from([*FIDS, "", "../x", "f" * 65]) | _any_json,
    "ts": st.integers(-(2**70), 2**70) | st.floats() | _any_json,
    "text": st.text(max_size=40) | _any_json,
    "dm": st.booleans() | _any_json,
    "on": st.booleans() | _any_json,
    "name": st.text(max_size=300) | st.sampled_from(["../../x", "漢" * 255, ".", "a/"]),
    "size": st.integers(-1, 5000) | st.sampled_from([2**53 - 1, 2**53, 1e400, 3.0, -0.0]),
    "offset": st.integers(-1, 5000) | _any_json,
    "mime": st.text(max_size=10) | _any_json,
    "sha256": st.sampled_from(["0" * 64, "A" * 64, "xyz"]) | _any_json,
    "ok": st.booleans() | _any_json,
}
_KINDS = ["msg", "ack", "typing", "file-offer", "file-accept", "file-decline", "file-end",
          "file-received", "file-cancel"]  # fmt: skip


#: Valid values of each field, so that most frames get past the parser and drive transfers.
_VALID: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from(["m1", "m2"]),
    "fid": st.sampled_from(FIDS),
    "ts": st.integers(0, 2**53),
    "text": st.text(max_size=40),
    "dm": st.booleans(),
    "on": st.booleans(),
    "name": st.text(min_size=1, max_size=255) | st.sampled_from(["../../x", "漢" * 255, "."]),
    "size": st.integers(0, 64) | st.sampled_from([4096, 4097, 2**53 - 1]),
    "offset": st.integers(0, 70),
    "mime": st.text(max_size=10),
    "sha256": st.sampled_from(["0" * 64]),
    "ok": st.booleans(),
}
_REQUIRED = {
    "msg": ["id", "ts", "text", "dm"],
    "ack": ["id"],
    "typing": ["on"],
    "file-offer": ["fid", "name", "size", "mime", "dm"],
    "file-accept": ["fid", "offset"],
    "file-decline": ["fid"],
    "file-end": ["fid", "sha256"],
    "file-received": ["fid", "ok"],
    "file-cancel": ["fid"],
}


@st.composite
def chat_frames(draw: st.DrawFn) -> str | bytes:
    """A frame a peer can put on the chat channel: valid ones (most of them, perhaps
    with extra fields), ones of a known type with fields of any kind, and anything."""
    kind = draw(st.sampled_from([*_KINDS, "file-offer", "file-offer", "file-cancel", "other"]))
    if kind != "other" and draw(st.integers(0, 3)) != 3:  # (0 is drawn most often)
        valid: dict[str, Any] = {"t": kind}
        for name in _REQUIRED[kind]:
            valid[name] = draw(_VALID[name])
        if kind == "file-offer" and valid["name"] == "":
            valid["name"] = "x"
        extra = draw(st.dictionaries(st.sampled_from(["from", "name", "x"]), _any_json, max_size=1))
        return json.dumps({**extra, **valid}, ensure_ascii=draw(st.booleans()))
    if kind == "other":
        return draw(st.binary(max_size=30) | st.text(max_size=60) | _any_json.map(json.dumps))
    fields = draw(st.lists(st.sampled_from(sorted(_FIELD_VALUES)), unique=True, max_size=7))
    frame: dict[str, Any] = {"t": kind}
    for name in fields:
        frame[name] = draw(_FIELD_VALUES[name])
    return json.dumps(frame, ensure_ascii=draw(st.booleans()))


def _labels() -> st.SearchStrategy[str]:
    offsets = st.integers(0, 5000).map(str) | st.sampled_from(["-1", "01", "x", ""])
    made = st.builds(lambda f, o: f"file:{f}:{o}", st.sampled_from([*FIDS, "zz", "../x"]), offsets)
    return made | st.text(max_size=20)


class HostilePeer(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="confide-fuzz-"))
        self.room = Room("ws://127.0.0.1:9/ws", "fuzz", "Ada", receive_dir=self.dir,
                         limits=LIMITS)  # fmt: skip
        self.room.my_id = "a" * 16
        self.room.names["b" * 16] = "Mallory"
        self.link = self.room._link("b" * 16)

        async def transport() -> RTCSctpTransport:
            # Inside the loop: aiortc's constructors ask asyncio for the current one.
            dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [self.room.certificate])
            return RTCSctpTransport(dtls)

        self.sctp = self.loop.run_until_complete(transport())
        self.channels: list[RTCDataChannel] = []

    def _run(self, action: Any, *args: Any) -> None:
        async def step() -> None:
            action(*args)

        self.loop.run_until_complete(step())

    @rule(frame=chat_frames())
    def chat_frame(self, frame: str | bytes) -> None:
        self._run(self.link._chat_message, frame)

    @rule(fid=st.sampled_from(FIDS), name=_VALID["name"], size=_VALID["size"])
    def file_offer(self, fid: str, name: str, size: int) -> None:
        frame = {"t": "file-offer", "fid": fid, "name": name, "size": size, "mime": "", "dm": False}
        self._run(self.link._chat_message, json.dumps(frame))

    @rule(fid=st.sampled_from(FIDS))
    def open_the_right_channel(self, fid: str) -> None:
        """What an honest sender opens: ``file:<fid>:<the bytes the receiver holds>``."""
        transfer = self.link.incoming.get(fid)
        self.open_channel(f"file:{fid}:{transfer.received if transfer else 0}")

    @rule(label=_labels())
    def open_channel(self, label: str) -> None:
        stream = 1 + 2 * len(self.channels)
        channel = RTCDataChannel(self.sctp, RTCDataChannelParameters(label=label, id=stream),
                                 send_open=False)  # fmt: skip
        self.sctp._data_channels[stream] = channel  # as aiortc files a channel the peer opened
        self.channels.append(channel)
        self._run(self.link.files.channel, channel)

    @rule(fid=st.sampled_from(FIDS))
    def file_end_of_what_was_sent(self, fid: str) -> None:
        """``file-end`` with the hash of the bytes the receiver holds: what ends a transfer."""
        path = self.link.files._paths.get(fid)
        part = None if path is None else path.with_name(path.name + ".part")
        held = part.read_bytes() if part is not None and part.exists() else b""
        frame = f'{{"t":"file-end","fid":"{fid}","sha256":"{hashlib.sha256(held).hexdigest()}"}}'
        self._run(self.link._chat_message, frame)

    @rule(which=st.integers(0, 7), data=st.binary(max_size=40) | st.text(max_size=5))
    def file_data(self, which: int, data: bytes | str) -> None:
        if self.channels:
            self._arrive(self.channels[which % len(self.channels)], data)

    @rule(fid=st.sampled_from(FIDS), data=st.binary(max_size=40) | st.none())
    def file_bytes_for(self, fid: str, data: bytes | None) -> None:
        """Bytes on the latest channel of ``fid`` (the likely one), if any; None: as many
        as the receiver still misses."""
        mine = [c for c in self.channels if c.label.startswith(f"file:{fid}:")]
        if mine:
            transfer = self.link.incoming.get(fid)
            missing = transfer.offer.size - transfer.received if transfer else 1
            self._arrive(mine[-1], b"x" * min(missing, 10_000) if data is None else data)

    def _arrive(self, channel: RTCDataChannel, data: bytes | str) -> None:
        # What aiortc does with a message that arrives: the handlers run via pyee,
        # which would raise (an "error" event without a listener) if one raised.
        self._run(channel.emit, "message", data)

    @invariant()
    def nothing_raised_and_the_disk_agrees(self) -> None:
        link = self.link
        assert link.faults == 0, list(link.ignored)[-3:]
        assert len(link.ignored) <= IGNORED_KEPT and len(link.link._seen) <= SEEN_IDS
        paths = link.files._paths
        receiving = 0
        for fid, transfer in link.incoming.items():
            assert 0 <= transfer.received <= transfer.offer.size
            path = paths.get(fid)
            if transfer.state is State.OFFERED:
                raise AssertionError(f"{fid} neither accepted nor declined")
            if transfer.state is State.DECLINED:
                assert path is None
                continue
            assert path is not None and path.parent == self.dir
            assert transfer.offer.size <= LIMITS.max_size
            assert len(path.name.encode()) <= 200 + len(" (99)")
            part = path.with_name(path.name + ".part")
            if transfer.state in ACCEPTED:
                receiving += 1
                assert part.stat().st_size == transfer.received
            else:
                assert not part.exists()
            if transfer.state is State.RECEIVED:
                assert path.stat().st_size == transfer.offer.size
        assert receiving <= LIMITS.max_files
        on_disk = {p.name for p in self.dir.iterdir()}
        states = {fid: transfer.state for fid, transfer in link.incoming.items()}
        expected = {p.name + ".part" for f, p in paths.items() if states[f] in ACCEPTED}
        expected |= {p.name for f, p in paths.items() if states[f] is State.RECEIVED}
        assert on_disk == expected

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.link.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)


HostilePeer.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_a_hostile_peer_never_raises_and_the_state_matches_the_disk = HostilePeer.TestCase
