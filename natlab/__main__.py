"""``python -m natlab`` (``make natlab``): the full NAT matrix, its table, JSON and heat map.

Each NAT kind against each (itself included), TURN off and on, with real Linux NATs in
network namespaces, real coturn and real aiortc peers.  Exits 1 when an expectation of
issue 10 fails (see :func:`natlab.matrix.broken_expectations`), 2 when this machine cannot
run the lab (it needs root, iproute2, iptables and coturn).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from natlab.coturn import coturn_unavailable_reason
from natlab.fixtures import lab_unavailable_reason
from natlab.matrix import CONNECT_TIMEOUT, Cell, broken_expectations, full_pairs, running_matrix
from natlab.nat import KINDS

RESULTS = Path(__file__).resolve().parent / "results"


def _kinds(value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown kind(s) {unknown}; one of {', '.join(KINDS)}")
    return kinds


async def run(kinds: list[str], timeout: float) -> list[Cell]:
    # SIGTERM ends the run as Ctrl-C does: through every ``finally`` (peers, servers,
    # coturn, then the namespaces).
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    cells = []
    async with running_matrix() as matrix:
        print(f"lab up: namespaces {matrix.lab.prefix}*, coturn in {matrix.coturn.run_dir}",
              flush=True)  # fmt: skip
        for a, b in full_pairs(kinds):
            for turn in (False, True):
                cell = await matrix.run_cell(a, b, turn, timeout=timeout)
                cells.append(cell)
                print(f"  {a:>11} <-> {b:<11} TURN {'on ' if turn else 'off'}  {cell.path}",
                      flush=True)  # fmt: skip
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m natlab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--kinds", type=_kinds, default=list(KINDS), help="comma-separated NAT kinds (all)"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, metavar="DIR",
        help="where matrix.json and matrix.png go (default natlab/results)",
    )  # fmt: skip
    parser.add_argument(
        "--png", type=Path, metavar="FILE", help="the heat map (default DIR/matrix.png)"
    )
    parser.add_argument(
        "--timeout", type=float, default=CONNECT_TIMEOUT, metavar="S",
        help=f"seconds a pair may take to connect (default {CONNECT_TIMEOUT:g})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout: must be more than 0 seconds")
    for reason in (lab_unavailable_reason(), coturn_unavailable_reason()):
        if reason is not None:
            print(f"natlab: cannot run here: {reason}", file=sys.stderr)
            return 2
    from natlab.report import heat_map, table, write_json

    started = time.monotonic()
    print(f"NAT matrix: {', '.join(args.kinds)} (each pair TURN off and on)", flush=True)
    try:
        cells = asyncio.run(run(args.kinds, args.timeout))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("natlab: interrupted; the lab is torn down", file=sys.stderr)
        return 130
    print()
    print(table(cells))
    write_json(cells, args.out / "matrix.json")
    png = args.png or args.out / "matrix.png"
    heat_map(cells, png, args.kinds)
    print(f"\n{len(cells)} pairs in {time.monotonic() - started:.0f} s; "
          f"wrote {args.out / 'matrix.json'} and {png}")  # fmt: skip
    broken = broken_expectations(cells)
    for line in broken:
        print(f"EXPECTATION FAILED: {line}")
    if not broken:
        print("every expectation holds")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
