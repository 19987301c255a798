"""Which browser origins may open the signaling WebSocket (a pure decision, no aiohttp).

Browsers send ``Origin`` with every WebSocket handshake (RFC 6455 §4.1, §10.2)
and let any page open a socket anywhere, so the server must refuse pages that
are not its own (cross-site WebSocket hijacking). The ``Host`` header cannot
say what "our own" is: a DNS-rebinding page at ``http://evil.example`` whose
name now resolves to this server sends ``Host: evil.example`` and a matching
``Origin``. So the origin is compared with the hosts the server is actually
reached by, none of which that page controls:

- the configured ``--public-host`` (any port: a proxy may publish another);
- the address the connection arrived on (the bind address, or the one of
  the machine's addresses the client used with a wildcard bind), with the port
  it arrived on; and ``localhost``, 127.0.0.1 and ::1 when that is loopback;
- the ``--allowed-origins`` list (``*`` allows any).

A client without ``Origin`` is not a browser (a terminal peer, a bot) and is
let through: the defence is for browsers, which always send it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_NAMES", "origin_allowed"]

#: What a browser on this machine may call a server that listens on loopback.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normal_host(host: str) -> str:
    """Lower case, no brackets or zone, IPv4-mapped IPv6 as IPv4, IPs in canonical form."""
    host = host.strip().strip("[]").partition("%")[0].lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def origin_allowed(
    origin: str | None,
    *,
    reached: tuple[str, int] | None,
    public_host: str | None = None,
    allowed_origins: tuple[str, ...] = (),
) -> bool:
    """Whether a handshake with ``Origin: origin`` may open the WebSocket.

    ``reached`` is the (address, port) the connection arrived on (the socket's
    own name), ``None`` when unknown.
    """
    if origin is None:
        return True
    if "*" in allowed_origins or origin.rstrip("/") in allowed_origins:
        return True
    try:
        parts = urlsplit(origin)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:
        return False  # e.g. a port out of range
    if scheme not in _DEFAULT_PORTS or not host:
        return False  # "null" (sandboxed or file: pages) and anything not a web page
    host = _normal_host(host)
    if public_host is not None and host == _normal_host(public_host):
        return True
    if reached is None:
        return False
    local_host, local_port = _normal_host(reached[0]), reached[1]
    if (port or _DEFAULT_PORTS[scheme]) != local_port:
        return False
    if host == local_host:
        return True
    return _is_loopback(local_host) and host in LOOPBACK_NAMES
