"""Token buckets: one per connection (signaling) or one per source in a bounded table (STUN).

A :class:`TokenBucket` holds at most ``burst`` tokens and gains ``rate`` a
second; each event spends one. :class:`KeyedRateLimiter` keeps one bucket per
key (a source address, a client IP) in a table of bounded size, so a flood of
new keys costs memory only up to that bound. :func:`address_key` maps a host
to the key a limit per address should use.

Time is passed in (``now``, any monotonic clock in seconds), so both are plain
objects tested with plain calls (tests/test_ratelimit.py).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Hashable

__all__ = ["KeyedRateLimiter", "TokenBucket", "address_key"]


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` stored, full at ``now``."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled by ``now``: it then carries no state."""
        return self._tokens + (now - self._stamp) * self.rate >= self.burst


class KeyedRateLimiter:
    """A :class:`TokenBucket` per key, in a table of at most ``max_keys`` buckets.

    When the table is full, the buckets that have refilled (and so carry no
    state) are pruned, at most once per refill time so a flood of new keys
    cannot make every event scan the table; a new key that still finds no room
    is refused, which keeps a reflector closed under a spoofed-source flood.
    """

    __slots__ = ("_buckets", "_burst", "_max_keys", "_next_prune", "_rate", "_refill_time")

    def __init__(self, rate: float, burst: int, max_keys: int) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be positive and finite, not {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        self._rate = float(rate)
        self._burst = burst
        self._max_keys = max_keys
        self._refill_time = burst / self._rate
        self._next_prune = -math.inf
        self._buckets: dict[Hashable, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Hashable, now: float) -> bool:
        """Take a token from ``key``'s bucket; ``False`` if it is empty or there is no room."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._prune(now)
                if len(self._buckets) >= self._max_keys:
                    return False
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + self._refill_time
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if not bucket.full(now)
        }


_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def address_key(host: str) -> str | bytes:
    """The key of a limit per address: IPv4 as is, IPv6 by its /64.

    One host commonly holds a whole /64 (RFC 7421) and could otherwise spread
    a flood over it; an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2) counts as
    its IPv4 address. Raises ``OSError`` for a host that is not an address.
    """
    if ":" not in host:
        return host
    packed = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    if packed[:12] == _V4_MAPPED_PREFIX:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return packed[:8]
