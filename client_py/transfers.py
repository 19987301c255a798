"""File transfers with one peer, over aiortc (docs/PROTOCOL.md, "Files").

The states live in :mod:`client_py.files` (sans I/O); this is their shell: it
reads and writes the files, opens the ``file:<fid>:<offset>`` channels with the
protocol's flow control (16 KiB messages, pause over 1 MiB buffered until
``bufferedamountlow`` at 256 KiB) and takes the ones the peer opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiortc import RTCDataChannel, RTCPeerConnection

from . import events as ev
from .channel import (
    ChatLink,
    FileAccept,
    FileCancel,
    FileControl,
    FileDecline,
    FileEnd,
    FileOffer,
    FileReceived,
    new_id,
)
from .errors import Ignored
from .files import (
    ACCEPTED,
    CHUNK_SIZE,
    FINAL_STATES,
    HIGH_WATER,
    LOW_WATER,
    IncomingTransfer,
    OutgoingTransfer,
    State,
    file_label,
    make_offer,
    parse_file_label,
    sha256_of_file,
)

__all__ = ["OPEN_TIMEOUT", "AcceptFn", "Declined", "FaultFn", "Transfers", "contained"]

logger = logging.getLogger(__name__)

#: Seconds a file channel we open may take to open.
OPEN_TIMEOUT: Final = 20.0


@dataclass(frozen=True, slots=True)
class Declined:
    """A file offer we decline, and why (for our user; the peer gets ``file-decline``)."""

    reason: str


#: Where to save a file the peer offers (the peer's id, the offer), or why not.
AcceptFn = Callable[[str, FileOffer], "Path | Declined"]
#: Report an exception that a peer's input raised in one of our handlers.
FaultFn = Callable[[str, Exception], None]


def contained(what: str, handler: Callable[..., None], fault: FaultFn) -> Callable[..., None]:
    """``handler`` for an aiortc event, with its exceptions reported to ``fault``.

    An exception raised in a data-channel callback goes up into aiortc's SCTP and DTLS
    receive loop, which ends, and the connection with it: so a name the file system
    refused (ENAMETOOLONG) cut the peer off. Nothing a peer sends may get that far.
    """

    def run(*args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:  # noqa: BLE001 - the channel boundary: count, never raise
            fault(what, exc)

    return run


def _part(path: Path) -> Path:
    """Where the bytes of a file being received wait until its hash is checked."""
    return path.with_name(path.name + ".part")


class Transfers:
    """Every transfer to and from one peer; :class:`~client_py.peer.PeerLink` feeds it."""

    def __init__(
        self,
        *,
        peer_id: str,
        name: str,
        link: ChatLink,
        pc: Callable[[], RTCPeerConnection | None],
        flush: Callable[[], None],
        emit: Callable[[ev.Event], None],
        ignore: Callable[[str], None],
        fault: FaultFn,
        accept_file: AcceptFn,
    ) -> None:
        self.peer_id = peer_id
        self.name = name
        self.outgoing: dict[str, OutgoingTransfer] = {}
        self.incoming: dict[str, IncomingTransfer] = {}
        self._link = link
        self._pc = pc
        self._flush = flush
        self._emit = emit
        self._ignore = ignore
        self._fault = fault
        self._accept_file = accept_file
        self._paths: dict[str, Path] = {}
        #: The file channel of each incoming transfer now (an older one may still close).
        self._channels: dict[str, RTCDataChannel] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}

    def reopened(self) -> None:
        """The chat channel opened again: accept again from the bytes we kept."""
        for transfer in self.receiving():
            self._link.send(transfer.accept())

    def receiving(self) -> list[IncomingTransfer]:
        """Incoming transfers not yet finished (accepted, bytes may still come)."""
        return [t for t in self.incoming.values() if t.state in ACCEPTED]

    def abandon(self) -> None:
        """This peer is gone for good: unfinished files cannot resume, remove their parts."""
        for transfer in self.receiving():
            transfer.cancel()
            self._finish_incoming(transfer)

    def stop_sending(self) -> None:
        """The connection is gone: stop the senders; every transfer under way is
        interrupted (the receiver accepts again after the reconnect)."""
        for task in self._senders.values():
            task.cancel()
        self._senders.clear()
        transfers: list[OutgoingTransfer | IncomingTransfer] = [*self.outgoing.values()]
        for transfer in [*transfers, *self.incoming.values()]:
            transfer.interrupted()

    def _sender_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("sending a file to %s failed", self.name, exc_info=task.exception())

    async def send_file(self, path: Path, *, dm: bool = False, fid: str | None = None) -> str:
        """Offer ``path`` to this peer; the bytes go once the peer accepts."""
        loop = asyncio.get_running_loop()
        size = path.stat().st_size
        digest = await loop.run_in_executor(None, sha256_of_file, path)
        mime = mimetypes.guess_type(path.name)[0] or ""
        offer = make_offer(fid or new_id(), path.name, size, mime, dm)
        self.outgoing[offer.fid] = OutgoingTransfer(offer, str(path), digest)
        self._link.send(offer)
        self._flush()
        self._emit(ev.FileOffered(self.peer_id, self.name, "out", offer.fid, offer.name,
                                  size, dm, False))  # fmt: skip
        return offer.fid

    def _done(self, direction: str, transfer: IncomingTransfer | OutgoingTransfer) -> None:
        offer = transfer.offer
        if isinstance(transfer, OutgoingTransfer):
            digest, path = transfer.sha256, transfer.path
        else:
            digest = transfer.expected_sha256 or ""
            path = str(self._paths.get(offer.fid, ""))
        self._emit(ev.FileDone(self.peer_id, self.name, direction, offer.fid, offer.name,
                               offer.size, transfer.state.value, digest, path))  # fmt: skip

    def control(self, message: FileControl) -> None:
        """A file control message from the peer (chat channel)."""
        fid = message.fid
        if isinstance(message, FileOffer):
            self._file_offer(message)
            return
        out = self.outgoing.get(fid)
        inc = self.incoming.get(fid)
        if isinstance(message, FileAccept) and out is not None:
            try:
                offset = out.accepted(message)
            except Ignored as exc:
                self._ignore(exc.reason)
                return
            old = self._senders.pop(fid, None)
            if old is not None:
                old.cancel()
            task = asyncio.ensure_future(self._send_bytes(out, offset))
            task.add_done_callback(self._sender_done)
            self._senders[fid] = task
        elif isinstance(message, FileDecline) and out is not None:
            out.declined()
            self._done("out", out)
        elif isinstance(message, FileReceived) and out is not None:
            out.result(message)
            self._done("out", out)
        elif isinstance(message, FileEnd) and inc is not None:
            self._incoming_out(inc, inc.end(message))
        elif isinstance(message, FileCancel) and (out is not None or inc is not None):
            if out is not None and out.state not in FINAL_STATES:
                out.cancelled_by_peer()
                sender = self._senders.pop(fid, None)
                if sender is not None:
                    sender.cancel()
                self._done("out", out)
            if inc is not None and inc.state in ACCEPTED:
                inc.cancelled_by_peer()
                self._finish_incoming(inc)
        else:
            self._ignore(f"{type(message).__name__} for an unknown file {fid!r}")

    def _file_offer(self, offer: FileOffer) -> None:
        known = self.incoming.get(offer.fid)
        if known is not None:
            if known.state in ACCEPTED:
                self._link.send(known.accept())
            return
        transfer = IncomingTransfer(offer)
        where = self._accept_file(self.peer_id, offer)
        self.incoming[offer.fid] = transfer
        if isinstance(where, Path):
            try:
                _part(where).write_bytes(b"")
            except OSError as exc:
                where = Declined(f"cannot write {where.name}.part: {exc.strerror or exc}")
        if isinstance(where, Declined):
            transfer.decline()
            self._link.send(FileDecline(offer.fid))
            reason = where.reason
        else:
            self._paths[offer.fid] = where
            self._link.send(transfer.accept())
            reason = ""
        self._emit(ev.FileOffered(self.peer_id, self.name, "in", offer.fid, offer.name,
                                  offer.size, offer.dm, not reason, reason))  # fmt: skip
        self._flush()

    def channel(self, channel: RTCDataChannel) -> None:
        """A data channel the peer opened: ``file:<fid>:<offset>``, or refused."""
        try:
            fid, offset = parse_file_label(channel.label)
            transfer = self.incoming.get(fid)
            if transfer is None:
                raise Ignored(f"file channel for an unknown file {fid!r}")
            transfer.channel_opened(offset)
        except Ignored as exc:
            self._ignore(exc.reason)
            channel.close()
            return
        part = _part(self._paths[fid])
        self._channels.pop(fid, None)
        try:
            # Keep exactly the bytes counted so far (a resumed channel starts there).
            with open(part, "r+b") as f:
                f.truncate(transfer.received)
        except OSError as exc:
            self._write_failed(transfer, exc, channel)
            return

        self._channels[fid] = channel

        def on_message(data: str | bytes) -> None:
            if self._channels.get(fid) is not channel:
                return  # a channel from before a resume: its bytes are counted already
            if isinstance(data, str):
                self._ignore(f"text on file channel {channel.label}")
                return
            before = transfer.received
            out = transfer.data(data)
            if transfer.received > before:
                try:
                    with open(part, "ab") as f:
                        f.write(data)
                except OSError as exc:
                    self._write_failed(transfer, exc, channel)
                    return
            self._incoming_out(transfer, out, channel)

        def on_close() -> None:
            if self._channels.get(fid) is channel:
                transfer.interrupted()  # no-op once it ended

        channel.on("message", contained(f"file channel {channel.label}", on_message, self._fault))
        channel.on("close", contained(f"file channel {channel.label}", on_close, self._fault))

    def _write_failed(
        self, transfer: IncomingTransfer, exc: OSError, channel: RTCDataChannel
    ) -> None:
        """The file could not be written (disk full, ...): it fails, the sender stops."""
        self._ignore(f"cannot write file {transfer.fid!r}: {exc.strerror or exc}")
        self._link.send(transfer.fail())
        self._flush()
        self._finish_incoming(transfer)
        channel.close()

    def _incoming_out(
        self,
        transfer: IncomingTransfer,
        out: list[FileCancel | FileReceived],
        channel: RTCDataChannel | None = None,
    ) -> None:
        for message in out:
            self._link.send(message)
        if out:
            self._flush()
            if isinstance(out[0], FileCancel):
                self._ignore(f"bytes beyond the size of file {transfer.fid!r}: cancelled")
            self._finish_incoming(transfer)
            if channel is not None:
                channel.close()
            elif (pc := self._pc()) is not None:
                for ch in list(pc.sctp._data_channels.values()) if pc.sctp else []:
                    if ch.label.startswith(f"file:{transfer.fid}:"):
                        ch.close()

    def _finish_incoming(self, transfer: IncomingTransfer) -> None:
        path = self._paths.get(transfer.fid)
        if path is not None:
            part = _part(path)
            try:
                if transfer.state is State.RECEIVED:
                    os.replace(part, path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        part.unlink()
            except OSError as exc:
                self._ignore(f"cannot finish file {transfer.fid!r}: {exc.strerror or exc}")
        self._done("in", transfer)

    async def _send_bytes(self, transfer: OutgoingTransfer, offset: int) -> None:
        pc = self._pc()
        if pc is None:
            return
        channel = pc.createDataChannel(file_label(transfer.fid, offset), ordered=True)
        opened = asyncio.Event()
        low = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("bufferedamountlow", low.set)
        channel.bufferedAmountLowThreshold = LOW_WATER
        try:
            await asyncio.wait_for(opened.wait(), OPEN_TIMEOUT)
            loop = asyncio.get_running_loop()
            with open(transfer.path, "rb") as f:
                f.seek(offset)
                while True:
                    chunk = await loop.run_in_executor(None, f.read, CHUNK_SIZE * 16)
                    if not chunk:
                        break
                    for i in range(0, len(chunk), CHUNK_SIZE):
                        if channel.readyState != "open":
                            transfer.interrupted()
                            return  # the receiver resumes after the reconnect
                        channel.send(chunk[i : i + CHUNK_SIZE])
                    while channel.bufferedAmount > HIGH_WATER:
                        low.clear()
                        await low.wait()
            self._link.send(transfer.sent_all())
            self._flush()
        except TimeoutError:
            logger.info("file channel %s to %s did not open", channel.label, self.name)
        finally:
            # Only if still ours: a resumed transfer may have a newer sender already.
            if self._senders.get(transfer.fid) is asyncio.current_task():
                del self._senders[transfer.fid]
