"""coturn with the project's configuration: who gets a relay, and to where.

Every test runs a real coturn (``tests.fixtures_coturn``) and speaks TURN to it
with aioice's client or Debian's ``turnutils_uclient``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aioice import stun

from natlab.coturn import (
    LAUNCHER,
    Coturn,
    channel_bind,
    create_permission,
    error_code_of,
    find_turnserver,
    running_coturn,
    turn_allocation,
)
from natlab.lab import Host
from natlab.processes import wait_until
from server.turn import credential_for, mint_credentials

ROOT = Path(__file__).resolve().parent.parent
CONFIDE = [sys.executable, "-m", "server"]
#: Seconds one TLS handshake may take.
HANDSHAKE_TIMEOUT = 10.0
#: Seconds without a ServerHello after which a TLS 1.1 offer counts as refused
#: (a local 1.1 handshake, checked first, takes milliseconds).
REFUSAL_WAIT = 3.0

#: Options issue 5 asks of the configuration, each checked in the rendered file.
HARDENING = (
    "use-auth-secret",
    "no-multicast-peers",
    "no-cli",
    "no-software-attribute",
    "no-tlsv1",
    "no-tlsv1_1",
    "no-tcp-relay",
    "fingerprint",
    "stale-nonce=600",
    "max-allocate-lifetime=3600",
)
#: Every range coturn must refuse to relay to (issue 5), as coturn writes them.
DENIED = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "224.0.0.0-239.255.255.255",
    "240.0.0.0-255.255.255.255",
    "::1-::1",
    "::ffff:0:0-::ffff:ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)
#: Peers in denied ranges. Asking coturn for a permission to one sends nothing to it.
DENIED_PEERS = (
    ("192.168.1.1", 9),
    ("127.0.0.1", 9),
    ("169.254.169.254", 80),
    ("172.16.0.1", 9),
    ("10.0.0.1", 9),
    ("224.0.0.1", 9),
)


def conf_lines(coturn: Coturn) -> list[str]:
    return [line.strip() for line in coturn.conf_file.read_text().splitlines()]


# --- the configuration ----------------------------------------------------------


async def test_template_renders_every_hardening_option(coturn: Coturn) -> None:
    lines = conf_lines(coturn)
    for option in HARDENING:
        assert option in lines, option
    for denied in DENIED:
        assert f"denied-peer-ip={denied}" in lines, denied
    for option in ("user-quota=", "total-quota=", "max-bps=", "realm=", "min-port=", "max-port="):
        assert any(line.startswith(option) for line in lines), option
    # Loopback peers stay refused; TLS is off without a certificate.
    assert "allow-loopback-peers" not in lines
    assert {"no-tls", "no-dtls"} <= set(lines)
    # The rendered file holds the secret: only its owner may read it.
    assert stat.S_IMODE(coturn.conf_file.stat().st_mode) == 0o600


async def test_coturn_accepts_every_option(coturn: Coturn) -> None:
    """coturn 4.6.1 reports unknown or bad options in its log and carries on."""
    usage = subprocess.run(
        [find_turnserver() or "turnserver", "-h"], capture_output=True, text=True, timeout=10
    )
    documented = set(re.findall(r"--([a-z0-9_-]+)", usage.stdout + usage.stderr))
    options = {
        line.split("=", 1)[0] for line in conf_lines(coturn) if line and not line.startswith("#")
    }
    assert options <= documented, f"not in turnserver -h: {options - documented}"
    log = coturn.log_text()
    assert "Version Coturn-4" in log
    for complaint in ("ERROR", "Bad configuration", "unknown", "Unknown", "CONFIG ERROR"):
        assert complaint not in log, f"{complaint!r} in coturn's log:\n{log}"
    # Its stderr has only the SCTP probe's "socket: Protocol not supported" (no SCTP here).
    others = [
        line
        for line in coturn.stderr_text().splitlines()
        if line.strip() and line.strip() != "socket: Protocol not supported"
    ]
    assert others == []


@pytest.mark.coturn
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_listener_when_certificate_given(tmp_path: Path) -> None:
    """With TURN_TLS_CERT/KEY coturn serves TLS on the TLS port, 1.2 or later only."""
    from natlab.coturn import _free_port_pair, coturn_unavailable_reason

    if (reason := coturn_unavailable_reason()) is not None:
        pytest.skip(reason)
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=turn.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = _free_port_pair("127.0.0.1")
    env = {"TURN_TLS_CERT": str(cert), "TURN_TLS_KEY": str(key), "TURN_TLS_PORT": str(tls_port)}
    async with running_coturn("127.0.0.1", tmp_path / "coturn", extra_env=env) as running:
        lines = conf_lines(running)
        assert f"tls-listening-port={tls_port}" in lines
        assert "no-tls" not in lines

        assert await tls_version(tls_port, client_context(ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
        # First prove this client can speak TLS 1.1 at all (a local server that
        # allows it), so that a refusal below is coturn's, not the client's own.
        assert await tls_11_is_possible(cert, key)
        # coturn 4.6 with no-tlsv1_1 does not take a 1.1 ClientHello for TLS at
        # all and never answers it (without the option it completes 1.1 with
        # this client); a server may also answer with a protocol_version alert
        # (RFC 5246 §7.2.2). Neither is the client refusing on its own.
        with pytest.raises((ssl.SSLError, TimeoutError)) as refused:
            await tls_version(tls_port, client_context(ssl.TLSVersion.TLSv1_1), REFUSAL_WAIT)
        if isinstance(refused.value, ssl.SSLError):
            assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


def client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers exactly ``version`` (security level 0: 1.1 is not refused here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def tls_version(
    port: int, context: ssl.SSLContext, timeout: float = HANDSHAKE_TIMEOUT
) -> str:
    """The TLS version a handshake with 127.0.0.1:``port`` agreed on (raises if none)."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context), timeout
    )
    try:
        return str(writer.get_extra_info("ssl_object").version())
    finally:
        writer.close()


async def tls_11_is_possible(cert: Path, key: Path) -> bool:
    """Whether :func:`client_context` (1.1) completes a handshake with a server allowing 1.1."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_1
    server_context.maximum_version = ssl.TLSVersion.TLSv1_1
    server_context.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=server_context)
    try:
        port = server.sockets[0].getsockname()[1]
        return await tls_version(port, client_context(ssl.TLSVersion.TLSv1_1)) == "TLSv1.1"
    finally:
        server.close()
        await server.wait_closed()


# --- the launcher -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "set TURN_SECRET_FILE"),
        ("short", "at least 16"),
        ("has space in the middle!", "may hold only"),
        ("line\nbreak-0123456789abcdef", "may hold only"),
    ],
    ids=["missing", "short", "space", "newline"],
)
def test_launcher_refuses_a_missing_or_bad_secret(
    tmp_path: Path, secret: str | None, message: str
) -> None:
    env = {"PATH": os.environ["PATH"]}
    if secret is not None:
        env["TURN_SECRET"] = secret
    result = subprocess.run(
        ["/bin/sh", str(LAUNCHER), str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "run" / "turnserver.conf").exists()


async def test_a_second_coturn_on_the_same_port_is_refused(coturn: Coturn, tmp_path: Path) -> None:
    """coturn uses SO_REUSEPORT and would start and share the port: the fixture checks."""
    with pytest.raises(RuntimeError, match="in use"):
        async with running_coturn("127.0.0.1", tmp_path / "second", port=coturn.port):
            pass


async def test_launcher_refuses_a_folder_in_use(coturn: Coturn) -> None:
    result = subprocess.run(
        ["/bin/sh", str(LAUNCHER), str(coturn.run_dir)],
        env={"PATH": os.environ["PATH"], "TURN_SECRET_FILE": str(coturn.secret_file)},
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"already runs in {coturn.run_dir}" in result.stderr


# --- authentication: the TURN REST API -----------------------------------------------


async def test_minted_credential_allocates(coturn: Coturn) -> None:
    pair = coturn.credentials(ttl=600)
    async with turn_allocation(coturn.address, pair.username, pair.credential) as protocol:
        assert protocol.relayed_address is not None
        assert protocol.relayed_address[0] == coturn.host


async def test_expired_credential_is_refused_401(coturn: Coturn) -> None:
    pair = mint_credentials(coturn.secret, ttl=600, now=time.time() - 3600)
    assert pair.expires < time.time()
    with pytest.raises(stun.TransactionFailed) as refused:
        async with turn_allocation(coturn.address, pair.username, pair.credential):
            pass
    assert error_code_of(refused.value) == 401


async def test_forged_credential_is_refused_401(coturn: Coturn) -> None:
    """A valid-looking username with a password made from another secret."""
    username = coturn.credentials(ttl=600).username
    forged = credential_for(b"not-the-secret-0123456789abcdef", username)
    with pytest.raises(stun.TransactionFailed) as refused:
        async with turn_allocation(coturn.address, username, forged):
            pass
    assert error_code_of(refused.value) == 401


async def test_username_with_later_expiry_but_old_password_is_refused_401(coturn: Coturn) -> None:
    """Extending a credential's life means a new HMAC: the expiry cannot be edited."""
    pair = coturn.credentials(ttl=60)
    _, user_id = pair.username.split(":", 1)
    stretched = f"{pair.expires + 86400}:{user_id}"
    with pytest.raises(stun.TransactionFailed) as refused:
        async with turn_allocation(coturn.address, stretched, pair.credential):
            pass
    assert error_code_of(refused.value) == 401


async def test_expiry_stops_new_allocations_not_running_ones(coturn: Coturn) -> None:
    """coturn 4.6.1 checks the username's expiry when an allocation is made (401 after
    it), not on the Refresh of an allocation made before: a call keeps its relay."""
    pair = coturn.credentials(ttl=1)
    async with turn_allocation(coturn.address, pair.username, pair.credential) as protocol:
        # The condition is the clock itself: poll it, with a deadline. coturn compares
        # whole seconds on a clock it ticks once a second: up to ~1 s of slack (measured).
        await wait_until(lambda: time.time() > pair.expires + 2.5, timeout=8)
        with pytest.raises(stun.TransactionFailed) as refused:
            async with turn_allocation(coturn.address, pair.username, pair.credential):
                pass
        assert error_code_of(refused.value) == 401
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await protocol.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 600


# --- no open proxy: denied peers ---------------------------------------------------------


@pytest.mark.parametrize("peer", DENIED_PEERS, ids=[p[0] for p in DENIED_PEERS])
async def test_denied_peer_is_refused_403(lab_coturn: Coturn, peer: tuple[str, int]) -> None:
    """CreatePermission and ChannelBind for a denied peer get 403 (RFC 8656 §9.3).

    coturn runs in the lab, whose own /24 is opened with allowed-peer-ip: 10.0.0.1 shows
    that this opening is no wider than the lab.
    """
    pair = lab_coturn.credentials()
    async with turn_allocation(lab_coturn.address, pair.username, pair.credential) as protocol:
        with pytest.raises(stun.TransactionFailed) as refused:
            await create_permission(protocol, peer)
        assert error_code_of(refused.value) == 403
        with pytest.raises(stun.TransactionFailed) as refused:
            await channel_bind(protocol, peer)
        assert error_code_of(refused.value) == 403


async def test_allowed_lab_peer_is_permitted(lab_coturn: Coturn, lab_host: Host) -> None:
    """The other side of the 403 test: the range opened with allowed-peer-ip works."""
    pair = lab_coturn.credentials()
    async with turn_allocation(lab_coturn.address, pair.username, pair.credential) as protocol:
        await create_permission(protocol, (lab_host.ip, 9))
        await channel_bind(protocol, (lab_host.ip, 9))


# --- confide turn-credentials with turnutils_uclient -------------------------------------


def parse_credentials(output: str) -> dict[str, str]:
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


async def test_turn_credentials_command_works_with_uclient(
    lab_coturn: Coturn, lab_host: Host
) -> None:
    """`confide turn-credentials` makes a pair that turnutils_uclient allocates with.

    uclient runs in lab host "main" in client-to-client mode (-y): two allocations that
    send to each other's relayed address, so every packet stays in the lab.
    """
    made = subprocess.run(
        [*CONFIDE, "turn-credentials", "--turn-secret-file", str(lab_coturn.secret_file),
         "--turn-ttl", "600", "--turn-urls", lab_coturn.url()],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    fields = parse_credentials(made.stdout)
    assert fields["url"] == lab_coturn.url()
    uclient = [
        "turnutils_uclient", "-y", "-c", "-n", "10", "-l", "200", "-z", "5",
        "-L", lab_host.ip, "-p", str(lab_coturn.port),
        "-u", fields["username"], "-w", fields["password"], lab_coturn.host,
    ]  # fmt: skip
    result = await asyncio.to_thread(lab_host.run, uclient, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # 2 clients x 10 messages went out through one relay and came back through the other.
    assert "tot_send_msgs=20, tot_recv_msgs=20" in output, output
    assert "Total lost packets 0 " in output, output
    # And the same tool gets nothing with a forged password.
    forged = [*uclient[:-2], credential_for(b"x" * 32, fields["username"]), uclient[-1]]
    refused = await asyncio.to_thread(lab_host.run, forged, timeout=60, check=False)
    assert refused.returncode != 0
    assert "Cannot complete Allocation" in refused.stdout + refused.stderr


def test_launcher_refuses_a_folder_name_it_cannot_quote(tmp_path: Path) -> None:
    result = subprocess.run(
        ["/bin/sh", str(LAUNCHER), str(tmp_path / "a|b")],
        env={"PATH": os.environ["PATH"], "TURN_SECRET": "0123456789abcdef0123"},
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert result.returncode == 2
    assert "may not contain" in result.stderr


def test_compose_uses_only_settings_the_launcher_knows() -> None:
    """docker-compose.yml passes TURN_* settings to run-coturn.sh, which documents each."""
    compose = (ROOT / "turn" / "docker-compose.yml").read_text()
    launcher = LAUNCHER.read_text()
    documented = set(re.findall(r"^#\s+(TURN\w+)", launcher, re.MULTILINE))
    documented |= set(re.findall(r"^#\s+TURN\w+, (TURN\w+)", launcher, re.MULTILINE))
    passed = set(re.findall(r"^\s+(TURN_\w+):", compose, re.MULTILINE))
    assert passed, "no TURN_* settings found in docker-compose.yml"
    assert passed <= documented, passed - documented
    # The launcher is the entrypoint, and the secret comes from a Docker secret.
    assert '"/confide/turn/run-coturn.sh"' in compose
    assert "TURN_SECRET_FILE: /run/secrets/turn_secret" in compose
    assert "static-auth-secret" not in compose


SCRIPTS = ("run-coturn.sh", "make-secret.sh", "run-with-server.sh")


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_parse_and_pass_shellcheck(script: str) -> None:
    path = ROOT / "turn" / script
    shell = "bash" if path.read_text().startswith("#!/usr/bin/env bash") else "sh"
    subprocess.run([shell, "-n", str(path)], check=True, timeout=10)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run(
        ["shellcheck", "--severity=info", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_the_secret_file_is_git_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "--quiet", "turn/secret"], cwd=ROOT, timeout=10, check=False
    )
    assert result.returncode == 0, "turn/secret must be in .gitignore"
