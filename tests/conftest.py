"""Shared pytest configuration: each real component has its own fixture module.

- ``tests.fixtures_server``: a real Confide server on a free loopback port.
- ``natlab.fixtures``: network namespaces (the lab) and Chromium inside them.
- ``tests.fixtures_coturn``: a real coturn process.
- ``tests.fixtures_redis``: a real redis-server (persistence off).
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures_server",
    "natlab.fixtures",
    "tests.fixtures_coturn",
    "tests.fixtures_redis",
]
