"""Compute targets end to end on the embedded target: a request mixing Lambda, workflow and
queue cases completes exactly once, each case computed by the target its computeType names;
failures on every target are counted as failed cases; a queue worker that dies mid-case
leaves its case to another worker and the case is still counted once; `fanflow run` starts
its own workers, and `fanflow worker` runs in a process of its own and stops on SIGTERM."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.worker import QueueWorker, WorkerSettings, embedded_workers
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.runtime import EmbeddedEmulator

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = "(none)"  # a case without computeType


class Killed(BaseException):
    """The worker process dying: nothing after it runs, not even an `except Exception`."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator() as emu:
        yield emu


def request(request_id: str, types: list[str], **case_fields: Any) -> dict[str, Any]:
    cases = []
    for index, compute_type in enumerate(types):
        case: dict[str, Any] = {"caseId": str(index), **case_fields.get(str(index), {})}
        if compute_type != DEFAULT:
            case[c.ATTR_COMPUTE_TYPE] = compute_type
        cases.append(case)
    return {"requestId": request_id, "requests": cases}


def run(emulator: EmbeddedEmulator, body: dict[str, Any], timeout: float = 90) -> tuple[dict, dict, FanflowClient]:
    client = FanflowClient(emulator.client, emulator.outputs)
    client.start(parse_request(body))
    row = client.wait(body["requestId"], timeout=timeout)
    return row, client.summary(row), client


def executions_by_case(emulator: EmbeddedEmulator, fragment: str, request_id: str) -> Counter[str]:
    """Executions of the state machine whose name contains `fragment`, for this request, by caseId."""
    sfn = emulator.client("stepfunctions")
    [arn] = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"] if fragment in m["name"]]
    counts: Counter[str] = Counter()
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for execution in page["executions"]:
            detail = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["detail"]
            if detail["requestId"] == request_id:
                counts[detail["request"]["caseId"]] += 1
    return counts


def compute_functions(emulator: EmbeddedEmulator) -> dict[str, str]:
    """The function names of the Lambda compute targets and the workflow's step, by compute type."""
    names = emulator.outputs[c.OUTPUT_COMPUTE_FUNCTIONS].split(",")
    by_fragment = {"ComputeFunction": c.COMPUTE_TYPE_LAMBDA, "ComputeLargeFunction": c.COMPUTE_TYPE_LAMBDA_LARGE,
                   "ComputeWorkflowStepFunction": c.COMPUTE_TYPE_WORKFLOW}
    return {compute_type: next(name for name in names if f"-{fragment}" in name)
            for fragment, compute_type in by_fragment.items()}


def test_a_mixed_request_completes_once_with_each_case_computed_by_its_target(emulator: EmbeddedEmulator) -> None:
    # GIVEN 60 cases: 20 for Lambda (11 without computeType, 3 naming the default, 6 the large
    # function), 20 for the workflow and 20 for the queue, interleaved; and 4 queue workers
    types = [DEFAULT] * 11 + [c.COMPUTE_TYPE_LAMBDA] * 3 + [c.COMPUTE_TYPE_LAMBDA_LARGE] * 6 \
        + [c.COMPUTE_TYPE_WORKFLOW] * 20 + [c.COMPUTE_TYPE_QUEUE] * 20
    random.Random(7).shuffle(types)
    expected = {str(i): (c.DEFAULT_COMPUTE_TYPE if t == DEFAULT else t) for i, t in enumerate(types)}
    with embedded_workers(emulator) as pool:
        # WHEN the request runs
        row, summary, client = run(emulator, request("mixed", types))
        consumed = pool.stats()
    # THEN it succeeded, counted 60 cases once each, and Summary ran once
    assert summary["status"] == row[c.ATTR_STATUS] == c.STATUS_SUCCEEDED
    assert row[c.ATTR_COUNTER] == row[c.ATTR_EXPECTED] == row[c.ATTR_SUCCEEDED] == 60
    assert emulator.summary_invocations("mixed") == 1
    # AND each case's results row names the target its computeType names (set by that target's
    # configuration, not read from the case)
    results = client.results("mixed")
    assert {r[c.ATTR_CASE_ID]: r[c.ATTR_COMPUTED_BY] for r in results} == expected
    # AND each target ran exactly its cases: function invocations, workflow executions, messages consumed
    functions = compute_functions(emulator)
    stats = emulator.runner.stats
    assert stats.count(functions[c.COMPUTE_TYPE_LAMBDA], "mixed") == 14
    assert stats.count(functions[c.COMPUTE_TYPE_LAMBDA_LARGE], "mixed") == 6
    assert stats.count(functions[c.COMPUTE_TYPE_WORKFLOW], "mixed") == 20
    workflow_cases = executions_by_case(emulator, "ComputeWorkflow", "mixed")
    assert set(workflow_cases) == {case for case, t in expected.items() if t == c.COMPUTE_TYPE_WORKFLOW}
    assert set(workflow_cases.values()) == {1}
    assert consumed["completed"] >= 20 and consumed["errors"] == 0  # >=: SQS may deliver a message twice


def test_failed_computations_on_every_target_are_counted_as_failed_cases(emulator: EmbeddedEmulator) -> None:
    # GIVEN two cases per compute type, the second of each with a computeSeconds no target can use
    types = [t for t in (DEFAULT, *c.COMPUTE_TYPES) for _ in range(2)]
    bad = {str(i) for i in range(1, len(types), 2)}
    body = request("failures", types, **{case: {"computeSeconds": "soon"} for case in bad})
    with embedded_workers(emulator):
        # WHEN the request runs
        row, summary, _ = run(emulator, body)
    # THEN exactly those cases failed, each with its computation's error, and the rest succeeded
    failed = {case["caseId"]: case["error"] for case in summary["cases"] if case["state"] == c.CASE_FAILED}
    assert set(failed) == bad
    assert all("ValueError: could not convert string to float: 'soon'" in error for error in failed.values())
    assert summary["status"] == c.STATUS_PARTIAL
    assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED], row[c.ATTR_FAILED]) == (10, 5, 5)
    assert emulator.summary_invocations("failures") == 1


def test_a_crashing_workflow_step_ends_in_a_failed_completion(emulator: EmbeddedEmulator) -> None:
    # GIVEN a workflow step whose handler crashes (outside the computation) for case 1
    step = compute_functions(emulator)[c.COMPUTE_TYPE_WORKFLOW]

    def crash_case_one(fn: Any, module: Any) -> None:
        if fn.function_name != step:
            return
        handler = module.handler

        def crashing(event: dict[str, Any], context: Any) -> Any:
            if event["request"]["caseId"] == "1":
                raise MemoryError("out of memory")
            return handler(event, context)

        module.handler = crashing

    emulator.runner.cold_start_hooks.append(crash_case_one)
    emulator.set_compute_seconds(0.001)  # a new configuration: a new container, with the hook
    try:
        # WHEN a 2-case workflow request runs
        row, summary, _ = run(emulator, request("step-crash", [c.COMPUTE_TYPE_WORKFLOW] * 2))
    finally:
        emulator.runner.cold_start_hooks.remove(crash_case_one)
        emulator.set_compute_seconds(0.0)
    # THEN the workflow retried the step, then its Catch put a FAILED completion with the step's error
    assert emulator.runner.stats.count(step, "step-crash") == 1 + 3
    assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED], row[c.ATTR_FAILED]) == (2, 1, 1)
    crashed = next(case for case in summary["cases"] if case["caseId"] == "1")
    assert crashed["state"] == c.CASE_FAILED
    assert crashed["error"].startswith("MemoryError: ") and "out of memory" in crashed["error"]


class DiesOnFirstDelete:
    """An SQS client whose first delete_message kills the worker calling it."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.killed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def delete_message(self, **kwargs: Any) -> Any:
        if not self.killed:
            self.killed = True
            raise Killed()
        return self._sqs.delete_message(**kwargs)


@pytest.mark.parametrize("moment", ["computing", "reported, not deleted"])
def test_a_worker_killed_mid_case_leaves_it_to_another_worker_and_it_counts_once(
        emulator: EmbeddedEmulator, moment: str) -> None:
    # GIVEN queue workers with a 2-second visibility timeout; worker A dies on its first case,
    # either while computing it or after reporting it but before deleting its message
    settings = WorkerSettings.from_outputs(emulator.outputs, compute_seconds=lambda: 0.0, wait_seconds=1,
                                           visibility_timeout=2)
    victim: list[str] = []
    in_hand, kill = threading.Event(), threading.Event()

    def computing(request: dict[str, Any], seconds: float) -> None:
        victim.append(request["caseId"])
        in_hand.set()
        kill.wait(30)
        raise Killed()

    sqs = emulator.client("sqs")
    if moment == "computing":
        worker_a = QueueWorker(settings, sqs=sqs, dynamodb=emulator.client("dynamodb"),
                               events=emulator.client("events"), work=computing, name="A")
    else:
        worker_a = QueueWorker(settings, sqs=DiesOnFirstDelete(sqs), dynamodb=emulator.client("dynamodb"),
                               events=emulator.client("events"), name="A")
    a_ended: list[str] = []

    def run_a() -> None:
        try:
            worker_a.run()
        except Killed:
            a_ended.append("killed")

    computed_by_b: list[str] = []
    worker_b = QueueWorker(settings, sqs=sqs, dynamodb=emulator.client("dynamodb"), events=emulator.client("events"),
                           work=lambda request, seconds: computed_by_b.append(request["caseId"]), name="B")
    request_id = f"killed-{moment.split()[0].rstrip(',')}"
    client = FanflowClient(emulator.client, emulator.outputs)
    thread_a = threading.Thread(target=run_a)
    thread_b = threading.Thread(target=worker_b.run)
    thread_a.start()
    try:
        # WHEN a 3-case queue request starts and A takes a case
        client.start(parse_request(request(request_id, [c.COMPUTE_TYPE_QUEUE] * 3)))
        if moment == "computing":
            assert in_hand.wait(30)
            thread_b.start()
            # AND A computes it for longer than the visibility timeout, B polling meanwhile
            time.sleep(3.5)
            # THEN A's heartbeat kept the case from B: its row is still pending
            assert {r[c.ATTR_CASE_ID]: r[c.ATTR_STATE] for r in client.results(request_id)}[victim[0]] == \
                c.CASE_PENDING
            kill.set()  # AND WHEN A dies, before reporting the case
        else:
            thread_a.join(30)  # A died after reporting its first case
            thread_b.start()
        thread_a.join(30)
        assert a_ended == ["killed"]
        # THEN B receives the case after the visibility timeout, and the request completes
        row = client.wait(request_id, timeout=60)
        deadline = time.monotonic() + 30
        while (worker_b.stats.completed + worker_b.stats.skipped < 3  # the redelivered case too
               and time.monotonic() < deadline):
            time.sleep(0.1)
    finally:
        worker_b.stop()
        kill.set()
        thread_b.join(10)
    # AND every case was counted once, and Summary ran once
    assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED], row[c.ATTR_STATUS]) == (3, 3, c.STATUS_SUCCEEDED)
    assert emulator.summary_invocations(request_id) == 1
    # AND the case A held was computed by B (when A died computing it), or never again (when A died
    # before deleting its message: B found A's stored result, and reported it unless it was counted)
    reported = emulator.engine.fan_in_completions(request_id)  # completions the fan-in workflow got
    if moment == "computing":
        assert reported == Counter({"0": 1, "1": 1, "2": 1})
        assert sorted(computed_by_b) == ["0", "1", "2"] and worker_a.stats.completed == 0
    else:
        assert len(computed_by_b) == 2, computed_by_b  # the two other cases only
        held = ({"0", "1", "2"} - set(computed_by_b)).pop()
        assert reported[held] in (1, 2)  # A's completion, and B's report of the stored result if sent
        assert worker_b.stats.completed + worker_b.stats.skipped == 3
        # a late completion changed nothing (Summary stamps publishedAt after the final status: not a count)
        later = client.counter_row(request_id)
        assert later is not None
        assert {k: v for k, v in later.items() if k != c.ATTR_PUBLISHED_AT} == \
            {k: v for k, v in row.items() if k != c.ATTR_PUBLISHED_AT}


def test_an_unknown_compute_type_is_refused_before_anything_runs(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"requestId": "bad", "requests": [{"caseId": "0", c.ATTR_COMPUTE_TYPE: "gpu"}]}))
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert "computeType 'gpu' is not a known compute type; known: lambda, lambda-large, workflow, queue" \
        in captured.err
    assert captured.out == ""
