"""File transfers (client_py/files.py), sans I/O."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from client_py.channel import FileAccept, FileCancel, FileEnd, FileOffer, FileReceived
from client_py.errors import Ignored
from client_py.files import (
    IncomingTransfer,
    OutgoingTransfer,
    State,
    file_label,
    parse_file_label,
    safe_filename,
    sha256_of_file,
)

DATA = bytes(range(256)) * 100
SHA = hashlib.sha256(DATA).hexdigest()


def test_labels_round_trip_and_bad_ones_are_ignored() -> None:
    assert parse_file_label(file_label("b7d1-x_", 16384)) == ("b7d1-x_", 16384)
    for bad in ("chat", "file:a", "file:a:-1", "file:a b:0", "file:a:01", "file:a:0:0"):
        with pytest.raises(Ignored):
            parse_file_label(bad)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("notes.pdf", "notes.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\evil.exe", "evil.exe"),
        ("a\x00b\nc\u202e.txt", "abc.txt"),
        ("..", "file"),
        (".bashrc", "bashrc"),
        ("/", "file"),
    ],
)
def test_safe_filename_keeps_only_a_base_name(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_a_transfer_completes_whatever_the_order_of_bytes_and_file_end() -> None:
    for end_first in (True, False):
        incoming = IncomingTransfer(FileOffer("f", "a.bin", len(DATA)))
        assert incoming.accept() == FileAccept("f", 0)
        incoming.channel_opened(0)
        if end_first:
            assert incoming.end(FileEnd("f", SHA)) == []
        for i in range(0, len(DATA), 16384):
            out = incoming.data(DATA[i : i + 16384])
        if not end_first:
            assert out == []
            out = incoming.end(FileEnd("f", SHA))
        assert out == [FileReceived("f", True)]
        assert incoming.state is State.DONE


def test_a_wrong_hash_fails_the_transfer() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    incoming.accept()
    incoming.data(b"abc")
    assert incoming.end(FileEnd("f", "0" * 64)) == [FileReceived("f", False)]
    assert incoming.state is State.FAILED


def test_resume_accepts_from_the_bytes_kept_and_checks_the_channel_offset() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", len(DATA)))
    incoming.accept()
    incoming.data(DATA[:1000])
    assert incoming.accept() == FileAccept("f", 1000)
    with pytest.raises(Ignored, match="offset 0"):
        incoming.channel_opened(0)
    incoming.channel_opened(1000)
    incoming.data(DATA[1000:])
    assert incoming.end(FileEnd("f", SHA)) == [FileReceived("f", True)]


def test_bytes_beyond_size_cancel_the_transfer() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    incoming.accept()
    assert incoming.data(b"abcd") == [FileCancel("f")]
    assert incoming.state is State.CANCELLED
    assert incoming.data(b"a") == []


def test_a_channel_for_an_unaccepted_offer_is_ignored() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    with pytest.raises(Ignored):
        incoming.channel_opened(0)
    incoming.decline()
    assert incoming.data(b"abc") == []


def test_outgoing_states(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(DATA)
    assert sha256_of_file(path, chunk=1000) == SHA
    out = OutgoingTransfer(FileOffer("f", "a.bin", len(DATA)), str(path), SHA)
    with pytest.raises(Ignored):
        out.accepted(FileAccept("f", len(DATA) + 1))
    assert out.accepted(FileAccept("f", 0)) == 0
    assert out.sent_all() == FileEnd("f", SHA)
    assert out.accepted(FileAccept("f", 500)) == 500  # resumed after a reconnect
    assert out.state is State.SENDING
    out.sent_all()
    out.result(FileReceived("f", True))
    assert out.ok is True
    assert out.state.value == "done"
    with pytest.raises(Ignored):
        out.accepted(FileAccept("f", 0))
    declined = OutgoingTransfer(FileOffer("g", "a.bin", 1), str(path), SHA)
    declined.declined()
    assert declined.state is State.DECLINED
