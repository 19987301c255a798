"""What the room reports to its user (the CLI prints these, ``--json`` one per line)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Connected",
    "Delivered",
    "Event",
    "FileDone",
    "FileOffered",
    "IgnoredInput",
    "Joined",
    "Message",
    "PeerDisconnected",
    "PeerError",
    "PeerJoined",
    "PeerLeft",
    "SignalingState",
    "Typing",
    "as_json",
]


@dataclass(frozen=True, slots=True)
class Joined:
    """We are in the room (``resumed``: with our earlier id, after a reconnect)."""

    id: str
    room: str
    resumed: bool
    #: The others here: their names, NAME#id where two share one (Room.label).
    peers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignalingState:
    state: str  # "disconnected", "closed"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PeerJoined:
    peer: str
    name: str


@dataclass(frozen=True, slots=True)
class PeerLeft:
    peer: str
    name: str


@dataclass(frozen=True, slots=True)
class Connected:
    """The chat channel with ``peer`` is open; compare ``safety_number`` out of band."""

    peer: str
    name: str
    safety_number: str
    #: Where the peer's fingerprint came from: "dtls" (the session) or "sdp".
    source: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Message:
    peer: str
    name: str
    id: str
    text: str
    dm: bool
    ts: int


@dataclass(frozen=True, slots=True)
class Delivered:
    peer: str
    name: str
    id: str


@dataclass(frozen=True, slots=True)
class Typing:
    peer: str
    name: str
    on: bool


@dataclass(frozen=True, slots=True)
class FileOffered:
    """A file offer, ``direction`` "in" (from ``peer``) or "out" (to ``peer``)."""

    peer: str
    name: str
    direction: str
    fid: str
    filename: str
    size: int
    dm: bool
    accepted: bool
    #: Why an incoming offer was declined (empty when accepted).
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FileDone:
    """A transfer ended: ``state`` is sent (out) or received (in), or failed, declined or
    cancelled (the web client's words: docs/vectors.json ``transfer_states``)."""

    peer: str
    name: str
    direction: str
    fid: str
    filename: str
    size: int
    state: str
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class IgnoredInput:
    """Something a peer sent that we ignored, and why."""

    peer: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerError:
    """A peer connection failed or was refused (e.g. "wrong password")."""

    peer: str
    name: str
    message: str


Event = (
    Joined
    | SignalingState
    | PeerJoined
    | PeerLeft
    | Connected
    | PeerDisconnected
    | Message
    | Delivered
    | Typing
    | FileOffered
    | FileDone
    | IgnoredInput
    | PeerError
)

_NAMES = {
    Joined: "joined",
    SignalingState: "signaling",
    PeerJoined: "peer-joined",
    PeerLeft: "peer-left",
    Connected: "connected",
    PeerDisconnected: "disconnected",
    Message: "message",
    Delivered: "delivered",
    Typing: "typing",
    FileOffered: "file-offer",
    FileDone: "file-done",
    IgnoredInput: "ignored",
    PeerError: "peer-error",
}


def as_json(event: Event) -> dict[str, Any]:
    """The event as one JSON object for ``--json``: ``{"event": ..., fields...}``."""
    return {"event": _NAMES[type(event)], **dataclasses.asdict(event)}
