"""Short-lived TURN credentials (the "TURN REST API" of draft-uberti-behave-turn-rest-00).

coturn's ``use-auth-secret`` accepts any username of the form
``<unix expiry>:<id>`` whose password is ``base64(HMAC-SHA1(secret, username))``
and refuses it once the expiry has passed. So the server mints a pair per peer
and the secret itself never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RENEW_AFTER",
    "ConnectionIce",
    "TurnCredentials",
    "credential_for",
    "ice_servers",
    "mint_credentials",
]

#: Share of a TURN credential's lifetime after which a connection gets a new
#: one (over its WebSocket: the ``ice-servers`` frame), so that a client
#: always holds one with a fifth of its lifetime still to run.
RENEW_AFTER = 0.8


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    credential: str
    expires: int


def credential_for(secret: bytes, username: str) -> str:
    """The password coturn expects for ``username``."""
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_credentials(
    secret: bytes, ttl: int, now: float | None = None, *, user: str | None = None
) -> TurnCredentials:
    """A pair valid for ``ttl`` seconds for ``user`` (by default a fresh random one, which
    keeps pairs unlinkable)."""
    expires = int(now if now is not None else time.time()) + ttl
    username = f"{expires}:{user if user is not None else secrets.token_hex(8)}"
    return TurnCredentials(username, credential_for(secret, username), expires)


def ice_servers(
    stun_url: str | None,
    turn_urls: tuple[str, ...],
    secret: bytes | None,
    ttl: int,
    now: float | None = None,
    *,
    user: str | None = None,
) -> list[dict[str, Any]]:
    """The RTCIceServer list (W3C webrtc-pc §4.2.1) a client should use."""
    servers: list[dict[str, Any]] = []
    if stun_url is not None:
        servers.append({"urls": [stun_url]})
    if turn_urls and secret is not None:
        pair = mint_credentials(secret, ttl, now, user=user)
        servers.append(
            {"urls": list(turn_urls), "username": pair.username, "credential": pair.credential}
        )
    return servers


class ConnectionIce:
    """The RTCIceServer list of one signaling connection.

    Credentials go only to a connection (with its ``welcome``), never to
    whoever asks, so coturn's per-user quota means something: one user id per
    connection, whose username (``<expiry>:<user>``) is minted again with a
    later expiry every ``renew_after`` seconds while the connection lasts.
    """

    __slots__ = ("stun_url", "turn_urls", "_secret", "ttl", "user")

    def __init__(
        self, stun_url: str | None, turn_urls: tuple[str, ...], secret: bytes | None, ttl: int
    ) -> None:
        self.stun_url = stun_url
        self.turn_urls = turn_urls
        self._secret = secret
        self.ttl = ttl
        self.user = secrets.token_hex(8)

    def servers(self, now: float | None = None) -> list[dict[str, Any]]:
        """The list as of ``now``, TURN credentials valid ``ttl`` seconds from then."""
        return ice_servers(
            self.stun_url, self.turn_urls, self._secret, self.ttl, now, user=self.user
        )

    @property
    def renew_after(self) -> float | None:
        """Seconds after which to send the list again; None when it holds no credentials."""
        if not self.turn_urls or self._secret is None:
            return None
        return self.ttl * RENEW_AFTER
