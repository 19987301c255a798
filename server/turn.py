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

__all__ = ["TurnCredentials", "credential_for", "ice_servers", "mint_credentials"]


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    credential: str
    expires: int


def credential_for(secret: bytes, username: str) -> str:
    """The password coturn expects for ``username``."""
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def mint_credentials(secret: bytes, ttl: int, now: float | None = None) -> TurnCredentials:
    """A fresh pair valid for ``ttl`` seconds; the random part keeps pairs unlinkable."""
    expires = int(now if now is not None else time.time()) + ttl
    username = f"{expires}:{secrets.token_hex(8)}"
    return TurnCredentials(username, credential_for(secret, username), expires)


def ice_servers(
    stun_url: str | None,
    turn_urls: tuple[str, ...],
    secret: bytes | None,
    ttl: int,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The RTCIceServer list (W3C webrtc-pc §4.2.1) a client should use."""
    servers: list[dict[str, Any]] = []
    if stun_url is not None:
        servers.append({"urls": [stun_url]})
    if turn_urls and secret is not None:
        pair = mint_credentials(secret, ttl, now)
        servers.append(
            {"urls": list(turn_urls), "username": pair.username, "credential": pair.credential}
        )
    return servers
