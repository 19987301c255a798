"""``create_app``: routes, typed app keys and the lifecycle of long-running parts.

The STUN responder starts and stops with the app (``cleanup_ctx``), and so
does the hub; ``on_shutdown`` closes every WebSocket with 1001 (going away) so
clients reconnect to the next process instead of waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final
from weakref import WeakSet

from aiohttp import WSCloseCode, web

from . import origin
from .config import ServeConfig
from .errors import HubUnavailable
from .hub import Hub, HubStats, MemoryHub, source_of
from .qr import BadQrText, QrBusy, QrCodes
from .static import SECURITY_HEADERS, StaticFiles, load_static, static_response
from .stun import StunServer
from .turn import ConnectionIce
from .ws import run_session
from .ws_writer import signaling_response

__all__ = [
    "CONFIG",
    "HUB",
    "STUN",
    "WEBSOCKETS",
    "create_app",
    "hub_for",
    "ice_for",
    "stun_url_for",
]

logger = logging.getLogger(__name__)

CONFIG: Final = web.AppKey("config", ServeConfig)
HUB: Final = web.AppKey("hub", Hub)
STATIC: Final = web.AppKey("static", StaticFiles)
STUN: Final = web.AppKey("stun", StunServer)
QR: Final = web.AppKey("qr", QrCodes)
WEBSOCKETS: Final = web.AppKey("websockets", WeakSet[web.WebSocketResponse])


def json_error(status: int, code: str, message: str) -> web.Response:
    """HTTP errors are JSON too: ``{"error": code, "message": ...}``."""
    return web.json_response({"error": code, "message": message}, status=status)


_HTTP_CODES: Final = {
    400: "bad-request",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    503: "busy",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http-error")
        return json_error(exc.status, code, exc.reason)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def advertised_host(request: web.Request) -> str:
    """The host clients should use for STUN: configured, or the one they reached us by."""
    config = request.app[CONFIG]
    if config.public_host:
        return config.public_host
    if config.stun_host not in (None, "", "0.0.0.0", "::"):
        return config.stun_host
    return request.url.host or config.host


def stun_url_for(request: web.Request) -> str | None:
    stun = request.app.get(STUN)
    if stun is None:
        return None
    return f"stun:{_bracket(advertised_host(request))}:{stun.port}"


def ice_for(request: web.Request) -> ConnectionIce:
    """The RTCIceServer list of this connection, with TURN credentials of its own."""
    config = request.app[CONFIG]
    return ConnectionIce(
        stun_url_for(request), config.turn_urls, config.turn_secret, config.turn_ttl
    )


def client_address(request: web.Request) -> str | None:
    """The client's address: the socket's peer, or what a trusted proxy says it is.

    X-Forwarded-For lists the hops left to right, each proxy appending the
    address it was reached from; the rightmost one not of our own proxies is
    the client (what is left of it, the client itself may have written).
    """
    remote = request.remote
    proxies = request.app[CONFIG].trusted_proxies
    if remote is None or remote not in proxies:
        return remote
    hops = [
        hop.strip()
        for value in request.headers.getall("X-Forwarded-For", ())
        for hop in value.split(",")
    ]
    for hop in reversed(hops):
        if hop and hop not in proxies:
            return hop
    return remote


async def handle_ice_servers(request: web.Request) -> web.Response:
    """``GET /api/ice-servers``: for tools (``confide nat-check``); the browser uses ``welcome``.

    Each answer mints a TURN user, so each spends one of the address's join
    tokens: a visitor cannot mint users faster than it could join rooms.
    """
    config = request.app[CONFIG]
    if not await request.app[HUB].allow_join(
        source_of(client_address(request)), rate=config.join_rate, burst=config.join_burst
    ):
        return json_error(429, "rate-limited", "too many requests from your address")
    return web.json_response(
        {"iceServers": ice_for(request).servers()}, headers={"Cache-Control": "no-store"}
    )


async def handle_static(request: web.Request) -> web.StreamResponse:
    item = request.app[STATIC].get(request.path)
    if item is None:
        raise web.HTTPNotFound(reason=f"no such file: {request.path[:100]}")
    return static_response(request, item)


async def handle_healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        stats: HubStats | None = await hub.stats()
    except HubUnavailable:
        # Pages are still served: the process itself is healthy.
        stats = None
    stun = request.app.get(STUN)
    body: dict[str, Any] = {
        "status": "ok",
        "hub": await hub.health(),
        "rooms": stats.rooms if stats else None,
        "peers": stats.peers if stats else None,
        "connections": len(request.app[WEBSOCKETS]),
        "stun": vars(stun.stats) if stun is not None else None,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def handle_qr(request: web.Request) -> web.Response:
    """``GET /api/qr?text=<room link>``: a QR code for phones to scan."""
    try:
        svg = await request.app[QR].svg(request.query.get("text", ""))
    except BadQrText as exc:
        return json_error(400, "bad-request", f"'text' cannot be a QR code: {exc}")
    except QrBusy as exc:
        response = json_error(503, "busy", str(exc))
        response.headers["Retry-After"] = "1"
        return response
    return web.Response(
        body=svg,
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=3600", **SECURITY_HEADERS},
    )


def origin_allowed(request: web.Request) -> bool:
    """Same origin by default (CSWSH and DNS-rebinding defence, server/origin.py)."""
    config = request.app[CONFIG]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return origin.origin_allowed(
        request.headers.get("Origin"),
        reached=(sockname[0], sockname[1]) if isinstance(sockname, tuple) else None,
        public_host=config.public_host,
        allowed_origins=config.allowed_origins,
    )


async def handle_ws(request: web.Request) -> web.StreamResponse:
    if not origin_allowed(request):
        return json_error(403, "origin-not-allowed", "this origin may not open the WebSocket")
    config = request.app[CONFIG]
    hub = request.app[HUB]
    source = source_of(client_address(request))
    if not await hub.open_connection(source, limit=config.max_connections_per_ip):
        return json_error(429, "too-many-connections", "too many open WebSockets from your address")
    try:
        ws = signaling_response(
            heartbeat=config.heartbeat, max_message_size=config.max_message_size
        )
        await ws.prepare(request)
        request.app[WEBSOCKETS].add(ws)
        await run_session(
            ws,
            request.transport,
            request.writer.drain,
            config=config,
            hub=hub,
            source=source,
            ice=ice_for(request),
        )
    finally:
        await hub.close_connection(source)
    return ws


def stun_other_url_for(request: web.Request) -> str | None:
    """The STUN URL of the responder's RFC 5780 OTHER-ADDRESS, when it has one."""
    stun = request.app.get(STUN)
    other = stun.other_address if stun is not None else None
    if other is None:
        return None
    host = request.app[CONFIG].stun_alt_host or advertised_host(request)
    return f"stun:{_bracket(host)}:{other[1]}"


async def handle_nat_check(request: web.Request) -> web.Response:
    """What the browser's "Test connectivity" asks both of (it cannot read OTHER-ADDRESS)."""
    body = {
        "stun": stun_url_for(request),
        "stunOther": stun_other_url_for(request),
        # The client's own address as this request came from it: a browser whose host
        # candidate has it sits on a public address, with no NAT to read.
        "address": client_address(request),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _stun_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    if config.stun_port < 0:
        yield
        return
    stun = StunServer(
        config.stun_host or config.host,
        config.stun_port,
        rate=config.stun_rate,
        burst=config.stun_burst,
        alt_port=config.stun_alt_port,
        alt_host=config.stun_alt_host,
    )
    await stun.start()
    app[STUN] = stun
    try:
        yield
    finally:
        await stun.stop()


async def _qr_context(app: web.Application) -> AsyncIterator[None]:
    app[QR] = QrCodes()
    try:
        yield
    finally:
        app[QR].close()


async def _hub_context(app: web.Application) -> AsyncIterator[None]:
    await app[HUB].start()
    try:
        yield
    finally:
        await app[HUB].close()


async def _close_websockets(app: web.Application) -> None:
    open_sockets = app[WEBSOCKETS]
    sockets = list(open_sockets)
    await asyncio.gather(
        *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
        return_exceptions=True,
    )


def hub_for(config: ServeConfig) -> Hub:
    """The Redis hub when ``--redis-url`` is given, else the in-memory one."""
    if config.redis_url is None:
        return MemoryHub(grace=config.resume_grace)
    from .hub_redis import RedisHub  # the [redis] extra: only needed here

    return RedisHub(config.redis_url, grace=config.resume_grace, presence_ttl=config.presence_ttl)


def create_app(config: ServeConfig, *, hub: Hub | None = None) -> web.Application:
    """The Confide application for ``config`` (a fresh in-memory hub unless given one)."""
    app = web.Application(middlewares=[json_errors], client_max_size=64 * 1024)
    app[CONFIG] = config
    app[HUB] = hub if hub is not None else hub_for(config)
    static: StaticFiles = load_static()
    app[STATIC] = static
    app[WEBSOCKETS] = WeakSet[web.WebSocketResponse]()
    app.cleanup_ctx.append(_stun_context)
    app.cleanup_ctx.append(_hub_context)
    app.cleanup_ctx.append(_qr_context)
    app.on_shutdown.append(_close_websockets)
    app.router.add_get("/ws", handle_ws)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/api/ice-servers", handle_ice_servers)
    app.router.add_get("/api/qr", handle_qr)
    app.router.add_get("/api/nat-check", handle_nat_check)
    for path in static:
        app.router.add_get(path, handle_static)
    return app
