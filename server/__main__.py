"""The ``confide`` command (also ``python -m server``).

- ``confide serve``: the server (web client, signaling, ICE config, STUN).
- ``confide turn-credentials``: a short-lived TURN username/password pair.
- ``confide stun``: the STUN responder alone (benchmarks; counters as JSON).
- ``confide chat``: the terminal peer (needs the ``[peer]`` extra).

Bad options print a message naming the option and exit with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .config import ServeConfig, add_serve_options, config_from_namespace
from .errors import ConfigError
from .tls import certificate_fingerprint, self_signed_paths, server_ssl_context

__all__ = ["main"]

EXIT_USAGE = 2

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="confide", description="Peer-to-peer, end-to-end-encrypted chat over WebRTC."
    )
    parser.add_argument("--version", action="version", version=f"confide {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the server", epilog=fixed_limits_text(), description=SERVE_DESCRIPTION
    )
    add_serve_options(serve)
    creds = commands.add_parser("turn-credentials", help="print a short-lived TURN credential")
    creds.add_argument("--turn-secret-file", dest="turn_secret_file", metavar="FILE")
    creds.add_argument("--turn-ttl", dest="turn_ttl", metavar="SECONDS")
    creds.add_argument("--turn-urls", dest="turn_urls", metavar="URLS")
    add_stun_options(commands.add_parser("stun", help="run the STUN responder alone"))
    commands.add_parser("chat", help="the terminal peer (see: confide chat --help)", add_help=False)
    return parser


SERVE_DESCRIPTION = (
    "Serve the web client, signaling, ICE configuration and STUN. Every option can also be "
    "set by the environment variable in brackets; the command line wins."
)


def fixed_limits_text() -> str:
    """The limits that are not options, from the constants that set them (docs/PROTOCOL.md)."""
    from .qr import QR_MAX_BYTES, QR_PENDING
    from .stun.message import MAX_ATTRIBUTES, MAX_REQUEST_SIZE
    from .stun.udp import RATE_LIMIT_MAX_SOURCES

    return (
        f"Fixed limits: STUN requests over {MAX_REQUEST_SIZE} bytes or {MAX_ATTRIBUTES} "
        f"attributes are dropped unread; at most {RATE_LIMIT_MAX_SOURCES} STUN sources are "
        f"tracked; /api/qr takes at most {QR_MAX_BYTES} bytes of text, and while "
        f"{QR_PENDING} codes are being made or wait, answers 503."
    )


def add_stun_options(parser: argparse.ArgumentParser) -> None:
    defaults = ServeConfig()
    parser.add_argument("--host", default="0.0.0.0", help="UDP address (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=defaults.stun_port, help="UDP port (default %(default)s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.stun_rate,
        help="replies per second per source (default %(default)s)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=defaults.stun_burst,
        help="replies in a burst per source (default %(default)s)",
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="for benchmarks only")
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    parser.add_argument("--stats-file", type=Path, help="write the counters here as JSON")


async def _until_signalled(duration: float | None = None) -> None:
    """Wait for SIGINT or SIGTERM, or ``duration`` seconds (bounds an unattended run)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)


async def serve_stun(args: argparse.Namespace) -> dict[str, int]:
    """Serve STUN until a signal or ``--duration``; the final counters."""
    from .stun import StunServer

    rate = math.inf if args.no_rate_limit else args.rate
    async with StunServer(args.host, args.port, rate=rate, burst=args.burst) as server:
        await _until_signalled(args.duration)
    logging.getLogger(__name__).info("STUN responder stopped: %s", server.stats)
    return asdict(server.stats)


def run_stun(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    stats = _run(serve_stun(args))
    if args.stats_file is not None:
        args.stats_file.write_text(json.dumps(stats), encoding="utf-8")
    return 0


def startup_line(config: ServeConfig, port: int, stun: str | None) -> str:
    host = config.public_host or config.host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    line = f"Confide is running: open {config.scheme}://{shown}:{port}/"
    return line + (f"  (STUN on udp {stun})" if stun else "  (STUN off)")


async def serve(config: ServeConfig) -> None:
    from aiohttp import web

    from .app import STUN, create_app

    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ssl_context = None
    cert_key = (config.tls_cert, config.tls_key)
    if config.tls_self_signed:
        cert_key = self_signed_paths([config.public_host or config.host])
    if cert_key[0] is not None and cert_key[1] is not None:
        ssl_context = server_ssl_context(cert_key[0], cert_key[1])
        print(f"TLS certificate SHA-256: {certificate_fingerprint(cert_key[0])}", flush=True)
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
    await site.start()
    try:
        port = int(runner.addresses[0][1])
        stun = app.get(STUN)
        print(startup_line(config, port, f"{stun.port}" if stun else None), flush=True)
        await _until_signalled()
    finally:
        await runner.cleanup()


def print_turn_credentials(parser: argparse.ArgumentParser, config: ServeConfig) -> int:
    """For manual tests: ``turnutils_uclient -u USER -w PASSWORD ...``."""
    from .turn import mint_credentials

    if config.turn_secret is None:
        parser.error("--turn-secret-file: the TURN shared secret's file is needed")
    pair = mint_credentials(config.turn_secret, config.turn_ttl)
    print(f"username: {pair.username}")
    print(f"password: {pair.credential}")
    print(f"expires:  {pair.expires} (unix time, in {config.turn_ttl} s)")
    for url in config.turn_urls:
        print(f"url:      {url}")
    return 0


def _run(coro_main: Coroutine[Any, Any, T]) -> T:
    """Run ``coro_main`` on uvloop when it is installed (bench/bench_stun.py measured it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_main)
    return uvloop.run(coro_main)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chat"]:
        try:
            from client_py.cli import main as chat_main  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            print(f"confide chat needs the [peer] extra: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return int(chat_main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "stun":
        return run_stun(args)
    try:
        config = config_from_namespace(args)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.command == "turn-credentials":
        return print_turn_credentials(parser, config)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
