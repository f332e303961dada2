"""`fanflow bench`: fanflow and a seed-faithful variant side by side (fanflow.bench runs them);
prints a table, JSON rows, or a plot."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lambda_fns import constants as c

from .. import options, render
from ..bench import VARIANTS, BenchRow, run_bench


def register(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="benchmark fanflow against the seed's own pattern on the embedded target",
        description="Run fanflow and a seed-faithful variant (one PutEvents per case from an inline Map, "
        "plain ADD counting) side by side in one process on the embedded target. Each variant first runs "
        "one 1-case request, not reported, so that neither pays the process's one-time imports in its "
        "first measured size.")
    bench.add_argument("--sizes", type=options.CASES, nargs="+", default=[1, 10, 100, 1000], metavar="N",
                       help=f"request sizes in cases, each 1-{c.MAX_CASES} (default: 1 10 100 1000; 10000 on request)")
    bench.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), metavar="VARIANT",
                       help="which to run: fanflow (this project's stack) and/or seed (the seed's design, rebuilt "
                       "as a second stack) (default: both)")
    bench.add_argument("--compute-seconds", type=options.COMPUTE_SECONDS, default=0.0, metavar="S",
                       help=f"simulated work per case, 0-{c.COMPUTE_TIMEOUT_SECONDS} (default: %(default)s)")
    bench.add_argument("--lambda-concurrency", type=options.LAMBDA_CONCURRENCY, default=1000, metavar="N",
                       help="Lambda executions the embedded target runs at once, 2-10000, for both variants "
                       "(default: %(default)s)")
    options.add_aws_limits(bench, what="both variants")
    bench.add_argument("--timeout", type=options.SECONDS, default=900.0, metavar="SECONDS",
                       help="give up on one run after this long (default: %(default)s)")
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.add_argument("--plot", type=Path, metavar="FILE.png", help="draw wall time against cases")
    bench.set_defaults(handler=cmd_bench)


def rows_table(rows: list[BenchRow]) -> Table:
    table = Table(title="fanflow vs the seed's pattern (embedded target)")
    for column in ("variant", "cases", "wall s", "peak RSS MB", "PutEvents calls", "PreProcess history",
                   "counter writes", "fan-in executions", "Summary runs", "status"):
        table.add_column(column, justify="right" if column not in ("variant", "status") else "left")
    for row in rows:
        table.add_row(row.variant, str(row.cases), "-" if row.wallSeconds is None else f"{row.wallSeconds:.2f}",
                      f"{row.peakRssMb:.0f}", str(row.putEventsCalls), str(row.preprocessHistoryEvents),
                      str(row.counterWrites), str(row.fanInExecutions), str(row.summaryRuns),
                      row.status + (f" ({row.reason})" if row.reason else ""))
    return table


def plot(rows: list[BenchRow], path: Path) -> None:
    render.require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for variant in sorted({row.variant for row in rows}):
        points = [(row.cases, row.wallSeconds) for row in rows if row.variant == variant and row.wallSeconds]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=variant)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("cases per request")
    ax.set_ylabel("wall time to summary (s)")
    ax.set_title("fanflow vs seed-faithful variant, embedded target")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cmd_bench(args: argparse.Namespace) -> int:
    options.check_time_scale(args.aws_limits, args.time_scale)
    if args.plot:  # checked before the benchmark runs, not after
        options.check_writable(args.plot, "--plot")
        render.require_matplotlib()
    err = Console(stderr=True)
    # What runs now, on stderr; the results are in the table (or JSON) on stdout only.
    status = err.status("starting the embedded target...") if err.is_terminal else None

    def starting(variant: str, cases: int, number: int, total: int) -> None:
        message = f"fanflow bench: run {number} of {total}: {variant}, {cases} cases"
        if status is not None:
            status.update(message)
        else:
            print(message, file=sys.stderr, flush=True)

    from local.assembly import assembly_is_current

    if not all(assembly_is_current(context) for context in (None, {"seedVariant": "true"})):
        err.print("fanflow: synthesizing the CDK app (the first run, or its sources changed): about 10 s",
                  markup=False, highlight=False)
    with status if status is not None else contextlib.nullcontext():
        rows = run_bench(sorted(args.sizes), args.variants, compute_seconds=args.compute_seconds,
                         lambda_concurrency=args.lambda_concurrency, timeout=args.timeout, on_start=starting,
                         aws_limits=args.aws_limits, time_scale=args.time_scale or 1.0)
    if args.json:
        print(json.dumps([asdict(row) for row in rows]))
    else:
        render.output_console().print(rows_table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
