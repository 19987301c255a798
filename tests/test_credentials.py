"""TURN REST API credentials (server/turn.py)."""

from __future__ import annotations

from server.turn import credential_for, ice_servers, mint_credentials

SECRET = b"a-test-shared-secret-0123456789"


def test_hmac_matches_a_known_vector() -> None:
    # Computed independently with:
    #   printf %s 1764115200:4f9a1c2b3d4e5f60 \
    #     | openssl dgst -sha1 -hmac a-test-shared-secret-0123456789 -binary | base64
    assert credential_for(SECRET, "1764115200:4f9a1c2b3d4e5f60") == "gMPOJnC4O2qrqHJpdlbSiY7cfVA="


def test_username_carries_the_expiry_and_a_random_part() -> None:
    first = mint_credentials(SECRET, ttl=600, now=1_000_000.0)
    second = mint_credentials(SECRET, ttl=600, now=1_000_000.0)
    assert first.expires == 1_000_600
    assert first.username.startswith("1000600:") and first.username != second.username
    assert first.credential == credential_for(SECRET, first.username)


def test_expiry_is_honoured_by_the_ttl() -> None:
    short = mint_credentials(SECRET, ttl=1, now=5.0)
    long = mint_credentials(SECRET, ttl=3600, now=5.0)
    assert int(short.username.split(":")[0]) == 6
    assert int(long.username.split(":")[0]) == 3605


def test_ice_servers_list() -> None:
    assert ice_servers("stun:h:1", (), None, 60) == [{"urls": ["stun:h:1"]}]
    assert ice_servers(None, ("turn:h:2",), None, 60) == []
    [stun, turn] = ice_servers("stun:h:1", ("turn:h:2",), SECRET, 60, now=0)
    assert turn["urls"] == ["turn:h:2"] and turn["username"].startswith("60:")
    assert SECRET.decode() not in repr(turn)
