"""The NAT matrix's outputs: a table for the terminal, ``matrix.json`` and a PNG heat map.

The heat map needs matplotlib, a lab-only dependency (``pip install '.[lab]'``); it is
imported only when a map is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from natlab.matrix import Cell

__all__ = ["heat_map", "outcome", "table", "write_json"]

#: Outcome of a cell, worst first, with the heat map's colour for each.
OUTCOMES: Final = ("failed", "relayed", "direct")
COLOURS: Final = ("#d7301f", "#fdae61", "#1a9850")


def outcome(cell: Cell) -> str:
    """ "failed", "relayed" (through TURN) or "direct"."""
    if not cell.connected:
        return "failed"
    return "relayed" if cell.relayed else "direct"


def _pair(local: str | None, remote: str | None) -> str:
    return f"{local}->{remote}" if local else "-"


def table(cells: Sequence[Cell]) -> str:
    """One line per cell: the kinds, TURN, the outcome, seconds and each side's pair."""
    head = ("a", "b", "turn", "result", "seconds", "a's pair", "b's pair", "protocol")
    rows = [head]
    for c in cells:
        result = outcome(c) if not c.relayed else f"relay/{c.protocol}"
        rows.append((
            c.a, c.b, "on" if c.turn else "off", result,
            "-" if c.seconds is None else f"{c.seconds:.2f}",
            _pair(c.local, c.remote), _pair(c.b_local, c.b_remote), c.protocol or "-",
        ))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def write_json(cells: Sequence[Cell], path: Path) -> None:
    """``matrix.json``: one object per cell (``a``, ``b``, ``turn``, ``connected``,
    ``seconds``, ``local``, ``remote``, ``protocol``, and b's own pair)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([c.as_json() for c in cells], indent=1) + "\n")


def heat_map(cells: Sequence[Cell], path: Path, kinds: Sequence[str]) -> None:
    """Two grids of ``kinds`` × ``kinds`` (TURN off, TURN on): green direct, amber relayed,
    red failed, each square labelled with its path and seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    index = {k: i for i, k in enumerate(kinds)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2), constrained_layout=True)
    for ax, turn in zip(axes, (False, True), strict=True):
        grid = [[float("nan")] * len(kinds) for _ in kinds]
        labels = [[""] * len(kinds) for _ in kinds]
        for c in cells:
            if c.turn != turn or c.a not in index or c.b not in index:
                continue
            value = OUTCOMES.index(outcome(c))
            if not c.connected:
                label = "no\nconnection"
            elif c.relayed:
                label = f"relay {c.protocol}\n{c.seconds:.1f} s"
            else:
                label = f"direct\n{c.seconds:.1f} s"
            for i, j in ((index[c.a], index[c.b]), (index[c.b], index[c.a])):
                grid[i][j] = value
                labels[i][j] = label
        ax.imshow(grid, cmap=ListedColormap(COLOURS), vmin=0, vmax=2)
        for i in range(len(kinds)):
            for j in range(len(kinds)):
                if labels[i][j]:
                    ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8,
                            color="white" if grid[i][j] == 0 else "black")  # fmt: skip
        ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
        ax.set_yticks(range(len(kinds)), kinds)
        ax.set_title("with a TURN relay" if turn else "without TURN (direct only)")
    fig.suptitle("Confide across NATs: can two peers connect, and how?  "
                 "green: direct · amber: through the relay · red: no connection")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
