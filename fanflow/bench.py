"""Benchmarks fanflow and a seed-faithful variant side by side, in one process, on the
embedded target, for a list of request sizes (`fanflow bench`, fanflow/commands/bench.py)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any

from lambda_fns import constants as c
from lambda_fns.request_model import parse_request

from . import samples
from .client import FanflowClient
from .errors import RequestFailed

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
              on_row: Any = None, on_start: Any = None, warm_up: bool = True,
              aws_limits: str | None = None, time_scale: float = 1.0) -> list[BenchRow]:
    """Every size with every variant, after a warm-up run of each; `on_start(variant, cases,
    number, total)` is told before each run, `on_row(row)` after it. `aws_limits`: the Region whose
    published limits the emulator runs under (one account: both variants share its buckets),
    `time_scale` how many times slower than AWS (the rows' times are the emulator's)."""
    from local.runtime import EmbeddedEmulator

    rows: list[BenchRow] = []
    with EmbeddedEmulator(lambda_concurrency=lambda_concurrency, compute_seconds=compute_seconds,
                          with_seed_variant="seed" in variants, aws_limits=aws_limits,
                          time_scale=time_scale) as emulator:
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


