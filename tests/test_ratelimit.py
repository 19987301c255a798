"""Tests of the token buckets shared by signaling and STUN (server/ratelimit.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.ratelimit import KeyedRateLimiter, TokenBucket, address_key


def test_token_bucket_starts_full_and_never_exceeds_its_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=3, now=0.0)
    assert [bucket.take(1000.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_full_once_refilled() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    assert bucket.full(0.0)
    assert bucket.take(0.0)
    assert not bucket.full(0.05)
    assert bucket.full(0.1)


def test_keyed_limiter_refills_at_rate() -> None:
    limiter = KeyedRateLimiter(rate=10.0, burst=3, max_keys=16)
    assert [limiter.allow("192.0.2.1", now=0.0) for _ in range(4)] == [True] * 3 + [False]
    assert not limiter.allow("192.0.2.1", now=0.05)  # half a token
    assert limiter.allow("192.0.2.1", now=0.1)
    assert not limiter.allow("192.0.2.1", now=0.1)
    # A long pause refills to the burst, not beyond.
    assert [limiter.allow("192.0.2.1", now=100.0) for _ in range(4)] == [True] * 3 + [False]


def test_keyed_limiter_keeps_keys_apart() -> None:
    limiter = KeyedRateLimiter(rate=1.0, burst=1, max_keys=16)
    assert limiter.allow("a", now=0.0)
    assert not limiter.allow("a", now=0.0)
    assert limiter.allow("b", now=0.0)
    assert len(limiter) == 2


def test_keyed_limiter_table_is_bounded_and_pruned() -> None:
    limiter = KeyedRateLimiter(rate=10.0, burst=2, max_keys=3)  # refills in 0.2 s
    assert all(limiter.allow(f"192.0.2.{i}", now=0.0) for i in range(3))
    assert not limiter.allow("192.0.2.3", now=0.0)  # full of live buckets: refused
    assert limiter.allow("192.0.2.0", now=0.0)  # a known key still has its bucket
    assert len(limiter) == 3
    # Once the buckets have refilled they carry no state and make room.
    assert limiter.allow("192.0.2.3", now=0.3)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", now=0.3 + i * 0.01)
        assert len(limiter) <= 3


@pytest.mark.parametrize(
    ("rate", "burst", "max_keys"),
    [(0.0, 1, 1), (-1.0, 1, 1), (math.nan, 1, 1), (math.inf, 1, 1), (1.0, 0, 1), (1.0, 1, 0)],
)
def test_keyed_limiter_rejects_bad_settings(rate: float, burst: int, max_keys: int) -> None:
    with pytest.raises(ValueError):
        KeyedRateLimiter(rate, burst, max_keys)


def test_address_key_groups_ipv6_by_slash_64_and_mapped_by_ipv4() -> None:
    assert address_key("2001:db8:0:1::1") == address_key("2001:db8:0:1::2")  # same /64
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8:0:2::1")
    assert address_key("fe80::1%lo") == address_key("fe80::2")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"
    with pytest.raises(OSError):
        address_key("not:an address")


@given(
    times=st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=200),
    rate=st.floats(min_value=0.1, max_value=100),
    burst=st.integers(min_value=1, max_value=20),
)
def test_keyed_limiter_never_allows_more_than_burst_plus_refill(
    times: list[float], rate: float, burst: int
) -> None:
    limiter = KeyedRateLimiter(rate, burst, max_keys=4)
    times = sorted(times)
    allowed = sum(limiter.allow("k", now) for now in times)
    span = times[-1] - times[0] if times else 0.0
    assert allowed <= burst + span * rate + 1e-9
