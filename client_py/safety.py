"""Safety numbers (docs/PROTOCOL.md, "Safety numbers").

The number is derived from the two certificates actually used in the DTLS
handshake. Ours is the certificate aiortc presents (its ``sha-256``
fingerprint, which aiortc computes from the DER). The peer's is read from the
DTLS session itself (the certificate OpenSSL received); only when that is out
of reach do we fall back to the remote description's fingerprint, which aiortc
has checked against that certificate before the handshake completes
(``RTCDtlsTransport._validate_peer_identity`` refuses the handshake unless
every supported fingerprint matches). The fallback follows the rule both
clients share (issue 9, item 13): a number from SDP text only when the SDP
carries exactly one ``a=fingerprint`` line, of sha-256. With more than one,
which of them the handshake was checked against depends on the implementation
(session or media level, which algorithms), and a number computed from
another would be a false assurance; so no number is shown at all.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

__all__ = [
    "SAFETY_CONTEXT",
    "fingerprint_from_sdp",
    "fingerprint_of_der",
    "local_fingerprint",
    "normalise",
    "remote_fingerprint",
    "safety_number",
    "session_certificate",
]

SAFETY_CONTEXT: Final = "confide-safety-v1\n"
_HEX_PAIRS: Final = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}")


def normalise(fingerprint: str) -> str:
    """``sha-256 a5:4d:...`` (any case, one space or more) → ``sha-256 A5:4D:...``."""
    algorithm, _, value = fingerprint.strip().partition(" ")
    value = value.strip().upper()
    if algorithm.lower() != "sha-256" or not _HEX_PAIRS.fullmatch(value):
        raise ValueError(f"not a sha-256 fingerprint: {fingerprint[:120]!r}")
    return f"sha-256 {value}"


def fingerprint_of_der(der: bytes) -> str:
    """The normalised fingerprint of a DER certificate."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return "sha-256 " + ":".join(digest[i : i + 2] for i in range(0, 64, 2))


def safety_number(local: str, remote: str) -> str:
    """Six groups of five digits; the same whichever side computes it."""
    first, second = sorted((normalise(local), normalise(remote)))
    digest = hashlib.sha256(f"{SAFETY_CONTEXT}{first}\n{second}".encode()).digest()
    groups = (int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100_000 for i in range(6))
    return " ".join(f"{g:05d}" for g in groups)


def fingerprint_from_sdp(sdp: str) -> str | None:
    """The normalised fingerprint of the only ``a=fingerprint`` line of ``sdp``; None when
    there are none, more than one (of any algorithm, at any level), or it is not sha-256."""
    lines = [line.strip() for line in sdp.splitlines()]
    found = [line for line in lines if line.lower().startswith("a=fingerprint:")]
    if len(found) != 1:
        return None
    try:
        return normalise(found[0].split(":", 1)[1])
    except ValueError:
        return None


def _dtls_transport(pc: Any) -> Any:
    sctp = getattr(pc, "sctp", None)
    return None if sctp is None else sctp.transport


def local_fingerprint(pc: Any) -> str | None:
    """Our certificate's fingerprint, as aiortc computes it from the DER."""
    dtls = _dtls_transport(pc)
    if dtls is None:
        return None
    for fp in dtls.getLocalParameters().fingerprints:
        if fp.algorithm == "sha-256":
            return normalise(f"sha-256 {fp.value}")
    return None


def remote_fingerprint(pc: Any) -> tuple[str, str] | None:
    """The peer's fingerprint and where it came from (``"dtls"`` or ``"sdp"``), or None.

    ``"dtls"``: the certificate the peer presented in this DTLS session. ``"sdp"``:
    the remote description's one fingerprint line (:func:`fingerprint_from_sdp`), only
    once the transport is connected, which means aiortc found it to match that
    certificate. None: not connected, or no number can be trusted.
    """
    dtls = _dtls_transport(pc)
    if dtls is None or getattr(dtls, "state", None) != "connected":
        return None
    seen = session_certificate(dtls)
    if seen is not None:
        return seen, "dtls"
    description = getattr(pc, "remoteDescription", None)
    found = None if description is None else fingerprint_from_sdp(description.sdp)
    return None if found is None else (found, "sdp")


def session_certificate(dtls: Any) -> str | None:
    """The fingerprint of the certificate the peer presented in this DTLS session, or
    None when it is out of reach (aiortc keeps the pyOpenSSL connection as the private
    ``RTCDtlsTransport._ssl``, which a version of aiortc may rename)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    get_cert = getattr(getattr(dtls, "_ssl", None), "get_peer_certificate", None)
    if get_cert is None:
        return None
    try:
        cert = get_cert(as_cryptography=True)
    except Exception:  # noqa: BLE001 - a private API: no number from it, then
        return None
    return None if cert is None else fingerprint_of_der(cert.public_bytes(Encoding.DER))
