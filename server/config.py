"""One typed configuration for ``confide serve``, from options and ``CONFIDE_*`` variables.

Every option has an environment variable (``--stun-port`` ↔ ``CONFIDE_STUN_PORT``);
an option on the command line wins. A bad value raises
:class:`~server.errors.ConfigError` naming the option, which the CLI turns into
a message and exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = [
    "ServeConfig",
    "add_serve_options",
    "config_from_namespace",
    "default_text",
    "env_name",
    "option_names",
    "option_parser",
]

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``create_app`` needs.

    Each default is written here only: ``confide serve --help`` shows these,
    and docs/PROTOCOL.md's limits are checked against them (tests/test_cli.py).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    #: UDP host of the STUN responder; None means the same as ``host``.
    stun_host: str | None = None
    #: 0 picks a free port (tests); -1 turns the responder off.
    stun_port: int = 3478
    #: Host name or address advertised to clients (STUN URL, startup line).
    #: None: the host the client used to reach us (its Host header).
    public_host: str | None = None
    turn_urls: tuple[str, ...] = ()
    turn_secret_file: Path | None = None
    #: The TURN REST API shared secret, read from ``turn_secret_file``; kept
    #: out of repr so it never reaches a log line.
    turn_secret: bytes | None = field(default=None, repr=False)
    turn_ttl: int = 3600
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Make (once) and use a self-signed certificate when no cert is given.
    tls_self_signed: bool = False
    log_level: str = "info"
    room_capacity: int = 16
    rate: float = 50.0
    burst: int = 300
    join_timeout: float = 10.0
    heartbeat: float = 20.0
    resume_grace: float = 30.0
    max_message_size: int = 64 * 1024
    #: Bytes held back for a client that does not read before it is closed (1013).
    send_buffer: int = 1024 * 1024
    #: Open WebSockets per client address (an IPv6 /64 counts as one).
    max_connections_per_ip: int = 100
    #: Joins per second per client address, counted across its connections.
    join_rate: float = 5.0
    join_burst: int = 50
    #: Reverse proxies whose X-Forwarded-For names the client (the per-address
    #: limits then count the client, not the proxy).
    trusted_proxies: tuple[str, ...] = ()
    #: Origins allowed to open the WebSocket besides our own ("*": any).
    allowed_origins: tuple[str, ...] = ()
    stun_rate: float = 20.0
    stun_burst: int = 40
    #: RFC 5780 NAT behaviour discovery (``confide nat-check``): the responder's second
    #: port (0 picks one) and second address; None leaves it off.
    stun_alt_port: int | None = None
    stun_alt_host: str | None = None
    #: Redis shared by several server processes (``redis://host:6379/0``);
    #: None: the in-memory hub of a single process. May hold a password: kept
    #: out of repr so it never reaches a log line.
    redis_url: str | None = field(default=None, repr=False)
    #: Seconds a process's peers outlive its last presence refresh in Redis
    #: (a crashed process's peers are announced as left after this).
    presence_ttl: float = 5.0

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert or self.tls_self_signed else "http"


def env_name(option: str) -> str:
    """``stun_port`` → ``CONFIDE_STUN_PORT``."""
    return "CONFIDE_" + option.upper()


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be 0-65535")
    return port


def _stun_port(value: str) -> int:
    if value.strip().lower() in ("off", "-1"):
        return -1
    return _port(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("must be a positive number")
    return number


def _host(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _capacity(value: str) -> int:
    number = int(value)
    if not 2 <= number <= 64:
        # A full mesh: every peer holds a connection to every other one.
        raise ValueError("must be 2-64")
    return number


def _log_level(value: str) -> str:
    value = value.lower()
    if value not in LOG_LEVELS:
        raise ValueError("must be one of " + ", ".join(LOG_LEVELS))
    return value


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {value}")
    return path


def _turn_urls(value: str) -> tuple[str, ...]:
    urls = tuple(url.strip() for url in value.split(",") if url.strip())
    for url in urls:
        if not url.startswith(("turn:", "turns:")):
            raise ValueError(f"{url!r} is not a turn: or turns: URL (RFC 7065)")
    return urls


def _redis_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


def _presence_ttl(value: str) -> float:
    number = float(value)
    # Refreshed every third of it: much shorter would be a busy loop, and a
    # Redis round trip must fit well inside it.
    if not 0.5 <= number <= 3600:
        raise ValueError("must be 0.5-3600 seconds")
    return number


def _addresses(value: str) -> tuple[str, ...]:
    addresses = tuple(part.strip() for part in value.split(",") if part.strip())
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address") from None
    return addresses


def _origins(value: str) -> tuple[str, ...]:
    return tuple(origin.strip().rstrip("/") for origin in value.split(",") if origin.strip())


#: The option <-> environment table: option name -> (parser of one string, help).
#: Order is the help's order; each option's variable is :func:`env_name` of it,
#: and its default is the :class:`ServeConfig` field's, which the help shows
#: (so a help text here never names a default itself).
_OPTIONS: dict[str, tuple[Callable[[str], Any], str]] = {
    "host": (_host, "address to serve HTTP on (0.0.0.0 for the LAN)"),
    "port": (_port, "HTTP port"),
    "stun_host": (_host, "UDP address of the STUN responder (default: --host)"),
    "stun_port": (_stun_port, "STUN port (0 picks one; off disables)"),
    "public_host": (_host, "host advertised to clients (default: the one they reached)"),
    "turn_urls": (_turn_urls, "comma-separated TURN URLs (turn:host:3478?transport=udp,...)"),
    "turn_secret_file": (_existing_file, "file holding the TURN REST API shared secret"),
    "turn_ttl": (_positive_int, "lifetime of TURN credentials in seconds"),
    "tls_cert": (_existing_file, "TLS certificate (PEM) to serve https"),
    "tls_key": (_existing_file, "TLS private key (PEM)"),
    "tls_self_signed": (_bool, "serve https with a self-signed certificate made once"),
    "log_level": (_log_level, "debug, info, warning or error"),
    "room_capacity": (_capacity, "peers per room"),
    "rate": (_positive_float, "signaling frames per second per connection"),
    "burst": (_positive_int, "signaling frames in a burst per connection"),
    "join_timeout": (_positive_float, "seconds to send 'join' after connecting"),
    "heartbeat": (_positive_float, "WebSocket ping interval in seconds"),
    "resume_grace": (_positive_float, "seconds a dropped peer may resume"),
    "max_message_size": (_positive_int, "largest signaling frame in bytes"),
    "send_buffer": (_positive_int, "bytes held back for a client that does not read, then 1013"),
    "max_connections_per_ip": (_positive_int, "open WebSockets per client address, then 429"),
    "join_rate": (_positive_float, "joins per second per client address"),
    "join_burst": (_positive_int, "joins in a burst per client address"),
    "trusted_proxies": (
        _addresses,
        "comma-separated proxy addresses whose X-Forwarded-For names the client",
    ),
    "allowed_origins": (_origins, "comma-separated extra origins allowed to connect, or *"),
    "stun_rate": (_positive_float, "STUN requests per second per source"),
    "stun_burst": (_positive_int, "STUN requests in a burst per source"),
    "stun_alt_port": (_port, "second STUN port, for NAT behaviour discovery (RFC 5780)"),
    "stun_alt_host": (_host, "second STUN address, for RFC 5780 change-IP (with --stun-alt-port)"),
    "redis_url": (_redis_url, "Redis shared by several server processes"),
    "presence_ttl": (_presence_ttl, "seconds a crashed process's peers stay in their rooms"),
}

_DEFAULTS = ServeConfig()


def default_text(option: str) -> str | None:
    """How the help shows ``option``'s default, from the dataclass; None when it has none."""
    value = getattr(_DEFAULTS, option)
    if value is None or value is False or value == ():
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add every ServeConfig option as a string option (parsed later, with its env var)."""
    for option, (parse, help_text) in _OPTIONS.items():
        default = default_text(option)
        if default is not None:
            help_text += f" (default {default})"
        # argparse formats help with %: a literal one is written twice.
        help_text = f"{help_text} [${env_name(option)}]".replace("%", "%%")
        if parse is _bool:
            parser.add_argument(
                _flag(option), dest=option, action="store_const", const="1", help=help_text
            )
        else:
            parser.add_argument(
                _flag(option), dest=option, metavar=option.split("_")[-1].upper(), help=help_text
            )


def config_from_namespace(
    args: argparse.Namespace | Mapping[str, str | None],
    environ: Mapping[str, str] | None = None,
) -> ServeConfig:
    """Build the config from parsed options, falling back to ``CONFIDE_*`` variables."""
    environ = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    values: dict[str, Any] = {}
    for option, (parse, _) in _OPTIONS.items():
        raw = given.get(option)
        source = _flag(option)
        if raw is None and env_name(option) in environ:
            raw, source = environ[env_name(option)], env_name(option)
        if raw is None:
            continue
        try:
            values[option] = parse(raw)
        except ValueError as exc:
            raise ConfigError(source, f"{raw!r}: {exc}") from None
    return _checked(ServeConfig(**values))


def _checked(config: ServeConfig) -> ServeConfig:
    if config.tls_self_signed and config.tls_cert is not None:
        raise ConfigError("--tls-self-signed", "give either a certificate or --tls-self-signed")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert", "--tls-cert and --tls-key go together")
    if config.turn_urls and config.turn_secret_file is None:
        raise ConfigError("--turn-secret-file", "TURN URLs need the shared secret's file")
    secret = None
    if config.turn_secret_file is not None:
        try:
            secret = config.turn_secret_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError("--turn-secret-file", exc.strerror or str(exc)) from None
        if len(secret) < 16:
            raise ConfigError("--turn-secret-file", "the secret must be at least 16 bytes")
    _check_discovery(config)
    for option in ("host", "stun_host", "stun_alt_host"):
        value = getattr(config, option)
        if value is not None and value not in ("localhost", ""):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(_flag(option), f"{value!r} is not an IP address") from None
    if config.redis_url is not None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--redis-url", "needs the redis package: pip install 'confide[redis]'"
            ) from None
    return replace(config, turn_secret=secret)


def _check_discovery(config: ServeConfig) -> None:
    """RFC 5780 needs the responder on, answering from addresses it can name."""
    if config.stun_alt_host is not None and config.stun_alt_port is None:
        raise ConfigError("--stun-alt-host", "needs --stun-alt-port (RFC 5780 §6)")
    if config.stun_alt_port is None:
        return
    flag = "--stun-alt-port"
    if config.stun_port < 0:
        raise ConfigError(flag, "needs the STUN responder (--stun-port is off)")
    if config.stun_port and config.stun_alt_port == config.stun_port:
        raise ConfigError(flag, "must differ from --stun-port")
    if (config.stun_host or config.host) in ("", "0.0.0.0", "::", "localhost"):
        # OTHER-ADDRESS and RESPONSE-ORIGIN name the address a reply leaves from.
        raise ConfigError(flag, "needs a literal --stun-host (or --host), not a wildcard")
    if config.stun_alt_host in ("", "0.0.0.0", "::", "localhost"):
        raise ConfigError("--stun-alt-host", "must be a literal address, not a wildcard")
    if config.stun_alt_host is not None and (":" in config.stun_alt_host) != (
        ":" in (config.stun_host or config.host)
    ):
        raise ConfigError("--stun-alt-host", "must be of the STUN host's family (IPv4 or IPv6)")


def option_parser(option: str) -> Callable[[str], Any]:
    """The parser of ``option``'s string form, as an argparse ``type`` (bad values: exit 2)."""
    parse = _OPTIONS[option][0]

    def checked(raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{raw!r}: {exc}") from None

    return checked


def option_names() -> Sequence[str]:
    """Every ``confide serve`` option, by its ServeConfig field name."""
    return list(_OPTIONS)
