"""Confide's server: one aiohttp process that introduces WebRTC peers.

It serves the browser client, the signaling WebSocket, the ICE configuration
(with short-lived TURN credentials) and an embedded STUN binding responder. It
never sees the peers' messages: those flow peer to peer over DTLS.
"""

from __future__ import annotations

__version__ = "0.1.0"
