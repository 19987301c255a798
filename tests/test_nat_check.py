"""RFC 5780 in the STUN responder, and ``confide nat-check`` against it.

Sans-I/O first (which socket answers, which attributes), then the real responder on two
loopback addresses, then nat-check behind every kind of NAT in the lab (real iptables
NATs in namespaces, real coturn), where its verdict must name the router's behaviour.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from hypothesis import given, settings
from hypothesis import strategies as st

from client_py import natcheck
from natlab.coturn import coturn_unavailable_reason
from natlab.fixtures import lab_unavailable_reason
from natlab.matrix import Matrix, running_matrix
from natlab.nat import EXPECTED_VERDICT, KINDS
from natlab.servers import running_server
from server.config import config_from_namespace
from server.errors import ConfigError
from server.stun import StunServer
from server.stun.discovery import (
    ATTR_CHANGE_REQUEST,
    CHANGE_IP,
    CHANGE_PORT,
    DiscoveryResponder,
    socket_index,
)

ROOT = Path(__file__).resolve().parent.parent
FOUR = [("10.0.0.1", 3478), ("10.0.0.1", 3479), ("10.0.0.2", 3478), ("10.0.0.2", 3479)]
CLIENT = ("192.0.2.7", 40000)


def _request(change: int | None = None, **extra: Any) -> tuple[bytes, bytes]:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    if change is not None:
        message.attributes["CHANGE-REQUEST"] = change
    message.attributes.update(extra)
    message.add_fingerprint()
    return bytes(message), message.transaction_id


# -- sans-I/O: the discovery responder ---------------------------------------------------


@pytest.mark.parametrize("arrived", range(4))
@pytest.mark.parametrize(
    ("change", "other_ip", "other_port"),
    [(None, False, False), (0, False, False), (CHANGE_PORT, False, True),
     (CHANGE_IP, True, False), (CHANGE_IP | CHANGE_PORT, True, True)],
)  # fmt: skip
def test_change_request_picks_the_socket_and_the_reply_names_it(
    arrived: int, change: int | None, other_ip: bool, other_port: bool
) -> None:
    data, transaction_id = _request(change)
    answer = DiscoveryResponder(FOUR).handle(data, CLIENT, arrived)
    assert answer is not None
    reply, index = answer
    here_ip, here_port = bool(arrived & 2), bool(arrived & 1)
    assert index == socket_index(here_ip != other_ip, here_port != other_port)
    message = stun.parse_message(reply)  # also checks FINGERPRINT
    assert message.message_class == stun.Class.RESPONSE
    assert message.transaction_id == transaction_id
    assert message.attributes["XOR-MAPPED-ADDRESS"] == CLIENT
    assert message.attributes["RESPONSE-ORIGIN"] == FOUR[index]
    # RFC 5780 §7.4: the address that differs in both parts from the primary one.
    assert message.attributes["OTHER-ADDRESS"] == FOUR[3]
    assert "FINGERPRINT" in message.attributes


def test_without_a_second_address_change_ip_gets_420_and_change_port_works() -> None:
    two = FOUR[:2]
    responder = DiscoveryResponder(two)
    data, _ = _request(CHANGE_IP)
    answer = responder.handle(data, CLIENT, 0)
    assert answer is not None
    message = stun.parse_message(answer[0])
    assert (message.message_class, message.error_code) == (stun.Class.ERROR, 420)
    assert answer[0].count(ATTR_CHANGE_REQUEST.to_bytes(2, "big")) >= 1
    data, _ = _request(CHANGE_PORT)
    answer = responder.handle(data, CLIENT, 0)
    assert answer is not None and answer[1] == 1
    reply = stun.parse_message(answer[0])
    assert reply.attributes["OTHER-ADDRESS"] == two[1]
    assert reply.attributes["RESPONSE-ORIGIN"] == two[1]


def test_another_unknown_required_attribute_still_gets_its_420() -> None:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["CHANGE-REQUEST"] = CHANGE_PORT
    message.attributes["CHANNEL-NUMBER"] = 0x4000  # 0x000C: not for a Binding responder
    answer = DiscoveryResponder(FOUR).handle(bytes(message), CLIENT, 0)
    assert answer is not None and answer[1] == 0
    assert stun.parse_message(answer[0]).error_code == 420


def test_ipv6_addresses_are_encoded_as_such() -> None:
    six = [("fd00::1", 3478), ("fd00::1", 3479), ("fd00::2", 3478), ("fd00::2", 3479)]
    data, _ = _request(CHANGE_IP)
    answer = DiscoveryResponder(six).handle(data, ("fd00::9", 5000, 0, 0), 0)
    assert answer is not None
    message = stun.parse_message(answer[0])
    assert message.attributes["XOR-MAPPED-ADDRESS"] == ("fd00::9", 5000)
    assert message.attributes["RESPONSE-ORIGIN"] == six[2]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120), arrived=st.integers(0, 3))
def test_fuzz_discovery_never_raises(data: bytes, arrived: int) -> None:
    answer = DiscoveryResponder(FOUR).handle(data, CLIENT, arrived)
    if answer is not None:
        reply, index = answer
        assert 0 <= index < 4
        stun.parse_message(reply)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40), scheme=st.sampled_from(["stun:", "turn:", ""]))
def test_fuzz_url_parsers_give_an_address_or_value_error(text: str, scheme: str) -> None:
    for parse in (natcheck.parse_stun_url, lambda u: natcheck.parse_turn_url(u)[0]):
        try:
            host, port = parse(scheme + text)
        except ValueError:
            continue
        assert host and isinstance(host, str) and 0 < port < 65536


def test_url_parsers_read_rfc_7064_and_7065_forms() -> None:
    assert natcheck.parse_stun_url("stun:10.0.0.1") == ("10.0.0.1", 3478)
    assert natcheck.parse_stun_url("stun:[fd00::1]:3479") == ("fd00::1", 3479)
    assert natcheck.parse_turn_url("turn:t.example:443?transport=tcp") == (
        ("t.example", 443),
        "tcp",
    )
    assert natcheck.parse_turn_url("turn:t.example") == (("t.example", 3478), "udp")
    for bad in ("stun:", "stun:h:0", "stun:h:70000", "stun:h:x", "turn:h", "http://h"):
        with pytest.raises(ValueError):
            natcheck.parse_stun_url(bad)
    for bad in ("turn:", "turn:[::1", "turns:h", "stun:h"):
        with pytest.raises(ValueError):
            natcheck.parse_turn_url(bad)


def test_verdicts_follow_rfc_5780_sections_4_3_and_4_4() -> None:
    m, other = ("198.51.100.7", 40000), ("198.51.100.7", 41000)
    assert natcheck.mapping_behaviour(m, m, None) == natcheck.ENDPOINT_INDEPENDENT
    assert natcheck.mapping_behaviour(m, other, other) == natcheck.ADDRESS_DEPENDENT
    assert natcheck.mapping_behaviour(m, other, m) == natcheck.ADDRESS_AND_PORT_DEPENDENT
    assert natcheck.mapping_behaviour(m, None, m) == natcheck.ENDPOINT_INDEPENDENT
    assert natcheck.mapping_behaviour(m, None, other) == natcheck.ADDRESS_AND_PORT_DEPENDENT
    assert natcheck.filtering_behaviour(True, True) == natcheck.ENDPOINT_INDEPENDENT
    assert natcheck.filtering_behaviour(False, True) == natcheck.ADDRESS_DEPENDENT
    assert natcheck.filtering_behaviour(False, False) == natcheck.ADDRESS_AND_PORT_DEPENDENT
    # Without another address, an answer from another port rules out only APDF.
    assert natcheck.filtering_behaviour(None, True) is None
    assert natcheck.filtering_behaviour(None, False) == natcheck.ADDRESS_AND_PORT_DEPENDENT


def test_options_are_checked_and_named() -> None:
    def config(**given: str) -> object:
        return config_from_namespace(given, environ={})

    cases = [
        ({"stun_alt_host": "127.0.0.2"}, "--stun-alt-host"),
        ({"stun_alt_port": "3478"}, "--stun-alt-port"),
        ({"stun_alt_port": "3479", "host": "0.0.0.0"}, "--stun-alt-port"),
        ({"stun_alt_port": "3479", "stun_port": "off"}, "--stun-alt-port"),
        ({"stun_alt_port": "3479", "stun_alt_host": "::1"}, "--stun-alt-host"),
        ({"stun_alt_port": "3479", "stun_alt_host": "nat.example"}, "--stun-alt-host"),
    ]
    for given_options, option in cases:
        with pytest.raises(ConfigError) as caught:
            config(**given_options)
        assert caught.value.option == option, given_options
    ok = config(stun_alt_port="3479", stun_alt_host="127.0.0.2")
    assert (ok.stun_alt_port, ok.stun_alt_host) == (3479, "127.0.0.2")  # type: ignore[attr-defined]


# -- the real responder on loopback ---------------------------------------------------------


@pytest.fixture
async def discovery_server() -> AsyncIterator[StunServer]:
    server = StunServer("127.0.0.1", 0, alt_port=0, alt_host="127.0.0.2")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_answers_leave_from_the_socket_asked_for(discovery_server: StunServer) -> None:
    assert discovery_server.discovery is not None
    addresses = discovery_server.discovery.addresses
    assert len(addresses) == 4 and len({a for a in addresses}) == 4
    assert discovery_server.addresses[0] == addresses[0] == ("127.0.0.1", discovery_server.port)
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        for change, index in [(0, 0), (CHANGE_PORT, 1), (CHANGE_IP, 2),
                              (CHANGE_IP | CHANGE_PORT, 3)]:  # fmt: skip
            data, transaction_id = _request(change)
            await loop.sock_sendto(sock, data, addresses[0])
            reply, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)
            message = stun.parse_message(reply)
            assert message.transaction_id == transaction_id
            assert source == addresses[index] == message.attributes["RESPONSE-ORIGIN"]
            assert message.attributes["XOR-MAPPED-ADDRESS"] == sock.getsockname()
    assert discovery_server.stats.answered == 4


async def test_nat_check_on_loopback_sees_no_nat_and_both_turn_refusals(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-test-shared-secret-0123456789")
    # Nothing listens on the TURN port: nat-check must say so rather than hang.
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = placeholder.getsockname()[1]
    urls = (f"turn:127.0.0.1:{dead}?transport=udp", f"turn:127.0.0.1:{dead}?transport=tcp")
    async with running_server(
        stun_alt_port=0, stun_alt_host="127.0.0.2", turn_urls=urls,
        turn_secret=b"a-test-shared-secret-0123456789", turn_secret_file=secret,
    ) as server:  # fmt: skip
        report = await natcheck.check(server.url)
    assert report.udp and report.nat is False
    assert report.mapping == natcheck.ENDPOINT_INDEPENDENT
    assert report.filtering == natcheck.ENDPOINT_INDEPENDENT
    assert report.other_address is not None and report.other_address[0] == "127.0.0.2"
    assert report.advice == natcheck.DIRECT_WORKS
    assert report.turn_udp is False and report.turn_tcp is False
    assert report.turn[urls[1]].startswith("cannot connect")


async def test_without_rfc5780_nat_check_says_what_it_could_not_test() -> None:
    async with running_server() as server:
        report = await natcheck.check(server.url)
    assert report.udp and report.other_address is None and report.nat is False
    # Mapping needs no second address when there is no NAT; filtering does.
    assert report.mapping == natcheck.ENDPOINT_INDEPENDENT and report.filtering is None
    assert any("--stun-alt-port" in note for note in report.notes)
    assert report.turn == {} and "TURN: the server offers no relay" in report.lines()


async def test_udp_turn_urls_are_dropped_only_when_udp_gets_no_answer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        silent = closed.getsockname()[1]
        urls = ["turn:t.example:3478?transport=udp", "turn:t.example:3478?transport=tcp"]
        turn: dict[str, Any] = {"urls": urls, "username": "u", "credential": "c"}
        # A socket that never answers: UDP does not get through.
        blocked: list[dict[str, Any]] = [{"urls": [f"stun:127.0.0.1:{silent}"]}, turn]
        kept = await natcheck.usable_ice_servers(blocked)
    assert kept == [{"urls": [f"stun:127.0.0.1:{silent}"]},
                    {**turn, "urls": ["turn:t.example:3478?transport=tcp"]}]  # fmt: skip
    async with running_server() as server:
        working: list[dict[str, Any]] = [{"urls": [f"stun:127.0.0.1:{server.stun_port}"]}, turn]
        assert await natcheck.usable_ice_servers(working) == working
    # What a server sends is never trusted to be well formed: left as it is.
    odd: list[Any] = ["not a server", {"urls": "stun:"}, {"urls": [7]}, turn]
    assert await natcheck.usable_ice_servers(odd) == odd


def _nat_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "nat-check", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_cli_bad_options_exit_2_naming_the_option() -> None:
    result = _nat_check()
    assert result.returncode == 2 and "--server" in result.stderr
    result = _nat_check("--server", "ftp://x")
    assert result.returncode == 2 and "--server" in result.stderr


def test_cli_unreachable_server_exits_1() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = _nat_check("--server", f"http://127.0.0.1:{port}")
    assert result.returncode == 1 and "cannot ask" in result.stderr


# -- behind every kind of NAT in the lab ------------------------------------------------------


@pytest.fixture
async def matrix() -> AsyncIterator[Matrix]:
    for reason in (lab_unavailable_reason(), coturn_unavailable_reason()):
        if reason is not None:
            pytest.skip(reason)
    async with running_matrix() as running:
        yield running


@pytest.mark.netns
@pytest.mark.coturn
async def test_nat_check_names_every_lab_nat(matrix: Matrix) -> None:
    import json

    for kind in KINDS:
        site = matrix.site("a", kind)
        argv = [sys.executable, "-m", "server", "nat-check", "--server", matrix.relayed.url,
                "--json"]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *site.host.exec_args(argv), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={"PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        report = json.loads(out)
        verdict = (report["udp"], report["nat"], report["mapping"], report["port_preserving"],
                   report["filtering"])  # fmt: skip
        assert verdict == EXPECTED_VERDICT[kind], (kind, report)
        # TURN over TCP gets through everywhere; over UDP wherever UDP does.
        assert report["turn_tcp"] is True, (kind, report)
        assert report["turn_udp"] is report["udp"], (kind, report)
        direct = kind in ("none", "eim", "eim-adf", "double")
        assert report["advice"] == (natcheck.DIRECT_WORKS if direct else natcheck.NEEDS_RELAY)
