"""A request's lifecycle against moto: the counting of completions across attempts
(lambda_fns/counting.py), the Cancel workflow's claim and the redrive's steps
(lambda_fns/lifecycle.py), and what the summary says of a cancelled or redriven request
(lambda_fns/summary_model.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fns import constants as c
from lambda_fns import keys
from lambda_fns.counting import Backoff, Completion, Tables, count_batch, parse_completion
from lambda_fns.lifecycle import (
    RedriveRefused,
    RedriveSettings,
    RequestNotFound,
    RequestNotRunning,
    cancel,
    redrive,
)
from lambda_fns.lifecycle import Tables as LifecycleTables
from lambda_fns.summary_model import build_summary
from tests.documented import as_body, completion_event, failure_record
from tests.tables import create_counter_table, create_results_table

TABLES = LifecycleTables(counter="counter", results="results", bucket="artifacts")
COUNTING = Tables(counter="counter", results="results")
SETTINGS = RedriveSettings(chunk_cases=4, compute_concurrency=1000)
NO_WAIT = Backoff(sleep=lambda seconds: None)
NOW = 1_800_000_000.0
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:PreProcess:req.r2"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        ddb, s3 = boto3.client("dynamodb", region_name="us-east-1"), boto3.client("s3", region_name="us-east-1")
        create_counter_table(ddb, TABLES.counter)
        create_results_table(ddb, TABLES.results)
        s3.create_bucket(Bucket=TABLES.bucket)
        yield ddb, s3


def closed_request(ddb: Any, s3: Any, request_id: str, outcomes: list[str | None], *, status: str,
                   registered: int | None = None, **extra: Any) -> None:
    """A request as attempt 1 leaves it: its manifest and chunks (4 cases each), a row per
    registered case with its counted outcome (None: never counted), and its closed counter row."""
    case_ids = [str(i) for i in range(len(outcomes))]
    s3.put_object(Bucket=TABLES.bucket, Key="manifests/m.json", Body=json.dumps({"caseIds": case_ids}))
    for n, start in enumerate(range(0, len(case_ids), 4)):
        body = [{"caseId": case_id, "payload": f"p{case_id}"} for case_id in case_ids[start:start + 4]]
        s3.put_object(Bucket=TABLES.bucket, Key=keys.chunk_key("chunks/r/t/", n), Body=json.dumps(body))
    shards = 2
    for case_id, outcome in list(zip(case_ids, outcomes, strict=True))[:registered]:
        item = {**keys.results_key(request_id, case_id, shards), c.ATTR_REQUEST_ID: {"S": request_id},
                c.ATTR_STATE: {"S": outcome or c.CASE_PENDING}, c.ATTR_ATTEMPT: {"N": "1"}}
        if outcome:
            item[c.ATTR_OUTCOME] = {"S": outcome}
        ddb.put_item(TableName=TABLES.results, Item=item)
    counted = [o for o in outcomes if o]
    row = {c.ATTR_REQUEST_ID: request_id, c.ATTR_STATUS: status, c.ATTR_COUNTER: len(counted),
           c.ATTR_EXPECTED: len(outcomes), c.ATTR_SUCCEEDED: counted.count(c.CASE_SUCCEEDED),
           c.ATTR_FAILED: counted.count(c.CASE_FAILED), c.ATTR_SHARDS: shards, c.ATTR_ATTEMPT: 1,
           c.ATTR_EXPIRES_AT: int(NOW) + 7 * 86_400, c.ATTR_MANIFEST_KEY: "manifests/m.json",
           c.ATTR_CHUNK_PREFIX: "chunks/r/t/", c.ATTR_CHUNK_CASES: 4,
           c.ATTR_SUMMARY_KEY: keys.summary_key(request_id, int(extra.get(c.ATTR_ATTEMPT, 1))),
           c.ATTR_PUBLISHED_AT: NOW, c.ATTR_COMPLETED_AT: NOW, c.ATTR_CLAIMED_AT: int(NOW), **extra}
    ddb.put_item(TableName=TABLES.counter, Item={k: ({"N": str(v)} if isinstance(v, (int, float)) else {"S": v})
                                                  for k, v in row.items()})


def counter(ddb: Any, request_id: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=TABLES.counter, Key=keys.counter_key(request_id))["Item"]
    return {k: (float(v["N"]) if "N" in v else v.get("S")) for k, v in item.items()}


def result_row(ddb: Any, request_id: str, case_id: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=TABLES.results, Key=keys.results_key(request_id, case_id, 2))["Item"]
    return {k: (v.get("S") or v.get("N")) for k, v in item.items()}


S, F = c.CASE_SUCCEEDED, c.CASE_FAILED


# -------------------------------------------------------------------------- counting by attempt
def test_a_completion_carries_its_attempt_from_the_event_and_from_lambda_s_failure_record() -> None:
    event = completion_event({"requestId": "r", "request": {"caseId": "3"}, "state": S, "error": "", "attempt": 2})
    assert parse_completion("m", as_body(event)).attempt == 2
    # the seed's completion names no attempt: it is attempt 1
    assert parse_completion("m", as_body(completion_event({"requestId": "r", "request": {"caseId": "3"},
                                                           "state": S, "error": ""}))).attempt == 1
    record = failure_record(None, condition="RetriesExhausted")
    record["detail"]["requestPayload"]["detail"]["attempt"] = 3
    assert parse_completion("m", as_body(record)).attempt == 3


def test_a_completion_counts_only_for_the_attempt_its_case_waits_for(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    # GIVEN a request whose case 1 failed in attempt 1 and was redriven (its row waits for attempt 2)
    closed_request(ddb, s3, "r", [S, F, S], status=c.STATUS_PARTIAL)
    redrive(ddb, s3, TABLES, {"requestId": "r"}, execution_arn=EXECUTION, token="t2", now=NOW, settings=SETTINGS)

    def completion(attempt: int, state: str = S) -> Completion:
        return Completion(f"m{attempt}", "r", "1", state, "", 2, attempt)

    # WHEN attempt 1's completion of it arrives late (a duplicate of its failure), then attempt 2's
    late = count_batch(ddb, COUNTING, [completion(1, F)], backoff=NO_WAIT)
    current = count_batch(ddb, COUNTING, [completion(2)], backoff=NO_WAIT)
    again = count_batch(ddb, COUNTING, [completion(2), completion(1)], backoff=NO_WAIT)
    # THEN only attempt 2's is counted, once, and it closes the attempt (3 of 3)
    assert (late.counted, late.stale) == (0, 1)
    assert (current.counted, current.claims) == (1, ["r"])
    assert (again.counted, again.duplicates, again.stale) == (0, 1, 1)
    row = counter(ddb, "r")
    assert (row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED], row[c.ATTR_SUCCEEDED], row[c.ATTR_FAILED]) == (3, 3, 3, 0)
    assert result_row(ddb, "r", "1")[c.ATTR_OUTCOME] == S


# -------------------------------------------------------------------------------------- cancel
def test_cancel_claims_a_running_request_and_names_the_execution_to_stop(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", [S, None], status=c.STATUS_RUNNING, executionArn=EXECUTION)
    out = cancel(ddb, TABLES, "r", now=NOW)
    assert out == {"requestId": "r", "executionArn": EXECUTION, "attempt": 1, "cancelledAt": f"{NOW:.3f}"}
    row = counter(ddb, "r")
    assert (row[c.ATTR_STATUS], row[c.ATTR_CANCELLED_AT], row[c.ATTR_CLAIMED_AT]) == (c.STATUS_SUMMARIZING, NOW, NOW)
    # AND nothing is counted after it: the fan-in counts only RUNNING requests
    late = count_batch(ddb, COUNTING, [Completion("m", "r", "1", S, "", 2)], backoff=NO_WAIT)
    assert (late.counted, late.dropped, counter(ddb, "r")[c.ATTR_COUNTER]) == (0, 1, 1)


@pytest.mark.parametrize(("status", "says"), [(c.STATUS_SUCCEEDED, "has finished (SUCCEEDED)"),
                                              (c.STATUS_SUMMARIZING, "is closing (SUMMARIZING)")])
def test_cancel_refuses_a_request_that_is_not_running_and_says_its_status(aws: tuple[Any, Any], status: str,
                                                                          says: str) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", [S], status=status)
    with pytest.raises(RequestNotRunning, match=says.replace("(", r"\(").replace(")", r"\)")):
        cancel(ddb, TABLES, "r", now=NOW)
    assert counter(ddb, "r")[c.ATTR_STATUS] == status
    with pytest.raises(RequestNotFound, match="no request 'other'"):
        cancel(ddb, TABLES, "other", now=NOW)


# ------------------------------------------------------------------------------------- redrive
def test_a_redrive_takes_up_only_failed_and_never_completed_cases(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    # GIVEN a 10-case request: 5 succeeded, 2 failed, 1 never counted, 2 never emitted (cancelled)
    outcomes: list[str | None] = [S, F, S, S, None, S, F, S, None, None]
    closed_request(ddb, s3, "r", outcomes, status=c.STATUS_CANCELLED, registered=8, cancelledAt=NOW)
    # WHEN it is redriven
    state = redrive(ddb, s3, TABLES, {"requestId": "r", "deadlineSeconds": 600}, execution_arn=EXECUTION,
                    token="t2", now=NOW, settings=SETTINGS)
    # THEN the 5 cases are reset (or registered) for attempt 2, and nothing else changed
    taken = ["1", "4", "6", "8", "9"]
    for case_id in taken:
        row = result_row(ddb, "r", case_id)
        assert (row[c.ATTR_STATE], row[c.ATTR_ATTEMPT], c.ATTR_OUTCOME in row) == (c.CASE_PENDING, "2", False)
    assert result_row(ddb, "r", "0")[c.ATTR_OUTCOME] == S and result_row(ddb, "r", "0")[c.ATTR_ATTEMPT] == "1"
    # AND their cases (bodies as sent) are in the attempt's chunks, in request order
    chunks = [json.loads(s3.get_object(Bucket=TABLES.bucket, Key=keys.chunk_key(state["chunkPrefix"], n))["Body"]
                         .read()) for n in state["chunks"]]
    assert [case["caseId"] for chunk in chunks for case in chunk] == taken
    assert chunks[0][0] == {"caseId": "1", "payload": "p1"}
    assert (state["requestAttempt"], state["registered"], state["redriven"], state["deadline"]) == (
        "2", True, 5, str(int(NOW) + 600))
    # AND the counter row runs attempt 2 with the kept counts: the target is reached when the 5 complete
    row = counter(ddb, "r")
    assert (row[c.ATTR_STATUS], row[c.ATTR_ATTEMPT], row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED], row[c.ATTR_SUCCEEDED],
            row[c.ATTR_FAILED], row[c.ATTR_REDRIVEN], row[c.ATTR_CASES]) == (c.STATUS_RUNNING, 2, 5, 10, 5, 0, 5, 10)
    for gone in (c.ATTR_SUMMARY_KEY, c.ATTR_PUBLISHED_AT, c.ATTR_CANCELLED_AT, c.ATTR_CLAIMED_AT):
        assert gone not in row


def test_a_redrive_of_failed_cases_only_leaves_the_others_out_of_the_target(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", [S, F, None, S], status=c.STATUS_TIMED_OUT)
    state = redrive(ddb, s3, TABLES, {"requestId": "r", "timedOut": False}, execution_arn=EXECUTION, token="t",
                    now=NOW, settings=SETTINGS)
    row = counter(ddb, "r")
    assert (state["redriven"], row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED]) == (1, 2, 3)
    assert c.ATTR_OUTCOME not in result_row(ddb, "r", "1") and result_row(ddb, "r", "2")[c.ATTR_ATTEMPT] == "1"


@pytest.mark.parametrize(("outcomes", "status", "attempt", "event", "reason"), [
    ([S, S], c.STATUS_SUCCEEDED, 1, {}, "succeeded: every case succeeded"),
    ([S, None], c.STATUS_RUNNING, 1, {}, "is still running"),
    ([S, F], c.STATUS_PARTIAL, 1 + c.MAX_REDRIVES, {}, f"redriven {c.MAX_REDRIVES} times, the limit"),
    ([S, F], c.STATUS_PARTIAL, 1, {"failed": False}, "has no timed-out cases to redrive"),
    ([S, F], c.STATUS_PARTIAL, 1, {"failed": False, "timedOut": False}, "asked for neither"),
    ([S, F], c.STATUS_PARTIAL, 1, {"deadlineSeconds": 8 * 86_400}, "would close after that"),
])
def test_a_redrive_that_cannot_be_done_is_refused_and_changes_nothing(
        aws: tuple[Any, Any], outcomes: list[str | None], status: str, attempt: int, event: dict[str, Any],
        reason: str) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", outcomes, status=status, attempt=attempt)
    before = counter(ddb, "r")
    with pytest.raises(RedriveRefused, match=reason):
        redrive(ddb, s3, TABLES, {"requestId": "r", **event}, execution_arn=EXECUTION, token="t", now=NOW,
                settings=SETTINGS)
    assert counter(ddb, "r") == before
    assert result_row(ddb, "r", "1").get(c.ATTR_OUTCOME) == outcomes[1]


def test_of_two_redrives_of_one_attempt_one_goes_on_and_a_retried_run_resumes(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", [S, F], status=c.STATUS_PARTIAL)
    # GIVEN a redrive that took attempt 2 and reset its rows, then crashed before reopening the request
    ddb.update_item(TableName="counter", Key=keys.counter_key("r"), UpdateExpression="SET #a = :a, #e = :e",
                    ExpressionAttributeNames={"#a": c.ATTR_ATTEMPT, "#e": c.ATTR_EXECUTION_ARN},
                    ExpressionAttributeValues={":a": {"N": "2"}, ":e": {"S": EXECUTION}})
    ddb.update_item(TableName="results", Key=keys.results_key("r", "1", 2), UpdateExpression="SET #a = :a REMOVE #o",
                    ExpressionAttributeNames={"#a": c.ATTR_ATTEMPT, "#o": c.ATTR_OUTCOME},
                    ExpressionAttributeValues={":a": {"N": "2"}})
    # THEN another execution is refused, and a retried run of the same one finishes the redrive
    with pytest.raises(RedriveRefused):
        redrive(ddb, s3, TABLES, {"requestId": "r"}, execution_arn=EXECUTION + "x", token="t", now=NOW,
                settings=SETTINGS)
    state = redrive(ddb, s3, TABLES, {"requestId": "r", "failed": True, "timedOut": False},
                    execution_arn=EXECUTION, token="t", now=NOW, settings=SETTINGS)
    row = counter(ddb, "r")
    assert (state["redriven"], row[c.ATTR_STATUS], row[c.ATTR_COUNTER], row[c.ATTR_EXPECTED]) == (
        1, c.STATUS_RUNNING, 1, 2)


# ------------------------------------------------------------------------------------- summary
def test_a_cancelled_request_s_summary_names_what_had_not_completed() -> None:
    row = {c.ATTR_REQUEST_ID: "r", c.ATTR_EXPECTED: 4, c.ATTR_CANCELLED_AT: NOW, c.ATTR_CREATED_AT: NOW - 5}
    rows = [{c.ATTR_CASE_ID: "0", c.ATTR_OUTCOME: S, c.ATTR_STATE: S},
            {c.ATTR_CASE_ID: "1", c.ATTR_STATE: S},  # finished, but not counted before the cancel
            {c.ATTR_CASE_ID: "2", c.ATTR_OUTCOME: F, c.ATTR_STATE: F, c.ATTR_ERROR: "boom"}]
    summary = build_summary(row, rows, ["0", "1", "2", "3"], completed_at=NOW)
    assert summary["status"] == c.STATUS_CANCELLED
    assert (summary["succeeded"], summary["failed"], summary["cancelledCount"], summary["cancelled"]) == (
        1, 1, 2, ["1", "3"])
    assert [case["state"] for case in summary["cases"]] == [S, c.CASE_CANCELLED, F, c.CASE_CANCELLED]


def test_a_redriven_request_s_summary_says_each_case_s_attempt_and_counts_the_whole_request() -> None:
    row = {c.ATTR_REQUEST_ID: "r", c.ATTR_EXPECTED: 3, c.ATTR_CASES: 3, c.ATTR_ATTEMPT: 2, c.ATTR_REDRIVEN: 1}
    rows = [{c.ATTR_CASE_ID: "0", c.ATTR_OUTCOME: S, c.ATTR_STATE: S, c.ATTR_ATTEMPT: 1},
            {c.ATTR_CASE_ID: "1", c.ATTR_OUTCOME: S, c.ATTR_STATE: S, c.ATTR_ATTEMPT: 2},
            {c.ATTR_CASE_ID: "2", c.ATTR_OUTCOME: F, c.ATTR_STATE: F}]
    summary = build_summary(row, rows, ["0", "1", "2"], completed_at=NOW)
    assert (summary["status"], summary["attempt"], summary["redriven"], summary["succeeded"], summary["failed"]) == (
        c.STATUS_PARTIAL, 2, 1, 2, 1)
    assert [case["attempt"] for case in summary["cases"]] == [1, 2, 1]
    assert keys.summary_key("r", 2) != keys.summary_key("r")


def test_in_one_batch_the_later_attempt_s_completion_of_a_case_stands(aws: tuple[Any, Any]) -> None:
    ddb, s3 = aws
    closed_request(ddb, s3, "r", [S, F], status=c.STATUS_PARTIAL)
    redrive(ddb, s3, TABLES, {"requestId": "r"}, execution_arn=EXECUTION, token="t2", now=NOW, settings=SETTINGS)
    # WHEN attempt 1's late completion of case 1 comes first in the batch that holds attempt 2's
    batch = [Completion("late", "r", "1", F, "late", 2, 1), Completion("now", "r", "1", S, "", 2, 2)]
    result = count_batch(ddb, COUNTING, batch, backoff=NO_WAIT)
    # THEN attempt 2's is counted and attempt 1's is stale
    assert (result.counted, result.stale, result.duplicates, result.claims) == (1, 1, 0, ["r"])
    assert result_row(ddb, "r", "1")[c.ATTR_OUTCOME] == S
