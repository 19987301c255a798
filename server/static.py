"""The browser client, read once at start and served from memory.

Each file is kept as bytes with its gzip form and a strong ETag, so a request
costs a dictionary look-up: no disk, no compression per request. The files
come from the ``client_web`` folder, which ``pip install .`` installs as
package data, so an installed server serves exactly what a checkout does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "SECURITY_HEADERS",
    "SERVICE_WORKER",
    "StaticFile",
    "StaticFiles",
    "client_web_dir",
    "load_static",
]

#: Served with every client file. The page loads nothing from elsewhere (no
#: CDN), so the policy can be strict; 'self' covers same-origin ws: and wss:.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: Revalidate every time: the ETag makes that a 304 without a body, and a
#: deploy is then visible at once.
CACHE_CONTROL: Final = "no-cache"

_COMPRESSIBLE = (
    "text/",
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "image/svg+xml",
)

#: The service worker's URL. It is served rendered: ``client_web/sw.js`` after two lines
#: that give it the shell to cache and a version made from every shell file's ETag, so a
#: deploy that changes any file changes the worker's bytes, which is what makes browsers
#: install the new worker (Service Workers §"Update": a byte-for-byte comparison).
SERVICE_WORKER: Final = "/sw.js"


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str
    # The response headers of the three answers, built once: per request the
    # handler then only picks one (bench/bench_static.py).
    plain_headers: CIMultiDict[str] = field(init=False, repr=False, compare=False)
    gzip_headers: CIMultiDict[str] = field(init=False, repr=False, compare=False)
    not_modified_headers: CIMultiDict[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        common = {
            "ETag": self.etag,
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Accept-Encoding",
            **SECURITY_HEADERS,
        }
        plain = {**common, "Content-Type": self.content_type}
        gzipped = {**plain, "Content-Encoding": "gzip"}
        # A frozen dataclass sets its own fields through object.__setattr__.
        object.__setattr__(self, "not_modified_headers", CIMultiDict(common))
        object.__setattr__(self, "plain_headers", CIMultiDict(plain))
        object.__setattr__(self, "gzip_headers", CIMultiDict(gzipped))


StaticFiles = dict[str, StaticFile]


def client_web_dir() -> Path:
    """Where the client files are: beside this package, in a checkout and once installed.

    setup.cfg installs ``client_web`` as a data-only package next to ``server``.
    """
    return Path(__file__).resolve().parent.parent / "client_web"


def _content_type(name: str) -> str:
    if name.endswith(".js"):
        return "text/javascript; charset=utf-8"
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if guessed.startswith("text/") or guessed.endswith(("json", "svg+xml")):
        guessed += "; charset=utf-8"
    return guessed


def load_static(directory: Path | None = None) -> StaticFiles:
    """Read every client file into memory, keyed by its URL path."""
    directory = directory or client_web_dir()
    files: StaticFiles = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or path.suffix == ".py":
            continue
        files["/" + path.relative_to(directory).as_posix()] = _static_file(
            path.name, path.read_bytes()
        )
    if "/index.html" in files:
        files["/"] = files["/index.html"]
    if SERVICE_WORKER in files:
        files[SERVICE_WORKER] = _service_worker(files)
    return files


def _static_file(name: str, body: bytes) -> StaticFile:
    content_type = _content_type(name)
    gzipped = None
    if content_type.startswith(_COMPRESSIBLE) and len(body) > 256:
        # mtime=0: the same bytes every start, so ETags stay stable.
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return StaticFile(body, gzipped, content_type, etag)


def _service_worker(files: StaticFiles) -> StaticFile:
    """``sw.js`` with ``VERSION`` and ``SHELL`` (every client file but "/" and itself)."""
    shell = sorted(path for path in files if path not in ("/", SERVICE_WORKER))
    listing = "".join(f"{path} {files[path].etag}\n" for path in shell)
    version = hashlib.sha256(listing.encode()).hexdigest()[:16]
    head = f"const VERSION = {json.dumps(version)};\nconst SHELL = {json.dumps(shell)};\n"
    return _static_file(SERVICE_WORKER, head.encode() + files[SERVICE_WORKER].body)


def static_response(request: web.Request, item: StaticFile) -> web.Response:
    """A 200 with the body (gzipped when accepted) or a 304 when the ETag matches."""
    headers = request.headers
    if item.etag in headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=item.not_modified_headers)
    if item.gzipped is not None and "gzip" in headers.get("Accept-Encoding", ""):
        return web.Response(body=item.gzipped, headers=item.gzip_headers)
    return web.Response(body=item.body, headers=item.plain_headers)
