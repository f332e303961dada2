"""`fanflow run` (one request end to end: start it, show its progress, print its summary) and
`fanflow generate` (a sample request in the seed's format)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from lambda_fns import constants as c
from lambda_fns.request_model import FanRequest, RequestError, execution_name, parse_request, parse_s3_uri

from .. import options, render, samples, timeline
from ..client import FanflowClient
from ..deployments import (
    CONNECTION_ERRORS,
    DEPLOYMENTS,
    KEEP_ALL_HISTORIES,
    Deployment,
    DeploymentOptions,
    EndpointDeployment,
    open_deployment,
)
from ..errors import Interrupted, RequestFailed, UsageError
from ..render import ProgressReporter, output_console, summary_tables


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run one request end to end and print its summary",
                              description="Deploy the stack if needed, start a request, show progress "
                              "while its cases complete, and print the summary. On the embedded target the "
                              "request runs on a `fanflow up` endpoint when one is running, else in this "
                              "process. Exit status: 0 every case succeeded, 3 the request ended otherwise, "
                              "2 an invalid request or option, 1 any other failure, 130 interrupted.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", metavar="FILE",
                        help="request JSON in the seed's format ('-' for stdin), up to "
                        f"{c.MAX_CASES:,} cases (above {c.MAX_REQUEST_BYTES // 1024} KB it is stored in the stack's "
                        "bucket and PreProcess reads it from there); or s3://bucket/key, a request stored in S3 "
                        "already, run as stored")
    source.add_argument("--cases", type=options.CASES, metavar="N",
                        help=f"generate a request of N cases instead of a file (1-{c.MAX_CASES})")
    run.add_argument("--request-id", type=options.request_id, metavar="ID",
                     help="the request's requestId, any text of 1-256 characters; overrides the file's "
                     "(default for a generated request: req-<milliseconds>)")
    run.add_argument("--target", choices=DEPLOYMENTS, default="embedded",
                     help="where to run (default: embedded, an in-process AWS emulator)")
    run.add_argument("--compute-seconds", type=options.COMPUTE_SECONDS, metavar="S",
                     help=f"simulated work per case for this run only, 0-{c.COMPUTE_TIMEOUT_SECONDS} (the compute "
                     "timeout); a case's own computeSeconds wins (default: "
                     f"{c.COMPUTE_SECONDS_EMBEDDED:g} in-process; on an endpoint, LocalStack or AWS, as deployed)")
    run.add_argument("--lambda-concurrency", type=options.LAMBDA_CONCURRENCY, metavar="N",
                     help="Lambda executions the in-process embedded target runs at once, 2-10000 (a fan-in "
                     "batch takes two while it counts; default: 1000). A target that cannot honour it refuses "
                     "it: LocalStack, AWS, or an endpoint started with another value "
                     "(`fanflow up --lambda-concurrency N`)")
    options.add_aws_limits(run, what="the in-process embedded target")
    run.add_argument("--kept-histories", type=kept_histories, metavar="N|all",
                     help="succeeded executions per state machine whose history the embedded target keeps; "
                     "older ones keep status, input and output (default: 1000; refused where it cannot apply, "
                     "as --lambda-concurrency)")
    run.add_argument("--deadline", type=options.DEADLINE_SECONDS, metavar="SECONDS",
                     help="close the request as TIMED_OUT after this long, 1 s to a year, and no longer "
                     "than the stack's retention allows (default: the request's deadlineSeconds, else the "
                     f"stack's default for its size: {c.DEFAULT_DEADLINE_SECONDS} s up to one wave of the cases "
                     f"Compute runs at once, {c.COMPUTE_ATTEMPTS * c.COMPUTE_TIMEOUT_SECONDS} s more per "
                     "further wave)")
    faults = run.add_argument_group(
        "fault injection (embedded target, always in-process)",
        "Each choice is drawn from --seed, the kind of fault and the caseId only: the same seed and the same "
        "cases give the same faults, whatever the requestId.")
    options.add_fault_options(faults, drop_note="use with --deadline")
    fan_in = run.add_argument_group("fan-in batching (embedded target, in-process)")
    fan_in.add_argument("--fan-in-batch-size", type=options.integer(1, 10_000), metavar="N",
                        help=f"completions counted per batch, 1-10000 (default: {c.FAN_IN_BATCH_SIZE})")
    fan_in.add_argument("--fan-in-window", type=options.integer(0, 300), metavar="SECONDS",
                        help="longest wait for a batch to fill, 0-300 "
                        f"(default: {c.FAN_IN_BATCH_WINDOW_SECONDS}; 0 needs a batch size of 10 or less)")
    run.add_argument("--timeout", type=options.SECONDS, default=3600.0, metavar="SECONDS",
                     help="stop waiting after this long; the request goes on (default: %(default)s)")
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    run.add_argument("--show-cases", type=options.integer(0), default=20, metavar="N",
                     help="cases listed in the table output; 0 hides the table (default: %(default)s)")
    run.add_argument("--trace", type=Path, metavar="FILE",
                     help="write the request's timeline as JSON (draw it with `fanflow report FILE --plot`)")
    run.set_defaults(handler=cmd_run)

    generate = commands.add_parser(
        "generate", help="write a sample request in the seed's format",
        description="Write a request of N cases in the seed's format (caseIds 0 to N-1), as `fanflow run` "
        "accepts it: to stdout, or to a file.")
    generate.add_argument("--cases", type=options.CASES, required=True, metavar="N",
                          help=f"number of cases (1-{c.MAX_CASES})")
    generate.add_argument("--request-id", type=options.request_id, default="123456", metavar="ID",
                          help="requestId, any text of 1-256 characters (default: %(default)s)")
    generate.add_argument("-o", "--output", type=Path, metavar="FILE",
                          help="file to write ('-' or none: stdout)")
    generate.set_defaults(handler=cmd_generate)


def kept_histories(text: str) -> int | str:
    """`--kept-histories`: a count of 0 or more, or `all`."""
    if text.strip().lower() == KEEP_ALL_HISTORIES:
        return KEEP_ALL_HISTORIES
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of executions or 'all', got {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (or 'all'), got {count}")
    return count


def request_text(args: argparse.Namespace) -> str:
    """The request as JSON text: generated, or read from the file (or stdin), with the
    command line's --request-id and --deadline applied."""
    if args.cases is not None:
        request_id = args.request_id or f"req-{int(time.time() * 1000)}"
        return with_overrides(samples.dumps(samples.sample_request(args.cases, request_id)), deadline=args.deadline)
    name = "stdin" if args.file == "-" else args.file
    try:
        raw = sys.stdin.buffer.read() if name == "stdin" else Path(args.file).read_bytes()
    except OSError as exc:
        raise RequestError(f"cannot read {name}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): a request "
                           "is a JSON file in the seed's format") from None
    return with_overrides(text, request_id=args.request_id, deadline=args.deadline)


def with_overrides(text: str, *, request_id: str | None = None, deadline: float | None = None) -> str:
    """`text` with requestId and deadlineSeconds replaced when given (and when it is a JSON
    object: anything else is left for validation to name)."""
    if request_id is None and deadline is None:
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    if request_id is not None:
        data["requestId"] = request_id
    if deadline is not None:
        data["deadlineSeconds"] = deadline
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def interrupted(target: Deployment, request_id: str) -> Interrupted:
    if target.in_process:
        return Interrupted(f"interrupted: request {request_id!r} ran in this process and stopped with it")
    follow = f"fanflow watch {shlex.quote(request_id)}" + ("" if target.name == "embedded" else
                                                           f" --target {target.name}")
    return Interrupted(f"interrupted: request {request_id!r} goes on at {target.where}; follow it with `{follow}`")


def connection_lost(target: Deployment, request_id: str, exc: Exception) -> RequestFailed:
    if isinstance(target, EndpointDeployment):
        return RequestFailed(
            f"{target.where} stopped answering ({type(exc).__name__}); request {request_id!r} was lost with it "
            "(an endpoint keeps its requests in memory). Start it again with `fanflow up` and run the request "
            "again (or run it in-process: without an endpoint, `fanflow run` starts its own)")
    return RequestFailed(f"lost the connection to {target.where} ({exc}); request {request_id!r} may go on there: "
                         f"follow it with `fanflow watch {shlex.quote(request_id)} --target {target.name}`")


def cmd_run(args: argparse.Namespace) -> int:
    from local.faults import FaultPlan

    # Everything the command line can get wrong is refused here, before any target starts.
    if args.trace:
        options.check_writable(args.trace, "--trace")
    faults = FaultPlan(duplicate_rate=args.duplicate_rate, failure_rate=args.failure_rate,
                       drop_rate=args.drop_rate, conflict_rate=args.conflict_rate, seed=args.seed)
    if faults.active and args.target != "embedded":
        raise UsageError("fault injection (--duplicate-rate, --failure-rate, --drop-rate, --conflict-rate) runs on "
                         "the embedded target only")
    batching = options.fan_in_batching(args.fan_in_batch_size, args.fan_in_window)
    options.check_time_scale(args.aws_limits, args.time_scale)
    if batching and args.target != "embedded":
        raise UsageError("--fan-in-batch-size and --fan-in-window set the embedded target's batching; for a "
                         "deployed stack, deploy with -c fanInBatchSize=N -c fanInBatchWindow=S")
    stored_at = args.file if args.file and args.file.startswith("s3://") else None
    if stored_at is not None:
        parse_s3_uri(stored_at)
        if args.request_id is not None or args.deadline is not None:
            raise UsageError(f"{stored_at} runs as stored: --request-id and --deadline cannot change it (edit it, or "
                             "run a local copy of it)")
        request = None
    else:
        request = parse_request(request_text(args))  # a bad request stops here: nothing has been written
    err = output_console(sys.stderr)
    settings = DeploymentOptions(lambda_concurrency=args.lambda_concurrency, compute_seconds=args.compute_seconds,
                             faults=faults, kept_histories=args.kept_histories, fan_in_batching=batching,
                             aws_limits=args.aws_limits, time_scale=args.time_scale,
                             notice=lambda message: err.print(f"fanflow: {message}", markup=False, highlight=False))
    trace: dict[str, Any] | None = None
    with contextlib.ExitStack() as stack:
        with err.status(f"starting the {args.target} target...") if err.is_terminal else contextlib.nullcontext():
            target = stack.enter_context(open_deployment(args.target, settings))
        client = FanflowClient(target.client, target.outputs, where=target.where)
        if request is None:  # stored in S3: read and validated before anything is written
            assert stored_at is not None
            try:
                request = client.read_request(stored_at)
            except RequestError as exc:
                hint = (" (the in-process embedded target starts with empty buckets: run the file itself, or put it "
                        "in a `fanflow up` endpoint's S3 first)") if target.in_process else ""
                raise RequestError(f"{exc}{hint}") from None
        if args.compute_seconds is not None and not target.in_process:
            request, stored_at = with_compute_seconds(request, args.compute_seconds, target), None
        started = time.monotonic()
        try:
            execution_arn = client.start(request, stored_at=stored_at)
            with ProgressReporter() as reporter:
                row = client.wait(request.request_id, execution_arn=execution_arn, timeout=args.timeout,
                                  on_progress=reporter.update)
            wall = time.monotonic() - started
            summary = client.summary(row)
            results = results_output(client, summary, target)
            # PreProcess's history so far: the same few dozen events at any size (its fan-out is a
            # Distributed Map, whose chunks run in child executions of their own).
            history_events = len(client.execution_history(execution_arn)) if args.json else None
            if args.trace:
                trace = timeline.collect(client, request.request_id, execution_arn=execution_arn)
        except KeyboardInterrupt:
            raise interrupted(target, request.request_id) from None
        except CONNECTION_ERRORS as exc:
            raise connection_lost(target, request.request_id, exc) from None
        runs = target.summary_invocations(request.request_id)
        fan_in = fan_in_output(row, target.fan_in_stats(request.request_id))
        limits = target.limits_report()
        injected = faults.report(request.request_id) if faults.active else None
    if args.json:
        out = run_output(summary, row, runs, wall, target=args.target)
        out.update(results)
        out["fanIn"] = fan_in
        out["preProcessHistoryEvents"] = history_events
        if limits is not None:
            out["awsLimits"] = limits
        if injected is not None:
            out["injectedFaults"] = injected
        print(json.dumps(out))
    else:
        console = output_console()
        for table in summary_tables({**summary, **results}, summary_runs=runs, max_cases=args.show_cases):
            console.print(table)
        if "resultsFile" in results or "resultsUris" in results:
            where = results.get("resultsFile") or ", ".join(results["resultsUris"])
            console.print(f"every case's result: {where}", markup=False, highlight=False)
        if limits is not None:
            console.print(render.limits_line(limits), markup=False, highlight=False)
        if injected is not None:
            console.print(f"injected: {len(injected['duplicatedEvents'])} duplicated events, "
                          f"{len(injected['failedCases'])} failed computations, "
                          f"{len(injected['droppedCompletions'])} dropped completions")
    if trace is not None and not write_trace(trace, args.trace):
        return 1
    return 0 if summary["status"] == c.STATUS_SUCCEEDED else 3


def results_output(client: FanflowClient, summary: dict[str, Any], target: Deployment) -> dict[str, Any]:
    """What a run shows of its cases beyond the summary: nothing when the summary holds every
    case (up to SUMMARY_INLINE_CASES); else the cases that did not succeed, and where every
    case's result is: a local JSON Lines file on the embedded target (its bucket lives only as
    long as the emulator), the parts' S3 URIs elsewhere."""
    if "cases" in summary:
        return {}
    out: dict[str, Any] = {"cases": list(client.result_lines(summary, "notSucceeded")), "casesListed": "notSucceeded"}
    if target.name == "embedded":
        from local.assembly import cache_root

        path = cache_root() / "results" / f"{safe_file_name(summary['requestId'])}.jsonl"
        client.download_results(summary, path)
        out["resultsFile"] = str(path)
    else:
        out["resultsUris"] = client.results_uris(summary)
    return out


def safe_file_name(request_id: str) -> str:
    """A requestId as a file name: its execution name (readable, with a digest), which any file system takes."""
    return execution_name(request_id)


def with_compute_seconds(request: FanRequest, seconds: float, target: Deployment) -> FanRequest:
    """Off the in-process target, a run's --compute-seconds travels with its cases: it applies
    to this run only, whatever else runs there."""
    try:
        return request.with_compute_seconds(seconds)
    except RequestError as exc:
        raise RequestError(f"with --compute-seconds, every case carries its computeSeconds to {target.where}, "
                           f"and then: {exc}") from None


def write_trace(trace: dict[str, Any], path: Path) -> bool:
    """`run --trace FILE`, written after the summary is printed: a failure loses only the trace."""
    try:
        timeline.write(trace, path)
    except OSError as exc:
        print(f"fanflow: could not write the timeline to {path}: {exc.strerror}", file=sys.stderr)
        return False
    print(f"wrote the timeline of {trace['requestId']} to {path} (draw it: fanflow report {path} --plot "
          "timeline.png)", file=sys.stderr)
    return True


def run_output(summary: dict[str, Any], row: dict[str, Any], summary_runs: int | None, wall: float,
               *, target: str) -> dict[str, Any]:
    out = dict(summary)
    out.update({"target": summary["target"], "deployTarget": target, "counterRow": row,
                "clientWallSeconds": round(wall, 3)})
    if summary_runs is not None:
        out["summaryInvocations"] = summary_runs
    return out


def fan_in_output(row: dict[str, Any], engine: dict[str, int] | None) -> dict[str, Any]:
    """What the fan-in did for the request, as its counter row records it; and, where the
    engine can tell (the embedded target), what the engine saw."""
    out: dict[str, Any] = {"batches": int(row.get(c.ATTR_FAN_IN_BATCHES, 0)),
                           "counterWrites": int(row.get(c.ATTR_COUNTER_WRITES, 0)),
                           "conflictRetries": int(row.get(c.ATTR_CONFLICT_RETRIES, 0))}
    if engine is not None:
        out["engine"] = engine
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    to_stdout = args.output is None or str(args.output) == "-"
    if not to_stdout:
        options.check_writable(args.output, "--output")
    text = samples.dumps(samples.sample_request(args.cases, args.request_id))
    parse_request(text)  # nothing `fanflow run` would refuse is written
    if to_stdout:
        print(text)
        return 0
    try:
        args.output.write_text(text + "\n")
    except OSError as exc:
        raise UsageError(f"--output {args.output}: {exc.strerror}") from None
    print(f"wrote {args.cases} cases to {args.output}", file=sys.stderr)
    return 0
