"""``confide chat``: the terminal peer, interactive or scripted (``python -m client_py``).

Interactive: each line typed goes to the room; ``/dm NAME text``, ``/file PATH
[NAME]``, ``/peers``, ``/safety``, ``/quit`` (``/help`` lists them).
Scripted: ``--send``, ``--send-file``, ``--expect``, ``--expect-files``,
``--echo``, ``--exit-after``; ``--json`` prints one JSON object per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

from . import events as ev
from .channel import MAX_SIZE
from .files import MAX_INCOMING_FILES, MAX_INCOMING_SIZE, ReceiveLimits
from .terminal import for_terminal

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_PASSWORD", "EXIT_USAGE", "main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_PASSWORD: Final = 3

EPILOG = """\
Without --send, --send-file, --expect, --expect-files, --echo or --exit-after it
is interactive: each line read goes to the room, and
  /dm NAME text      a direct message to NAME only
  /file PATH [NAME]  offer a file to the room (or to NAME)
  /peers  /safety    who is here; the safety number with each peer
  /quit              leave (so does the end of input, or Ctrl-C)
When two peers share a name they are shown, and addressed (/dm, /file, --to),
as NAME#id: the name and the first digits of the peer's id, e.g. Bob#3f2a.

exit status:
  0  done: every --send delivered, every --send-file received intact, every
     --expect / --expect-files met (or --exit-after elapsed, /quit, end of input)
  1  failed: the server was unreachable, or --timeout passed first
  2  bad options
  3  a peer's connection was refused over the room password (wrong password,
     or one side has none)

The password is never taken on the command line: use --password-file or
--password-env. Files offered by peers are saved only with --receive-dir.
"""

HELP_LINES = """\
commands:  text            send to everyone in the room
           /dm NAME text   a direct message to NAME only
           /file PATH [NAME]  offer a file to the room (or to NAME)
           /peers          who is here, and the connection state
           /safety         the safety number with each peer
           /quit           leave
           (two peers of one name are NAME#id, as /peers shows them)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="confide chat",
        description="The Confide terminal peer: chat and swap files with a room, peer to peer.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument(
        "--server",
        required=True,
        metavar="URL",
        help="the Confide server, e.g. http://127.0.0.1:8080",
    )
    p.add_argument("--room", required=True, metavar="ROOM", help="1-64 of A-Z a-z 0-9 _ -")
    p.add_argument("--name", required=True, metavar="NAME", help="your name in the room")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-file", metavar="FILE", help="the room password: the first line of FILE"
    )
    secret.add_argument(
        "--password-env", metavar="VAR", help="the room password: environment variable VAR"
    )
    p.add_argument("--password", help=argparse.SUPPRESS)
    p.add_argument("--relay", action="store_true", help="relay (TURN) candidates only")
    p.add_argument("--json", action="store_true", help="one JSON object per event on stdout")
    p.add_argument(
        "--send",
        action="append",
        default=[],
        metavar="TEXT",
        help="send TEXT once a peer is connected (repeatable)",
    )
    p.add_argument(
        "--send-file",
        action="append",
        default=[],
        metavar="PATH",
        help="offer the file at PATH (repeatable)",
    )
    p.add_argument(
        "--to",
        metavar="NAME",
        help="--send / --send-file to NAME only (direct; NAME#id if two share NAME)",
    )
    p.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="TEXT",
        help="wait for a message containing TEXT (repeatable)",
    )
    p.add_argument(
        "--expect-files",
        type=int,
        default=0,
        metavar="N",
        help="wait until N files were received intact (needs --receive-dir)",
    )
    p.add_argument("--receive-dir", metavar="DIR", help="accept offered files into DIR")
    p.add_argument(
        "--max-file-size",
        default=str(MAX_INCOMING_SIZE),
        metavar="BYTES",
        help="decline offered files larger than BYTES; a suffix K, M, G or T counts "
        f"in 1024s (default {MAX_INCOMING_SIZE // 1024**3}G)",
    )
    p.add_argument(
        "--max-incoming-files",
        default=MAX_INCOMING_FILES,
        type=int,
        metavar="N",
        help=f"receive at most N files at once from each peer (default {MAX_INCOMING_FILES})",
    )
    p.add_argument(
        "--echo",
        action="store_true",
        help="bot: send every message back (and, with --receive-dir, every file)",
    )
    p.add_argument(
        "--wait-peers",
        type=int,
        default=1,
        metavar="N",
        help="--send/--send-file wait for N connected peers (default 1)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="give up (exit 1) when the goals are not met in S seconds (default 60)",
    )
    p.add_argument(
        "--exit-after",
        type=float,
        metavar="S",
        help="run for S seconds, then leave with status 0 (bots)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)")
    return p  # fmt: skip


@dataclass
class Options:
    server: str
    room: str
    name: str
    password: str | None
    relay: bool
    json: bool
    send: list[str]
    send_file: list[Path]
    to: str | None
    expect: list[str]
    expect_files: int
    receive_dir: Path | None
    limits: ReceiveLimits
    echo: bool
    wait_peers: int
    timeout: float
    exit_after: float | None
    verbose: int
    interactive: bool = field(default=False)


def parse_options(argv: Sequence[str], environ: dict[str, str] | None = None) -> Options:
    """Options from ``argv``; bad ones exit 2 with a message naming the option."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    env = os.environ if environ is None else environ
    if args.password is not None:
        parser.error("--password: a password on the command line is visible to every user "
                     "of this machine; use --password-file FILE or --password-env VAR")  # fmt: skip
    from .channel import ID_PATTERN

    if not ID_PATTERN.fullmatch(args.room):
        parser.error(f"--room: {args.room!r} must be 1-64 of A-Z a-z 0-9 _ -")
    name = args.name.strip()
    if not 1 <= len(name) <= 32 or not name.isprintable():
        parser.error("--name: must be 1-32 printable characters")
    server = args.server.rstrip("/")
    if not server.startswith(("http://", "https://", "ws://", "wss://")):
        parser.error(f"--server: {args.server!r} is not an http(s):// or ws(s):// URL")
    password = None
    if args.password_file is not None:
        try:
            password = Path(args.password_file).read_text().splitlines()[0]
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            parser.error(f"--password-file: cannot read a password from it ({type(exc).__name__})")
    elif args.password_env is not None:
        password = env.get(args.password_env)
        if password is None:
            parser.error(f"--password-env: variable {args.password_env} is not set")
    if password == "":
        parser.error("--password-file/--password-env: the password is empty")
    files = [Path(f) for f in args.send_file]
    for f in files:
        if not f.is_file():
            parser.error(f"--send-file: {str(f)!r} is not a readable file")
    if args.timeout <= 0:
        parser.error("--timeout: must be more than 0 seconds")
    if args.exit_after is not None and args.exit_after <= 0:
        parser.error("--exit-after: must be more than 0 seconds")
    if args.wait_peers < 0:
        parser.error("--wait-peers: must be 0 or more")
    if args.expect_files < 0:
        parser.error("--expect-files: must be 0 or more")
    if args.expect_files and args.receive_dir is None:
        parser.error("--expect-files: needs --receive-dir")
    max_size = parse_size(args.max_file_size)
    if max_size is None:
        parser.error(f"--max-file-size: {args.max_file_size!r} is not a number of bytes "
                     "(e.g. 500M) from 0 to 2^53-1")  # fmt: skip
    if args.max_incoming_files < 1:
        parser.error("--max-incoming-files: must be 1 or more")
    scripted = bool(args.send or files or args.expect or args.expect_files or args.echo
                    or args.exit_after)  # fmt: skip
    return Options(
        server=server, room=args.room, name=name, password=password, relay=args.relay,
        json=args.json, send=args.send, send_file=files, to=args.to, expect=args.expect,
        expect_files=args.expect_files,
        receive_dir=Path(args.receive_dir) if args.receive_dir else None,
        limits=ReceiveLimits(max_size, args.max_incoming_files), echo=args.echo,
        wait_peers=args.wait_peers, timeout=args.timeout, exit_after=args.exit_after,
        verbose=args.verbose, interactive=not scripted,
    )  # fmt: skip


_SIZE_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int | None:
    """``"1500"``, ``"500M"``, ``"4G"`` → bytes; None if that is not a size."""
    text = text.strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
    digits = text[: len(text) - len(unit)]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 16:
        return None
    size = int(digits) * _SIZE_UNITS[unit]
    return size if size <= MAX_SIZE else None


def ws_url(server: str) -> str:
    url = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return url if url.endswith("/ws") else url + "/ws"


def describe(event: ev.Event, who: str | None = None) -> str:
    """One line for people; ``who`` shows the peer instead of its name (see Room.label)."""
    name = who if who is not None else getattr(event, "name", "")
    match event:
        case ev.Joined():
            here = ", ".join(event.peers) or "nobody yet"
            again = " again (resumed)" if event.resumed else ""
            return f"* joined room {event.room}{again} as {event.id}; here: {here}"
        case ev.SignalingState():
            return f"* signaling {event.state}: {event.detail}"
        case ev.PeerJoined():
            return f"* {name} joined"
        case ev.PeerLeft():
            return f"* {name} left"
        case ev.Connected():
            if not event.safety_number:
                return (f"* connected to {name}; no safety number: this peer's certificate "
                        "cannot be read with certainty, so do not rely on this connection "
                        "being private")  # fmt: skip
            return f"* connected to {name}; safety number {event.safety_number}"
        case ev.PeerDisconnected():
            return f"* connection to {name} lost: {event.reason}"
        case ev.Message():
            private = " (private)" if event.dm else ""
            return f"[{name}]{private} {event.text}"
        case ev.Delivered():
            return f"* delivered to {name}"
        case ev.Typing():
            return f"* {name} is typing" if event.on else f"* {name} stopped typing"
        case ev.FileOffered():
            if event.direction == "out":
                return f"* offering {event.filename} ({event.size} bytes) to {name}"
            verdict = "accepted" if event.accepted else f"declined ({event.reason})"
            return f"* {name} offers {event.filename} ({event.size} bytes): {verdict}"
        case ev.FileDone():
            where = f" -> {event.path}" if event.direction == "in" and event.path else ""
            arrow = "from" if event.direction == "in" else "to"
            return f"* file {event.filename} {arrow} {name}: {event.state}{where}"
        case ev.IgnoredInput():
            return f"! ignored from {name}: {event.reason}"
        case ev.PeerError():
            return f"! {name}: {event.message}"
    return repr(event)  # pragma: no cover


class Chat:
    """The running command: prints events, carries out goals and typed commands."""

    def __init__(self, options: Options) -> None:
        from .room import Room

        self.o = options
        self.room = Room(ws_url(options.server), options.room, options.name,
                         password=options.password, relay=options.relay,
                         receive_dir=options.receive_dir, limits=options.limits)  # fmt: skip
        options.password = None
        self.expect = list(options.expect)
        self.undelivered: set[str] = set()
        self.files_pending: set[str] = set()
        self.files_ok = 0
        self.status = EXIT_OK
        self.sent = False
        self.done = asyncio.Event()
        self.lock = threading.Lock()

    def out(self, line: str, **fields: Any) -> None:
        """One line for people (peers' text in it made harmless), or its JSON object."""
        if self.o.json:
            print(json.dumps(fields, ensure_ascii=False), flush=True)
        else:
            print(for_terminal(line), flush=True)

    def show(self, event: ev.Event) -> None:
        if self.o.json:
            print(json.dumps(ev.as_json(event), ensure_ascii=False), flush=True)
        else:
            peer = getattr(event, "peer", None)
            who = self.room.label(peer) if isinstance(peer, str) else None
            print(for_terminal(describe(event, who)), flush=True)

    def goals_met(self) -> bool:
        o = self.o
        if o.interactive or o.exit_after is not None or o.echo:
            return False
        return (
            (self.sent or not (o.send or o.send_file))
            and not self.undelivered
            and not self.files_pending
            and not self.expect
            and self.files_ok >= o.expect_files
        )

    def connected_peers(self) -> int:
        return sum(1 for link in self.room.peers.values() if link.connected.is_set())

    async def maybe_send(self) -> None:
        o = self.o
        if self.sent or not (o.send or o.send_file) or self.connected_peers() < o.wait_peers:
            return
        self.sent = True
        try:
            if o.to is not None:
                link = self.room.find(o.to)  # two peers of that name: LookupError, below
                if link is None or not link.connected.is_set():
                    self.sent = False
                    return  # wait for that peer (or time out)
            for text in o.send:
                self.undelivered.update(self.room.send_text(text, o.to))
            for path in o.send_file:
                self.files_pending.update(await self.room.send_file(path, o.to))
        except LookupError as exc:
            self.out(f"! {exc}", event="error", message=str(exc))
            self.status = EXIT_FAILED
            self.done.set()

    async def on_event(self, event: ev.Event) -> None:
        self.show(event)
        if isinstance(event, ev.Message):
            self.expect = [t for t in self.expect if t not in event.text]
            if self.o.echo:
                if event.dm:
                    self.room.send_text(event.text, to=event.peer)
                else:
                    self.room.send_text(event.text)
        elif isinstance(event, ev.Delivered):
            self.undelivered.discard(event.id)
        elif isinstance(event, ev.FileDone):
            if event.direction == "out":
                if event.fid in self.files_pending:
                    self.files_pending.discard(event.fid)
                    if event.state != "sent":
                        self.status = EXIT_FAILED
            elif event.state == "received":
                self.files_ok += 1
                if self.o.echo and event.path:
                    link = self.room.peers.get(event.peer)
                    if link is not None:
                        await link.send_file(Path(event.path), dm=True)
        elif isinstance(event, ev.PeerError) and "password" in event.message:
            if not self.o.interactive and self.o.exit_after is None:
                self.status = EXIT_PASSWORD
                self.done.set()
        await self.maybe_send()
        if self.goals_met():
            self.done.set()

    async def command(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line.strip():
            return
        try:
            if line == "/quit":
                self.done.set()
            elif line == "/help":
                if self.o.json:
                    self.out("", event="help", text=HELP_LINES)
                else:
                    print(HELP_LINES, flush=True)
            elif line == "/peers":
                from .peer import selected_candidates

                for link in self.room.peers.values():
                    state = "connected" if link.connected.is_set() else "connecting"
                    pair = selected_candidates(link.pc)
                    path = None
                    if pair is not None:
                        local, remote = pair
                        path = f"{local.type} <-> {remote.type}"
                        relayed = "relay" in (local.type, remote.type)
                        state += f", {path}" + (" (relayed through TURN)" if relayed else "")
                    noise = ""
                    if link.ignored_count or link.faults:
                        noise = f"; ignored {link.ignored_count} input(s), {link.faults} fault(s)"
                    label = self.room.label(link.peer_id)
                    self.out(f"  {label} ({link.peer_id}): {state}{noise}", event="peer",
                             id=link.peer_id, name=link.name, state=state, path=path,
                             ignored=link.ignored_count, faults=link.faults)  # fmt: skip
                if not self.room.peers:
                    self.out("  nobody else is here", event="peer", id=None)
            elif line == "/safety":
                for peer_id, link in self.room.peers.items():
                    who, number = self.room.label(peer_id), link.safety_number
                    shown = number or ("none: this peer's certificate cannot be read with "
                                       "certainty" if link.connected.is_set()
                                       else "not connected yet")  # fmt: skip
                    self.out(f"  {who}: {shown}", event="safety", name=who,
                             safety_number=number)  # fmt: skip
            elif line.startswith("/dm "):
                who, text = self.split_name(line[4:])
                self.room.send_text(text, to=who)
            elif line.startswith("/file "):
                path, _, to = line[6:].partition(" ")
                await self.room.send_file(Path(path), to.strip() or None)
            elif line.startswith("/"):
                self.out(f"! unknown command {line.split()[0]}; /help lists them",
                         event="error", message="unknown command")  # fmt: skip
            elif not self.room.send_text(line):
                self.out("! nobody else is in the room yet", event="error",
                         message="nobody else is in the room yet")  # fmt: skip
        except (LookupError, OSError, ValueError) as exc:
            self.out(f"! {exc}", event="error", message=str(exc))

    def split_name(self, rest: str) -> tuple[str, str]:
        """``NAME text`` → (NAME, text); names may hold spaces, so known names (and the
        ``NAME#id`` labels of peers who share one) come first."""
        known = {*self.room.names.values(), *self.room.labels().values()}
        names = sorted(known, key=len, reverse=True)
        for name in names:
            if rest.startswith(name + " "):
                return name, rest[len(name) + 1 :]
        who, _, text = rest.partition(" ")
        return who, text

    def read_stdin(self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
        # A daemon thread: a blocked readline must never hold up the exit.
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            await self.room.start()
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, timed out: say so
            self.out(f"! cannot join: {exc}", event="error", message=f"cannot join: {exc}")
            await self.room.close()
            return EXIT_FAILED
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.done.set)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        if self.o.interactive:
            threading.Thread(target=self.read_stdin, args=(loop, lines), daemon=True).start()
            if not self.o.json:
                self.out("type /help for commands")
        limit: float | None = self.o.timeout
        if self.o.exit_after is not None:
            limit = self.o.exit_after
        elif self.o.interactive:
            limit = None
        deadline = None if limit is None else loop.time() + limit
        await self.maybe_send()
        if self.goals_met():
            self.done.set()
        event_task: asyncio.Task[ev.Event] | None = None
        line_task: asyncio.Task[str | None] | None = None
        done_task = asyncio.ensure_future(self.done.wait())
        try:
            while not self.done.is_set():
                timeout = None if deadline is None else deadline - loop.time()
                if timeout is not None and timeout <= 0:
                    if self.o.exit_after is None:
                        self.status = EXIT_FAILED
                        missing = self.missing()
                        self.out("! timed out: " + missing, event="timeout", missing=missing)
                    break
                if event_task is None:
                    event_task = asyncio.ensure_future(self.room.events.get())
                waiting: set[asyncio.Future[Any]] = {event_task, done_task}
                if self.o.interactive:
                    if line_task is None:
                        line_task = asyncio.ensure_future(lines.get())
                    waiting.add(line_task)
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if event_task.done():
                    event, event_task = event_task.result(), None
                    await self.on_event(event)
                if line_task is not None and line_task.done():
                    line, line_task = line_task.result(), None
                    if line is None:
                        self.done.set()
                    else:
                        await self.command(line)
        finally:
            for task in (event_task, line_task, done_task):
                if task is not None:
                    task.cancel()
            await self.room.close()
        return self.status

    def missing(self) -> str:
        parts = []
        if not self.sent and (self.o.send or self.o.send_file):
            who = f"{self.o.to} not connected" if self.o.to else ""
            parts.append(who or f"fewer than {self.o.wait_peers} connected peer(s)")
        if self.undelivered:
            parts.append(f"{len(self.undelivered)} message(s) not delivered")
        if self.files_pending:
            parts.append(f"{len(self.files_pending)} file(s) not received")
        if self.expect:
            parts.append("no message containing " + ", ".join(map(repr, self.expect)))
        if self.files_ok < self.o.expect_files:
            parts.append(f"{self.files_ok} of {self.o.expect_files} files received")
        return "; ".join(parts) or "nothing"


def _run(coro: Any) -> int:
    if os.environ.get("CONFIDE_UVLOOP", "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return int(uvloop.run(coro))
    return asyncio.run(coro)  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """``confide chat ARGS``; returns the exit status."""
    options = parse_options(argv) if argv else parse_options(["--help"])
    level = {0: logging.WARNING, 1: logging.INFO}.get(options.verbose, logging.DEBUG)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    # aioice reports every candidate pair at INFO; keep that for -vv.
    logging.getLogger("aioice").setLevel(max(level, logging.WARNING if options.verbose < 2 else 0))

    async def go() -> int:
        return await Chat(options).run()

    try:
        return _run(go())
    except KeyboardInterrupt:
        return EXIT_OK
