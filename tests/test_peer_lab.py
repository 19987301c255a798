"""Python ↔ Python peers in the lab: real server, real aiortc, no mocks.

The test's thread is inside lab host "main" (``lab_host``), where the server and the
in-process peers live; ``confide chat`` subprocesses run in other lab hosts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from client_py import events as ev
from client_py.cli import Chat, describe, parse_options
from client_py.crypto import is_sealed
from client_py.room import Room
from client_py.safety import local_fingerprint, normalise, remote_fingerprint, safety_number
from natlab.lab import Host
from natlab.processes import wait_until
from natlab.servers import RunningServer
from tests.peer_helpers import (
    WAIT,
    finish,
    of_type,
    read_until,
    rooms,
    spawn_chat,
    wait_for_event,
)


async def test_text_both_ways_with_acks_and_equal_safety_numbers(lab_server: RunningServer) -> None:
    async with rooms(lab_server.ws_url, "r", "Ada", "Bob") as (ada, bob):
        to_bob = ada.send_text("Hello <b>Bob</b>")
        to_ada = bob.send_text("Hi Ada ✓")
        got = await wait_for_event(bob, ev.Message)
        assert (got.name, got.text, got.dm) == ("Ada", "Hello <b>Bob</b>", False)
        got = await wait_for_event(ada, ev.Message)
        assert (got.name, got.text) == ("Bob", "Hi Ada ✓")
        assert (await wait_for_event(ada, ev.Delivered)).id == to_bob[0]
        assert (await wait_for_event(bob, ev.Delivered)).id == to_ada[0]
        (a_link,) = ada.peers.values()
        (b_link,) = bob.peers.values()
        assert a_link.safety_number is not None
        assert a_link.safety_number == b_link.safety_number
        assert (a_link.safety_source, b_link.safety_source) == ("dtls", "dtls")
        assert len(a_link.safety_number.split(" ")) == 6
        # The peer's certificate read from the DTLS session is the one the SDP announced
        # (aiortc checked that); ours is the one the other side read from its session.
        assert a_link.pc is not None and b_link.pc is not None
        from_sdp = [line.split(":", 1)[1] for line in a_link.pc.remoteDescription.sdp.split(
            "\r\n") if line.startswith("a=fingerprint:sha-256 ")]  # fmt: skip
        assert remote_fingerprint(a_link.pc) == (normalise(from_sdp[0]), "dtls")
        assert remote_fingerprint(b_link.pc) == (local_fingerprint(a_link.pc), "dtls")
        # The number shown is the one in the Connected event.
        assert (await wait_for_event(ada, ev.Connected)).safety_number == a_link.safety_number


async def test_without_the_dtls_session_a_number_needs_exactly_one_sdp_fingerprint(
    lab_server: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fallback for when the DTLS session's certificate is out of reach (a private
    attribute of aiortc): a number from the SDP only if it has one fingerprint line."""
    from client_py import safety

    monkeypatch.setattr(safety, "session_certificate", lambda dtls: None)
    async with rooms(lab_server.ws_url, "fallback", "Ada") as (ada,):
        send = ada.signaling.send

        async def one_fingerprint(kind: str, to: str, payload: Any) -> None:
            # Ada's answer keeps only its sha-256 line (as a browser's SDP has); aiortc
            # checks the fingerprints that are there, so the handshake still succeeds.
            if kind == "answer":
                payload = "\r\n".join(line for line in payload.split("\r\n") if not
                                       line.startswith(("a=fingerprint:sha-384",
                                                        "a=fingerprint:sha-512")))  # fmt: skip
            await send(kind, to, payload)

        ada.signaling.send = one_fingerprint  # type: ignore[method-assign]
        async with rooms(lab_server.ws_url, "fallback", "Bob", connect=False) as (bob,):
            from_ada = await wait_for_event(bob, ev.Connected)
            from_bob = await wait_for_event(ada, ev.Connected)
            (a_link,) = ada.peers.values()
            (b_link,) = bob.peers.values()
            a_fp, b_fp = local_fingerprint(a_link.pc), local_fingerprint(b_link.pc)
            assert a_fp is not None and b_fp is not None
            # Bob read Ada's one line: the true number, and he says where it came from.
            assert (from_ada.safety_number, from_ada.source) == (safety_number(a_fp, b_fp), "sdp")
            # Bob's offer carries aiortc's three lines (sha-256, -384, -512): no number.
            assert (from_bob.safety_number, from_bob.source) == ("", "")
            assert a_link.safety_number is None
            # The terminal says so plainly, when it connects and in /safety.
            assert "no safety number" in describe(from_bob)
            chat = Chat(parse_options(["--server", lab_server.url, "--room", "fallback",
                                       "--name", "Ada"]))  # fmt: skip
            chat.room = ada
            await chat.command("/safety")
            assert capsys.readouterr().out == (
                "  Bob: none: this peer's certificate cannot be read with certainty\n"
            )
            bob.send_text("private, but unverified")
            await wait_for_event(ada, ev.Message, lambda m: m.text == "private, but unverified")


async def test_a_direct_message_reaches_only_its_peer(lab_server: RunningServer) -> None:
    async with rooms(lab_server.ws_url, "dm", "Ada", "Bob", "Cy") as (ada, bob, cy):
        ada.send_text("for Bob only", to="Bob")
        ada.send_text("for everyone")
        got = await wait_for_event(bob, ev.Message, lambda m: m.dm)
        assert (got.name, got.text) == ("Ada", "for Bob only")
        await wait_for_event(cy, ev.Message, lambda m: m.text == "for everyone")
        await wait_for_event(bob, ev.Message, lambda m: m.text == "for everyone")
        # Both went out together on ordered channels, and only one was sent to Cy.
        assert [m.text for m in of_type(cy, ev.Message)] == ["for everyone"]
        with pytest.raises(LookupError):
            ada.send_text("x", to="Nobody")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_files_both_ways_with_hashes_checked(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    big.write_bytes(os.urandom(700_000))  # many 16 KiB chunks and a short last one
    small = src / "notes.txt"
    small.write_text("tiny ✓\n")
    empty = src / "empty"
    empty.write_bytes(b"")
    async with rooms(lab_server.ws_url, "files", "Ada", "Bob", receive_dir=None) as (ada, bob):
        ada.receive_dir, bob.receive_dir = a_dir, b_dir
        await ada.send_file(big)
        await bob.send_file(small, to="Ada")
        await bob.send_file(empty)
        sent = await wait_for_event(ada, ev.FileDone, lambda e: e.direction == "out")
        assert sent.state == "sent" and sent.sha256 == _sha(big)
        got = await wait_for_event(bob, ev.FileDone, lambda e: e.filename == "big.bin")
        assert got.state == "received" and got.sha256 == _sha(big)
        assert _sha(Path(got.path)) == _sha(big) and Path(got.path).parent == b_dir
        got = await wait_for_event(ada, ev.FileDone, lambda e: e.filename == "notes.txt")
        assert got.state == "received" and (a_dir / "notes.txt").read_text() == "tiny ✓\n"
        got = await wait_for_event(ada, ev.FileDone, lambda e: e.filename == "empty")
        assert got.state == "received" and (a_dir / "empty").read_bytes() == b""
        offers = of_type(ada, ev.FileOffered)
        assert {(o.direction, o.filename, o.dm) for o in offers} >= {
            ("out", "big.bin", False), ("in", "notes.txt", True), ("in", "empty", False)
        }  # fmt: skip
        assert not list(a_dir.glob("*.part")) and not list(b_dir.glob("*.part"))


async def test_a_peer_without_a_receive_dir_declines_files(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "x.txt"
    path.write_text("x")
    async with rooms(lab_server.ws_url, "decline", "Ada", "Bob") as (ada, bob):
        await ada.send_file(path)
        done = await wait_for_event(ada, ev.FileDone)
        assert done.state == "declined"
        assert (await wait_for_event(bob, ev.FileOffered)).accepted is False


def _record_payloads(room: Room) -> list[Any]:
    """Watch what ``room`` hands to the server (the real client, observed, not replaced)."""
    seen: list[Any] = []
    send = room.signaling.send

    async def recording(kind: str, to: str, payload: Any) -> None:
        seen.append(payload)
        await send(kind, to, payload)

    room.signaling.send = recording  # type: ignore[method-assign]
    return seen


async def test_password_room_with_the_right_password(lab_server: RunningServer) -> None:
    async with rooms(lab_server.ws_url, "secret", "Ada", password="correct horse") as (ada,):
        bob = Room(lab_server.ws_url, "secret", "Bob", password="correct horse")
        payloads = _record_payloads(bob)
        try:
            await bob.start()
            await wait_for_event(bob, ev.Connected)
            got = await wait_for_event(ada, ev.Connected)
            (b_link,) = bob.peers.values()
            assert got.safety_number and got.safety_number == b_link.safety_number
            bob.send_text("sealed signaling, open chat")
            assert (await wait_for_event(ada, ev.Message)).text == "sealed signaling, open chat"
            assert payloads and all(is_sealed(p) for p in payloads)
            assert "a=fingerprint" not in json.dumps(payloads)
        finally:
            await bob.close()


@pytest.mark.parametrize(
    ("first", "second", "message", "answer"),
    [
        ("pw-one", "pw-two", "wrong password", "wrong password"),
        ("pw-one", None, "this peer did not use the room password", "this room needs a password"),
        (None, "pw-two", "this room needs a password", "this peer did not use the room password"),
    ],
    ids=["different", "newcomer-without", "newcomer-with"],
)
async def test_password_room_refusals_close_the_connection_and_say_why(
    lab_server: RunningServer, first: str | None, second: str | None, message: str, answer: str
) -> None:
    async with rooms(lab_server.ws_url, "pw", "Ada", password=first) as (ada,):
        async with rooms(lab_server.ws_url, "pw", "Bob", connect=False, password=second) as (bob,):
            # Bob (the newcomer) offers; Ada opens the offer and refuses it.
            err = await wait_for_event(ada, ev.PeerError)
            assert err.message == message and err.name == "Bob"
            # Ada tells Bob with a payload in her own form, which Bob refuses in turn.
            err = await wait_for_event(bob, ev.PeerError)
            assert err.message == answer and err.name == "Ada"
            assert not of_type(ada, ev.Connected) and not of_type(bob, ev.Connected)
            await wait_until(lambda: all(p.closed for p in ada.peers.values()), WAIT)


async def test_signaling_resumes_after_a_drop_and_the_mesh_goes_on(
    lab_server: RunningServer,
) -> None:
    async with rooms(lab_server.ws_url, "resume", "Ada", "Bob") as (ada, bob):
        first_id = ada.my_id
        ada.signaling.drop()
        await wait_until(lambda: ada.signaling.reconnects == 1 and ada.signaling.connected.is_set())
        joined = of_type(ada, ev.Joined)
        assert [j.resumed for j in joined] == [False, True]
        assert joined[-1].id == first_id and ada.my_id == first_id
        assert any(s.state == "disconnected" for s in of_type(ada, ev.SignalingState))
        # The data channel never depended on signaling.
        ada.send_text("still here")
        assert (await wait_for_event(bob, ev.Message)).text == "still here"
        # And signaling works again: a newcomer connects to the resumed peer.
        async with rooms(lab_server.ws_url, "resume", "Cy", connect=False) as (cy,):
            await wait_until(lambda: len(cy.peers) == 2 and all(
                p.connected.is_set() for p in cy.peers.values()), WAIT)  # fmt: skip
            assert {c.name for c in of_type(ada, ev.PeerJoined)} == {"Bob", "Cy"}
        assert not [e for e in of_type(bob, ev.PeerLeft) if e.peer == first_id]


async def test_messages_written_before_the_channel_opens_wait_in_order(
    lab_server: RunningServer,
) -> None:
    async with rooms(lab_server.ws_url, "queue", "Ada") as (ada,):
        bob = Room(lab_server.ws_url, "queue", "Bob")
        # Bob's offer waits here until his messages are written: until then no connection
        # can open, however fast the lab is. (The real client, held up, not replaced.)
        written = asyncio.Event()
        send = bob.signaling.send

        async def after_writing(kind: str, to: str, payload: Any) -> None:
            await written.wait()
            await send(kind, to, payload)

        bob.signaling.send = after_writing  # type: ignore[method-assign]
        try:
            await bob.start()
            await wait_until(lambda: bool(bob.peers), WAIT)
            (link,) = bob.peers.values()
            for i in range(5):
                assert not link.connected.is_set() and not link.link.is_open
                assert link.chat is None or link.chat.readyState != "open"
                link.send_text(f"queued {i}")
            assert len(link.link.unacked) == 5 and not of_type(ada, ev.Message)
            written.set()
            await wait_until(lambda: len(of_type(ada, ev.Message)) == 5, WAIT)
            assert [m.text for m in of_type(ada, ev.Message)] == [f"queued {i}" for i in range(5)]
            await wait_until(lambda: not link.link.unacked, WAIT)  # each one acknowledged
        finally:
            await bob.close()


# -- the command line, as a subprocess in another lab host ---------------------------------


async def test_cli_echo_bot_in_another_host_echoes_text_and_files(
    lab_host: Host, lab_server: RunningServer, tmp_path: Path
) -> None:
    bot_host = lab_host.lab.add_host("bot")
    inbox = tmp_path / "bot-inbox"
    bot = await spawn_chat(
        bot_host, lab_server.url, "--room", "echo", "--name", "Bot", "--echo", "--json",
        "--receive-dir", str(inbox), "--exit-after", str(WAIT))  # fmt: skip
    try:
        async with rooms(lab_server.ws_url, "echo", "Ada", connect=False,
                         receive_dir=tmp_path / "ada") as (ada,):  # fmt: skip
            await wait_for_event(ada, ev.Connected)
            ada.send_text("ping ✓")
            echoed = await wait_for_event(ada, ev.Message)
            assert (echoed.name, echoed.text) == ("Bot", "ping ✓")
            data = tmp_path / "payload.bin"
            data.write_bytes(os.urandom(100_000))
            await ada.send_file(data)
            back = await wait_for_event(ada, ev.FileDone, lambda e: e.direction == "in")
            assert back.state == "received" and _sha(Path(back.path)) == _sha(data)
            assert _sha(inbox / "payload.bin") == _sha(data)
            assert back.sha256 == _sha(data)
    finally:
        bot.terminate()
        code, out, err = await finish(bot)
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert "connected" in kinds and "message" in kinds and "file-done" in kinds
    assert code == 0, err


async def test_cli_send_and_expect_exit_codes(
    lab_host: Host, lab_server: RunningServer, tmp_path: Path
) -> None:
    host = lab_host.lab.add_host("cli")
    secret = tmp_path / "pw"
    secret.write_text("hunter2 but longer\n")
    waiter = await spawn_chat(
        host, lab_server.url, "--room", "cli", "--name", "Waiter", "--password-file", str(secret),
        "--expect", "marco", "--timeout", str(WAIT))  # fmt: skip
    await wait_until(lambda: _peers_in(lab_server, 1), WAIT)
    sender = await spawn_chat(
        host, lab_server.url, "--room", "cli", "--name", "Sender", "--password-env", "ROOM_PW",
        "--send", "marco polo", "--to", "Waiter", "--timeout", str(WAIT),
        ROOM_PW="hunter2 but longer")  # fmt: skip
    code, out, err = await finish(sender)
    assert code == 0, out + err
    assert "delivered to Waiter" in out
    code, out, err = await finish(waiter)
    assert code == 0, out + err
    assert "[Sender] (private) marco polo" in out
    assert "hunter2" not in out + err
    # Nobody says "nothing": --expect times out with status 1 and says what was missing.
    code, out, err = await finish(await spawn_chat(
        host, lab_server.url, "--room", "quiet", "--name", "Alone", "--expect", "nothing",
        "--timeout", "1"))  # fmt: skip
    assert code == 1 and "timed out" in out and "'nothing'" in out


async def _peers_in(server: RunningServer, count: int) -> bool:
    from server.app import HUB

    assert server.app is not None
    return (await server.app[HUB].stats()).peers == count


async def test_a_lost_connection_is_made_again_and_a_file_resumes_where_it_was(
    lab_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client_py import peer as peer_module

    monkeypatch.setattr(peer_module, "RECOVER_WAIT", 0.2)
    data = tmp_path / "long.bin"
    data.write_bytes(os.urandom(12 * 1024 * 1024))
    async with rooms(lab_server.ws_url, "cut", "Ada", "Bob") as (ada, bob):
        bob.receive_dir = tmp_path / "bob"
        (a_link,) = ada.peers.values()
        (b_link,) = bob.peers.values()
        number = a_link.safety_number
        fid = await ada.send_file(data)
        await wait_until(lambda: fid[0] in b_link.incoming
                         and b_link.incoming[fid[0]].received > 1_000_000, WAIT)  # fmt: skip
        # Bob's connection dies under the transfer (as a crashed or closed one would).
        assert b_link.pc is not None
        await b_link.pc.close()
        ada.send_text("written during the gap")
        done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == fid[0], timeout=60)
        assert done.state == "received" and done.sha256 == _sha(data)
        assert _sha(Path(done.path)) == _sha(data)
        # It resumed from what Bob kept, not from the start.
        assert a_link.outgoing[fid[0]].offset > 1_000_000
        assert len(of_type(ada, ev.Connected)) == 2 and len(of_type(bob, ev.Connected)) == 2
        assert of_type(bob, ev.PeerDisconnected) and of_type(ada, ev.PeerDisconnected)
        # One certificate per client: a fresh connection keeps the safety number.
        assert a_link.safety_number == b_link.safety_number == number
        await wait_for_event(bob, ev.Message, lambda m: m.text == "written during the gap")
        ada.send_text("after")
        await wait_for_event(bob, ev.Message, lambda m: m.text == "after")
        assert [m.text for m in of_type(bob, ev.Message)].count("written during the gap") == 1


async def test_cli_interactive_line_mode(
    lab_host: Host, lab_server: RunningServer, tmp_path: Path
) -> None:
    host = lab_host.lab.add_host("term")
    proc = await spawn_chat(host, lab_server.url, "--room", "inter", "--name", "Term", stdin=True)
    assert proc.stdin is not None
    seen: list[str] = []

    async def say(line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()

    try:
        await read_until(proc, "type /help", seen)
        await say("anyone?")
        await read_until(proc, "nobody else is in the room yet", seen)
        async with rooms(lab_server.ws_url, "inter", "Ada L", connect=False) as (ada,):
            connected = await read_until(proc, "connected to Ada L; safety number", seen)
            await wait_for_event(ada, ev.Connected)
            (link,) = ada.peers.values()
            assert link.safety_number is not None and connected.endswith(link.safety_number)
            await say("hello room")
            got = await wait_for_event(ada, ev.Message)
            assert (got.name, got.text, got.dm) == ("Term", "hello room", False)
            await say("/dm Ada L just for you")
            got = await wait_for_event(ada, ev.Message, lambda m: m.dm)
            assert got.text == "just for you"
            await say("/dm Nobody hi")
            await read_until(proc, "no peer called 'Nobody'", seen)
            await say("/peers")
            peers_line = await read_until(proc, "Ada L (", seen)
            # The nominated pair's candidate types: direct in the lab, so never relayed.
            assert "connected, " in peers_line and " <-> " in peers_line, peers_line
            assert "relayed" not in peers_line
            await say("/safety")
            assert (await read_until(proc, "Ada L:", seen)).endswith(link.safety_number)
            await say("/bogus")
            await read_until(proc, "unknown command /bogus", seen)
            note = tmp_path / "note.txt"
            note.write_text("from the terminal")
            await say(f"/file {note} Ada L")
            offer = await wait_for_event(ada, ev.FileOffered)
            assert (offer.filename, offer.dm, offer.accepted) == ("note.txt", True, False)
            ada.send_text("hi terminal <b>")
            await read_until(proc, "[Ada L] hi terminal <b>", seen)
            await say("/quit")
            code, out, err = await finish(proc)
            assert code == 0, err
            await wait_for_event(ada, ev.PeerLeft)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_an_offer_of_the_same_session_gets_a_fresh_connection(
    lab_server: RunningServer,
) -> None:
    """What the browser's restartIce() sends (the same o= session, offered again) is
    something aiortc cannot do; the Python peer answers with a fresh connection."""
    async with rooms(lab_server.ws_url, "restart", "Ada", "Bob") as (ada, bob):
        (a_link,) = ada.peers.values()
        assert a_link.pc is not None and bob.my_id is not None
        old = a_link.pc
        # Ada offers her current session again, through the real signaling path.
        await ada._signal(bob.my_id, "offer", old.localDescription.sdp)
        await wait_until(lambda: len(of_type(ada, ev.Connected)) == 2
                         and len(of_type(bob, ev.Connected)) == 2, WAIT)  # fmt: skip
        assert a_link.pc is not old
        bob.send_text("on the fresh connection")
        assert (await wait_for_event(ada, ev.Message)).text == "on the fresh connection"


async def test_after_a_server_restart_the_peers_rejoin_and_reconnect(
    lab_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new server knows no resume token: each peer gets a fresh id, and the mesh is
    made again (the one that rejoins second offers, as a newcomer)."""
    from client_py import signaling
    from natlab.processes import free_port
    from natlab.servers import server_process

    monkeypatch.setattr(signaling, "BACKOFF_MAX", 0.5)
    port = free_port(lab_host.ip)
    prefix = lab_host.exec_args([])
    async with server_process(lab_host.ip, port, prefix=prefix) as first:
        ws_url = first.ws_url
        async with rooms(ws_url, "restart", "Ada", "Bob") as (ada, bob):
            old_ids = (ada.my_id, bob.my_id)
            await first_stops(first)
            async with server_process(lab_host.ip, port, prefix=prefix):
                await wait_until(lambda: ada.signaling.reconnects >= 1
                                 and bob.signaling.reconnects >= 1, WAIT)  # fmt: skip
                await wait_until(lambda: len(of_type(ada, ev.Connected)) >= 2
                                 and len(of_type(bob, ev.Connected)) >= 2
                                 and all(r.peers and all(p.connected.is_set()
                                         for p in r.peers.values()) for r in (ada, bob)),
                                 WAIT)  # fmt: skip
                assert ada.my_id not in old_ids and bob.my_id not in old_ids
                assert [j.resumed for j in of_type(ada, ev.Joined)][-1] is False
                ada.send_text("after the restart")
                got = await wait_for_event(bob, ev.Message, lambda m: m.text.startswith("after"))
                assert got.name == "Ada"


async def first_stops(server: RunningServer) -> None:
    """Stop a ``server_process`` server now (SIGTERM), before its block ends."""
    import signal as signals

    assert server.process is not None
    os.killpg(server.process.pid, signals.SIGTERM)
    await asyncio.wait_for(server.process.wait(), WAIT)


async def test_cli_exit_status_3_when_the_password_is_refused(
    lab_host: Host, lab_server: RunningServer
) -> None:
    host = lab_host.lab.add_host("pw")
    async with rooms(lab_server.ws_url, "locked", "Ada", password="the right one") as (ada,):
        code, out, err = await finish(await spawn_chat(
            host, lab_server.url, "--room", "locked", "--name", "Guess", "--password-env", "PW",
            "--send", "let me in", "--timeout", str(WAIT), PW="a wrong one"))  # fmt: skip
        assert code == 3, out + err
        assert "wrong password" in out
        assert "a wrong one" not in out + err
        assert (await wait_for_event(ada, ev.PeerError)).message == "wrong password"
