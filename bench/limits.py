"""The server's per-address limits, lifted for benchmarks that open every socket from one
address (issue 9 items 3 and 8: ``--max-connections-per-ip``, ``--join-rate``,
``--join-burst``; defaults in server/config.py and docs/PROTOCOL.md).

A benchmark's load client, its pages and its peers all come from one address, so the
limits meant for one person's browser would refuse the load or throttle the joins being
timed. One source for every bench: as ``ServeConfig`` fields for a server in the bench's
own event loop, as command-line options for ``python -m server serve``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ONE_ADDRESS", "ONE_ADDRESS_OPTIONS"]

#: ``ServeConfig`` overrides: far above anything a benchmark opens or joins.
ONE_ADDRESS: dict[str, Any] = {
    "max_connections_per_ip": 1_000_000,
    "join_rate": 1_000_000,
    "join_burst": 1_000_000,
}
#: The same for ``confide serve`` (its option for field ``x_y`` is ``--x-y``).
ONE_ADDRESS_OPTIONS: tuple[str, ...] = tuple(
    part
    for field, value in ONE_ADDRESS.items()
    for part in (f"--{field.replace('_', '-')}", str(value))
)
