"""``confide nat-check``: what lies between this machine and a Confide server, in plain words.

From the server's ``/api/ice-servers`` it takes the STUN URL and the TURN URLs with the
credentials the server hands out, then (RFC 5780, "NAT Behavior Discovery"):

- whether UDP reaches the server at all (a Binding request, RFC 8489 §6, is answered);
- the mapping behaviour (§4.3): the address the server sees for one local socket, asked
  from the server's primary address and again from its other address (the OTHER-ADDRESS
  attribute a server started with ``--stun-alt-host``/``--stun-alt-port`` sends), and
  whether the NAT kept the local port;
- the filtering behaviour (§4.4): whether answers sent from another address and port
  (CHANGE-REQUEST change-IP and change-port) or from another port only get through;
- whether TURN answers, over UDP and over TCP, with those credentials (an Allocate,
  RFC 8656 §7).

The verdict is the sentence a user needs: "direct connections will work with most
people" for an endpoint-independent mapping, "you will need the relay" otherwise.

Only the standard library and aioice's STUN/TURN codec are used; no server module.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, cast
from urllib.parse import urlsplit

from aioice import stun, turn

from .cli import EXIT_FAILED, EXIT_OK, _Parser

__all__ = [
    "ADDRESS_AND_PORT_DEPENDENT",
    "ADDRESS_DEPENDENT",
    "ENDPOINT_INDEPENDENT",
    "Report",
    "check",
    "filtering_behaviour",
    "main",
    "mapping_behaviour",
    "parse_stun_url",
    "parse_turn_url",
    "udp_reaches",
    "usable_ice_servers",
]

Address = tuple[str, int]

ENDPOINT_INDEPENDENT: Final = "endpoint-independent"
ADDRESS_DEPENDENT: Final = "address-dependent"
ADDRESS_AND_PORT_DEPENDENT: Final = "address-and-port-dependent"

#: CHANGE-REQUEST flags (RFC 5780 §7.2).
CHANGE_IP: Final = 0x04
CHANGE_PORT: Final = 0x02
#: Seconds before the first retransmission of a Binding request; each further one waits
#: twice as long (RFC 8489 §6.2.1), for :data:`PROBE_TRIES` sends in all.
PROBE_RTO: Final = 0.2
PROBE_TRIES: Final = 4
#: Seconds a TURN Allocate (over UDP or TCP) may take.
TURN_TIMEOUT: Final = 5.0
#: Seconds the HTTP request for the ICE servers may take.
HTTP_TIMEOUT: Final = 10.0

DIRECT_WORKS: Final = "direct connections will work with most people"
NEEDS_RELAY: Final = "you will need the relay"


# -- the sans-I/O part: URLs and verdicts --------------------------------------------------


def _host_port(rest: str, default_port: int) -> Address:
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError("an IPv6 host is written [address]:port")
        port = tail.removeprefix(":")
    else:
        host, _, port = rest.partition(":")
    if not host:
        raise ValueError("no host")
    number = int(port) if port else default_port
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is out of range")
    return host, number


def parse_stun_url(url: str) -> Address:
    """``stun:host[:port]`` (RFC 7064) → (host, port)."""
    if not url.startswith("stun:"):
        raise ValueError(f"{url!r} is not a stun: URL")
    return _host_port(url[5:].partition("?")[0], 3478)


def parse_turn_url(url: str) -> tuple[Address, str]:
    """``turn:host[:port][?transport=udp|tcp]`` (RFC 7065) → ((host, port), transport)."""
    if not url.startswith("turn:"):
        raise ValueError(f"{url!r} is not a turn: URL")
    rest, _, query = url[5:].partition("?")
    transport = "udp"
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "transport" and value in ("udp", "tcp"):
            transport = value
    return _host_port(rest, 3478), transport


def mapping_behaviour(first: Address, other_ip: Address | None, other_both: Address | None) -> str:
    """RFC 5780 §4.3 from the mapped addresses seen from the primary address, from the
    other IP (same port), and from the other IP and port."""
    if other_ip is not None and other_ip == first:
        return ENDPOINT_INDEPENDENT
    if other_ip is not None and other_both is not None and other_both == other_ip:
        return ADDRESS_DEPENDENT
    if other_ip is None and other_both == first:
        # Only another port to ask from: the mapping did not depend on the port.
        return ENDPOINT_INDEPENDENT
    return ADDRESS_AND_PORT_DEPENDENT


def filtering_behaviour(from_other_ip_and_port: bool | None, from_other_port: bool) -> str | None:
    """RFC 5780 §4.4 from which changed answers arrived (None: not asked, the server has no
    other address); None when that cannot tell endpoint-independent from address-dependent."""
    if from_other_ip_and_port:
        return ENDPOINT_INDEPENDENT
    if from_other_port:
        return ADDRESS_DEPENDENT if from_other_ip_and_port is not None else None
    return ADDRESS_AND_PORT_DEPENDENT


@dataclass
class Report:
    """What nat-check found; None where it could not tell."""

    server: str
    stun: str | None = None
    local: Address | None = None
    udp: bool = False
    mapped: Address | None = None
    nat: bool | None = None
    mapping: str | None = None
    port_preserving: bool | None = None
    filtering: str | None = None
    #: Whether the server offered another address (RFC 5780 OTHER-ADDRESS) and whether
    #: that other address has another IP (so change-IP tests were possible).
    other_address: Address | None = None
    #: TURN URL → "ok", or why not ("no answer", "refused: 401 ...").
    turn: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def direct_likely(self) -> bool:
        return self.udp and self.mapping == ENDPOINT_INDEPENDENT

    @property
    def advice(self) -> str:
        return DIRECT_WORKS if self.direct_likely else NEEDS_RELAY

    @property
    def turn_udp(self) -> bool | None:
        return self._turn_ok("udp")

    @property
    def turn_tcp(self) -> bool | None:
        return self._turn_ok("tcp")

    def _turn_ok(self, transport: str) -> bool | None:
        seen = [ok for url, ok in self.turn.items() if _is_turn(url, transport)]
        return None if not seen else any(ok == "ok" for ok in seen)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(advice=self.advice, turn_udp=self.turn_udp, turn_tcp=self.turn_tcp)
        return data

    def lines(self) -> list[str]:
        """The report for people."""
        out = [f"server: {self.server} (STUN {self.stun or 'not offered'})"]
        if not self.udp:
            out.append("UDP: no answer from the server's STUN port: UDP is blocked on the way")
        else:
            out.append(f"UDP: reaches the server; it sees you as {_show(self.mapped)}")
            if self.nat is False:
                out.append("NAT: none (your address is public)")
            else:
                kept = {True: "keeps your port", False: "changes your port", None: "?"}
                out.append(f"NAT: yes, it {kept[self.port_preserving]}")
            out.append(f"mapping: {self.mapping or 'unknown'}")
            out.append(f"filtering: {self.filtering or 'unknown'}")
        for url, result in self.turn.items():
            out.append(f"TURN {url}: {result}")
        if not self.turn:
            out.append("TURN: the server offers no relay")
        out.extend(f"note: {n}" for n in self.notes)
        out.append(f"verdict: {self.advice}")
        return out


def _show(address: Address | None) -> str:
    if address is None:
        return "?"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the asyncio shell: Binding requests, Allocates, the HTTP request ------------------------


class _Prober(asyncio.DatagramProtocol):
    """One UDP socket; answers are matched to requests by transaction id, whatever address
    they come from (answers to CHANGE-REQUEST come from another one)."""

    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future[tuple[stun.Message, Address]]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = stun.parse_message(data)
        except ValueError:
            return
        future = self.waiting.pop(message.transaction_id, None)
        if future is not None and not future.done():
            future.set_result((message, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable) for one request; the others may still succeed.
        pass

    async def binding(self, dest: Address, change: int = 0) -> stun.Message | None:
        """A Binding request to ``dest``, retransmitted; its success response, or None."""
        assert self.transport is not None
        request = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)  # fmt: skip
        if change:
            request.attributes["CHANGE-REQUEST"] = change
        future: asyncio.Future[tuple[stun.Message, Address]] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiting[request.transaction_id] = future
        data = bytes(request)
        rto = PROBE_RTO
        try:
            for _ in range(PROBE_TRIES):
                self.transport.sendto(data, dest)
                with contextlib.suppress(TimeoutError):
                    message, _source = await asyncio.wait_for(asyncio.shield(future), rto)
                    if message.message_class == stun.Class.RESPONSE:
                        return message
                    return None
                rto *= 2
            return None
        finally:
            self.waiting.pop(request.transaction_id, None)
            future.cancel()


async def _resolved(address: Address) -> Address:
    """``address`` with its host name (if any) resolved, off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(*address, type=socket.SOCK_DGRAM)
    sockaddr = infos[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


def _local_ip_towards(host: str, port: int) -> str:
    """The local address the kernel would send from to reach ``host`` (nothing is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        local: str = sock.getsockname()[0]
    return local


@contextlib.asynccontextmanager
async def _prober(local_ip: str) -> Any:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Prober, local_addr=(local_ip, 0))
    try:
        yield protocol, transport.get_extra_info("sockname")[:2]
    finally:
        transport.close()


def _mapped(message: stun.Message | None) -> Address | None:
    if message is None:
        return None
    address = message.attributes.get("XOR-MAPPED-ADDRESS") or message.attributes.get(
        "MAPPED-ADDRESS"
    )
    return None if address is None else (str(address[0]), int(address[1]))


async def udp_reaches(stun_url: str) -> bool:
    """Whether a Binding request to the STUN server of ``stun_url`` is answered (a URL
    that is not ``stun:host[:port]`` raises ValueError)."""
    address = parse_stun_url(stun_url)
    try:
        host, port = await _resolved(address)
        local_ip = _local_ip_towards(host, port)
        async with _prober(local_ip) as (prober, _local):
            return await prober.binding((host, port)) is not None
    except OSError:
        return False


async def usable_ice_servers(ice_servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ice_servers`` without its UDP TURN URLs when UDP does not reach the STUN server.

    aiortc uses only one TURN URL, and prefers UDP: behind a firewall that drops UDP
    that one can never work, while TURN over TCP can.  With no STUN URL to ask, or when
    UDP gets an answer, the list is returned as it is.
    """
    stun_urls = [u for s in ice_servers for u in _urls(s) if u.startswith("stun:")]
    has_tcp_turn = any(_is_turn(u, "tcp") for s in ice_servers for u in _urls(s))
    if not stun_urls or not has_tcp_turn:
        return ice_servers
    try:
        if await udp_reaches(stun_urls[0]):
            return ice_servers
    except ValueError:
        return ice_servers  # a STUN URL we cannot read tells nothing about UDP
    kept = []
    for server in ice_servers:
        urls = [u for u in _urls(server) if not _is_turn(u, "udp")]
        if urls:
            kept.append({**server, "urls": urls})
    return kept


def _urls(server: object) -> list[str]:
    """The URLs of one RTCIceServer entry (a string or a list); none from anything else."""
    if not isinstance(server, dict):
        return []
    urls = server.get("urls")
    listed = [urls] if isinstance(urls, str) else list(urls or [])
    return [u for u in listed if isinstance(u, str)]


def _is_turn(url: str, transport: str) -> bool:
    if not url.startswith("turn:"):
        return False
    try:
        return parse_turn_url(url)[1] == transport
    except ValueError:
        return False


async def _turn_answers(url: str, username: str, password: str) -> str:
    """The word "ok" when an Allocate with these credentials succeeds, else why not."""
    try:
        server, transport = parse_turn_url(url)
    except ValueError as exc:
        return f"not a TURN URL: {exc}"
    try:
        async with asyncio.timeout(TURN_TIMEOUT):
            relay, _ = await turn.create_turn_endpoint(
                asyncio.DatagramProtocol, server, username, password, transport=transport
            )
    except TimeoutError:
        return "no answer"
    except stun.TransactionFailed as exc:
        return f"refused: {exc.response.error_code}"
    except stun.TransactionTimeout:
        return "no answer"
    except OSError as exc:
        return f"cannot connect: {exc.strerror or exc}"
    relay.close()
    return "ok"


def _fetch_ice_servers(server: str) -> list[dict[str, Any]]:
    url = server.rstrip("/") + "/api/ice-servers"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
        data = json.loads(response.read(1_000_000))
    servers = data.get("iceServers") if isinstance(data, dict) else None
    return servers if isinstance(servers, list) else []


async def check(server: str, ice_servers: list[dict[str, Any]] | None = None) -> Report:
    """Run every test against ``server`` (its ICE servers fetched unless given)."""
    if ice_servers is None:
        ice_servers = await asyncio.get_running_loop().run_in_executor(
            None, _fetch_ice_servers, server
        )
    report = Report(server=server)
    stun_urls = [u for s in ice_servers for u in _urls(s) if u.startswith("stun:")]
    if stun_urls:
        report.stun = stun_urls[0]
        try:
            primary = await _resolved(parse_stun_url(stun_urls[0]))
        except (OSError, ValueError) as exc:
            report.notes.append(f"cannot resolve {stun_urls[0]}: {exc}")
        else:
            await _stun_tests(report, primary)
    else:
        report.notes.append("the server runs no STUN responder: mapping not tested")
    for entry in ice_servers:
        if not isinstance(entry, dict):
            continue
        username, credential = entry.get("username"), entry.get("credential")
        for url in _urls(entry):
            if url.startswith("turn:") and isinstance(username, str):
                report.turn[url] = await _turn_answers(url, username, str(credential))
    return report


async def _stun_tests(report: Report, primary: Address) -> None:
    local_ip = _local_ip_towards(*primary)
    # Filtering first, from a socket of its own that has sent to the primary address only:
    # a NAT filters by what its mapping has sent to, and the mapping tests below send to
    # the other address too.
    async with _prober(local_ip) as (prober, local):
        first = await prober.binding(primary)
        if first is None:
            return
        report.udp = True
        other = first.attributes.get("OTHER-ADDRESS")
        if other is not None:
            report.other_address = (str(other[0]), int(other[1]))
        if report.other_address is not None:
            other_ip = report.other_address[0] != primary[0]
            both = await prober.binding(primary, CHANGE_IP | CHANGE_PORT) if other_ip else None
            port = await prober.binding(primary, CHANGE_PORT)
            report.filtering = filtering_behaviour(
                None if not other_ip else both is not None, port is not None
            )
        else:
            report.notes.append(
                "the server has no second port or address (--stun-alt-port, --stun-alt-host):"
                " mapping and filtering not tested"
            )
    async with _prober(local_ip) as (prober, local):
        first = await prober.binding(primary)
        report.mapped = _mapped(first)
        report.local = local
        if report.mapped is None:
            return
        report.nat = report.mapped != local
        report.port_preserving = report.mapped[1] == local[1]
        if not report.nat:
            # A public address: the same from everywhere, whoever asks.
            report.mapping = ENDPOINT_INDEPENDENT
            return
        if report.other_address is None:
            return
        other_host, other_port = report.other_address
        if other_host != primary[0]:
            via_ip = _mapped(await prober.binding((other_host, primary[1])))
            via_both = None
            if via_ip != report.mapped:
                via_both = _mapped(await prober.binding((other_host, other_port)))
            report.mapping = mapping_behaviour(report.mapped, via_ip, via_both)
        else:
            via_port = _mapped(await prober.binding((primary[0], other_port)))
            report.mapping = mapping_behaviour(report.mapped, None, via_port)
            report.notes.append("the server has no second address: filtering by address "
                                "and mapping by address not told apart")  # fmt: skip


# -- the command ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="confide nat-check",
        description="What kind of NAT and firewall lie between you and a Confide server, "
        "and whether you will need its relay (TURN).",
        allow_abbrev=False,
    )
    p.add_argument("--server", required=True, metavar="URL",
                   help="the Confide server, e.g. http://127.0.0.1:8080")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    return p


def main(argv: Sequence[str]) -> int:
    """``confide nat-check ARGS``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    server = args.server.rstrip("/")
    scheme = urlsplit(server).scheme
    if scheme not in ("http", "https"):
        parser.error(f"--server: {args.server!r} is not an http(s):// URL")
    try:
        report = asyncio.run(check(server))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"! cannot ask {server} for its ICE servers: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    text = json.dumps(report.as_json()) if args.json else "\n".join(report.lines())
    sys.stdout.write(text + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
