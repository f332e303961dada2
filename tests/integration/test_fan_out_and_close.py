"""The fan-out and the close as AWS would make them happen, on the embedded target: EventBridge
refusing fan-out entries (throttling), a batch lost for good, cases arriving after their deadline,
a rejected request, and Summary claims that are fresh or stale at the deadline."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from moto.events.models import EventsBackend

from fanflow.client import FanflowClient
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.faults import FaultPlan
from local.runtime import EmbeddedEmulator


class ThrottledFanOut:
    """EventBridge refusing the fan-out entries of chosen cases (ThrottlingException, as PutEvents
    reports a refused entry), `times` times each or for good; it counts what it accepted."""

    def __init__(self, refuse: dict[tuple[str, str], int | None]) -> None:
        self.refuse = dict(refuse)
        self.accepted: collections.Counter[tuple[str, str]] = collections.Counter()
        self.refused: collections.Counter[tuple[str, str]] = collections.Counter()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = EventsBackend.put_events

        def put_events(backend: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            results: list[dict[str, Any] | None] = [None] * len(events)
            kept, where = [], []
            for index, entry in enumerate(events):
                if entry.get("Source") == c.PREPROCESS_SOURCE:
                    detail = json.loads(entry["Detail"])
                    case = (detail["requestId"], detail["request"]["caseId"])
                    if case in self.refuse and (self.refuse[case] is None or self.refused[case] < self.refuse[case]):
                        self.refused[case] += 1
                        results[index] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
                        continue
                    self.accepted[case] += 1
                kept.append(entry)
                where.append(index)
            for index, result in zip(where, original(backend, kept) if kept else [], strict=True):
                results[index] = result
            return results  # type: ignore[return-value]

        monkeypatch.setattr(EventsBackend, "put_events", put_events)


@pytest.fixture
def emulator() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator() as emulator:
        yield emulator


def configure(emulator: EmbeddedEmulator, fragment: str, **variables: str) -> None:
    """Set environment variables of the function whose name contains `fragment`, as the Lambda API would."""
    lam = emulator.client("lambda")
    [name] = [f["FunctionName"] for f in lam.list_functions()["Functions"] if fragment in f["FunctionName"]]
    env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, **variables}})


def start(emulator: EmbeddedEmulator, request_id: str, cases: int, **extra: Any) -> tuple[FanflowClient, str]:
    client = FanflowClient(emulator.client, emulator.outputs)
    request = sample_request(cases, request_id)
    request.update(extra)
    return client, client.start(parse_request(request))


def finished(emulator: EmbeddedEmulator, execution_arn: str, timeout: float = 60) -> dict[str, Any]:
    sfn = emulator.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (execution := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "PreProcess did not end"
        time.sleep(0.2)
    return dict(execution)


def test_refused_fan_out_entries_are_resumed_alone_and_each_case_is_emitted_once(
        emulator: EmbeddedEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN EventBridge throttling two cases' entries more often than one Emit invocation retries them
    bus = ThrottledFanOut({("resume", "3"): 6, ("resume", "14"): 9})
    bus.install(monkeypatch)
    # WHEN a 20-case request runs
    client, _ = start(emulator, "resume", 20)
    row = client.wait("resume", timeout=120)
    # THEN it succeeds: the refused cases were emitted on a later attempt, after a backoff
    assert (row[c.ATTR_STATUS], row[c.ATTR_COUNTER]) == (c.STATUS_SUCCEEDED, 20)
    assert bus.refused[("resume", "14")] == 9
    # AND every case was accepted exactly once: a resumed attempt puts only what was not accepted
    assert sorted(bus.accepted.values()) == [1] * 20
    # (one batch: a first Emit run, and one per resumed attempt)
    assert emulator.runner.stats.count(function_name(emulator, "EmitFunction"), "resume") >= 3


def function_name(emulator: EmbeddedEmulator, fragment: str) -> str:
    lam = emulator.client("lambda")
    [name] = [f["FunctionName"] for f in lam.list_functions()["Functions"] if fragment in f["FunctionName"]]
    return str(name)


def test_a_lost_batch_closes_the_request_early_as_a_fan_out_failure(
        emulator: EmbeddedEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN Emit allowed two attempts a second apart, and EventBridge refusing two cases for good
    configure(emulator, "EmitFunction", **{c.ENV_FANOUT_ATTEMPTS: "2", c.ENV_FANOUT_BACKOFF_BASE_SECONDS: "1",
                                           c.ENV_FANOUT_BACKOFF_MAX_SECONDS: "1"})
    ThrottledFanOut({("lost", "5"): None, ("lost", "6"): None}).install(monkeypatch)
    # WHEN a 10-case request with a 20-second deadline runs
    client, execution_arn = start(emulator, "lost", 10, deadlineSeconds=20)
    row = client.wait("lost", timeout=60)
    summary = client.summary(row)
    # THEN it closes long before its deadline, once the 8 emitted cases are counted, as FAILED
    assert row[c.ATTR_COMPLETED_AT] < row[c.ATTR_DEADLINE] - 10
    assert (summary["status"], summary["succeeded"], summary["target"]) == (c.STATUS_FAILED, 8, 10)
    # AND its summary says which cases were never emitted, and why; none is "timed out"
    assert (summary["notEmitted"], summary["timedOut"]) == (["5", "6"], [])
    assert "not accepted by EventBridge after 2 attempts (ThrottlingException)" in summary["fanOutError"]
    assert [case["state"] for case in summary["cases"] if case["caseId"] in ("5", "6")] == [c.CASE_NOT_EMITTED] * 2
    assert emulator.summary_invocations("lost") == 1
    # AND PreProcess ends FAILED with FanOutFailed (which the failure alarm reports) after the deadline
    execution = finished(emulator, execution_arn)
    assert (execution["status"], execution["error"]) == ("FAILED", "FanOutFailed")


def test_a_case_received_after_its_deadline_is_not_computed() -> None:
    # GIVEN two invocations at a time (a fan-in batch takes both while it counts), cases of 1.5 s, and
    # a 6-case request with a 2-second deadline: the third pair reaches Compute after it
    with EmbeddedEmulator(lambda_concurrency=2, compute_seconds=1.5) as emulator:
        client, _ = start(emulator, "late", 6, deadlineSeconds=2)
        row = client.wait("late", timeout=60)
        summary = client.summary(row)
        time.sleep(5)  # the cases still queued reach Compute after the deadline
        rows = {r[c.ATTR_CASE_ID]: r for r in client.results("late")}
    # THEN the request timed out, and the cases that arrived late were skipped, not computed
    assert summary["status"] == c.STATUS_TIMED_OUT and summary["timedOut"]
    expired = [case_id for case_id, r in rows.items() if r[c.ATTR_STATE] == c.CASE_EXPIRED]
    assert expired, rows
    assert all(c.ATTR_DURATION_MS not in rows[case_id] for case_id in expired)
    assert set(expired) <= set(summary["timedOut"])


def test_a_rejected_request_counts_itself_so_the_failure_alarm_leaves_it_out(emulator: EmbeddedEmulator) -> None:
    # GIVEN an invalid request and a duplicate one, started straight on PreProcess
    sfn = emulator.client("stepfunctions")
    client, _ = start(emulator, "dup", 2)
    client.wait("dup", timeout=60)
    arns = [sfn.start_execution(stateMachineArn=emulator.outputs[c.OUTPUT_PREPROCESS_ARN], name=name,
                                input=json.dumps(body))["executionArn"]
            for name, body in (("bad", {"requestId": "bad"}),
                               ("dup-again", {"requestId": "dup", "requests": [{"caseId": "0"}]}))]
    # WHEN PreProcess rejects them
    errors = [finished(emulator, arn)["error"] for arn in arns]
    assert errors == ["InvalidRequest", "RequestAlreadyExists"]
    # THEN each counted itself in RequestsRejected: failed executions less rejections is 0
    cloudwatch = emulator.client("cloudwatch")
    datapoints = cloudwatch.get_metric_statistics(
        Namespace=c.METRICS_NAMESPACE, MetricName=c.METRIC_REQUESTS_REJECTED,
        Dimensions=[{"Name": c.DIMENSION_SERVICE, "Value": c.SERVICE_NAME}],
        StartTime=time.time() - 600, EndTime=time.time() + 60, Period=3600, Statistics=["Sum"])["Datapoints"]
    assert sum(point["Sum"] for point in datapoints) == 2


def claim(emulator: EmbeddedEmulator, request_id: str, claimed_at: int) -> None:
    """What a Summary's claim leaves on the row: SUMMARIZING, at `claimed_at`."""
    emulator.client("dynamodb").update_item(
        TableName=emulator.outputs[c.OUTPUT_COUNTER_TABLE], Key={c.ATTR_REQUEST_ID: {"S": request_id}},
        UpdateExpression="SET #s = :s, #at = :at",
        ExpressionAttributeNames={"#s": c.ATTR_STATUS, "#at": c.ATTR_CLAIMED_AT},
        ExpressionAttributeValues={":s": {"S": c.STATUS_SUMMARIZING}, ":at": {"N": str(claimed_at)}})


def wait_for_row(client: FanflowClient, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (row := client.counter_row(request_id)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return row


def test_at_the_deadline_a_stale_claim_is_taken_over() -> None:
    # GIVEN a request nothing completes (its completions are lost), claimed long ago by a Summary that died
    with EmbeddedEmulator(faults=FaultPlan(drop_rate=1.0)) as emulator:
        client, _ = start(emulator, "stale", 3, deadlineSeconds=4)
        row = wait_for_row(client, "stale")
        claim(emulator, "stale", int(row[c.ATTR_CREATED_AT]) - c.STALE_CLAIM_SECONDS - 60)
        # WHEN the deadline comes
        row = client.wait("stale", timeout=60)
        runs = emulator.summary_invocations("stale")
    # THEN PreProcess took the claim over at once (recording the deadline as its claim) and summarized
    assert row[c.ATTR_STATUS] == c.STATUS_TIMED_OUT
    assert row[c.ATTR_CLAIMED_AT] == row[c.ATTR_DEADLINE]
    assert runs == 1


def test_at_the_deadline_a_fresh_claim_is_waited_for_until_it_is_stale() -> None:
    # GIVEN claims that go stale in 4 s, tried every 2 s (Prepare's plan, shortened for the test)
    def short_claims(fn: Any, module: ModuleType) -> None:
        if "Prepare" in fn.function_name:
            module.c.STALE_CLAIM_SECONDS, module.c.CLAIM_RETRY_SECONDS = 4, 2  # type: ignore[attr-defined]

    with EmbeddedEmulator(faults=FaultPlan(drop_rate=1.0)) as emulator:
        emulator.runner.cold_start_hooks.append(short_claims)
        client, execution_arn = start(emulator, "fresh", 3, deadlineSeconds=3)
        row = wait_for_row(client, "fresh")
        deadline = int(row[c.ATTR_DEADLINE])
        # AND a Summary that claimed the request a second before its deadline (and is still running)
        claim(emulator, "fresh", deadline - 1)
        # WHEN the deadline comes
        row = client.wait("fresh", timeout=60)
        history = emulator.client("stepfunctions").get_execution_history(executionArn=execution_arn,
                                                                         maxResults=1000)["events"]
        runs = emulator.summary_invocations("fresh")
    # THEN PreProcess did not take the claim while it was fresh: it tried at the deadline and 2 s later,
    # and took it at the first slot where it was stale (deadline + 4), then ran Summary once
    tries = [e for e in history if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"]
             == "ClaimTimeout"]
    assert len(tries) == 3
    assert row[c.ATTR_CLAIMED_AT] == deadline + 4
    assert row[c.ATTR_STATUS] == c.STATUS_TIMED_OUT and runs == 1
