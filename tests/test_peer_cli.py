"""``confide chat`` options: bad ones exit 2 naming the option; passwords stay off argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from client_py.cli import EXIT_USAGE, parse_options, parse_size, ws_url
from client_py.files import MAX_INCOMING_FILES, MAX_INCOMING_SIZE
from natlab.servers import ROOT

BASE = ["--server", "http://10.0.0.1:8080", "--room", "r", "--name", "Ada"]


def chat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "chat", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--room", "r", "--name", "A"], "--server"),
        ([*BASE[:2], "--room", "bad room!", "--name", "A"], "--room"),
        ([*BASE[:4], "--name", " "], "--name"),
        (["--server", "ftp://x", *BASE[2:]], "--server"),
        ([*BASE, "--password", "hunter2"], "--password"),
        ([*BASE, "--password-env", "CONFIDE_TEST_UNSET_VAR"], "--password-env"),
        ([*BASE, "--password-file", "/nonexistent/pw"], "--password-file"),
        ([*BASE, "--send-file", "/nonexistent/file"], "--send-file"),
        ([*BASE, "--timeout", "0"], "--timeout"),
        ([*BASE, "--timeout", "soon"], "--timeout"),
        ([*BASE, "--expect-files", "1"], "--expect-files"),
        ([*BASE, "--pass", "x"], "--pass"),
        ([*BASE, "--max-file-size", "lots"], "--max-file-size"),
        ([*BASE, "--max-file-size", "-1"], "--max-file-size"),
        ([*BASE, "--max-file-size", "9000T"], "--max-file-size"),
        ([*BASE, "--max-incoming-files", "0"], "--max-incoming-files"),
        ([*BASE, "--max-incoming-files", "many"], "--max-incoming-files"),
    ],
)
def test_bad_options_name_the_option_and_exit_2(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_options(args, environ={})
    assert exited.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert option in err
    assert "hunter2" not in err


def test_password_from_file_or_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret words\nignored second line\n")
    assert parse_options([*BASE, "--password-file", str(secret)]).password == "s3cret words"
    options = parse_options([*BASE, "--password-env", "PW"], environ={"PW": "from env"})
    assert options.password == "from env"
    assert parse_options(BASE).password is None


def test_receive_limits_take_sizes_with_binary_suffixes() -> None:
    default = parse_options(BASE).limits
    assert (default.max_size, default.max_files) == (MAX_INCOMING_SIZE, MAX_INCOMING_FILES)
    options = parse_options([*BASE, "--max-file-size", "500M", "--max-incoming-files", "1"])
    assert (options.limits.max_size, options.limits.max_files) == (500 * 1024**2, 1)
    assert [parse_size(t) for t in ("0", "1500", "2k", "1GB", "1.5G", "", "G")] == [
        0, 1500, 2048, 1024**3, None, None, None]  # fmt: skip


def test_modes_and_urls() -> None:
    assert parse_options(BASE).interactive
    assert not parse_options([*BASE, "--echo"]).interactive
    assert ws_url("http://h:1") == "ws://h:1/ws" and ws_url("https://h") == "wss://h/ws"
    assert ws_url("ws://h:1/ws") == "ws://h:1/ws"


def test_the_confide_command_dispatches_and_documents_exit_codes() -> None:
    shown = chat("--help")
    assert shown.returncode == 0
    for line in ("exit status:", "0  done", "1  failed", "2  bad options", "3  a peer"):
        assert line in shown.stdout
    bad = chat(*BASE, "--frobnicate")
    assert bad.returncode == 2 and "--frobnicate" in bad.stderr
    # python -m client_py is the same command.
    same = subprocess.run([sys.executable, "-m", "client_py", "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert same.returncode == 0 and "exit status:" in same.stdout


def test_an_unreachable_server_exits_1() -> None:
    done = chat("--server", "http://127.0.0.1:9", "--room", "r", "--name", "A", "--send", "x")
    assert done.returncode == 1
    assert "cannot join" in done.stdout
