"""Confide's Python peer: the twin of ``client_web/`` on aiortc.

Sans-I/O modules (plain functions and classes, tested with plain calls):
``channel`` (data-channel messages, dedup, acks, queue until open), ``files``
(transfers), ``safety`` (safety numbers), ``crypto`` (password rooms).
I/O shells: ``signaling`` (the WebSocket), ``peer`` (one RTCPeerConnection),
``transfers`` (its file channels), ``room`` (the mesh, reporting ``events``)
and ``cli`` (``confide chat``, also ``python -m client_py``).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
