"""NAT topologies: an "internet" with the Confide server, and hosts behind real Linux NATs.

Layout of one :class:`NatLab` (a :class:`~natlab.lab.Lab` whose switch is the internet)::

    switch "internet" 10.231.0.0/24 (no route anywhere else; see natlab/lab.py)
      +- inet   10.231.0.2 and 10.231.0.250: the Confide server, its STUN responder
      |         (on both addresses, for RFC 5780) and coturn
      +- <site> 10.231.0.x                  kind "none": a host with a public address
      +- <site>nat1 10.231.0.x ==lan0== <site> 192.168.n.2   one NAT router
      +- <site>nat2 10.231.0.x ==lan0== <site>nat1 100.64.n.2 ==lan0== <site> 192.168.m.2
                                                            kind "double": two in a row

Every router is a namespace with iptables rules (nf_tables backend) giving it one of the
behaviours of RFC 4787 (:data:`KINDS`).  Private ranges (192.168/16, 100.64/10) exist only
behind routers; the internet namespace has no route to them, and coturn denies them as
peers (its template denies every private range; the lab opens only the internet's /24),
because coturn tears an allocation down when a relayed packet meets an unreachable
network.  Nothing in the lab is routed to an address outside the lab's own namespaces.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from natlab.lab import SUBNET4, Host, Lab, LabError, _ip, _write_sysctls

__all__ = [
    "EXPECTED_VERDICT",
    "INTERNET_ALT_IP",
    "KINDS",
    "LanHost",
    "NatLab",
    "Site",
    "Verdict",
    "router_rules",
]

#: The behaviours a site can sit behind (RFC 4787 terms):
#:
#: - ``none``: a public address, no NAT, no firewall;
#: - ``eim``: endpoint-independent mapping and filtering, port preserving ("full cone");
#: - ``eim-adf``: endpoint-independent mapping, address-dependent filtering;
#: - ``apdm``: address-and-port-dependent mapping ("symmetric": MASQUERADE
#:   ``--random-fully`` picks a new random port for every destination);
#: - ``udp-blocked``: a NAT whose firewall drops all UDP (only TCP, hence TURN over TCP);
#: - ``double``: an ``eim`` home router behind a carrier-grade NAT (endpoint-independent,
#:   port preserving mapping as RFC 6888 REQ-1 asks, address-and-port-dependent filtering).
KINDS: Final = ("none", "eim", "eim-adf", "apdm", "udp-blocked", "double")

#: What ``confide nat-check`` must say about each kind (see client_py/natcheck.py):
#: (UDP reaches the server, NAT present, mapping, port preserving, filtering).
Verdict = tuple[bool, bool | None, str | None, bool | None, str | None]
EXPECTED_VERDICT: Final[dict[str, Verdict]] = {
    "none": (True, False, "endpoint-independent", True, "endpoint-independent"),
    "eim": (True, True, "endpoint-independent", True, "endpoint-independent"),
    "eim-adf": (True, True, "endpoint-independent", True, "address-dependent"),
    "apdm": (True, True, "address-and-port-dependent", False, "address-and-port-dependent"),
    "udp-blocked": (False, None, None, None, None),
    "double": (True, True, "endpoint-independent", True, "address-and-port-dependent"),
}

#: The server's second address on the internet, for RFC 5780's change-IP tests.
INTERNET_ALT_IP: Final = str(SUBNET4.network_address + 250)
#: Interface of a router towards its LAN; its WAN is the host's usual ``lab0``.
LAN_IFNAME: Final = "lan0"
#: Seconds one iptables command may take.
IPTABLES_TIMEOUT: Final = 10.0


def router_rules(kind: str, lan_host_ip: str, *, wan: str = "lab0", lan: str = LAN_IFNAME,
                 recent: str = "seen") -> list[list[str]]:  # fmt: skip
    """The iptables commands (without ``iptables``) that give a router behaviour ``kind``.

    Common to all: forward only LAN→WAN and replies; masquerade on the way out.  The INPUT
    rule matters for hole punching: without it an early check from the other peer to the
    router's own address makes conntrack confirm an entry for it, MASQUERADE then has to
    pick another port for the host's own packets to that peer, and punching deadlocks.
    A dropped packet never confirms a conntrack entry, so dropping it keeps the port free.
    Any other ``kind`` (the carrier's NAT of "double": "cgn") is plain MASQUERADE:
    endpoint-independent, port preserving mapping with address-and-port-dependent
    filtering (only replies get in).
    """
    est = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]
    rules: list[list[str]] = [
        ["-P", "FORWARD", "DROP"],
        ["-A", "INPUT", *est],
        ["-A", "INPUT", "-i", wan, "-j", "DROP"],
    ]
    if kind == "udp-blocked":
        rules.append(["-A", "FORWARD", "-p", "udp", "-j", "DROP"])
    rules.append(["-A", "FORWARD", *est])
    if kind == "eim-adf":
        # Remember every address the host sent to (any port): RFC 4787 §5 address-
        # dependent filtering lets in what comes from those addresses and nothing else.
        # The list is the router's, not one per mapping as in a real NAT: with one host
        # behind it the difference shows only once that host has written to an address
        # from one socket and is asked from it on another (nat-check tests filtering
        # first, from a socket of its own, for this reason).
        rules.append(["-A", "FORWARD", "-i", lan, "-o", wan, "-m", "recent", "--set",
                      "--rdest", "--name", recent])  # fmt: skip
    rules.append(["-A", "FORWARD", "-i", lan, "-o", wan, "-j", "ACCEPT"])
    masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", wan, "-j", "MASQUERADE"]
    if kind == "apdm":
        # A fresh random port per connection (RFC 4787 §4.1: address-and-port-dependent).
        masquerade.append("--random-fully")
    rules.append(masquerade)
    if kind in ("eim", "eim-adf"):
        # MASQUERADE keeps the source port when it can, so the mapping is endpoint-
        # independent and port preserving; sending every unsolicited UDP packet on to the
        # host at the same port makes any endpoint able to use it (endpoint-independent
        # filtering), unless eim-adf's rule below filters by address.
        rules.append(["-t", "nat", "-A", "PREROUTING", "-i", wan, "-p", "udp", "-j", "DNAT",
                      "--to-destination", lan_host_ip])  # fmt: skip
        inbound = ["-A", "FORWARD", "-i", wan, "-o", lan, "-p", "udp", "-m", "conntrack",
                   "--ctstate", "DNAT"]  # fmt: skip
        if kind == "eim-adf":
            inbound += ["-m", "recent", "--rcheck", "--rsource", "--name", recent]
        rules.append([*inbound, "-j", "ACCEPT"])
    return rules


def _iptables(ns: str, args: Sequence[str]) -> None:
    argv = ["ip", "netns", "exec", ns, "iptables", "-w", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")


class LanHost(Host):
    """A host on a router's LAN: ``lab0`` wired to the router's ``lan0``, default via it."""

    def __init__(self, lab: Lab, name: str, ip: str, gateway: str, prefixlen: int) -> None:
        super().__init__(lab, name, 0)
        self.ip = ip
        self.ip6 = None
        self.gateway = gateway
        self.prefixlen = prefixlen
        self.port = ""

    def link_down(self, *, silent: bool = False) -> None:
        if silent:
            raise NotImplementedError("a LAN host has no switch port to stop")
        _ip("-n", self.ns, "link", "set", self.ifname, "down")

    def link_up(self) -> None:
        _ip("-n", self.ns, "link", "set", self.ifname, "up")
        _ip("-n", self.ns, "route", "replace", "default", "via", self.gateway, "dev", self.ifname)

    def link_is_up(self) -> bool:
        shown = _ip("-n", self.ns, "-o", "link", "show", self.ifname)
        return "UP" in shown.partition("<")[2].partition(">")[0].split(",")


@dataclass
class Site:
    """Where one peer sits: ``host`` behind ``routers`` (innermost first; none for "none")."""

    name: str
    kind: str
    host: Host
    routers: list[Host] = field(default_factory=list)

    @property
    def public_ip(self) -> str:
        """The address the internet sees: the outermost router's, or the host's own."""
        return self.routers[-1].ip if self.routers else self.host.ip


class NatLab(Lab):
    """The internet (the lab's switch) with host "inet" on it, and :meth:`add_site`.

    Use as a context manager; :meth:`close` (inherited) deletes every namespace, routers
    and LAN hosts included, also after a partial failure.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[str, Site] = {}
        self._lans = 0
        try:
            #: Where the server, its STUN responder and coturn run.
            self.internet = self.add_host("inet")
            _ip("-n", self.internet.ns, "addr", "add", f"{INTERNET_ALT_IP}/{SUBNET4.prefixlen}",
                "dev", self.internet.ifname)  # fmt: skip
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> NatLab:
        return self

    def _next_lan(self, network: str) -> ipaddress.IPv4Network:
        self._lans += 1
        if self._lans > 250:
            raise LabError("no LAN left")
        base = ipaddress.IPv4Network(network)
        return ipaddress.IPv4Network((int(base.network_address) + (self._lans << 8), 24))

    def _router(self, name: str, kind: str, lan_name: str, lan_base: str,
                wan_host: Host | None) -> tuple[Host, LanHost]:  # fmt: skip
        """Router ``name`` (on the internet, or on ``wan_host``'s LAN side) and the host
        on its new LAN, wired and ruled for ``kind``."""
        if wan_host is None:
            router = self.add_host(name)
        else:
            router = wan_host
        lan = self._next_lan(lan_base)
        gateway, inside = str(lan.network_address + 1), str(lan.network_address + 2)
        host = LanHost(self, lan_name, inside, gateway, lan.prefixlen)
        self._add_namespace(host.ns)
        _ip("-n", router.ns, "link", "add", LAN_IFNAME, "type", "veth", "peer", "name",
            host.ifname, "netns", host.ns)  # fmt: skip
        _ip("-n", router.ns, "addr", "add", f"{gateway}/{lan.prefixlen}", "dev", LAN_IFNAME)
        _ip("-n", router.ns, "link", "set", LAN_IFNAME, "up")
        _ip("-n", host.ns, "addr", "add", f"{inside}/{lan.prefixlen}", "dev", host.ifname)
        host.link_up()
        _write_sysctls(router.ns_path, {"net.ipv4.ip_forward": "1"})
        for rule in router_rules(kind, inside):
            _iptables(router.ns, rule)
        return router, host

    def add_site(self, name: str, kind: str) -> Site:
        """A host called ``name`` behind a NAT of ``kind`` (one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown NAT kind {kind!r}; one of {', '.join(KINDS)}")
        if name in self.sites:
            raise ValueError(f"site {name!r} exists")
        if kind == "none":
            site = Site(name, kind, self.add_host(name))
        elif kind == "double":
            # The carrier's NAT first (its LAN is the shared address space of RFC 6598),
            # then the home router on it.
            cgn, home_wan = self._router(f"{name}nat2", "cgn", f"{name}nat1", "100.64.0.0/16",
                                         None)  # fmt: skip
            home, host = self._router(f"{name}nat1", "eim", name, "192.168.0.0/16", home_wan)
            site = Site(name, kind, host, [home, cgn])
        else:
            router, host = self._router(f"{name}nat1", kind, name, "192.168.0.0/16", None)
            site = Site(name, kind, host, [router])
        self.sites[name] = site
        return site
