"""`fanflow status`, `watch`, `list` and `report`: operating requests on any target, through
FanflowClient (boto3) only. The command functions take the client and their output stream,
so that they run against any target a caller opens."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from lambda_fns import constants as c

from .. import options, render, timeline, views
from ..client import FanflowClient, Progress
from ..deployments import DEPLOYMENTS, Deployment, DeploymentOptions, open_deployment
from ..errors import NoEndpoint, RequestFailed, RequestNotFound, UsageError


def register(commands: Any) -> None:
    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--target", choices=DEPLOYMENTS, default="embedded",
                            help="where the request runs (default: embedded)")
        parser.add_argument("--json", action="store_true", help="print JSON on stdout instead of tables")

    status = commands.add_parser("status", help="show one request: state, counts, age, deadline, summary",
                                 description="Show a request's state, its counter and target, succeeded and "
                                 "failed cases, age and deadline, and its summary once it has one.")
    status.add_argument("request_id", type=options.request_id, metavar="REQUEST_ID")
    common(status)
    status.set_defaults(handler=cmd_status)

    watch = commands.add_parser("watch", help="follow a request until it ends: progress, rate and ETA",
                                description="Follow a request until it ends: a live bar with rate and ETA on a "
                                "terminal, a plain line at each tenth otherwise, JSON Lines with --json (one "
                                "object per change, then the final status). Exits 0 when every case succeeded, "
                                "3 when the request ended otherwise.")
    watch.add_argument("request_id", type=options.request_id, metavar="REQUEST_ID")
    common(watch)
    watch.add_argument("--interval", type=options.SECONDS, default=0.5, metavar="SECONDS",
                       help="seconds between polls of the counter row, more than 0 (default: %(default)s)")
    watch.add_argument("--timeout", type=options.SECONDS, default=3600.0, metavar="SECONDS",
                       help="stop waiting after this long, more than 0 (default: %(default)s)")
    watch.set_defaults(handler=cmd_watch)

    listing = commands.add_parser("list", help="recent requests, newest first, with their state",
                                  description="List the requests on a target, newest first (a Scan of the "
                                  "counter table: rows are kept for the retention period).")
    common(listing)
    listing.add_argument("--limit", type=options.integer(1), default=20, metavar="N",
                         help="requests shown, 1 or more (default: %(default)s)")
    listing.set_defaults(handler=cmd_list)

    report = commands.add_parser("report", help="read a timeline written by `fanflow run --trace`",
                                 description="Summarize a request's timeline (phases, case durations, "
                                 "throughput) and draw it with --plot (needs matplotlib: pip install "
                                 "'fanflow[plot]').")
    report.add_argument("file", type=Path, metavar="FILE", help="timeline JSON from `fanflow run --trace FILE`")
    report.add_argument("--plot", type=Path, metavar="OUT.png",
                        help="draw cases completed over time and a per-case duration histogram")
    report.add_argument("--json", action="store_true", help="print the analysis as JSON")
    report.set_defaults(handler=cmd_report)


# -- commands ------------------------------------------------------------------------------


@contextlib.contextmanager
def operated(target_name: str) -> Iterator[tuple[FanflowClient, Deployment]]:
    """The target's client. These commands read state that outlives a process: on the embedded
    target only a running `fanflow up` endpoint has any, so without one they answer at once
    (NoEndpoint) instead of starting an empty emulator."""
    with open_deployment(target_name, DeploymentOptions(in_process=False)) as target:
        yield FanflowClient(target.client, target.outputs, where=target.where), target


def cmd_status(args: argparse.Namespace) -> int:
    try:
        with operated(args.target) as (client, _):
            return show_status(client, args.request_id, as_json=args.json)
    except NoEndpoint as exc:
        raise RequestNotFound(f"no request {args.request_id!r} on the embedded target: {exc}") from None


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        with operated(args.target) as (client, _):
            return watch_request(client, args.request_id, as_json=args.json, timeout=args.timeout,
                                 interval=args.interval)
    except NoEndpoint as exc:
        raise RequestNotFound(f"no request {args.request_id!r} on the embedded target: {exc}") from None


def cmd_list(args: argparse.Namespace) -> int:
    try:
        with operated(args.target) as (client, _):
            list_requests(client, limit=args.limit, as_json=args.json)
    except NoEndpoint as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"total": 0, "requests": []}))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.plot:  # both checked before the timeline is read
        options.check_writable(args.plot, "--plot")
        render.require_matplotlib()
    try:
        analysis = timeline.analyse(timeline.load(args.file))
    except timeline.TimelineError as exc:
        raise UsageError(str(exc)) from None
    if args.plot:
        render.plot_timeline(analysis, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(analysis))
    else:
        console = render.output_console()
        for table in render.report_tables(analysis):
            console.print(table)
    return 0


# -- what the commands do, for any client ------------------------------------------------------


def show_status(client: FanflowClient, request_id: str, *, as_json: bool, out: TextIO | None = None,
                now: Callable[[], float] = time.time) -> int:
    """Print a request's status. RequestNotFound (exit 1) when the target has no such request."""
    out = out or sys.stdout
    row = client.existing_row(request_id)
    if row is None:
        view = views.starting_view(request_id, client.execution(request_id))
        if as_json:
            print(json.dumps(view), file=out)
        else:
            detail = f": {view['error']}: {view['cause']}" if view.get("error") else ""
            print(f"{request_id}: {view['status']} (PreProcess {view['preprocess']}{detail})", file=out)
        return 0
    print_status(client, row, now=now(), as_json=as_json, out=out)
    return 0


def print_status(client: FanflowClient, row: dict[str, Any], *, now: float, as_json: bool, out: TextIO,
                 wait_for_summary: bool = False) -> None:
    """A request's status from its counter row (and its summary, once written): JSON or tables.
    `wait_for_summary`: the row is closed, and Summary stores the summary just after it closes
    the row, so wait the moment that takes (client.summary) rather than report none."""
    summary = client.find_summary(row)
    if summary is None and wait_for_summary and row.get(c.ATTR_SUMMARY_KEY):
        with contextlib.suppress(RequestFailed):
            summary = client.summary(row)
    view = views.status_view(row, now=now, summary=summary)
    if as_json:
        print(json.dumps(view), file=out)
    else:
        console = render.output_console(out)
        for table in render.status_tables(view):
            console.print(table)


def watch_request(client: FanflowClient, request_id: str, *, as_json: bool, timeout: float = 3600.0,
                  interval: float = 0.5, out: TextIO | None = None,
                  clock: Callable[[], float] = time.monotonic, attempt: int = 1,
                  execution_arn: str | None = None) -> int:
    """Follow a request until it is closed; 0 if every case succeeded, 3 if it ended otherwise."""
    out = out or sys.stdout
    client.existing_row(request_id)  # an unknown request fails now, not at the timeout
    meter = views.RateMeter()
    started = clock()
    last: tuple[int, str] | None = None
    reporter = render.WatchReporter(out)

    def on_progress(progress: Progress) -> None:
        nonlocal last
        meter.observe(clock(), progress.completed)
        view = views.watch_view(progress, meter, elapsed=clock() - started)
        if not as_json:
            reporter.update(view)
        elif (progress.completed, progress.status) != last:
            print(json.dumps(view), file=out, flush=True)
        last = (progress.completed, progress.status)

    with contextlib.nullcontext() if as_json else reporter:
        row = client.wait(request_id, timeout=timeout, poll_seconds=interval, on_progress=on_progress,
                          attempt=attempt, execution_arn=execution_arn)
    print_status(client, row, now=time.time(), as_json=as_json, out=out, wait_for_summary=True)
    return 0 if row[c.ATTR_STATUS] == c.STATUS_SUCCEEDED else 3


def list_requests(client: FanflowClient, *, limit: int, as_json: bool, out: TextIO | None = None,
                  now: Callable[[], float] = time.time) -> int:
    """Print the newest requests; returns how many the target holds."""
    out = out or sys.stdout
    rows = client.requests()
    listed = views.newest_first(rows, now=now(), limit=limit)
    if as_json:
        print(json.dumps({"total": len(rows), "requests": listed}), file=out)
    elif rows:
        render.output_console(out).print(render.requests_table(listed, total=len(rows)))
    else:
        print("no requests on this target", file=out)
    return len(rows)
