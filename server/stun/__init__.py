"""The embedded STUN binding responder (RFC 8489), over UDP, one concept per module.

- :mod:`.message`: the RFC 8489 constants, the request check and the reply encoders;
- :mod:`.responder`: the sans-I/O :class:`BindingResponder` (datagram in, reply out);
- :mod:`.udp`: :class:`StunServer`, the asyncio shell with its counters and per-source limit.

Run standalone with ``confide stun --port 3478`` (server/__main__.py).
"""

from __future__ import annotations

from .message import (
    BINDING_ERROR_RESPONSE,
    BINDING_SUCCESS_RESPONSE,
    KNOWN_REQUIRED_ATTRIBUTES,
    MAX_ATTRIBUTES,
    MAX_REQUEST_SIZE,
)
from .responder import ADDRESS_CACHE_SIZE, BindingResponder
from .udp import RATE_LIMIT_MAX_SOURCES, StunServer, StunStats

__all__ = [
    "ADDRESS_CACHE_SIZE",
    "BINDING_ERROR_RESPONSE",
    "BINDING_SUCCESS_RESPONSE",
    "KNOWN_REQUIRED_ATTRIBUTES",
    "MAX_ATTRIBUTES",
    "MAX_REQUEST_SIZE",
    "RATE_LIMIT_MAX_SOURCES",
    "BindingResponder",
    "StunServer",
    "StunStats",
]
