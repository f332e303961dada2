"""The `fanflow` command line: run a request end to end, generate sample requests."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from lambda_fns import constants as c
from lambda_fns.request_model import RequestError, parse_request

from . import samples
from .client import FanflowClient, RequestFailed
from .ops_commands import save_trace
from .render import ProgressReporter, summary_tables
from .targets import TARGETS, TargetOptions, open_target

EXAMPLES = """examples:
  fanflow run sample_data_sets/dataset_100.json      run a seed sample on the embedded target
  fanflow run --cases 1000 --json                   a generated 1000-case request, JSON output
  fanflow generate --cases 250 -o my_request.json   write a 250-case request in the seed's format
"""


COMMAND_MODULES: tuple[str, ...] = ("infra_commands", "bench", "ops_commands", "worker", "plan")


def kept_histories(text: str) -> int | None:
    """`--kept-histories`: a count of 0 or more, or `all`."""
    if text.strip().lower() == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of executions or 'all', got {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (or 'all'), got {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fanflow",
        description="Fan a request out into independent computations on AWS serverless "
        "(Step Functions, EventBridge, Lambda, DynamoDB) and continue when every one has finished.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run one request end to end and print its summary",
                              description="Deploy the stack if needed, start a request, show progress "
                              "while its cases complete, and print the summary.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="request JSON in the seed's format ('-' for stdin)")
    source.add_argument("--cases", type=int, metavar="N", help="generate a request of N cases instead of a file")
    run.add_argument("--request-id", help="requestId for a generated request (default: a timestamp)")
    run.add_argument("--target", choices=TARGETS, default="embedded",
                     help="where to run (default: embedded, an in-process AWS emulator)")
    run.add_argument("--compute-seconds", type=float, metavar="S",
                     help=f"simulated work per case (default: {c.COMPUTE_SECONDS_EMBEDDED} on the embedded target, "
                     "else as deployed)")
    run.add_argument("--lambda-concurrency", type=int, default=1000, metavar="N",
                     help="concurrent Lambda executions the embedded target allows (default: %(default)s)")
    run.add_argument("--kept-histories", type=kept_histories, default=1000, metavar="N|all",
                     help="succeeded executions per state machine whose history the embedded target keeps; "
                     "older ones keep status, input and output (default: %(default)s)")
    run.add_argument("--deadline", type=float, metavar="SECONDS",
                     help="close the request as TIMED_OUT after this long "
                     f"(default: the request's deadlineSeconds, else {c.DEFAULT_DEADLINE_SECONDS} s)")
    faults = run.add_argument_group("fault injection (embedded target)")
    faults.add_argument("--duplicate-rate", type=float, default=0.0, metavar="R",
                        help="deliver each event twice with probability R")
    faults.add_argument("--failure-rate", type=float, default=0.0, metavar="R",
                        help="make each computation raise with probability R")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="R",
                        help="lose each completion event with probability R (use with --deadline)")
    faults.add_argument("--seed", type=int, default=0, help="seed for the fault choices (default: %(default)s)")
    run.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                     help="stop waiting after this long (default: %(default)s)")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    run.add_argument("--show-cases", type=int, default=20, metavar="N",
                     help="cases listed in the table output (default: %(default)s)")
    run.add_argument("--trace", type=Path, metavar="FILE",
                     help="write the request's timeline as JSON (draw it with `fanflow report FILE --plot`)")
    run.set_defaults(handler=cmd_run)

    generate = commands.add_parser("generate", help="write a sample request in the seed's format")
    generate.add_argument("--cases", type=int, required=True, metavar="N", help="number of cases")
    generate.add_argument("--request-id", default="123456", help="requestId (default: %(default)s)")
    generate.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    generate.set_defaults(handler=cmd_generate)

    # Each further group of commands lives in its own module and adds its subparsers here.
    for module in COMMAND_MODULES:
        importlib.import_module(f"fanflow.{module}").register(commands)
    return parser


def load_request_text(args: argparse.Namespace) -> str:
    if args.cases is not None:
        if args.cases < 1:
            raise RequestError("--cases must be at least 1")
        request_id = args.request_id or f"req-{int(time.time() * 1000)}"
        return samples.dumps(samples.sample_request(args.cases, request_id))
    if str(args.file) == "-":
        return sys.stdin.read()
    try:
        return Path(args.file).read_text()
    except OSError as exc:
        raise RequestError(f"cannot read {args.file}: {exc.strerror}") from None


def cmd_run(args: argparse.Namespace) -> int:
    text = load_request_text(args)
    if args.deadline is not None:
        data = json.loads(text) if text.strip().startswith("{") else None
        if isinstance(data, dict):
            data["deadlineSeconds"] = args.deadline
            text = json.dumps(data)
    request = parse_request(text)  # a bad request stops here: nothing has been written

    from local.faults import FaultPlan

    try:
        faults = FaultPlan(duplicate_rate=args.duplicate_rate, failure_rate=args.failure_rate,
                           drop_rate=args.drop_rate, seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if faults.active and args.target != "embedded":
        raise UsageError("fault injection runs on the embedded target only")
    options = TargetOptions(lambda_concurrency=args.lambda_concurrency, compute_seconds=args.compute_seconds,
                            faults=faults, kept_histories=args.kept_histories)
    err = Console(stderr=True)
    with contextlib.ExitStack() as stack:
        with err.status(f"starting the {args.target} target...") if err.is_terminal else contextlib.nullcontext():
            target = stack.enter_context(open_target(args.target, options))
        client = FanflowClient(target.client, target.outputs)
        started = time.monotonic()
        execution_arn = client.start(request)
        with ProgressReporter() as reporter:
            row = client.wait(request.request_id, execution_arn=execution_arn, timeout=args.timeout,
                              on_progress=reporter.update)
        wall = time.monotonic() - started
        summary = client.summary(row)
        if args.trace:
            save_trace(client, request.request_id, execution_arn, args.trace)
        runs = target.summary_invocations(request.request_id)
        injected = faults.report(request.request_id) if faults.active else None
    if args.json:
        out = run_output(summary, row, runs, wall, target=args.target)
        if injected is not None:
            out["injectedFaults"] = injected
        print(json.dumps(out))
    else:
        console = Console()
        for table in summary_tables(summary, summary_runs=runs, max_cases=args.show_cases):
            console.print(table)
        if injected is not None:
            console.print(f"injected: {len(injected['duplicatedEvents'])} duplicated events, "
                          f"{len(injected['failedCases'])} failed computations, "
                          f"{len(injected['droppedCompletions'])} dropped completions")
    return 0 if summary["status"] == c.STATUS_SUCCEEDED else 3


def run_output(summary: dict[str, Any], row: dict[str, Any], summary_runs: int | None, wall: float,
               *, target: str) -> dict[str, Any]:
    out = dict(summary)
    out.update({"target": summary["target"], "deployTarget": target, "counterRow": row,
                "clientWallSeconds": round(wall, 3)})
    if summary_runs is not None:
        out["summaryInvocations"] = summary_runs
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    if args.cases < 1:
        raise RequestError("--cases must be at least 1")
    text = samples.dumps(samples.sample_request(args.cases, args.request_id))
    if args.output:
        args.output.write_text(text + "\n")
        print(f"wrote {args.cases} cases to {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


class UsageError(ValueError):
    """A command-line option out of range."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except RequestError as exc:
        print(f"fanflow: invalid request: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        return 2
    except RequestFailed as exc:
        print(f"fanflow: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fanflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
