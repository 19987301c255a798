"""File transfers (client_py/files.py), sans I/O."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client_py.channel import FileAccept, FileCancel, FileEnd, FileOffer, FileReceived
from client_py.errors import Ignored
from client_py.files import (
    FINAL_STATES,
    MAX_NAME_BYTES,
    IncomingTransfer,
    OutgoingTransfer,
    State,
    file_label,
    parse_file_label,
    safe_filename,
    sha256_of_file,
)
from tests.peer_helpers import vectors

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


@pytest.mark.parametrize(
    "case", vectors()["client_rules"]["file_name"]["cases"], ids=lambda c: repr(c["in"])[:30]
)
def test_file_names_are_cleaned_by_the_shared_rule(case: dict[str, str]) -> None:
    assert safe_filename(case["in"]) == case["out"]


def test_the_name_bound_and_the_removed_code_points_are_the_shared_rule() -> None:
    rule = vectors()["client_rules"]["file_name"]
    assert MAX_NAME_BYTES == rule["max_utf8_bytes"]
    removed: set[int] = set()
    for item in rule["removed"]:
        first, _, last = item.partition("-")
        removed.update(range(int(first[2:], 16), int((last or first)[2:], 16) + 1))
    for code in range(0x3000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        kept = safe_filename(f"a{char}b") == f"a{char}b"
        assert kept == (code not in removed and char not in "/\\"), hex(code)


@given(st.text(max_size=300))
def test_a_cleaned_name_is_short_clean_and_stable(name: str) -> None:
    cleaned = safe_filename(name)
    assert 0 < len(cleaned.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
    assert "/" not in cleaned and "\\" not in cleaned and not cleaned.startswith(".")
    assert safe_filename(cleaned) == cleaned or cleaned != cleaned.strip()


def test_transfer_states_are_the_web_clients_words() -> None:
    assert {s.value for s in State} == set(vectors()["client_rules"]["transfer_states"])
    finals = {w for w, about in vectors()["client_rules"]["transfer_states"].items()
              if about.startswith("final")}  # fmt: skip
    assert {s.value for s in FINAL_STATES} == finals


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
        assert incoming.state is State.RECEIVED


def test_a_wrong_hash_fails_the_transfer() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    incoming.accept()
    incoming.channel_opened(0)
    incoming.data(b"abc")
    assert incoming.end(FileEnd("f", "0" * 64)) == [FileReceived("f", False)]
    assert incoming.state is State.FAILED


def test_resume_accepts_from_the_bytes_kept_and_checks_the_channel_offset() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", len(DATA)))
    incoming.accept()
    assert _state(incoming) == "waiting"
    assert incoming.data(DATA[:10]) == [] and incoming.received == 0  # no channel yet
    incoming.channel_opened(0)
    assert _state(incoming) == "receiving"
    incoming.data(DATA[:1000])
    incoming.interrupted()
    assert _state(incoming) == "interrupted"
    assert incoming.accept() == FileAccept("f", 1000)
    with pytest.raises(Ignored, match="offset 0"):
        incoming.channel_opened(0)
    incoming.channel_opened(1000)
    assert _state(incoming) == "resumed"
    incoming.data(DATA[1000:])
    assert incoming.end(FileEnd("f", SHA)) == [FileReceived("f", True)]


def test_bytes_beyond_size_cancel_the_transfer() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    incoming.accept()
    incoming.channel_opened(0)
    assert incoming.data(b"abcd") == [FileCancel("f")]
    assert incoming.state is State.CANCELLED
    assert incoming.data(b"a") == []


def test_a_channel_for_an_unaccepted_offer_is_ignored() -> None:
    incoming = IncomingTransfer(FileOffer("f", "a.bin", 3))
    with pytest.raises(Ignored):
        incoming.channel_opened(0)
    incoming.decline()
    assert incoming.data(b"abc") == []


def _state(transfer: IncomingTransfer | OutgoingTransfer) -> str:
    return transfer.state.value  # (a call: mypy would narrow the attribute between asserts)


def test_outgoing_states(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(DATA)
    assert sha256_of_file(path, chunk=1000) == SHA
    out = OutgoingTransfer(FileOffer("f", "a.bin", len(DATA)), str(path), SHA)
    with pytest.raises(Ignored):
        out.accepted(FileAccept("f", len(DATA) + 1))
    assert out.accepted(FileAccept("f", 0)) == 0
    assert out.sent_all() == FileEnd("f", SHA)
    assert _state(out) == "sending"  # until the receiver confirms the hash
    out.interrupted()
    assert _state(out) == "interrupted"
    assert out.accepted(FileAccept("f", 500)) == 500  # resumed after a reconnect
    assert _state(out) == "resumed"
    out.sent_all()
    out.result(FileReceived("f", True))
    assert out.ok is True
    assert out.state is State.SENT
    with pytest.raises(Ignored):
        out.accepted(FileAccept("f", 0))
    declined = OutgoingTransfer(FileOffer("g", "a.bin", 1), str(path), SHA)
    declined.declined()
    assert declined.state is State.DECLINED


def test_accepting_again_while_bytes_flow_keeps_them_flowing() -> None:
    # A repeated offer mid-transfer gets the accept again, and must not stall the channel.
    incoming = IncomingTransfer(FileOffer("f", "a.bin", len(DATA)))
    incoming.accept()
    incoming.channel_opened(0)
    incoming.data(DATA[:100])
    assert incoming.accept() == FileAccept("f", 100)
    assert _state(incoming) == "receiving"
    incoming.data(DATA[100:])
    assert incoming.received == len(DATA)
