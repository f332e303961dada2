"""`fanflow bench`: fanflow and a seed-faithful variant side by side, in one process, on
the embedded target, for a list of request sizes. Prints a table, JSON rows, or a plot."""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lambda_fns import constants as c
from lambda_fns.request_model import parse_request

from . import options, render, samples
from .client import FanflowClient, RequestFailed

VARIANTS = ("fanflow", "seed")
AWS_HISTORY_LIMIT = 25_000  # events in one Standard workflow execution


@dataclass
class BenchRow:
    variant: str
    cases: int
    wallSeconds: float | None
    peakRssMb: float
    putEventsCalls: int
    preprocessHistoryEvents: int
    summaryRuns: int
    status: str
    reason: str = ""
    counterWrites: int = 0  # writes to the request's counter row, as the engine saw them
    fanInExecutions: int = 0  # executions of the fan-in workflow that counted any of its cases


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
    bench.add_argument("--timeout", type=options.SECONDS, default=900.0, metavar="SECONDS",
                       help="give up on one run after this long (default: %(default)s)")
    bench.add_argument("--json", action="store_true", help="print the rows as JSON")
    bench.add_argument("--plot", type=Path, metavar="FILE.png", help="draw wall time against cases")
    bench.set_defaults(handler=cmd_bench)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def _history_length(sfn: Any, execution_arn: str) -> int:
    return len(_history(sfn, execution_arn))


def _fan_out_history_length(sfn: Any, execution_arn: str, timeout: float = 30.0) -> int:
    """PreProcess's history once its fan-out is over (it waits for the deadline, or has ended): a
    request may be counted and summarized before PreProcess's own thread has left its Map."""
    deadline = time.monotonic() + timeout
    while True:
        events = _history(sfn, execution_arn)
        settled = any(event["type"] in ("ExecutionSucceeded", "ExecutionFailed") or (
            event["type"] == "WaitStateEntered" and event["stateEnteredEventDetails"]["name"] == "AwaitDeadline")
            for event in events)
        if settled or time.monotonic() > deadline:
            return len(events)
        time.sleep(0.05)


def _history_verdict(row: BenchRow) -> None:
    if row.preprocessHistoryEvents > AWS_HISTORY_LIMIT and row.status == c.STATUS_SUCCEEDED:
        row.status = "EXCEEDS_AWS_LIMIT"
        row.reason = (f"PreProcess history has {row.preprocessHistoryEvents} events; a Standard execution on AWS "
                      f"fails at {AWS_HISTORY_LIMIT}")


def run_fanflow(emulator: Any, cases: int, *, timeout: float) -> BenchRow:
    outputs = emulator.stack_outputs[c.STACK_NAME]
    client = FanflowClient(emulator.client, outputs)
    request_id = f"bench-fanflow-{cases}-{int(time.time() * 1000)}"
    calls_before = emulator.put_events_calls[(outputs[c.OUTPUT_BUS_NAME], c.PREPROCESS_SOURCE)]
    started = time.perf_counter()
    try:
        arn = client.start(parse_request(samples.sample_request(cases, request_id)))
        row = client.wait(request_id, execution_arn=arn, timeout=timeout, poll_seconds=0.05)
        wall: float | None = time.perf_counter() - started
        status, reason = row[c.ATTR_STATUS], ""
    except RequestFailed as exc:
        wall, status, reason = None, "FAILED_TO_FINISH", str(exc)
        arn = client.execution_arn(request_id)
    sfn = emulator.client("stepfunctions")
    result = BenchRow(
        variant="fanflow", cases=cases, wallSeconds=round(wall, 3) if wall is not None else None,
        peakRssMb=peak_rss_mb(),
        putEventsCalls=emulator.put_events_calls[(outputs[c.OUTPUT_BUS_NAME], c.PREPROCESS_SOURCE)] - calls_before,
        preprocessHistoryEvents=_fan_out_history_length(sfn, arn),
        summaryRuns=emulator.summary_invocations(request_id), status=status, reason=reason,
        **emulator.fan_in_stats(request_id))
    _history_verdict(result)
    return result


def run_seed(emulator: Any, cases: int, *, timeout: float) -> BenchRow:
    outputs = emulator.stack_outputs[c.SEED_VARIANT_STACK_NAME]
    sfn, ddb = emulator.client("stepfunctions"), emulator.client("dynamodb")
    request_id = f"bench-seed-{cases}-{int(time.time() * 1000)}"
    bus = outputs[c.OUTPUT_BUS_NAME]
    calls_before = emulator.put_events_calls[(bus, c.PREPROCESS_SOURCE)]
    started = time.perf_counter()
    arn = sfn.start_execution(stateMachineArn=outputs[c.OUTPUT_PREPROCESS_ARN], name=request_id,
                              input=samples.dumps(samples.sample_request(cases, request_id)))["executionArn"]
    deadline = time.monotonic() + timeout
    wall: float | None = None
    status, reason = "TIMED_OUT", f"no summary within {timeout:.0f} s"
    while time.monotonic() < deadline:
        item = ddb.get_item(TableName=outputs[c.OUTPUT_COUNTER_TABLE], Key={"requestId": {"S": request_id}},
                            ConsistentRead=True).get("Item", {})
        if "summarizedAt" in item:  # the seed's compute reports every case SUCCEEDED
            wall, status, reason = time.perf_counter() - started, c.STATUS_SUCCEEDED, ""
            break
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] in ("FAILED", "ABORTED", "TIMED_OUT"):
            status, reason = f"PREPROCESS_{execution['status']}", str(execution.get("cause", ""))[:200]
            break
        time.sleep(0.05)
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)  # the Map may still be finishing its last iterations
    result = BenchRow(
        variant="seed", cases=cases, wallSeconds=round(wall, 3) if wall is not None else None,
        peakRssMb=peak_rss_mb(),
        putEventsCalls=emulator.put_events_calls[(bus, c.PREPROCESS_SOURCE)] - calls_before,
        preprocessHistoryEvents=_history_length(sfn, arn),
        summaryRuns=0,  # set by run_bench, which knows the count before the run
        status=status, reason=reason, **emulator.fan_in_stats(request_id, stack=c.SEED_VARIANT_STACK_NAME))
    _history_verdict(result)
    return result


def run_bench(sizes: list[int], variants: list[str], *, compute_seconds: float = 0.0,
              lambda_concurrency: int = 1000, timeout: float = 900.0,
              on_row: Any = None, on_start: Any = None, warm_up: bool = True) -> list[BenchRow]:
    """Every size with every variant, after a warm-up run of each; `on_start(variant, cases,
    number, total)` is told before each run, `on_row(row)` after it."""
    from local.runtime import EmbeddedEmulator

    rows: list[BenchRow] = []
    with EmbeddedEmulator(lambda_concurrency=lambda_concurrency, compute_seconds=compute_seconds,
                          with_seed_variant="seed" in variants) as emulator:
        if "seed" in variants:
            emulator.set_compute_seconds(compute_seconds, stack=c.SEED_VARIANT_STACK_NAME)
        seed_summary = emulator.stack_outputs.get(c.SEED_VARIANT_STACK_NAME, {}).get(c.OUTPUT_SUMMARY_FUNCTION)
        if warm_up:
            # A 1-case request per variant first, not reported: the process imports its handlers'
            # libraries once, and whichever variant ran first would pay that in its first size.
            for variant in variants:
                (run_fanflow if variant == "fanflow" else run_seed)(emulator, 1, timeout=timeout)
        total = len(sizes) * len(variants)
        for cases in sizes:
            for variant in variants:
                if on_start:
                    on_start(variant, cases, len(rows) + 1, total)
                before = emulator.runner.stats.count(seed_summary) if seed_summary else 0
                assert variant == "fanflow" or seed_summary is not None
                if variant == "fanflow":
                    row = run_fanflow(emulator, cases, timeout=timeout)
                else:
                    row = run_seed(emulator, cases, timeout=timeout)
                    row.summaryRuns = emulator.runner.stats.count(str(seed_summary)) - before
                rows.append(row)
                if on_row:
                    on_row(row)
    return rows


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
                         lambda_concurrency=args.lambda_concurrency, timeout=args.timeout, on_start=starting)
    if args.json:
        print(json.dumps([asdict(row) for row in rows]))
    else:
        render.output_console().print(rows_table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
