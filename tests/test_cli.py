"""The ``confide`` command: options, environment variables, exit codes, startup, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from natlab.servers import ROOT, server_process
from server.config import (
    ServeConfig,
    config_from_namespace,
    default_text,
    env_name,
    option_names,
)
from server.errors import ConfigError
from server.qr import QR_MAX_BYTES
from server.stun.message import MAX_ATTRIBUTES, MAX_REQUEST_SIZE
from server.tls import certificate_fingerprint
from tests.signaling_client import joined


def confide(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=30,
    )


def test_defaults() -> None:
    config = config_from_namespace({}, environ={})
    assert config == ServeConfig()
    assert (config.host, config.port, config.stun_port) == ("127.0.0.1", 8080, 3478)
    assert config.turn_ttl == 3600 and config.room_capacity == 16


#: A valid value, other than the default, for every ``confide serve`` option.
#: A new option needs a line here (the test below says so).
SAMPLES: dict[str, str] = {
    "host": "0.0.0.0",
    "port": "9000",
    "stun_host": "127.0.0.2",
    "stun_port": "off",
    "public_host": "chat.example",
    "turn_urls": "turn:relay.example:3478?transport=udp",
    "turn_secret_file": "SECRET",  # a file the test writes
    "turn_ttl": "60",
    "tls_cert": "CERT",
    "tls_key": "KEY",
    "tls_self_signed": "1",
    "log_level": "debug",
    "room_capacity": "4",
    "rate": "2.5",
    "burst": "7",
    "join_timeout": "3",
    "heartbeat": "5",
    "resume_grace": "6",
    "max_message_size": "1000",
    "send_buffer": "9",
    "max_connections_per_ip": "5",
    "join_rate": "0.5",
    "join_burst": "3",
    "trusted_proxies": "10.0.0.1,::1",
    "allowed_origins": "https://a.example,https://b.example",
    "stun_rate": "3",
    "stun_burst": "4",
    "stun_alt_port": "3479",
    "stun_alt_host": "127.0.0.3",
    "redis_url": "redis://redis.example:6379/0",
    "presence_ttl": "2.5",
}
# Pairs the config refuses together; each is tried on its own with a partner.
_PARTNERS = {
    "turn_urls": ("turn_secret_file",),
    "tls_cert": ("tls_key",),
    "tls_key": ("tls_cert",),
    "stun_alt_host": ("stun_alt_port",),
}


def _sample_values(tmp_path: Path) -> dict[str, str]:
    files = {"SECRET": "a-test-shared-secret-0123456789", "CERT": "cert", "KEY": "key"}
    values = dict(SAMPLES)
    for option, value in SAMPLES.items():
        if value in files:
            path = tmp_path / value.lower()
            path.write_text(files[value])
            values[option] = str(path)
    return values


def test_every_option_has_an_environment_variable(tmp_path: Path) -> None:
    assert set(option_names()) == set(SAMPLES), "add a sample value for each new option"
    values = _sample_values(tmp_path)
    for option in option_names():
        given = {name: values[name] for name in (option, *_PARTNERS.get(option, ()))}
        from_env = config_from_namespace({}, environ={env_name(k): v for k, v in given.items()})
        from_cli = config_from_namespace(given, environ={})
        assert from_env == from_cli, option
        assert getattr(from_env, option) != getattr(ServeConfig(), option), option
    # The command line wins over the environment.
    config = config_from_namespace({"port": "9001"}, environ={"CONFIDE_PORT": "9000"})
    assert config.port == 9001


def test_every_option_is_a_config_field() -> None:
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    assert set(option_names()) <= fields
    # Only what an option produces is not an option itself.
    assert fields - set(option_names()) == {"turn_secret"}


def test_help_shows_the_dataclass_defaults_and_variables() -> None:
    result = confide("serve", "--help", env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    # Each option's entry: its first line and the indented lines after it.
    lines: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("  --"):
            flag = line.split()[0]
            lines[flag] = line
        elif line.startswith("    ") and lines:
            lines[flag] += " " + line.strip()
    for option in option_names():
        line = lines["--" + option.replace("_", "-")]
        assert f"[${env_name(option)}]" in line
        default = default_text(option)
        if default is None:
            assert "(default " not in line, line
        else:
            assert line.count("(default") == 1 and f"(default {default})" in line, line
    assert "(default 3478)" in lines["--stun-port"] and "(default 50)" in lines["--rate"]
    # The limits that are not options are listed too, from the constants that set them.
    text = " ".join(result.stdout.split())
    assert f"over {MAX_REQUEST_SIZE} bytes or {MAX_ATTRIBUTES} attributes" in text
    assert f"at most {QR_MAX_BYTES} bytes of text" in text


def limits_table() -> list[tuple[str, str, str]]:
    """(limit, set by, default) of each row of PROTOCOL.md's "Limits (hostile input)" tables."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## Limits (hostile input)", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`") and cells[0] != "limit":
            rows.append((cells[0], cells[1].strip("`"), cells[2]))
    return rows


def test_documented_limits_match_the_code() -> None:
    rows = limits_table()
    assert len(rows) >= 5
    for limit, set_by, default in rows:
        if set_by.startswith("--"):
            expected = default_text(set_by[2:].replace("-", "_"))
        else:
            module, _, name = set_by.rpartition(".")
            expected = str(getattr(importlib.import_module(module), name))
        assert expected is not None, limit
        # The number, then at most a unit ("548 bytes").
        assert default == expected or default.startswith(expected + " "), (limit, expected)


def test_readme_options_table_shows_the_dataclass_defaults() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The command", 1)[1].split("\n## ", 1)[0]
    checked = 0
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`--"):
            continue
        options = [flag.strip("` ")[2:].replace("-", "_") for flag in cells[0].split(",")]
        defaults = [value.strip() for value in cells[1].split(",")]
        if len(defaults) != len(options):
            defaults = defaults[:1] * len(options)  # one value said of all ("off")
        for option, shown in zip(options, defaults, strict=True):
            assert option in option_names(), option
            expected = default_text(option)
            if expected is not None:
                # The number, then at most a unit ("50/s", "30 s").
                assert shown == expected or shown.startswith((expected + " ", expected + "/"))
                checked += 1
    assert checked >= 5


def test_server_modules_do_not_need_aioice() -> None:
    # aioice is a test (and peer) dependency only: the server must import without it.
    code = "import sys; sys.modules['aioice'] = None; import server.app, server.__main__"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("given", "option"),
    [
        ({"port": "http"}, "--port"),
        ({"port": "70000"}, "--port"),
        ({"host": "not an address"}, "--host"),
        ({"room_capacity": "1"}, "--room-capacity"),
        ({"rate": "-1"}, "--rate"),
        ({"log_level": "loud"}, "--log-level"),
        ({"turn_urls": "http://x"}, "--turn-urls"),
        ({"turn_urls": "turn:x:3478"}, "--turn-secret-file"),
        ({"turn_secret_file": "/no/such/file"}, "--turn-secret-file"),
        ({"tls_cert": "/no/such/cert"}, "--tls-cert"),
    ],
)
def test_bad_values_name_their_option(given: dict[str, str], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_namespace(given, environ={})
    assert info.value.option == option


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("short\n")
    with pytest.raises(ConfigError) as info:
        config_from_namespace({"turn_secret_file": str(secret)}, environ={})
    assert info.value.option == "--turn-secret-file"


def test_the_secret_never_shows_in_the_config_repr(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-test-shared-secret-0123456789\n")
    config = config_from_namespace({"turn_secret_file": str(secret)}, environ={})
    assert config.turn_secret == b"a-test-shared-secret-0123456789"
    assert "a-test-shared" not in repr(config)


def test_cli_bad_option_exits_2_naming_it() -> None:
    result = confide("serve", "--port", "abc")
    assert result.returncode == 2
    assert "--port" in result.stderr and "'abc'" in result.stderr


def test_cli_bad_environment_variable_exits_2_naming_it() -> None:
    result = confide("serve", env={"CONFIDE_STUN_PORT": "-5"})
    assert result.returncode == 2
    assert "CONFIDE_STUN_PORT" in result.stderr


def test_cli_unknown_option_and_command_exit_2() -> None:
    assert confide("serve", "--colour").returncode == 2
    assert confide("dance").returncode == 2


@pytest.mark.parametrize(
    ("args", "option"),
    [(["--rate", "-1"], "--rate"), (["--burst", "0"], "--burst"), (["--port", "70000"], "--port")],
)
def test_stun_command_bad_values_exit_2_naming_the_option(args: list[str], option: str) -> None:
    result = confide("stun", *args)
    assert result.returncode == 2
    assert option in result.stderr and "Traceback" not in result.stderr


def test_turn_credentials_command(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("a-test-shared-secret-0123456789")
    result = confide("turn-credentials", "--turn-secret-file", str(secret), "--turn-ttl", "60")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert lines["username"].strip().split(":")[0].isdigit()
    assert "a-test-shared-secret" not in result.stdout
    missing = confide("turn-credentials")
    assert missing.returncode == 2 and "--turn-secret-file" in missing.stderr


async def test_serve_prints_the_url_then_shuts_down_gracefully() -> None:
    async with server_process() as running:
        assert running.process is not None
        async with joined(running.ws_url, "r", "A") as client:
            async with aiohttp.ClientSession() as http:
                async with http.get(running.url + "/healthz") as response:
                    assert (await response.json())["peers"] == 1
            running.process.send_signal(signal.SIGTERM)
            assert await client.expect_close() == 1001
        assert await asyncio.wait_for(running.process.wait(), 10) == 0


async def test_serve_over_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    async with server_process(
        "127.0.0.1", None, "--tls-self-signed", env={"XDG_STATE_HOME": str(tmp_path)}
    ) as running:
        assert running.fingerprint is not None
        cert = tmp_path / "confide" / "selfsigned-cert.pem"
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            url = f"https://localhost:{running.port}/healthz"
            async with http.get(url, ssl=context) as response:
                assert (await response.json())["status"] == "ok"
        assert running.fingerprint == certificate_fingerprint(cert)
