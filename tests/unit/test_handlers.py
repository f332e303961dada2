"""Each Lambda handler against moto. Handlers read their configuration and create their
boto3 clients at import, so every test imports its handler fresh inside mock_aws."""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fns import constants as c
from lambda_fns.request_model import RequestError
from tests.tables import create_counter_table, create_results_table

REGION = "us-east-1"
BUCKET = "fanflow-artifacts"
BUS = "fanflow-bus"
COUNTER_TABLE = "fanflow-counter"
RESULTS_TABLE = "fanflow-results"
RETENTION = 3600
SEED = {"requestId": "123456", "requests": [{"caseId": str(i)} for i in range(5)], "length": "5"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials and region, no endpoint override, and moto for the test's duration."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "FANFLOW_LOG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


HANDLERS = ("prepare", "emit", "compute", "summary")


@pytest.fixture(autouse=True)
def forget_handlers() -> Iterator[None]:
    """Leave no handler module (bound to moto's clients) or log handler behind for later tests."""
    loggers = {name: logging.getLogger(f"fanflow.{name}") for name in HANDLERS}
    before = {name: list(logger.handlers) for name, logger in loggers.items()}
    yield
    for name, logger in loggers.items():
        sys.modules.pop(f"lambda_fns.{name}", None)
        for handler in logger.handlers[:]:
            if handler not in before[name]:
                logger.removeHandler(handler)
                handler.close()


def fresh(module: str) -> ModuleType:
    """Import a handler module anew, so it reads the current environment and moto's clients."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def context() -> SimpleNamespace:
    return SimpleNamespace(aws_request_id="ctx-0001", function_name="test")


def make_bucket() -> Any:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def make_counter_table() -> Any:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_counter_table(ddb, COUNTER_TABLE)
    return ddb


def make_results_table() -> Any:
    ddb = boto3.client("dynamodb", region_name=REGION)
    create_results_table(ddb, RESULTS_TABLE)
    return ddb


class BusTap:
    """An event bus with a rule forwarding one source's events to an SQS queue."""

    def __init__(self, source: str) -> None:
        self.events = boto3.client("events", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events.create_event_bus(Name=BUS)
        self.queue_url = self.sqs.create_queue(QueueName=f"tap-{abs(hash(source))}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": [source]}))
        self.events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered so far, as the EventBridge envelope."""
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


# --- prepare ---------------------------------------------------------------------------------


@pytest.fixture
def prepare(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any]]:
    monkeypatch.setenv(c.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(c.ENV_RETENTION_SECONDS, str(RETENTION))
    monkeypatch.setenv(c.ENV_DEFAULT_DEADLINE_SECONDS, "600")
    monkeypatch.setenv(c.ENV_BATCH_SIZE, "2")
    s3 = make_bucket()
    yield fresh("lambda_fns.prepare"), s3


def test_prepare_plans_batches_deadline_and_writes_the_manifest(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN the seed's 5-case request and FANOUT_BATCH_SIZE=2
    module, s3 = prepare
    before = time.time()
    # WHEN Prepare runs
    state = module.handler(json.loads(json.dumps(SEED)), context())
    after = time.time()
    # THEN the target is the string "5" and the cases are in 3 batches of 2, 2, 1, in order
    assert state["requestId"] == "123456"
    assert state["target"] == "5"
    assert [[case["caseId"] for case in batch] for batch in state["batches"]] == [["0", "1"], ["2", "3"], ["4"]]
    # AND createdAt has milliseconds (as completedAt has), the deadline is the whole second
    # at or after createdAt + the default deadline; numbers are strings for DynamoDB
    created = float(state["createdAt"])
    assert before - 0.001 <= created <= after
    assert state["createdAt"] == f"{created:.3f}"
    assert int(state["deadline"]) == math.ceil(created + 600)
    assert state["deadlineIso"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(state["deadline"])))
    assert int(state["expiresAt"]) == int(state["deadline"]) + RETENTION
    assert all(isinstance(state[k], str) for k in ("target", "createdAt", "deadline", "expiresAt"))
    # AND the manifest lists the caseIds in order, under manifests/<requestId>/
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="manifests/123456/").get("Contents", [])
    assert [obj["Key"] for obj in listed] == [state["manifestKey"]]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=state["manifestKey"])["Body"].read())
    assert manifest == {"requestId": "123456", "caseIds": ["0", "1", "2", "3", "4"]}


def test_prepare_uses_the_request_deadline(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN a request with its own deadlineSeconds  WHEN Prepare runs
    module, _ = prepare
    state = module.handler({**SEED, "deadlineSeconds": 45}, context())
    # THEN the deadline is createdAt + 45, rounded up to the second
    assert int(state["deadline"]) == math.ceil(float(state["createdAt"]) + 45)


def test_prepare_rejects_a_bad_request_and_writes_nothing(prepare: tuple[ModuleType, Any]) -> None:
    # GIVEN a request whose length disagrees with its cases
    module, s3 = prepare
    bad = {**SEED, "length": "6"}
    # WHEN Prepare runs  THEN RequestError, and the bucket stays empty
    with pytest.raises(RequestError, match="length says 6"):
        module.handler(bad, context())
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_prepare_without_configuration_fails_at_import(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no FANOUT_BATCH_SIZE in the environment  WHEN the module is imported  THEN it names it
    from lambda_fns.support import ConfigurationError

    for name in (c.ENV_ARTIFACTS_BUCKET, c.ENV_RETENTION_SECONDS, c.ENV_DEFAULT_DEADLINE_SECONDS):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv(c.ENV_BATCH_SIZE, raising=False)
    with pytest.raises(ConfigurationError, match=c.ENV_BATCH_SIZE):
        fresh("lambda_fns.prepare")


# --- emit ------------------------------------------------------------------------------------


def test_emit_puts_one_event_per_case_in_calls_of_ten(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a bus tapped for the fan-out source, and a batch of 25 cases
    monkeypatch.setenv(c.ENV_EVENTBUS_NAME, BUS)
    tap = BusTap(c.PREPROCESS_SOURCE)
    module = fresh("lambda_fns.emit")
    cases = [{"caseId": f"case-{i}"} for i in range(25)]
    # WHEN Emit runs
    result = module.handler({"requestId": "req-25", "cases": cases}, context())
    # THEN it made ceil(25/10) calls and 25 events arrived with the contract's source and detail
    assert result == {"emitted": 25, "putEventsCalls": 3}
    received = tap.received()
    assert len(received) == 25
    assert {event["source"] for event in received} == {c.PREPROCESS_SOURCE}
    assert {event["detail-type"] for event in received} == {c.CASE_DETAIL_TYPE}
    details = sorted((event["detail"] for event in received), key=lambda d: int(d["request"]["caseId"][5:]))
    assert details == [{"requestId": "req-25", "request": case} for case in cases]


# --- compute ---------------------------------------------------------------------------------


@pytest.fixture
def compute(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, BusTap]]:
    monkeypatch.setenv(c.ENV_EVENTBUS_NAME, BUS)
    monkeypatch.setenv(c.ENV_EVENTBUS_SOURCE, c.COMPUTE_SOURCE)
    monkeypatch.setenv(c.ENV_EVENTBUS_DETAILTYPE, c.COMPLETION_DETAIL_TYPE)
    monkeypatch.setenv(c.ENV_RESULTS_TABLE, RESULTS_TABLE)
    monkeypatch.setenv(c.ENV_COMPUTE_SECONDS, "0")
    monkeypatch.setenv(c.ENV_RETENTION_SECONDS, str(RETENTION))
    monkeypatch.setenv(c.ENV_COMPUTE_TYPE, c.COMPUTE_TYPE_LAMBDA_LARGE)
    ddb = make_results_table()
    tap = BusTap(c.COMPUTE_SOURCE)
    yield fresh("lambda_fns.compute"), ddb, tap


def case_event(request_id: str, case_id: str) -> dict[str, Any]:
    return {
        "source": c.PREPROCESS_SOURCE,
        "detail-type": c.CASE_DETAIL_TYPE,
        "detail": {"requestId": request_id, "request": {"caseId": case_id}},
    }


def results_row(ddb: Any, request_id: str, case_id: str) -> dict[str, Any]:
    from lambda_fns.support import plain_item

    item = ddb.get_item(
        TableName=RESULTS_TABLE, Key={c.ATTR_REQUEST_ID: {"S": request_id}, c.ATTR_CASE_ID: {"S": case_id}}
    )["Item"]
    return plain_item(item)


def test_compute_records_the_result_and_puts_the_completion_event(
    compute: tuple[ModuleType, Any, BusTap],
) -> None:
    # GIVEN a fan-out event for case 7 and COMPUTE_SECONDS=0
    module, ddb, tap = compute
    event = case_event("req-c", "7")
    # WHEN Compute runs
    before = time.time()
    out = module.handler(event, context())
    # THEN the results row says SUCCEEDED, with a duration and an expiry
    row = results_row(ddb, "req-c", "7")
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED
    assert c.ATTR_ERROR not in row
    assert isinstance(row[c.ATTR_DURATION_MS], int) and 0 <= row[c.ATTR_DURATION_MS] < 5000
    assert int(before) + RETENTION <= row[c.ATTR_EXPIRES_AT] <= int(time.time()) + RETENTION
    assert c.ATTR_OUTCOME not in row  # counting is Increment's job
    assert row[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_LAMBDA_LARGE  # the type its configuration names
    # AND the completion event is the input detail plus its state, from the compute source
    expected = {**event["detail"], "state": c.CASE_SUCCEEDED, "error": "", c.DETAIL_COUNT_AS: c.ATTR_SUCCEEDED}
    assert out == expected
    received = tap.received()
    assert len(received) == 1
    assert received[0]["source"] == c.COMPUTE_SOURCE
    assert received[0]["detail-type"] == c.COMPLETION_DETAIL_TYPE
    assert received[0]["detail"] == expected


def test_compute_reports_a_failing_case_instead_of_raising(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a computation that raises
    module, ddb, tap = compute

    def broken(request: dict[str, Any], seconds: float) -> dict[str, Any]:
        raise ValueError("input out of range")

    monkeypatch.setattr(module, "work", broken)
    event = case_event("req-c", "3")
    # WHEN Compute runs  THEN it does not raise
    out = module.handler(event, context())
    # AND the results row says FAILED with the error
    row = results_row(ddb, "req-c", "3")
    assert row[c.ATTR_STATE] == c.CASE_FAILED
    assert row[c.ATTR_ERROR] == "ValueError: input out of range"
    assert c.ATTR_EXPIRES_AT in row and c.ATTR_DURATION_MS in row
    # AND the completion event carries the failure and the error
    expected = {**event["detail"], "state": c.CASE_FAILED, "error": "ValueError: input out of range",
                c.DETAIL_COUNT_AS: c.ATTR_FAILED}
    assert out == expected
    received = tap.received()
    assert [e["detail"] for e in received] == [expected]


def test_compute_retry_after_failure_clears_the_error(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a case that failed once
    module, ddb, _ = compute
    monkeypatch.setattr(module, "work", lambda request, seconds: (_ for _ in ()).throw(RuntimeError("flaky")))
    module.handler(case_event("req-c", "1"), context())
    assert results_row(ddb, "req-c", "1")[c.ATTR_ERROR] == "RuntimeError: flaky"
    # WHEN a retry succeeds  THEN the row says SUCCEEDED with no leftover error
    monkeypatch.setattr(module, "work", lambda request, seconds: {"caseId": request["caseId"]})
    module.handler(case_event("req-c", "1"), context())
    row = results_row(ddb, "req-c", "1")
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED and c.ATTR_ERROR not in row


def test_compute_rerun_after_the_case_was_counted_keeps_the_counted_result(
    compute: tuple[ModuleType, Any, BusTap], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a case whose result Increment has counted (it marked the row with its outcome)
    module, ddb, tap = compute
    module.handler(case_event("req-d", "1"), context())
    ddb.update_item(TableName=RESULTS_TABLE, Key={"requestId": {"S": "req-d"}, "caseId": {"S": "1"}},
                    UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": c.ATTR_OUTCOME},
                    ExpressionAttributeValues={":o": {"S": c.CASE_SUCCEEDED}})
    # WHEN a duplicate delivery runs the case again, and fails this time
    monkeypatch.setattr(module, "work", lambda request, seconds: (_ for _ in ()).throw(RuntimeError("late")))
    module.handler(case_event("req-d", "1"), context())
    # THEN the counted row is unchanged, and the late completion is still reported (Increment drops it)
    row = results_row(ddb, "req-d", "1")
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED and row[c.ATTR_OUTCOME] == c.CASE_SUCCEEDED
    assert c.ATTR_ERROR not in row
    assert [e["detail"]["state"] for e in tap.received()] == [c.CASE_SUCCEEDED, c.CASE_FAILED]


# --- summary ---------------------------------------------------------------------------------


@pytest.fixture
def summary(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Any, Any, BusTap]]:
    monkeypatch.setenv(c.ENV_COUNTER_TABLE, COUNTER_TABLE)
    monkeypatch.setenv(c.ENV_RESULTS_TABLE, RESULTS_TABLE)
    monkeypatch.setenv(c.ENV_ARTIFACTS_BUCKET, BUCKET)
    monkeypatch.setenv(c.ENV_EVENTBUS_NAME, BUS)
    monkeypatch.setenv(c.ENV_RETENTION_SECONDS, str(RETENTION))
    ddb = make_counter_table()
    make_results_table()
    s3 = make_bucket()
    tap = BusTap(c.SUMMARY_SOURCE)
    yield fresh("lambda_fns.summary"), ddb, s3, tap


def seed_request(
    ddb: Any, s3: Any, request_id: str, *, target: int, counter: int, results: list[dict[str, Any]]
) -> None:
    """A counter row in SUMMARIZING, its manifest of caseIds 0..target-1, and results rows."""
    manifest_key = f"manifests/{request_id}/ctx.json"
    s3.put_object(
        Bucket=BUCKET,
        Key=manifest_key,
        Body=json.dumps({"requestId": request_id, "caseIds": [str(i) for i in range(target)]}).encode(),
    )
    ddb.put_item(
        TableName=COUNTER_TABLE,
        Item={
            c.ATTR_REQUEST_ID: {"S": request_id},
            c.ATTR_STATUS: {"S": c.STATUS_SUMMARIZING},
            c.ATTR_TARGET: {"N": str(target)},
            c.ATTR_COUNTER: {"N": str(counter)},
            c.ATTR_CREATED_AT: {"N": str(int(time.time()) - 30)},
            c.ATTR_MANIFEST_KEY: {"S": manifest_key},
        },
    )
    for item in results:
        ddb.put_item(TableName=RESULTS_TABLE, Item={c.ATTR_REQUEST_ID: {"S": request_id}, **item})


def counter_row(ddb: Any, request_id: str) -> dict[str, Any]:
    return ddb.get_item(TableName=COUNTER_TABLE, Key={c.ATTR_REQUEST_ID: {"S": request_id}})["Item"]


def test_summary_on_deadline_reports_the_missing_case(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN 3 cases: 0 succeeded (with an expiry), 1 failed (counted by Increment, no expiry yet), 2 never came
    module, ddb, s3, tap = summary
    seed_request(
        ddb,
        s3,
        "req-s",
        target=3,
        counter=2,
        results=[
            {
                c.ATTR_CASE_ID: {"S": "0"},
                c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED},
                c.ATTR_STATE: {"S": c.CASE_SUCCEEDED},
                c.ATTR_DURATION_MS: {"N": "5"},
                c.ATTR_EXPIRES_AT: {"N": "123"},
            },
            {c.ATTR_CASE_ID: {"S": "1"}, c.ATTR_OUTCOME: {"S": c.CASE_FAILED}, c.ATTR_ERROR: {"S": "boom"}},
        ],
    )
    # WHEN Summary runs because the deadline passed
    before = int(time.time())
    out = module.handler({"requestId": "req-s", "reason": c.REASON_TIMED_OUT}, context())
    # THEN the stored summary is TIMED_OUT, naming case 2, with 1 succeeded and 1 failed
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-s.json")["Body"].read())
    assert stored["status"] == c.STATUS_TIMED_OUT
    assert stored["timedOut"] == ["2"]
    assert (stored["succeeded"], stored["failed"], stored["target"]) == (1, 1, 3)
    assert stored["cases"] == [
        {"caseId": "0", "state": c.CASE_SUCCEEDED, "durationMs": 5},
        {"caseId": "1", "state": c.CASE_FAILED, "error": "boom"},
        {"caseId": "2", "state": c.STATUS_TIMED_OUT},
    ]
    assert out["summaryKey"] == "summaries/req-s.json" and out["status"] == c.STATUS_TIMED_OUT
    # AND the counter row is closed with the summary's key
    row = counter_row(ddb, "req-s")
    assert row[c.ATTR_STATUS] == {"S": c.STATUS_TIMED_OUT}
    assert row[c.ATTR_SUMMARY_KEY] == {"S": "summaries/req-s.json"}
    assert c.ATTR_COMPLETED_AT in row
    # AND the results row that lacked an expiry has one now; the other keeps its own
    from lambda_fns.support import plain_item

    rows = {r[c.ATTR_CASE_ID]: r for r in (plain_item(i) for i in ddb.scan(TableName=RESULTS_TABLE)["Items"])}
    assert before + RETENTION <= rows["1"][c.ATTR_EXPIRES_AT] <= int(time.time()) + RETENTION
    assert rows["0"][c.ATTR_EXPIRES_AT] == 123
    # AND the outcome was published once, from the summary source
    received = tap.received()
    assert len(received) == 1
    assert received[0]["detail-type"] == c.SUMMARY_DETAIL_TYPE
    assert received[0]["detail"]["status"] == c.STATUS_TIMED_OUT
    assert received[0]["detail"]["timedOut"] == ["2"]
    assert "cases" not in received[0]["detail"]

    # WHEN Summary is invoked again (a retried invocation)
    module.handler({"requestId": "req-s", "reason": c.REASON_TIMED_OUT}, context())
    # THEN it does not raise and the counter row is unchanged
    assert counter_row(ddb, "req-s") == row


def test_summary_all_counted_succeeds(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN 3 cases all counted as succeeded
    module, ddb, s3, _ = summary
    seed_request(
        ddb,
        s3,
        "req-ok",
        target=3,
        counter=3,
        results=[
            {c.ATTR_CASE_ID: {"S": str(i)}, c.ATTR_OUTCOME: {"S": c.CASE_SUCCEEDED}, c.ATTR_DURATION_MS: {"N": str(i)}}
            for i in range(3)
        ],
    )
    # WHEN Summary runs on completion
    out = module.handler({"requestId": "req-ok", "reason": c.REASON_COMPLETED}, context())
    # THEN SUCCEEDED everywhere
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/req-ok.json")["Body"].read())
    assert stored["status"] == out["status"] == c.STATUS_SUCCEEDED
    assert (stored["succeeded"], stored["failed"], stored["timedOut"]) == (3, 0, [])
    assert [case["caseId"] for case in stored["cases"]] == ["0", "1", "2"]
    assert counter_row(ddb, "req-ok")[c.ATTR_STATUS] == {"S": c.STATUS_SUCCEEDED}


def test_summary_without_a_counter_row_raises(summary: tuple[ModuleType, Any, Any, BusTap]) -> None:
    # GIVEN no counter row  WHEN Summary runs  THEN it names the request, and writes no summary
    module, _, s3, _ = summary
    with pytest.raises(LookupError, match="req-none"):
        module.handler({"requestId": "req-none", "reason": c.REASON_COMPLETED}, context())
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/").get("KeyCount") == 0
