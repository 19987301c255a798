"""bench/reference.py: a row never shows a ratio from a reference that cannot be right."""

from __future__ import annotations

import pytest

from bench.__main__ import print_summary
from bench.bench_signaling import idle_row
from bench.reference import Plausible, broken_rows, compare, exit_code, figure

KIB = Plausible(1.0, 1024.0)


def test_zero_reference_is_broken_not_missing() -> None:
    # Issue 13: peerjs-server's "0.0 KiB per idle WebSocket" was read as no reference.
    row = compare("signaling", "RSS", 16.1, "KiB", 0.0, "peerjs-server", plausible=KIB,
                  higher_is_better=False)  # fmt: skip
    assert row["ratio"] is None
    assert row["ok"] is False
    assert row["broken"] is not None and row["broken"].startswith("reference broken: ")
    assert broken_rows([row]) == [f"RSS: {row['broken']}"]
    assert exit_code([row]) == 1


def test_missing_figure_is_not_a_zero() -> None:
    row = compare("signaling", "p99", None, "ms", 0.3, "peerjs-server",
                  plausible=Plausible(0.005, 10_000), higher_is_better=False)  # fmt: skip
    assert row["ratio"] is None and row["broken"] == "measurement broken: figure missing"
    assert figure("client", "size", 0, "bytes", plausible=Plausible(1, 10))["broken"]


def test_plausible_rows_compare_and_judge() -> None:
    lower = compare("signaling", "RSS", 10.0, "KiB", 11.1, "peerjs-server", plausible=KIB,
                    higher_is_better=False)  # fmt: skip
    assert lower["broken"] is None and lower["ok"] is True
    assert abs(lower["ratio"] - 10.0 / 11.1) < 1e-9
    faster = compare("turn", "setup", 60.0, "ms", 30.0, "TURN/UDP", plausible=Plausible(1, 1e5),
                     higher_is_better=False, target_ratio=1.5)  # fmt: skip
    assert faster["ok"] is False and faster["target"] == "<= 1.50x"
    assert exit_code([lower, faster]) == 0


def test_idle_row_refuses_a_reference_that_lost_its_connections() -> None:
    def side(per_kib: float, still_open: int) -> dict[str, object]:
        return {"idle": {"asked": 10_000, "still_open_at_end": still_open,
                         "per_connection": per_kib * 1024}}  # fmt: skip

    row = idle_row(side(16.0, 10_000), side(11.0, 4_000))
    assert row["ratio"] is None and "4,000 of 10,000" in row["broken"]
    assert idle_row(side(16.0, 10_000), side(11.0, 10_000))["broken"] is None


def test_summary_prints_why_instead_of_a_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    row = compare("signaling", "RSS", 16.1, "KiB", 0.0, "peerjs-server", plausible=KIB,
                  higher_is_better=False)  # fmt: skip
    bench = {"name": "bench_signaling", "status": "exit 1", "seconds": 1.0, "rows": [row],
             "load_average": (1.0, 2.0)}  # fmt: skip
    print_summary([bench])
    out = capsys.readouterr().out
    assert "reference broken: peerjs-server reference 0 KiB outside 1..1024" in out
    assert "load average 1.00 -> 2.00" in out
