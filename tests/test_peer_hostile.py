"""A hostile peer against the terminal peer's rooms (issue 9, items 16-19): real server,
real aiortc on both sides, in the lab. Each test failed on the code before its fix."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from client_py import events as ev
from client_py.channel import MAX_SIZE, FileEnd, FileOffer
from client_py.cli import Chat, parse_options
from client_py.files import MAX_NAME_BYTES, OutgoingTransfer, ReceiveLimits
from client_py.peer import PeerLink
from client_py.room import SUFFIX_LENGTH
from client_py.terminal import for_terminal
from natlab.lab import Host
from natlab.processes import wait_until
from natlab.servers import RunningServer
from tests.peer_helpers import WAIT, finish, of_type, rooms, spawn_chat, wait_for_event


def _offer_as_is(link: PeerLink, path: Path, name: str, fid: str) -> None:
    """Offer ``path`` under exactly ``name`` (our own client would clean the name first);
    the sending machinery is the real one, so the bytes go once the peer accepts."""
    data = path.read_bytes()
    offer = FileOffer(fid, name, len(data))
    link.files.outgoing[fid] = OutgoingTransfer(offer, str(path), hashlib.sha256(data).hexdigest())
    link.link.send(offer)
    link._flush()


async def _open_channel(link: PeerLink, label: str) -> object:
    assert link.pc is not None
    channel = link.pc.createDataChannel(label)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await asyncio.wait_for(opened.wait(), WAIT)
    return channel


async def test_a_file_name_too_long_for_the_disk_is_cut_and_the_connection_stays(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    """252 ASCII or 84 CJK characters are a legal name that, with ``.part``, is over the
    file system's 255 bytes: ENAMETOOLONG used to escape into aiortc and cut the peer."""
    src = tmp_path / "src.bin"
    src.write_bytes(b"long name\n")
    names = {"ascii": "a" * 248 + ".txt", "cjk": "漢" * 83 + ".t"}
    async with rooms(lab_server.ws_url, "names", "Bob", "Mallory",
                     receive_dir=tmp_path / "in") as (bob, mallory):  # fmt: skip
        (evil,) = mallory.peers.values()
        (link,) = bob.peers.values()
        for fid, name in names.items():
            _offer_as_is(evil, src, name, fid)
        for fid, name in names.items():
            done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == fid)  # noqa: B023
            assert done.state == "received"
            saved = Path(done.path)
            assert len(saved.name.encode()) <= MAX_NAME_BYTES
            assert name.startswith(saved.name) and saved.read_bytes() == b"long name\n"
        assert link.connected.is_set() and link.faults == 0
        mallory.send_text("still connected")
        await wait_for_event(bob, ev.Message, lambda m: m.text == "still connected")


async def test_an_exception_in_our_handler_is_counted_and_never_reaches_aiortc(
    lab_server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async with rooms(lab_server.ws_url, "fault", "Bob", "Mallory") as (bob, mallory):
        (evil,) = mallory.peers.values()
        (link,) = bob.peers.values()

        def bug(message: object) -> None:
            raise RuntimeError("a bug this peer found")

        # A bug of ours, not a fake peer: the frames are real and go through real aiortc.
        link.files.control = bug  # type: ignore[method-assign]
        evil.link.send(FileOffer("f", "x.txt", 1))
        evil._flush()
        await wait_until(lambda: link.faults == 1, WAIT)
        reason = of_type(bob, ev.IgnoredInput)[-1].reason
        assert reason == "handling a chat message failed: RuntimeError('a bug this peer found')"
        # A data channel whose handler fails is counted too.
        link.files.channel = bug  # type: ignore[method-assign,assignment]
        await _open_channel(evil, "file:f:0")
        await wait_until(lambda: link.faults == 2, WAIT)
        mallory.send_text("the connection survived")
        await wait_for_event(bob, ev.Message, lambda m: m.text == "the connection survived")
        bob.send_text("both ways")
        await wait_for_event(mallory, ev.Message, lambda m: m.text == "both ways")
        assert link.connected.is_set() and link.ignored_count == 2
        # The count shows in /peers, for people and in --json.
        for json_mode in (False, True):
            chat = Chat(parse_options(["--server", lab_server.url, "--room", "fault",
                                       "--name", "Term", *(["--json"] * json_mode)]))  # fmt: skip
            chat.room = bob
            await chat.command("/peers")
            shown = capsys.readouterr().out
            if json_mode:
                assert (json.loads(shown)["ignored"], json.loads(shown)["faults"]) == (2, 2)
            else:
                assert shown.rstrip().endswith("ignored 2 input(s), 2 fault(s)")


async def test_files_over_the_size_the_count_or_the_free_space_are_declined(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    limits = ReceiveLimits(max_size=1000, max_files=2)
    async with rooms(lab_server.ws_url, "caps", "Bob", "Mallory", receive_dir=inbox,
                     limits=limits) as (bob, mallory):  # fmt: skip
        (evil,) = mallory.peers.values()
        offers = [
            FileOffer("big", "big.bin", 1001),
            FileOffer("one", "one.bin", 10),
            FileOffer("two", "two.bin", 10),
            FileOffer("three", "three.bin", 10),  # a third at once: over max_files
        ]
        for offer in offers:
            evil.link.send(offer)
        evil._flush()
        await wait_until(lambda: len(of_type(bob, ev.FileOffered)) == 4, WAIT)
        verdicts = {o.fid: (o.accepted, o.reason) for o in of_type(bob, ev.FileOffered)}
        assert verdicts["big"] == (False, "1001 bytes is over the limit of 1000 (--max-file-size)")
        assert verdicts["one"] == verdicts["two"] == (True, "")
        assert verdicts["three"] == (
            False, "already receiving 2 files from this peer (--max-incoming-files)")  # fmt: skip
        assert sorted(p.name for p in inbox.iterdir()) == ["one.bin.part", "two.bin.part"]

        # Larger than the free space (however large the limit): declined, nothing written.
        bob.limits = ReceiveLimits(max_size=MAX_SIZE, max_files=10)
        evil.link.send(FileOffer("huge", "huge.bin", 2**50))
        evil._flush()
        got = await wait_for_event(bob, ev.FileOffered, lambda o: o.fid == "huge")
        assert not got.accepted and "bytes free on the disk" in got.reason
        assert not (inbox / "huge.bin.part").exists()


async def test_the_part_files_of_failed_and_abandoned_transfers_are_removed(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "in"
    async with rooms(lab_server.ws_url, "parts", "Bob", receive_dir=inbox) as (bob,):
        async with rooms(lab_server.ws_url, "parts", "Mallory", connect=False) as (mallory,):
            await wait_until(lambda: bool(mallory.peers) and all(
                p.connected.is_set() for p in mallory.peers.values()), WAIT)  # fmt: skip
            (evil,) = mallory.peers.values()
            (link,) = bob.peers.values()
            # A wrong hash fails the transfer: its part goes.
            evil.link.send(FileOffer("bad", "bad.bin", 3))
            evil._flush()
            await wait_until(lambda: (inbox / "bad.bin.part").exists(), WAIT)
            channel = await _open_channel(evil, "file:bad:0")
            channel.send(b"abc")  # type: ignore[attr-defined]
            evil.link.send(FileEnd("bad", "0" * 64))
            evil._flush()
            done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == "bad")
            assert done.state == "failed" and not (inbox / "bad.bin.part").exists()
            # Half a file, and then the sender leaves for good.
            evil.link.send(FileOffer("half", "half.bin", 10))
            evil._flush()
            await wait_until(lambda: (inbox / "half.bin.part").exists(), WAIT)
            channel = await _open_channel(evil, "file:half:0")
            channel.send(b"01234")  # type: ignore[attr-defined]
            await wait_until(lambda: link.incoming["half"].received == 5, WAIT)
        done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == "half")
        assert done.state == "cancelled"
        assert list(inbox.iterdir()) == []


def test_controls_are_escaped_and_continuation_lines_indented() -> None:
    assert for_terminal("tab\tkept") == "tab\tkept"
    assert for_terminal("\x1b[2J\x07\r\x7f\x9b") == "\\x1b[2J\\x07\\x0d\\x7f\\x9b"
    assert for_terminal("evil\u202etxt.exe \u2066x\u2069") == "evil\\u202etxt.exe \\u2066x\\u2069"
    assert for_terminal("one\n[Ada] two\u2028three") == "one\n    [Ada] two\\u2028three"
    assert for_terminal("plain ✓ 漢 😀") == "plain ✓ 漢 😀"


async def test_a_peers_text_cannot_drive_the_terminal_or_fake_a_line(
    lab_host: Host, lab_server: RunningServer
) -> None:
    host = lab_host.lab.add_host("term")
    proc = await spawn_chat(host, lab_server.url, "--room", "tty", "--name", "Term",
                            "--expect", "END", "--timeout", str(WAIT))  # fmt: skip
    try:
        async with rooms(lab_server.ws_url, "tty", "Mallory", connect=False) as (mallory,):
            await wait_until(lambda: any(p.connected.is_set() for p in mallory.peers.values()),
                             WAIT)  # fmt: skip
            mallory.send_text("hi\x1b]0;pwned\x07\x1b[2J\r\n[Ada] your password?\u202eexe.txt")
            mallory.send_text("END")
            code, out, err = await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, err
    lines = out.splitlines()
    assert "[Mallory] hi\\x1b]0;pwned\\x07\\x1b[2J\\x0d" in lines
    assert "    [Ada] your password?\\u202eexe.txt" in lines
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert not [line for line in lines if line.startswith("[Ada]")]


async def test_two_peers_of_one_name_are_shown_and_addressed_apart(
    lab_server: RunningServer,
) -> None:
    async with rooms(lab_server.ws_url, "twins", "Ada", "Bob", "Bob") as (ada, bob1, bob2):
        assert bob1.my_id is not None and bob2.my_id is not None
        labels = ada.labels()
        first, second = labels[bob1.my_id], labels[bob2.my_id]
        assert first != second
        assert first.startswith("Bob#") and bob1.my_id.startswith(first[4:])
        # Who joins next is told who is here, the two Bobs apart.
        async with rooms(lab_server.ws_url, "twins", "Cy", connect=False) as (cy,):
            assert (await wait_for_event(cy, ev.Joined)).peers == ("Ada", first, second)
        assert len(first) >= len("Bob#") + SUFFIX_LENGTH
        # The name alone is ambiguous: refused, never sent to whichever Bob came first.
        with pytest.raises(LookupError, match="2 peers are called 'Bob': say which, Bob#"):
            ada.send_text("for Bob", to="Bob")
        ada.send_text("for the second Bob", to=second)
        got = await wait_for_event(bob2, ev.Message)
        assert (got.text, got.dm) == ("for the second Bob", True)
        # Each Bob has his own safety number on Ada's screen.
        numbers = ada.safety_numbers()
        assert set(numbers) == {first, second} and None not in numbers.values()
        assert numbers[first] != numbers[second]
        # Bob sees one Ada: no suffix where nobody shares the name.
        assert bob1.labels()[ada.my_id or ""] == "Ada"
        assert not of_type(bob1, ev.Message)


async def test_cli_to_a_shared_name_refuses_to_guess(
    lab_host: Host, lab_server: RunningServer
) -> None:
    async with rooms(lab_server.ws_url, "twins2", "Bob", "Bob"):
        host = lab_host.lab.add_host("term")
        proc = await spawn_chat(host, lab_server.url, "--room", "twins2", "--name", "Ada",
                                "--send", "hi", "--to", "Bob", "--wait-peers", "2")  # fmt: skip
        code, out, err = await finish(proc)
    assert code == 1, (out, err)
    assert "! 2 peers are called 'Bob': say which, Bob#" in out


async def test_a_file_that_cannot_be_written_fails_and_stops_the_sender(
    lab_server: RunningServer, tmp_path: Path
) -> None:
    """A full disk, for real: the .part becomes a link to /dev/full (ENOSPC on write)."""
    inbox = tmp_path / "in"
    async with rooms(lab_server.ws_url, "full", "Bob", "Mallory",
                     receive_dir=inbox) as (bob, mallory):  # fmt: skip
        (evil,) = mallory.peers.values()
        (link,) = bob.peers.values()
        evil.link.send(FileOffer("full", "full.bin", 10))
        evil._flush()
        part = inbox / "full.bin.part"
        await wait_until(part.exists, WAIT)
        channel = await _open_channel(evil, "file:full:0")
        channel.send(b"01234")  # type: ignore[attr-defined]
        await wait_until(lambda: link.incoming["full"].received == 5, WAIT)
        part.unlink()
        part.symlink_to("/dev/full")
        channel.send(b"56789")  # type: ignore[attr-defined]
        done = await wait_for_event(bob, ev.FileDone, lambda e: e.fid == "full")
        assert done.state == "failed"
        assert any("cannot write file 'full'" in i.reason for i in of_type(bob, ev.IgnoredInput))
        # The sender was told to stop (Mallory offered by hand, so her client knows no
        # such file and says so); the link to the full disk is gone, and nothing else is.
        told = "FileCancel for an unknown file 'full'"
        await wait_until(lambda: told in evil.ignored, WAIT)
        assert list(inbox.iterdir()) == [] and link.faults == 0
        mallory.send_text("still here")
        await wait_for_event(bob, ev.Message, lambda m: m.text == "still here")
