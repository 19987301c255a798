"""A batch of datagrams per system call: Linux ``recvmmsg(2)`` and ``sendmmsg(2)`` through ctypes.

Python's :mod:`socket` has neither call. Under load the STUN responder spends
most of its time in the kernel, and a call per datagram each way is what is
left to cut: bench/bench_stun.py measured this module against asyncio's
datagram transport (one ``recvmsg`` and one ``sendmsg`` per reply). No C of
ours: :mod:`ctypes` calls the C library's functions (glibc and musl have both).

A :class:`DatagramBatch` owns preallocated, fixed buffers: ``slots`` datagram
buffers of ``slot_size`` bytes, one source address per slot, and the
``mmsghdr`` arrays that point into them, built once. :meth:`DatagramBatch.receive`
fills slots ``0..n-1``; a reply to the datagram in slot ``i`` is written into
that same slot (:meth:`DatagramBatch.set_reply`) and :meth:`DatagramBatch.send`
sends a run of consecutive slots, each to the address it came from.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
from typing import Any

__all__ = ["DatagramBatch", "available"]


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _MsgHdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),  # socklen_t
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _MMsgHdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint))


# sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6): what the kernel
# writes into msg_namelen for a datagram on a socket of that family.
_SOCKADDR_SIZE = {socket.AF_INET: 16, socket.AF_INET6: 28}
_NAME_STRIDE = 32  # a sockaddr_in6, rounded up to keep every slot aligned
_MSG_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0x40)
# Where msg_len sits in the mmsghdr array seen as 32-bit words, and iov_len in
# the iovec array seen as size_t words: read and written per datagram.
_MMSGHDR_SIZE = ctypes.sizeof(_MMsgHdr)
_WORDS_PER_MMSGHDR = _MMSGHDR_SIZE // 4
_MSG_LEN_WORD = _MMsgHdr.msg_len.offset // 4
_SIZE_T_FORMAT = {4: "I", 8: "Q"}.get(ctypes.sizeof(ctypes.c_size_t), "")


def _functions() -> tuple[Any, Any] | None:
    if not sys.platform.startswith("linux") or not _SIZE_T_FORMAT:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    # int recvmmsg(int, struct mmsghdr *, unsigned int, int, struct timespec *)
    recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                         ctypes.c_void_p)  # fmt: skip
    recvmmsg.restype = ctypes.c_int
    # int sendmmsg(int, struct mmsghdr *, unsigned int, int)
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return recvmmsg, sendmmsg


_FUNCTIONS = _functions()


def available() -> bool:
    """Whether this platform's C library has ``recvmmsg`` and ``sendmmsg`` (Linux)."""
    return _FUNCTIONS is not None


class DatagramBatch:
    """Buffers for ``slots`` datagrams of at most ``slot_size`` bytes on a ``family`` socket.

    A datagram longer than ``slot_size`` is cut to it (the kernel flags it
    MSG_TRUNC): give a slot one byte more than the longest datagram read, and
    a longer one shows as too long rather than as a shorter valid one.
    """

    __slots__ = (
        "_data",
        "_data_bytes",
        "_iov_lens",
        "_msg_words",
        "_names",
        "_recv",
        "_recv_msgs",
        "_send",
        "_send_base",
        "_send_keep",
        "name_size",
        "slot_size",
        "slots",
    )

    def __init__(self, family: socket.AddressFamily, slots: int, slot_size: int) -> None:
        if _FUNCTIONS is None:
            raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg are not available here")
        if slots < 1 or slot_size < 1:
            raise ValueError("a batch needs at least one slot of at least one byte")
        self._recv, self._send = _FUNCTIONS
        self.slots = slots
        self.slot_size = slot_size
        #: The length of every source address a datagram's slot holds.
        self.name_size = _SOCKADDR_SIZE[family]
        # c_char arrays: a slice of one is a bytes object, made with one copy
        # (typeshed says a list: hence the type: ignore on the slices below).
        self._data = (ctypes.c_char * (slots * slot_size))()
        self._names = (ctypes.c_char * (slots * _NAME_STRIDE))()
        recv_iovs = (_IoVec * slots)()
        send_iovs = (_IoVec * slots)()
        self._recv_msgs = (_MMsgHdr * slots)()
        send_msgs = (_MMsgHdr * slots)()
        data, names = ctypes.addressof(self._data), ctypes.addressof(self._names)
        for i in range(slots):
            recv_iovs[i].iov_base = send_iovs[i].iov_base = data + i * slot_size
            recv_iovs[i].iov_len = slot_size
            for msgs, iovs in ((self._recv_msgs, recv_iovs), (send_msgs, send_iovs)):
                header = msgs[i].msg_hdr
                header.msg_name = names + i * _NAME_STRIDE
                # In: the room for the address; out (recvmmsg): its length,
                # always this size for the socket's family, so it needs no reset.
                header.msg_namelen = self.name_size
                header.msg_iov = ctypes.addressof(iovs[i])
                header.msg_iovlen = 1
        # Replies go out from the slots the requests came in: slot i's send
        # header names slot i's source; only its iov_len changes per reply.
        self._send_keep = (recv_iovs, send_iovs, send_msgs)
        self._send_base = ctypes.addressof(send_msgs)
        self._msg_words = memoryview(self._recv_msgs).cast("B").cast("I")
        # Writes through a byte view: one copy, where a c_char array's slice
        # assignment converts byte by byte (10x slower, perf showed it).
        self._data_bytes = memoryview(self._data).cast("B")
        # The format is the platform's size_t: a str typeshed cannot check.
        self._iov_lens = memoryview(send_iovs).cast("B").cast(_SIZE_T_FORMAT)  # type: ignore[call-overload]

    def receive(self, fd: int) -> int:
        """Read up to ``slots`` waiting datagrams without blocking; how many (0: none).

        Raises :class:`OSError` for a socket error other than "nothing waiting".
        """
        count: int = self._recv(fd, ctypes.addressof(self._recv_msgs), self.slots,
                                _MSG_DONTWAIT, None)  # fmt: skip
        if count >= 0:
            return count
        code = ctypes.get_errno()
        if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return 0
        raise OSError(code, f"recvmmsg: {errno.errorcode.get(code, code)}")

    def datagram(self, i: int) -> bytes:
        """The datagram received in slot ``i`` (cut to ``slot_size``)."""
        start = i * self.slot_size
        stop = start + self._msg_words[i * _WORDS_PER_MMSGHDR + _MSG_LEN_WORD]
        return self._data[start:stop]  # type: ignore[return-value]

    def name(self, i: int) -> bytes:
        """The raw ``sockaddr_in`` or ``sockaddr_in6`` the datagram in slot ``i`` came from."""
        start = i * _NAME_STRIDE
        return self._names[start : start + self.name_size]  # type: ignore[return-value]

    def set_reply(self, i: int, reply: bytes) -> bool:
        """Put ``reply`` in slot ``i`` for :meth:`send`; ``False`` if it does not fit."""
        size = len(reply)
        if size > self.slot_size:
            return False
        start = i * self.slot_size
        self._data_bytes[start : start + size] = reply
        self._iov_lens[2 * i + 1] = size
        return True

    def send(self, fd: int, start: int, stop: int) -> int:
        """Send the replies in slots ``start..stop-1`` without blocking; how many went.

        Fewer than asked means the next one failed: raises :class:`OSError` with
        its reason when not even the first went.
        """
        sent: int = self._send(fd, self._send_base + start * _MMSGHDR_SIZE, stop - start,
                               _MSG_DONTWAIT)  # fmt: skip
        if sent > 0:
            return sent
        code = ctypes.get_errno()
        raise OSError(code, f"sendmmsg: {errno.errorcode.get(code, code)}")
