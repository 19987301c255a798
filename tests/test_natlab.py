"""The NAT lab's reduced matrix: real Linux NATs in namespaces, real coturn, real server,
real aiortc peers (``python -m natlab.peer``).  Each expectation of issue 10 is checked at
least once; ``make natlab`` runs the full matrix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from natlab.coturn import coturn_unavailable_reason
from natlab.fixtures import lab_unavailable_reason
from natlab.matrix import Matrix, broken_expectations, running_matrix

pytestmark = [pytest.mark.netns, pytest.mark.coturn]


@pytest.fixture
async def matrix() -> AsyncIterator[Matrix]:
    for reason in (lab_unavailable_reason(), coturn_unavailable_reason()):
        if reason is not None:
            pytest.skip(reason)
    async with running_matrix() as running:
        yield running


async def test_eim_pairs_connect_directly_through_srflx_without_turn(matrix: Matrix) -> None:
    cells = [await matrix.run_cell("eim", "eim", False),
             await matrix.run_cell("eim", "none", False)]  # fmt: skip
    assert all(c.connected for c in cells), cells
    assert broken_expectations(cells) == []
    # eim <-> eim: each reaches the other at its server-reflexive address.
    assert (cells[0].remote, cells[0].b_remote) == ("srflx", "srflx")
    assert cells[0].protocol == "udp" and not cells[0].relayed
