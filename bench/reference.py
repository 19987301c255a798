"""Headline rows: a figure against its reference from the same run, checked first.

A ratio is only as good as its reference. A reference of zero (peerjs-server's
"0.0 KiB per idle WebSocket", issue 13) used to be read as "no reference" and
silently dropped the comparison; a figure of zero (no latency samples, read as
0 ms) looked like a win. Every row is therefore built here: the figure and the
reference are checked against a plausible range first, and a row whose
reference (or figure) is outside it says "reference broken: …" instead of a
ratio, counts as not met, and makes its benchmark exit non-zero
(``exit_code``).

A row is a dict in the shape ``python -m bench`` gathers (bench/__main__.py):
``bench``, ``metric``, ``value``, ``unit``, ``reference``, ``reference_name``,
``ratio``, ``target``, ``ok`` and ``broken`` (None, or why no ratio is shown).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Plausible", "broken_rows", "compare", "exit_code", "figure"]


@dataclass(frozen=True, slots=True)
class Plausible:
    """The range a measured figure can be in on any machine this runs on."""

    low: float
    high: float

    def problem(self, value: Any, what: str, unit: str) -> str | None:
        """Why ``value`` cannot be a real measurement, or None when it can."""
        if value is None:
            return f"{what} missing"
        if not isinstance(value, int | float) or math.isnan(value):
            return f"{what} not a number ({value!r})"
        if not self.low <= value <= self.high:
            return f"{what} {value:,.3g} {unit} outside {self.low:g}..{self.high:g}"
        return None


def compare(
    bench: str,
    metric: str,
    value: float | None,
    unit: str,
    reference: float | None,
    reference_name: str,
    *,
    plausible: Plausible,
    higher_is_better: bool,
    target_ratio: float | None = 1.0,
    target: str | None = None,
    ok: bool | None = None,
) -> dict[str, Any]:
    """A row comparing ``value`` with ``reference`` (both in ``unit``).

    The target is ``value / reference >= target_ratio`` (or ``<=`` when lower is
    better) unless ``target`` and ``ok`` say otherwise (an absolute target, such
    as "< 400 ms", with the reference shown for scale); ``target_ratio=None``:
    no target, the ratio is shown for context.
    """
    broken = plausible.problem(reference, f"{reference_name} reference", unit)
    if broken is not None:
        broken = f"reference broken: {broken}"
    else:
        mine = plausible.problem(value, "figure", unit)
        broken = None if mine is None else f"measurement broken: {mine}"
    ratio = None
    if broken is None:
        assert value is not None and reference is not None
        ratio = value / reference
        if ok is None and target_ratio is not None:
            ok = ratio >= target_ratio if higher_is_better else ratio <= target_ratio
    if target is None and target_ratio is not None:
        target = f"{'>=' if higher_is_better else '<='} {target_ratio:.2f}x"
    return {
        "bench": bench,
        "metric": metric,
        "value": value,
        "unit": unit,
        "reference": reference,
        "reference_name": reference_name,
        "ratio": ratio,
        "target": target,
        "ok": False if broken is not None else ok,
        "broken": broken,
    }


def figure(
    bench: str,
    metric: str,
    value: float | None,
    unit: str,
    *,
    plausible: Plausible,
    target: str | None = None,
    ok: bool | None = None,
) -> dict[str, Any]:
    """A row without a reference (an absolute target, or a figure shown for context)."""
    mine = plausible.problem(value, "figure", unit)
    return {
        "bench": bench,
        "metric": metric,
        "value": value,
        "unit": unit,
        "reference": None,
        "reference_name": None,
        "ratio": None,
        "target": target,
        "ok": False if mine is not None else ok,
        "broken": None if mine is None else f"measurement broken: {mine}",
    }


def broken_rows(rows: Iterable[dict[str, Any]]) -> list[str]:
    """``metric: why`` for every row whose figure or reference cannot be right."""
    return [f"{row['metric']}: {row['broken']}" for row in rows if row.get("broken")]


def exit_code(rows: Iterable[dict[str, Any]]) -> int:
    """A benchmark's exit status: 1 when any row is broken (it prints them), else 0."""
    broken = broken_rows(rows)
    for line in broken:
        print(f"ERROR: {line}")
    return 1 if broken else 0
