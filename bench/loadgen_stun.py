"""A bounded STUN Binding load client: a window of requests in flight, for a fixed time.

Run as ``python -m bench.loadgen_stun --port P`` (bench.bench_stun does); prints
one JSON object. It keeps ``window`` requests outstanding on each of
``sockets`` connected UDP sockets and sends a new request for each response,
so it measures the server's throughput rather than a fixed offered load.
Connected sockets with ``send``/``recv_into`` into one buffer, and requests
built once, keep the client's own cost per request low; its CPU time is
reported so a client-bound run can be recognised.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence

from natlab.processes import process_cpu_seconds

__all__ = ["STALL_TIMEOUT", "binding_request", "main", "run_load"]

#: With nothing received for this long, the window is taken as lost (overflowed
#: socket buffers) and sent again, so the run cannot stall.
STALL_TIMEOUT = 0.02
#: Requested SO_RCVBUF/SO_SNDBUF of each client socket (capped by the kernel).
SOCKET_BUFFER_SIZE = 1 << 20

_MAGIC_COOKIE = 0x2112A442


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request without attributes (RFC 8489 §5), as aioice's client sends."""
    return struct.pack("!HHI12s", 0x0001, 0, _MAGIC_COOKIE, transaction_id)


def _cpu_seconds() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def run_load(
    host: str,
    port: int,
    *,
    duration: float,
    warmup: float,
    window: int,
    sockets: int,
    server_pid: int | None = None,
) -> dict[str, float | int | None]:
    """Drive the server for ``warmup`` + ``duration`` seconds; counts cover ``duration``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    poller = select.epoll()
    try:
        for _ in range(sockets):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_SIZE)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_SIZE)
            sock.connect((host, port))
            sock.setblocking(False)
            poller.register(sock.fileno(), select.EPOLLIN)
        by_fd = {sock.fileno(): sock for sock in socks}
        # One request per socket: the server answers each datagram on its own,
        # so distinct transaction ids per request would only cost client time.
        requests = {sock.fileno(): binding_request(os.urandom(12)) for sock in socks}
        buf = bytearray(2048)
        # Requests believed in flight per socket; a stall declares them lost.
        outstanding = dict.fromkeys(by_fd, 0)

        def prime() -> None:
            for fd, sock in by_fd.items():
                request = requests[fd]
                for _ in range(window - outstanding[fd]):
                    try:
                        sock.send(request)
                    except BlockingIOError:
                        break
                    outstanding[fd] += 1

        received = bad = stalls = polls = empty_polls = 0
        counting = False
        measured = 0
        started = time.perf_counter()
        switch_at = started + warmup
        deadline = switch_at + duration
        cpu_start = _cpu_seconds()
        server_cpu_start = 0.0
        prime()
        now = last_received = started
        while now < deadline:
            events = poller.poll(STALL_TIMEOUT)
            polls += 1
            if not events:
                empty_polls += 1
                now = time.perf_counter()
                if now - last_received >= STALL_TIMEOUT:
                    stalls += 1
                    last_received = now
                    outstanding = dict.fromkeys(by_fd, 0)
                    prime()
                continue
            for fd, _ in events:
                sock = by_fd[fd]
                got = 0
                try:
                    while True:
                        size = sock.recv_into(buf)
                        # A Binding success response (0x0101); servers differ in
                        # the attributes they add, so the size is not checked.
                        if buf[1] == 0x01 and buf[0] == 0x01 and size >= 20:
                            got += 1
                        else:
                            bad += 1
                except BlockingIOError:
                    pass
                except ConnectionRefusedError:
                    # ICMP port unreachable: the server is gone; stop early.
                    deadline = 0.0
                    break
                received += got
                # Late answers to requests declared lost must not widen the window.
                in_flight = max(outstanding[fd] - got, 0)
                request = requests[fd]
                send = sock.send
                sent = 0
                try:
                    for _ in range(window - in_flight):
                        send(request)
                        sent += 1
                except BlockingIOError:
                    pass  # the send buffer is full: fewer in flight until the next answers
                outstanding[fd] = in_flight + sent
            now = last_received = time.perf_counter()
            if not counting and now >= switch_at:
                counting = True
                measured = received
                polls = empty_polls = 0
                switch_at = now
                cpu_start = _cpu_seconds()
                if server_pid is not None:
                    server_cpu_start = process_cpu_seconds(server_pid)
        elapsed = max(now - switch_at, 1e-9)
        cpu_end = _cpu_seconds()
        server_cpu = None
        if server_pid is not None and counting:
            server_cpu = process_cpu_seconds(server_pid) - server_cpu_start
    finally:
        poller.close()
        for sock in socks:
            sock.close()
    answered = received - measured if counting else 0
    user = cpu_end[0] - cpu_start[0]
    system = cpu_end[1] - cpu_start[1]
    return {
        "responses": answered,
        "seconds": elapsed,
        "rate": answered / elapsed,
        "bad": bad,
        "stalls": stalls,
        "polls": polls,
        "empty_polls": empty_polls,
        "client_cpu_user": user,
        "client_cpu_system": system,
        "client_cpu_utilisation": (user + system) / elapsed,
        "server_cpu": server_cpu,
        "server_cpu_utilisation": None if server_cpu is None else server_cpu / elapsed,
        "window": window,
        "sockets": sockets,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen_stun", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    parser.add_argument("--window", type=int, default=32, help="requests in flight per socket")
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--server-pid", type=int, default=None, help="report its CPU time too")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = run_load(
        args.host,
        args.port,
        duration=args.duration,
        warmup=args.warmup,
        window=args.window,
        sockets=args.sockets,
        server_pid=args.server_pid,
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
