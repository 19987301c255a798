"""The Python peer's exceptions.

Hierarchy::

    PeerError
    ├── Ignored             a data-channel message the receiver drops (and logs)
    └── SealError           a signaling payload of a password room was refused
        ├── NeedsPassword   a sealed payload, but we have no password
        ├── NotSealed       a plaintext payload, but the room has a password
        └── WrongPassword   the payload did not decrypt: a different password
"""

from __future__ import annotations

__all__ = ["Ignored", "NeedsPassword", "NotSealed", "PeerError", "SealError", "WrongPassword"]


class PeerError(Exception):
    """Base class of every error the Python peer raises on purpose."""


class Ignored(PeerError):
    """Input the receiver ignores; ``reason`` says why, for the log of ignored input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SealError(PeerError):
    """A password-room payload was refused; the message is for people."""


class NeedsPassword(SealError):
    def __init__(self) -> None:
        super().__init__("this room needs a password")


class NotSealed(SealError):
    def __init__(self) -> None:
        super().__init__("this peer did not use the room password")


class WrongPassword(SealError):
    def __init__(self) -> None:
        super().__init__("wrong password")
