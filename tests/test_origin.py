"""The WebSocket origin decision (server/origin.py): the hosts the server is reached by."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.origin import origin_allowed

LAN = ("192.168.1.5", 8080)
LOOPBACK = ("127.0.0.1", 8080)


@pytest.mark.parametrize(
    ("origin", "reached"),
    [
        ("http://192.168.1.5:8080", LAN),
        ("https://192.168.1.5:8080", LAN),
        ("http://127.0.0.1:8080", LOOPBACK),
        ("http://localhost:8080", LOOPBACK),
        ("http://[::1]:8080", LOOPBACK),
        ("http://localhost:8080", ("::1", 8080, 0, 0)[:2]),
        ("http://192.168.1.5:8080", ("::ffff:192.168.1.5", 8080)),
        ("http://[fe80::1]:8080", ("fe80::1%eth0", 8080)),
        ("http://192.168.1.5", ("192.168.1.5", 80)),
        ("https://192.168.1.5", ("192.168.1.5", 443)),
    ],
)
def test_the_page_the_server_serves_is_allowed(origin: str, reached: tuple[str, int]) -> None:
    assert origin_allowed(origin, reached=reached)


@pytest.mark.parametrize(
    ("origin", "reached"),
    [
        ("http://evil.example", LAN),  # DNS rebinding: its Host header says evil.example too
        ("http://evil.example:8080", LOOPBACK),
        ("http://localhost:8080", LAN),  # loopback names only when reached on loopback
        ("http://192.168.1.5:3000", LAN),  # another port of the same host is another origin
        ("http://127.0.0.2:8080", LOOPBACK),
        ("null", LAN),
        ("file://", LAN),
        ("ftp://192.168.1.5:8080", LAN),
        ("http://192.168.1.5:99999", LAN),
        ("http://192.168.1.5:8080", None),
        ("", LAN),
    ],
)
def test_other_origins_are_refused(origin: str, reached: tuple[str, int] | None) -> None:
    assert not origin_allowed(origin, reached=reached)


def test_public_host_is_allowed_on_any_port() -> None:
    # Behind a proxy the public port is not the one the server listens on.
    for origin in ("https://chat.example", "https://CHAT.example:8443", "http://chat.example"):
        assert origin_allowed(origin, reached=LOOPBACK, public_host="chat.example")
    assert not origin_allowed("https://evil.example", reached=LOOPBACK, public_host="chat.example")


def test_allowed_origins_and_the_wildcard() -> None:
    allowed = ("https://app.example",)
    assert origin_allowed("https://app.example/", reached=LAN, allowed_origins=allowed)
    assert not origin_allowed("https://app.example:444", reached=LAN, allowed_origins=allowed)
    assert origin_allowed("http://evil.example", reached=LAN, allowed_origins=("*",))


def test_clients_without_origin_are_not_browsers_and_pass() -> None:
    assert origin_allowed(None, reached=None)


@given(origin=st.text(max_size=80), public_host=st.none() | st.text(max_size=20))
def test_fuzz_never_raises(origin: str, public_host: str | None) -> None:
    result = origin_allowed(origin, reached=LAN, public_host=public_host)
    assert isinstance(result, bool)
