"""The project's exceptions.

Hierarchy::

    ConfideError
    ├── ConfigError          a bad option or environment variable (CLI exit 2)
    ├── ProtocolError        a bad signaling frame; carries a stable error code
    │                        and becomes an error frame, never a crash
    └── HubError
        ├── RoomFull         the room already holds its capacity of peers
        └── HubUnavailable   the shared rooms (Redis) cannot be reached: signaling
                             is degraded (error code "signaling-degraded")
"""

from __future__ import annotations

__all__ = [
    "ConfideError",
    "ConfigError",
    "HubError",
    "HubUnavailable",
    "ProtocolError",
    "RoomFull",
]


class ConfideError(Exception):
    """Base class of every error Confide raises on purpose."""


class ConfigError(ConfideError):
    """A configuration value is invalid; ``option`` names the option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


class ProtocolError(ConfideError):
    """A client frame broke the signaling protocol (docs/PROTOCOL.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class HubError(ConfideError):
    """The hub could not do what was asked."""


class RoomFull(HubError):
    """The room already holds its capacity of peers."""


class HubUnavailable(HubError):
    """The hub's shared store (Redis) cannot be reached; signaling is degraded."""
