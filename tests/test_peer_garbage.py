"""A peer that sends garbage on its data channels cannot break the other client, which
says what it ignored and keeps working (real aiortc on both sides, in the lab)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from client_py import events as ev
from client_py.channel import FileOffer, encode
from client_py.peer import PeerLink
from natlab.processes import wait_until
from natlab.servers import RunningServer
from tests.peer_helpers import WAIT, of_type, rooms, wait_for_event


def _raw(link: PeerLink, data: str | bytes) -> None:
    """Send exactly ``data`` on the chat channel, past every check of our own client."""
    assert link.chat is not None and link.chat.readyState == "open"
    link.chat.send(data)


async def test_garbage_on_the_chat_channel_is_ignored_and_reported(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    async with rooms(lab_server.ws_url, "junk", "Bob", "Mallory",
                     receive_dir=tmp_path) as (bob, mallory):  # fmt: skip
        (evil,) = mallory.peers.values()
        assert evil.pc is not None and evil.pc.sctp is not None
        # Lift aiortc's own check of the peer's max-message-size, to send oversized frames.
        evil.pc.sctp._remote_max_message_size = 1 << 20
        bob_id = mallory.my_id
        garbage: list[tuple[str | bytes, str]] = [
            ("{not json", "not valid JSON"),
            ("[1,2,3]", "not a JSON object"),
            ('"just a string"', "not a JSON object"),
            ('{"t": "rm -rf"}', "unknown message type"),
            ('{"no": "t"}', "'t' must be a string"),
            ('{"t": "msg", "id": 7, "ts": 1, "text": "x"}', "'id'"),
            ('{"t": "msg", "id": "m", "ts": "now", "text": "x"}', "'ts'"),
            ('{"t": "file-offer", "fid": "f", "name": "a", "size": -5}', "'size'"),
            ('{"t": "msg", "id": "m", "ts": 1, "text": "\\udfff"}', "Unicode"),
            (b"\x00\xff binary", "binary message"),
            ('{"t": "msg", "id": "big", "ts": 1, "text": "' + "A" * 100_000 + '"}',
             "over 65536 bytes"),
            ("[" * 100_000 + "]" * 100_000, "over 65536 bytes"),
            ("[" * 30_000 + "]" * 30_000, "not valid JSON"),  # too deep for the parser
            (encode(FileOffer("f1", "x", 1)).replace('"size":1', '"size":1e400'), "'size'"),
        ]  # fmt: skip
        for data, _ in garbage:
            _raw(evil, data)
        # A forged sender: the message counts, but as Mallory's, and the field is reported.
        _raw(evil, json.dumps({"t": "msg", "id": "forged", "ts": 1, "text": "I am Bob", "dm": False,
                               "from": bob_id, "name": "Bob"}))  # fmt: skip
        _raw(evil, '{"t": "ack", "id": "never-sent"}')
        mallory.send_text("after all that, a real message")
        got = await wait_for_event(bob, ev.Message, lambda m: m.text.startswith("after"))
        assert got.name == "Mallory"
        forged = [m for m in of_type(bob, ev.Message) if m.id == "forged"]
        assert [(m.name, m.peer, m.text) for m in forged] == [
            ("Mallory", mallory.my_id, "I am Bob")
        ]
        reasons = [i.reason for i in of_type(bob, ev.IgnoredInput)]
        for (_, expected), reason in zip(garbage, reasons, strict=False):
            assert expected in reason, (expected, reason)
        assert len(reasons) == len(garbage) + 1
        assert reasons[-1] == "ignored unknown field(s) from, name"
        assert all(i.name == "Mallory" for i in of_type(bob, ev.IgnoredInput))

        # Garbage data channels: unknown labels and unaccepted files are refused.
        assert evil.pc is not None
        before = len(of_type(bob, ev.IgnoredInput))
        for label in ("not-a-file-channel", "file:unknown-fid:0", "file:../x:0"):
            evil.pc.createDataChannel(label)
        await wait_until(lambda: len(of_type(bob, ev.IgnoredInput)) >= before + 3, WAIT)
        later = [i.reason for i in of_type(bob, ev.IgnoredInput)][before:]
        assert sum("unknown label" in r for r in later) == 2
        assert sum("unknown file 'unknown-fid'" in r for r in later) == 1

        # Bytes beyond the offered size cancel the transfer and leave no file behind.
        _raw(evil, encode(FileOffer("tiny", "tiny.txt", 3)))
        await wait_until(lambda: "tiny" in bob.peers[mallory.my_id or ""].incoming, WAIT)
        channel = evil.pc.createDataChannel("file:tiny:0")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await asyncio.wait_for(opened.wait(), WAIT)
        channel.send(b"0123456789")
        done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == "tiny")
        assert done.state == "cancelled"
        assert not list(tmp_path.glob("tiny*"))
        assert any("beyond the size" in i.reason for i in of_type(bob, ev.IgnoredInput))

        # And Bob still works both ways.
        bob.send_text("still fine")
        assert (await wait_for_event(mallory, ev.Message)).text == "still fine"
        assert all(link.connected.is_set() for link in bob.peers.values())


async def test_garbage_signaling_from_a_peer_is_ignored_and_reported(
    lab_server: RunningServer,
) -> None:
    """Broken offers, answers and candidates relayed by the server cannot break the peer."""
    from tests.signaling_client import joined

    async with rooms(lab_server.ws_url, "badsig", "Ada") as (ada,):
        async with joined(lab_server.ws_url, "badsig", "Mallory") as mallory:
            ada_id = ada.my_id
            frames: list[dict[str, object]] = [
                {"type": "offer", "to": ada_id, "sdp": "this is not SDP"},
                {"type": "answer", "to": ada_id, "sdp": "v=0\r\n"},
                {"type": "candidate", "to": ada_id, "candidate": {"candidate": 5}},
                {"type": "candidate", "to": ada_id, "candidate": {"candidate": "candidate:x"}},
            ]
            for frame in frames:
                await mallory.send(frame)
            await wait_until(lambda: len(of_type(ada, ev.IgnoredInput)) == 4, WAIT)
            reasons = [i.reason for i in of_type(ada, ev.IgnoredInput)]
            assert reasons[0].startswith("offer refused: ")
            assert reasons[1].startswith("an answer we did not ask for")
            assert (
                reasons[2]
                == "candidate refused: candidate is not an object with a 'candidate' string"
            )
            assert reasons[3] == "candidate refused: unreadable candidate 'candidate:x'"
            assert all(i.name == "Mallory" for i in of_type(ada, ev.IgnoredInput))
            # A sealed payload in a room without a password closes that connection.
            sealed = {"alg": "A256GCM", "iv": "AAAAAAAAAAAAAAAA", "ct": "AAAA"}
            await mallory.send({"type": "offer", "to": ada_id, "sdp": sealed})
            err = await wait_for_event(ada, ev.PeerError)
            assert (err.name, err.message) == ("Mallory", "this room needs a password")
            # Ada tells the offerer so, with one end-of-candidates in her (plain) form.
            told = await mallory.expect("candidate")
            assert (told["from"], told["candidate"]) == (ada_id, None)
            # And the room goes on: a newcomer connects to Ada as usual.
            async with rooms(lab_server.ws_url, "badsig", "Bob", connect=False) as (bob,):
                got = await wait_for_event(bob, ev.Connected, lambda c: c.name == "Ada")
                assert got.safety_number
                bob.send_text("hello after the noise")
                assert (await wait_for_event(ada, ev.Message)).text == "hello after the noise"
