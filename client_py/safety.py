"""Safety numbers (docs/PROTOCOL.md, "Safety numbers").

The number is derived from the two certificates actually used in the DTLS
handshake. Ours is the certificate aiortc presents (its ``sha-256``
fingerprint, which aiortc computes from the DER). The peer's is read from the
DTLS session itself (the certificate OpenSSL received); only when that is out
of reach do we fall back to the remote description's ``a=fingerprint:sha-256``
line, which aiortc has checked against that certificate before the handshake
completes (``RTCDtlsTransport._validate_peer_identity`` refuses the handshake
unless every supported fingerprint matches).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

__all__ = [
    "SAFETY_CONTEXT",
    "fingerprint_of_der",
    "local_fingerprint",
    "normalise",
    "remote_fingerprint",
    "safety_number",
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
    """The peer's fingerprint and where it came from (``"dtls"`` or ``"sdp"``).

    ``"dtls"``: the certificate the peer presented in this DTLS session (aiortc
    keeps the pyOpenSSL connection as ``RTCDtlsTransport._ssl``). ``"sdp"``: the
    remote ``a=fingerprint:sha-256`` line, only once the transport is connected,
    which means aiortc found it to match that certificate.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    dtls = _dtls_transport(pc)
    if dtls is None or getattr(dtls, "state", None) != "connected":
        return None
    ssl = getattr(dtls, "_ssl", None)
    get_cert = getattr(ssl, "get_peer_certificate", None)
    if get_cert is not None:
        try:
            cert = get_cert(as_cryptography=True)
        except Exception:  # noqa: BLE001 - private API: fall back to the SDP below
            cert = None
        if cert is not None:
            return fingerprint_of_der(cert.public_bytes(Encoding.DER)), "dtls"
    description = getattr(pc, "remoteDescription", None)
    if description is None:
        return None
    for line in description.sdp.splitlines():
        if line.lower().startswith("a=fingerprint:sha-256 "):
            return normalise(line.split(":", 1)[1]), "sdp"
    return None
