"""Summaries of repeated measurements, one shape for every benchmark."""

from __future__ import annotations

import statistics

__all__ = ["summary"]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90 (nearest rank), min, max and count of ``values`` (at least one)."""
    if not values:
        raise ValueError("no measurements to summarise")
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "median": statistics.median(ordered),
        "p90": p90,
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
    }
