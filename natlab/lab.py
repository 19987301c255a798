"""A network lab for tests: hosts in Linux network namespaces behind one switch.

Layout of one :class:`Lab` (IPv4 always, IPv6 when asked for)::

    switch ns   bridge br0 10.231.0.1/24, fd77:231::1/64 (every host's gateway;
      |         forwarding off and no route beyond it, so nothing leaves the lab)
      +- p2 ==veth== lab0 in host ns "main": 10.231.0.2, default via 10.231.0.1
      +- p3 ==veth== lab0 in host ns "b":    10.231.0.3, default via 10.231.0.1

Nothing is ever created in, or changed in, the root namespace: each veth pair is made
inside the switch namespace with its peer put straight into the host's namespace, so the
machine's own interfaces and routes are never touched, and parallel runs (each with its
own name prefix) never collide on a name.

Namespaces are named ``confide-lab-<pid>-<token>-<name>``; the pid lets a later run
delete the leftovers of a run that died (:func:`cleanup_stale`) without touching those of
a run that is still going.

Programs reach a host in two ways:

- a subprocess: ``host.exec_args(argv)`` prefixes ``ip netns exec NS``;
- this process: ``with host.entered():`` switches the *current thread's* network
  namespace (``setns(2)``), so every socket it creates in the block, and every thread or
  subprocess it starts there, lives in the host.  Threads started earlier (for example
  an asyncio executor's workers) stay where they were.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "GATEWAY4",
    "GATEWAY6",
    "NETNS_DIR",
    "Host",
    "Lab",
    "LabError",
    "cleanup_stale",
    "lab_namespaces",
    "netns_entered",
]

#: Where ``ip netns add`` pins named namespaces.
NETNS_DIR = Path("/run/netns")
#: The lab's IPv4 network; the switch's bridge is its first address.
SUBNET4 = ipaddress.IPv4Network("10.231.0.0/24")
GATEWAY4 = "10.231.0.1"
#: The lab's IPv6 network (only with ``Lab(ipv6=True)``).
SUBNET6 = ipaddress.IPv6Network("fd77:231::/64")
GATEWAY6 = "fd77:231::1"
#: Interface name of a host's end of its veth pair.
HOST_IFNAME = "lab0"
#: Every namespace a lab creates starts with this; the pid of the creator follows.
NS_PREFIX = "confide-lab-"
_NS_RE = re.compile(rf"^{re.escape(NS_PREFIX)}(?P<pid>\d+)-(?P<token>[0-9a-f]+)-(?P<name>.+)$")
_HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_SWITCH = "switch"
#: Seconds any one ``ip`` command may take; they normally take a few milliseconds.
IP_TIMEOUT = 10.0

# <linux/sched.h>; Python 3.11 has no os.setns.
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def netns_entered(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run the block with the current thread inside the network namespace at ``path``.

    Only this thread moves; it moves back on leaving, even on an exception.  Blocks nest.
    """
    # Keep a handle on where we are now: the way back must not depend on any name.
    back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(back)
    finally:
        os.close(back)


def _run(argv: Sequence[str], *, timeout: float = IP_TIMEOUT) -> str:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def _ip(*args: str) -> str:
    return _run(["ip", *args])


def lab_namespaces() -> list[str]:
    """Names of all lab namespaces on the machine, of any run."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _NS_RE.match(n))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone; return their names.

    Namespaces of live runs (this one included) are left alone, so parallel runs are safe.
    Processes still inside a stale namespace are not killed: deleting the name is enough,
    and the kernel frees the namespace when they end.
    """
    removed = []
    for name in lab_namespaces():
        match = _NS_RE.match(name)
        assert match is not None
        if _pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(LabError):
            _ip("netns", "del", name)
            removed.append(name)
    return removed


def _write_sysctls(ns_path: Path, values: dict[str, str]) -> None:
    # /proc/sys/net shows the namespace of the task that opens it, so entering is enough
    # (and saves a sysctl process per value).
    with netns_entered(ns_path):
        for key, value in values.items():
            Path("/proc/sys", key.replace(".", "/")).write_text(value)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Host:
    """One host of a lab: a namespace with ``lab0`` wired to the switch and a default route."""

    def __init__(self, lab: Lab, name: str, index: int) -> None:
        self.lab = lab
        self.name = name
        #: Namespace name, for ``ip netns exec`` and ``ip -n``.
        self.ns = lab.prefix + name
        self.ns_path = NETNS_DIR / self.ns
        #: The host's IPv4 address in the lab.
        self.ip = str(SUBNET4.network_address + index)
        #: The host's IPv6 address, or None when the lab has no IPv6.
        self.ip6 = str(SUBNET6.network_address + index) if lab.ipv6 else None
        #: The switch-side end of the host's veth pair (in the switch namespace).
        self.port = f"p{index}"
        #: The switch port was stopped by ``link_down(silent=True)``.
        self._silenced = False
        self.ifname = HOST_IFNAME

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ns={self.ns!r}, ip={self.ip!r})"

    def exec_args(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(
        self, argv: Sequence[str], *, timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in this host and wait for it; output is captured as text."""
        return subprocess.run(
            self.exec_args(argv), capture_output=True, text=True, timeout=timeout, check=check
        )

    def entered(self) -> contextlib.AbstractContextManager[None]:
        """Context manager moving the current thread into this host (see module doc)."""
        return netns_entered(self.ns_path)

    def link_down(self, *, silent: bool = False) -> None:
        """Cut this host off the switch.

        By default ``lab0`` is set administratively down: the host itself sees its link go
        (routes via it vanish; sends fail at once with ENETUNREACH; Chromium's network
        change notifier fires).  With ``silent=True`` the switch instead stops forwarding
        on the host's port: both ends keep their link up and packets just vanish, like a
        failure somewhere along the path (ICE then only notices through consent checks).
        """
        if silent:
            # Manual port states are allowed because the bridge runs no STP.
            _run(["bridge", "-n", self.lab.switch_ns, "link", "set", "dev", self.port,
                  "state", "0"])  # fmt: skip
            self._silenced = True
        else:
            _ip("-n", self.ns, "link", "set", self.ifname, "down")

    def link_up(self) -> None:
        """Undo :meth:`link_down` (either kind); the path works again when this returns."""
        _ip("-n", self.ns, "link", "set", self.ifname, "up")
        # The kernel drops the default route when the link goes down and does not bring it
        # back with the link, while the connected route returns on its own.
        _ip("-n", self.ns, "route", "replace", "default", "via", GATEWAY4, "dev", self.ifname)
        if self.lab.ipv6:
            _ip("-n", self.ns, "-6", "route", "replace", "default", "via", GATEWAY6,
                "dev", self.ifname)  # fmt: skip
        if self._silenced:
            # Only after a silent cut: on a port whose veth carrier is still coming up the
            # kernel refuses a state change ("Network is down"), and without STP a port
            # forwards by itself as soon as its carrier is there.
            _run(["bridge", "-n", self.lab.switch_ns, "link", "set", "dev", self.port,
                  "state", "3"])  # fmt: skip
            self._silenced = False

    def link_is_up(self) -> bool:
        """Whether the host's link is administratively up and its switch port forwards."""
        # "2: lab0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ..."
        shown = _ip("-n", self.ns, "-o", "link", "show", self.ifname)
        flags = shown.partition("<")[2].partition(">")[0].split(",")
        port = _run(["bridge", "-n", self.lab.switch_ns, "-o", "link", "show", "dev", self.port])
        return "UP" in flags and "state forwarding" in port

    def pids(self) -> list[int]:
        """Pids of the processes whose network namespace is this host's."""
        out = _ip("netns", "pids", self.ns)
        return [int(p) for p in out.split()]

    def ping(self, dst: str, *, timeout: float = 2.0) -> bool:
        """Send one ICMP echo from this host to IPv4 ``dst``; True if the reply came.

        Done in-process with a raw socket because Debian's ``ping`` (iputils-ping) is not on
        every machine; it needs root, as the lab does anyway.
        """
        with self.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        with sock:
            ident = os.getpid() & 0xFFFF
            seq = secrets.randbelow(0xFFFF)
            payload = secrets.token_bytes(16)
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
            try:
                sock.sendto(packet, (dst, 0))
            except OSError as exc:
                if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
                    return False
                raise
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    data, (src, _) = sock.recvfrom(2048)
                except TimeoutError:
                    return False
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                # A raw socket sees every ICMP packet of the namespace: keep only our reply.
                if (kind, r_ident, r_seq, src) == (0, ident, seq, dst) and (
                    data[ihl + 8 :] == payload
                ):
                    return True
            return False


class Lab:
    """A switch namespace with a bridge; :meth:`add_host` wires hosts to it.

    Use as a context manager, or call :meth:`close`, which deletes every namespace (and so
    every veth) of the lab, also after a partial failure.
    """

    def __init__(self, *, ipv6: bool = False) -> None:
        cleanup_stale()
        self.ipv6 = ipv6
        #: Unique to this lab: pid (for stale cleanup) and a random token (for two labs in
        #: one process).
        self.prefix = f"{NS_PREFIX}{os.getpid()}-{secrets.token_hex(3)}-"
        self.switch_ns = self.prefix + _SWITCH
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._closed = False
        try:
            self._make_switch()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lab(prefix={self.prefix!r}, hosts={list(self.hosts)!r})"

    @property
    def gateway(self) -> str:
        """The switch's IPv4 address, every host's default gateway."""
        return GATEWAY4

    def _add_namespace(self, name: str) -> Path:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        path = NETNS_DIR / name
        # IPv6 off for new interfaces unless asked for (no link-local addresses, no router
        # solicitations); lo is left alone so that ::1 still works.  No DAD either, so an
        # address is usable the moment it is added.
        _write_sysctls(
            path,
            {
                "net.ipv6.conf.default.disable_ipv6": "0" if self.ipv6 else "1",
                "net.ipv6.conf.default.accept_dad": "0",
                "net.ipv6.conf.default.accept_ra": "0",
                "net.ipv6.conf.default.keep_addr_on_down": "1",
            },
        )
        _ip("-n", name, "link", "set", "lo", "up")
        return path

    def _make_switch(self) -> None:
        sw = self.switch_ns
        self._add_namespace(sw)
        # No STP, no forward delay: a port forwards as soon as it is up.
        _ip("-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "forward_delay", "0")  # fmt: skip
        _ip("-n", sw, "addr", "add", f"{GATEWAY4}/{SUBNET4.prefixlen}", "dev", "br0")
        if self.ipv6:
            _ip("-n", sw, "addr", "add", f"{GATEWAY6}/{SUBNET6.prefixlen}", "dev", "br0",
                "nodad")  # fmt: skip
        _ip("-n", sw, "link", "set", "br0", "up")

    def add_host(self, name: str) -> Host:
        """Create host ``name`` (lowercase letters and digits) wired to the switch."""
        if self._closed:
            raise LabError("lab is closed")
        if not _HOST_NAME_RE.match(name) or name == _SWITCH:
            raise ValueError(f"bad host name {name!r}")
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists")
        index = len(self.hosts) + 2
        if index >= SUBNET4.num_addresses - 1:
            raise LabError("lab is full")
        host = Host(self, name, index)
        try:
            self._wire(host)
        except BaseException:
            # Leave no half-made host behind; the lab stays usable.
            with contextlib.suppress(LabError):
                _ip("-n", self.switch_ns, "link", "del", host.port)
            if host.ns in self._namespaces:
                self._delete_namespace(host.ns)
                self._namespaces.remove(host.ns)
            raise
        self.hosts[name] = host
        return host

    def _wire(self, host: Host) -> None:
        self._add_namespace(host.ns)
        sw = self.switch_ns
        _ip("-n", sw, "link", "add", host.port, "type", "veth", "peer", "name", host.ifname,
            "netns", host.ns)  # fmt: skip
        _ip("-n", sw, "link", "set", host.port, "master", "br0", "up")
        _ip("-n", host.ns, "addr", "add", f"{host.ip}/{SUBNET4.prefixlen}", "dev", host.ifname)
        if host.ip6 is not None:
            _ip("-n", host.ns, "addr", "add", f"{host.ip6}/{SUBNET6.prefixlen}",
                "dev", host.ifname, "nodad")  # fmt: skip
        host.link_up()

    @staticmethod
    def _delete_namespace(name: str) -> None:
        with contextlib.suppress(LabError):
            for pid in _ip("netns", "pids", name).split():
                if int(pid) != os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        try:
            _ip("netns", "del", name)
        except LabError:
            if (NETNS_DIR / name).exists():
                raise

    def namespaces(self) -> list[str]:
        """Names of this lab's namespaces that still exist."""
        return [n for n in lab_namespaces() if n.startswith(self.prefix)]

    def close(self) -> None:
        """Delete every namespace of the lab; safe to call twice.

        Processes still inside a host (a browser that was not closed) are killed first, by
        pid, so that the namespace and its veth really go; this process is never one of
        them even while a thread of it is inside a host.
        """
        self._closed = True
        errors = []
        for name in reversed(self._namespaces):
            try:
                self._delete_namespace(name)
            except LabError as exc:
                errors.append(str(exc))
        self._namespaces.clear()
        if errors:
            raise LabError("; ".join(errors))
