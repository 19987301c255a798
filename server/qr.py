"""QR codes of room links for ``GET /api/qr``, rendered off the event loop.

segno (a maintained encoder, not our own) takes tens of milliseconds for a new
text, all of it Python: on the event loop, 40 parallel requests held
``/healthz`` and every WebSocket for 1.7 s (issue 9). So :class:`QrCodes`
renders in a worker thread, at most :data:`QR_WORKERS` at once, keeps at most
:data:`QR_PENDING` distinct texts waiting (more are refused as busy), answers
repeated texts from a bounded LRU cache, and refuses texts over
:data:`QR_MAX_BYTES` before any work.
"""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor

import segno

__all__ = [
    "QR_CACHE_SIZE",
    "QR_MAX_BYTES",
    "QR_PENDING",
    "QR_WORKERS",
    "QrBusy",
    "QrCodes",
    "BadQrText",
    "render_svg",
]

#: Longest text encoded, in UTF-8 bytes: a room link is under 200, and a
#: version 40 code at level M holds 2,331 bytes, so whatever passes fits.
QR_MAX_BYTES = 1024
#: Codes rendered at once (threads): one keeps the event loop's share of the
#: interpreter lock, and so every socket's latency, as high as it can be.
QR_WORKERS = 1
#: Distinct texts rendering or waiting at once; a request beyond is refused
#: with 503, so waiting work (and memory) stays bounded under a flood.
QR_PENDING = 32
#: Rendered codes kept (an SVG of a room link is a few KiB).
QR_CACHE_SIZE = 128


class BadQrText(ValueError):
    """The text cannot be made into a code: empty, too long, or not encodable."""


class QrBusy(Exception):
    """Too many codes are rendering or waiting; try again shortly."""


def render_svg(text: str) -> bytes:
    """The QR code of ``text`` as SVG (error correction M: survives a smudged screen)."""
    buffer = io.BytesIO()
    try:
        code = segno.make(text, error="m")
    except (segno.DataOverflowError, UnicodeError) as exc:
        raise BadQrText(str(exc)) from None
    code.save(buffer, kind="svg", scale=4, border=2, xmldecl=False)
    return buffer.getvalue()


class QrCodes:
    """Renders QR codes in worker threads, with a bounded queue and a bounded cache."""

    def __init__(
        self,
        executor: Executor | None = None,
        *,
        cache_size: int = QR_CACHE_SIZE,
        pending: int = QR_PENDING,
    ) -> None:
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(QR_WORKERS, thread_name_prefix="qr")
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._max_pending = pending
        # Texts being rendered (or queued for a thread): a second request for
        # one waits for the same render.
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        #: Codes rendered so far (for tests: a cached answer renders nothing).
        self.rendered = 0

    async def svg(self, text: str) -> bytes:
        """The SVG of ``text``; raises :class:`BadQrText` or :class:`QrBusy`."""
        if not text or len(text.encode("utf-8", "surrogatepass")) > QR_MAX_BYTES:
            raise BadQrText(f"the text must be 1-{QR_MAX_BYTES} bytes of UTF-8")
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        future = self._pending.get(text)
        if future is None:
            if len(self._pending) >= self._max_pending:
                raise QrBusy(f"{self._max_pending} codes are being made; try again")
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, render_svg, text)
            self._pending[text] = future
            future.add_done_callback(lambda done: self._finished(text, done))
        # Shielded: one client going away must not cancel the render others wait for.
        return await asyncio.shield(future)

    def _finished(self, text: str, future: asyncio.Future[bytes]) -> None:
        del self._pending[text]
        if future.cancelled() or future.exception() is not None:
            return
        self.rendered += 1
        self._cache[text] = future.result()
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Stop the worker threads (of an executor this object made)."""
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
