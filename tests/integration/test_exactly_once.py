"""Exact fan-in under duplicates, failures, lost events, races and re-submission, proven
on the embedded target with fault injection. Every count is asserted exactly."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.errors import RequestFailed
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.faults import FaultPlan
from local.runtime import EmbeddedEmulator


def run_request(emulator: EmbeddedEmulator, cases: int, request_id: str, **extra: Any) -> tuple[dict, dict]:
    client = FanflowClient(emulator.client, emulator.outputs)
    request = sample_request(cases, request_id)
    request.update(extra)
    client.start(parse_request(request))
    row = client.wait(request_id, timeout=120)
    return row, client.summary(row)


def failed_ids(summary: dict) -> set[str]:
    return {case["caseId"] for case in summary["cases"] if case["state"] == c.CASE_FAILED}


@pytest.mark.parametrize(
    ("scenario", "cases", "plan", "deadline"),
    [
        ("duplicates", 60, FaultPlan(duplicate_rate=0.5, seed=1), None),
        ("failures", 60, FaultPlan(failure_rate=0.25, seed=2), None),
        ("drops", 40, FaultPlan(drop_rate=0.1, seed=3), 5),
        ("all three", 60, FaultPlan(duplicate_rate=0.3, failure_rate=0.2, drop_rate=0.1, seed=4), 6),
        ("conflicts", 60, FaultPlan(conflict_rate=0.3, seed=5), None),
        # the fan-in's fault matrix: every fault at once
        ("all four", 100, FaultPlan(duplicate_rate=0.3, failure_rate=0.1, drop_rate=0.05, conflict_rate=0.3,
                                    seed=6), 8),
    ],
)
def test_faults_are_counted_exactly(scenario: str, cases: int, plan: FaultPlan, deadline: int | None) -> None:
    # GIVEN the embedded target with the scenario's faults injected
    extra = {"deadlineSeconds": deadline} if deadline else {}
    with EmbeddedEmulator(faults=plan) as emulator:
        if plan.conflict_rate:  # small batches: many transactions, so that conflicts surely occur
            emulator.set_fan_in_batching(batch_size=5, window_seconds=1)
        # WHEN a request runs to its end
        row, summary = run_request(emulator, cases, f"faults-{scenario.replace(' ', '-')}", **extra)
        runs = emulator.summary_invocations(row[c.ATTR_REQUEST_ID])
    report = plan.report(row[c.ATTR_REQUEST_ID])
    dropped = set(report["droppedCompletions"])
    injected_failures = set(report["failedCases"]) - dropped
    # THEN every delivered case is counted once, failures are exactly the injected ones,
    # lost completions are exactly the timed-out cases, and Summary ran once
    assert runs == 1
    assert row[c.ATTR_COUNTER] == cases - len(dropped) <= row[c.ATTR_EXPECTED] == cases
    assert row[c.ATTR_SUCCEEDED] + row[c.ATTR_FAILED] == row[c.ATTR_COUNTER]
    assert summary["succeeded"] == row[c.ATTR_SUCCEEDED] and summary["failed"] == row[c.ATTR_FAILED]
    assert failed_ids(summary) == injected_failures
    assert all("injected failure" in case["error"] for case in summary["cases"] if case["state"] == c.CASE_FAILED)
    assert set(summary["timedOut"]) == dropped
    if plan.duplicate_rate:
        assert report["duplicatedEvents"], "the plan injected no duplicate: the scenario proves nothing"
    if plan.failure_rate:
        assert injected_failures
    if dropped:
        assert summary["status"] == row[c.ATTR_STATUS] == c.STATUS_TIMED_OUT
    elif injected_failures:
        assert summary["status"] == c.STATUS_PARTIAL
    else:
        assert summary["status"] == c.STATUS_SUCCEEDED
    if plan.drop_rate:
        assert dropped, "the plan dropped nothing: the scenario proves nothing"
    if plan.conflict_rate:
        # every injected conflict was retried: the counter row records the ones before each commit
        assert report["injectedConflicts"], "the plan injected no conflict: the scenario proves nothing"
        assert 0 < row[c.ATTR_CONFLICT_RETRIES] <= report["injectedConflicts"]
        if not plan.duplicate_rate:
            assert row[c.ATTR_CONFLICT_RETRIES] == report["injectedConflicts"]


def test_every_computation_failing_ends_failed() -> None:
    with EmbeddedEmulator(faults=FaultPlan(failure_rate=1.0)) as emulator:
        row, summary = run_request(emulator, 12, "all-fail")
        assert emulator.summary_invocations("all-fail") == 1
    assert summary["status"] == row[c.ATTR_STATUS] == c.STATUS_FAILED
    assert (summary["succeeded"], summary["failed"], row[c.ATTR_COUNTER]) == (0, 12, 12)


@pytest.fixture(scope="module")
def emulator():
    with EmbeddedEmulator() as emu:
        yield emu


@contextlib.contextmanager
def compute_time(emulator: EmbeddedEmulator, seconds: float) -> Iterator[None]:
    """Cases take `seconds` inside the block; the module's emulator is back to 0 s after it."""
    emulator.set_compute_seconds(seconds)
    try:
        yield
    finally:
        emulator.set_compute_seconds(0.0)


def start_open(emulator: EmbeddedEmulator, cases: int, request_id: str) -> FanflowClient:
    """Start a request and return once it is open and its cases are registered (Emit has
    written their pending results rows: a completion can be counted only from then on)."""
    client = FanflowClient(emulator.client, emulator.outputs)
    client.start(parse_request(sample_request(cases, request_id)))
    while client.progress(request_id) is None or len(client.results(request_id)) < cases:
        time.sleep(0.02)
    return client


def completion_entry(emulator: EmbeddedEmulator, request_id: str, case_id: str) -> dict[str, Any]:
    return {
        "Source": c.COMPUTE_SOURCE,
        "DetailType": c.COMPLETION_DETAIL_TYPE,
        "EventBusName": emulator.outputs[c.OUTPUT_BUS_NAME],
        "Detail": json.dumps({"requestId": request_id, "request": {"caseId": case_id}, "state": c.CASE_SUCCEEDED,
                              "error": ""}),
    }


def test_concurrent_completions_race_on_the_last_case(emulator: EmbeddedEmulator) -> None:
    # GIVEN a 3-case request whose computations take a second
    with compute_time(emulator, 1.0):
        client = start_open(emulator, 3, "race")
        # WHEN 16 threads each put a completion for every case at once, racing the real ones
        barrier = threading.Barrier(16)

        def blast() -> None:
            events = emulator.client("events")
            barrier.wait()
            events.put_events(Entries=[completion_entry(emulator, "race", case) for case in ("0", "1", "2")])

        threads = [threading.Thread(target=blast) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        row = client.wait("race", timeout=60)
        time.sleep(1.5)  # let the real completions arrive after the request closed
    # THEN each case counted once, the counter never passed the target, Summary ran once
    final = client.counter_row("race")
    assert final is not None
    assert row[c.ATTR_COUNTER] == final[c.ATTR_COUNTER] == final[c.ATTR_EXPECTED] == 3
    assert final[c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert emulator.summary_invocations("race") == 1


def test_resubmitting_a_request_in_flight_leaves_it_intact(emulator: EmbeddedEmulator) -> None:
    # GIVEN a 20-case request in flight (each case takes 0.5 s)
    with compute_time(emulator, 0.5):
        client = start_open(emulator, 20, "inflight")
        # WHEN the same requestId is submitted again, through the client and straight to PreProcess
        with pytest.raises(RequestFailed, match="already exists"):
            client.start(parse_request(sample_request(5, "inflight")))
        sfn = emulator.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN], name="inflight-again",
                                  input=json.dumps(sample_request(5, "inflight")))["executionArn"]
        row = client.wait("inflight", timeout=60)
    # THEN the second PreProcess failed, and the first request finished with its own 20 cases
    assert sfn.describe_execution(executionArn=arn)["error"] == "RequestAlreadyExists"
    assert row[c.ATTR_COUNTER] == row[c.ATTR_EXPECTED] == 20
    assert row[c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert emulator.summary_invocations("inflight") == 1


def test_a_crashed_computation_reaches_the_count_through_its_failure_destination(emulator: EmbeddedEmulator) -> None:
    # GIVEN a compute container whose handler crashes (outside the computation) for case 1
    compute = emulator.outputs[c.OUTPUT_COMPUTE_FUNCTION]

    def crash_case_one(fn: Any, module: Any) -> None:
        if fn.function_name != compute:
            return
        handler = module.handler

        def crashing(event: dict, context: Any) -> Any:
            if event["detail"]["request"]["caseId"] == "1":
                raise MemoryError("out of memory")
            return handler(event, context)

        module.handler = crashing

    emulator.runner.cold_start_hooks.append(crash_case_one)
    try:
        with compute_time(emulator, 0.001):  # a new configuration: a new container, with the hook
            # WHEN a 4-case request runs
            row, summary = run_request(emulator, 4, "crash")
    finally:
        emulator.runner.cold_start_hooks.remove(crash_case_one)
    # THEN Lambda retried it twice, sent the failure to the bus, and Increment counted it as FAILED
    assert emulator.runner.stats.count(compute, "crash") == 4 + 2
    assert row[c.ATTR_COUNTER] == 4 and (row[c.ATTR_SUCCEEDED], row[c.ATTR_FAILED]) == (3, 1)
    assert summary["status"] == c.STATUS_PARTIAL
    crashed = next(case for case in summary["cases"] if case["caseId"] == "1")
    # (the error as the failure record holds it: the function's error type and message)
    assert crashed["state"] == c.CASE_FAILED and crashed["error"] == "MemoryError: out of memory"


def test_rows_expire_through_ttl(emulator: EmbeddedEmulator) -> None:
    # GIVEN a finished request
    row, _ = run_request(emulator, 3, "ttl", deadlineSeconds=100)
    # THEN the counter row expires a retention after its deadline, and every results row expires too
    assert row[c.ATTR_EXPIRES_AT] == row[c.ATTR_DEADLINE] + c.DEFAULT_RETENTION_DAYS * 86_400
    assert row[c.ATTR_DEADLINE] == math.ceil(row[c.ATTR_CREATED_AT] + 100)
    results = FanflowClient(emulator.client, emulator.outputs).results("ttl")  # read shard by shard
    assert len(results) == 3 and row[c.ATTR_SHARDS] == 3  # 3 cases: 3 shards (keys.shard_count)
    assert all(int(item[c.ATTR_EXPIRES_AT]) > time.time() + 6 * 86_400 for item in results)


BAD_REQUESTS = [
    ("not json", "{requestId: 1", "not valid JSON"),
    ("no requestId", json.dumps({"requests": [{"caseId": "0"}]}), "no requestId"),
    ("no requests", json.dumps({"requestId": "r"}), "no 'requests' array"),
    ("empty requests", json.dumps({"requestId": "r", "requests": []}), "'requests' is empty"),
    ("length mismatch", json.dumps({"requestId": "r", "requests": [{"caseId": "0"}], "length": "3"}),
     "length says 3"),
    ("duplicate caseIds", json.dumps({"requestId": "r", "requests": [{"caseId": "0"}, {"caseId": "0"}]}),
     "duplicate caseId '0'"),
]


@pytest.mark.parametrize(("name", "raw", "message"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_reject_before_any_state(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              name: str, raw: str, message: str) -> None:
    path = tmp_path / "request.json"
    path.write_text(raw)
    assert main(["run", str(path), "--duplicate-rate", "0.5"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_rates_out_of_range_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--cases", "3", "--failure-rate", "1.5"]) == 2
    assert "argument --failure-rate: must be a number from 0 to 1, got 1.5" in capsys.readouterr().err
