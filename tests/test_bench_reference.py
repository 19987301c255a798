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


def test_a_failed_latency_run_is_missing_not_zero() -> None:
    # A run that overran (a starved machine at 50k msg/s) used to be lost with the whole
    # bench; now its figures are None, and its rows say so instead of reading 0 ms.
    from bench.bench_signaling import CONFIDE, PEERJS, Target, comparisons, failed_run, summarise

    def run(rate: int, p50: float, p99: float) -> dict[str, object]:
        return {"offered_per_s": rate, "sent_per_s": rate, "delivered_per_s": rate,
                "p50_ms": p50, "p99_ms": p99, "client_cpu_util": 0.1,
                "server_cpu_util": 0.1, "bottleneck": "neither", "errors": 0,
                "unexpectedCloses": 0}  # fmt: skip

    relay = dict(run(0, 1.0, 2.0), delivered_per_s=50_000.0)
    ours = Target(
        CONFIDE,
        "confide",
        "",
        relay=[relay],
        rate=[run(5000, 0.2, 0.8), failed_run(50_000, TimeoutError("overran"))],
    )
    theirs = Target(PEERJS, "peerjs", "", relay=[relay],
                    rate=[run(5000, 0.1, 0.3), run(50_000, 1.0, 3.0)])  # fmt: skip
    rows = comparisons([summarise(ours, 5000), summarise(theirs, 5000)])
    by_metric = {row["metric"]: row for row in rows}
    at_50k = by_metric["p99 latency at 50,000 msg/s offered (best)"]
    assert at_50k["value"] is None and at_50k["broken"] == "measurement broken: figure missing"
    light = by_metric["p99 latency at 5,000 msg/s offered (best)"]
    assert light["broken"] is None and light["ok"] is False  # 0.8 ms against 0.3 ms
