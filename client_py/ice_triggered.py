"""A triggered check for a pair whose own check is still in progress (RFC 8445 §7.3.1.4).

When a Binding request arrives on a candidate pair, RFC 8445 §7.3.1.4 has the agent
check that pair at once ("triggered check"), and says what to do when its own check of
the pair is already In-Progress: cancel that transaction's retransmissions and enqueue
a new check of the pair. aioice (0.13) starts triggered checks only for Frozen, Failed
and Waiting pairs; an In-Progress one waits for its own retransmission, 500 ms later
(``aioice.stun.RETRY_RTO``).

That is what made TURN over TCP take ~500 ms to set up where UDP took ~30 ms
(bench/bench_turn.py, issue 13 item 6). Both peers relay-only: the controlled peer's
first check reaches the other peer's allocation before that peer has created its
permission (it creates it, with a ChannelBind, when it sends its own first check), so
coturn drops it, as RFC 8656 §9 requires. The controlling peer's check, a moment later,
gets through and nominates the pair; the controlled side answers it, but its own check of
that pair was In-Progress, so it completed only with the retransmission. With the new
check the permission exists by then and the pair succeeds in one round trip. Over UDP
the two ChannelBinds usually landed in the other order, which is why only TCP showed it.

:func:`install` wraps ``aioice.Connection.check_incoming`` once per process; the Python
peer installs it on import (client_py/peer.py).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aioice import ice, stun

__all__ = ["install", "installed"]

_ORIGINAL = ice.Connection.check_incoming
#: Pairs already checked again (weakly held: they go with their connection).
_RETRIGGERED: weakref.WeakSet[ice.CandidatePair] = weakref.WeakSet()


def _check_incoming(
    self: ice.Connection, message: stun.Message, addr: tuple[str, int], protocol: Any
) -> None:
    in_progress = _in_progress_pair(self, addr, protocol)
    _ORIGINAL(self, message, addr, protocol)
    if in_progress is None or in_progress.state != ice.CandidatePair.State.IN_PROGRESS:
        return
    task = in_progress.task
    if task is None or task.done() or in_progress in _RETRIGGERED:
        return
    # Cancel the check's transaction (no more retransmissions, RFC 8445 §7.3.1.4) and
    # check the pair again now. The cancelled check_start ends without touching the
    # pair's state; the new one sets it from its own transaction's outcome. Once per
    # pair: when both sides' checks cross, restarting on every request that arrives
    # would drop every response (each answers a cancelled transaction) for ever.
    _RETRIGGERED.add(in_progress)
    task.cancel()
    in_progress.task = asyncio.ensure_future(self.check_start(in_progress))


def _in_progress_pair(
    connection: ice.Connection, addr: tuple[str, int], protocol: Any
) -> ice.CandidatePair | None:
    """The pair the request arrived on, if its own check is In-Progress."""
    for pair in connection._check_list:
        if (
            pair.protocol is protocol
            and pair.remote_addr == addr
            and pair.state == ice.CandidatePair.State.IN_PROGRESS
        ):
            return pair
    return None


def install() -> None:
    """Make aioice start a triggered check for In-Progress pairs too (idempotent)."""
    ice.Connection.check_incoming = _check_incoming  # type: ignore[method-assign]


def installed() -> bool:
    return ice.Connection.check_incoming is _check_incoming
