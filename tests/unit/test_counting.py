"""Batched counting (lambda_fns/counting.py) against moto's DynamoDB: a batch of completions
is counted exactly once, whatever duplicates, strangers, closed requests, races and
conflicts it meets; and the two message shapes a completion arrives in are read as AWS
documents them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from lambda_fns import constants as c
from lambda_fns.counting import (
    CASES_PER_TRANSACTION,
    Backoff,
    Completion,
    MalformedCompletion,
    Tables,
    count_batch,
    parse_completion,
)
from tests.documented import as_body, completion_event, failure_record
from tests.tables import create_counter_table, create_results_table, results_key

TABLES = Tables(counter="counter", results="results")


# ---------------------------------------------------------------------------- message shapes
# (the documented shapes are in tests/documented.py, with their pages)


def test_a_completion_event_is_read_from_its_detail() -> None:
    body = as_body(completion_event({"requestId": "req-1", "request": {"caseId": "3", "extra": 1},
                                     "state": c.CASE_FAILED, "error": "ValueError: bad"}))
    assert parse_completion("m-1", body) == Completion("m-1", "req-1", "3", c.CASE_FAILED, "ValueError: bad")


@pytest.mark.parametrize(("payload", "condition", "error"), [
    ({"errorMessage": "division by zero", "errorType": "ZeroDivisionError", "stackTrace": []}, "RetriesExhausted",
     "ZeroDivisionError: division by zero"),
    ({"errorMessage": "2026-12-01T18:43:48.012Z e4b4 Task timed out after 60.00 seconds"}, "RetriesExhausted",
     "2026-12-01T18:43:48.012Z e4b4 Task timed out after 60.00 seconds"),
    (None, "EventAgeExceeded", "compute invocation failed (EventAgeExceeded)"),
])
def test_a_failure_record_is_a_failed_case_with_whatever_error_it_holds(
        payload: dict[str, Any] | None, condition: str, error: str) -> None:
    # GIVEN the record of a compute invocation that failed for good (a crash, a timeout, or an
    # event that expired before it ran: then there is no response payload at all)
    completion = parse_completion("m-2", as_body(failure_record(payload, condition=condition)))
    # THEN it is the case from the original event, FAILED, with the error the record holds
    assert completion == Completion("m-2", "req-1", "7", c.CASE_FAILED, error)


@pytest.mark.parametrize(("body", "problem"), [
    ("not json", "not a completion event"),
    (json.dumps({"source": "somebody.else", "detail": {}}), "not a completion: source"),
    (as_body(completion_event({"requestId": "req-1", "request": {}, "state": c.CASE_SUCCEEDED})),
     "not a completion event"),
    (as_body(completion_event({"requestId": "req-1", "request": {"caseId": "1"}, "state": "target"})),
     "state must be SUCCEEDED or FAILED"),
    (as_body(completion_event({"requestId": "", "request": {"caseId": "1"}, "state": c.CASE_SUCCEEDED})),
     "request_id must be a non-empty string"),
    (as_body(completion_event({"requestId": "req-1", "request": {"caseId": 1}, "state": c.CASE_SUCCEEDED})),
     "case_id must be a non-empty string"),
])
def test_anything_else_is_malformed(body: str, problem: str) -> None:
    # An event cannot name the counter it adds to: only SUCCEEDED and FAILED count, each to its own.
    with pytest.raises(MalformedCompletion, match=problem):
        parse_completion("m", body)


# ---------------------------------------------------------------------------- counting


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_counter_table(client, TABLES.counter)
        create_results_table(client, TABLES.results)
        yield client


def open_request(ddb: Any, request_id: str, cases: int, *, status: str = c.STATUS_RUNNING) -> None:
    """A request as PreProcess and Emit leave it: its counter row, and a registered row per case."""
    ddb.put_item(TableName=TABLES.counter, Item={
        c.ATTR_REQUEST_ID: {"S": request_id}, c.ATTR_COUNTER: {"N": "0"}, c.ATTR_SUCCEEDED: {"N": "0"},
        c.ATTR_FAILED: {"N": "0"}, c.ATTR_EXPECTED: {"N": str(cases)}, c.ATTR_STATUS: {"S": status},
        c.ATTR_COUNTER_WRITES: {"N": "1"}})
    for case in range(cases):
        ddb.put_item(TableName=TABLES.results, Item={**results_key(request_id, str(case))})


def counter(ddb: Any, request_id: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=TABLES.counter, Key={c.ATTR_REQUEST_ID: {"S": request_id}})["Item"]
    return {k: (int(v["N"]) if "N" in v else v["S"]) for k, v in item.items()}


def outcome(ddb: Any, request_id: str, case_id: str) -> str | None:
    item = ddb.get_item(TableName=TABLES.results, Key={**results_key(request_id, case_id)}).get("Item", {})
    return item.get(c.ATTR_OUTCOME, {}).get("S")


def done(request_id: str, cases: range | list[int], state: str = c.CASE_SUCCEEDED,
         prefix: str = "m") -> list[Completion]:
    return [Completion(f"{prefix}-{request_id}-{case}", request_id, str(case), state, "" if state == c.CASE_SUCCEEDED
                       else "boom") for case in cases]


NO_WAIT = Backoff(sleep=lambda seconds: None)


def test_a_batch_is_counted_in_one_transaction_and_marks_each_case(ddb: Any) -> None:
    # GIVEN a running request of 10 cases
    open_request(ddb, "r", 10)
    # WHEN 6 succeed and 2 fail in one batch
    result = count_batch(ddb, TABLES, done("r", range(6)) + done("r", [6, 7], c.CASE_FAILED), backoff=NO_WAIT)
    # THEN the counter row took the batch's counts in one transaction (one write more than the open)
    row = counter(ddb, "r")
    assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED], row[c.ATTR_FAILED]) == (8, 6, 2)
    assert (row[c.ATTR_FAN_IN_BATCHES], row[c.ATTR_CONFLICT_RETRIES], row[c.ATTR_COUNTER_WRITES]) == (1, 0, 2)
    # AND each case carries its counted outcome
    assert [outcome(ddb, "r", str(i)) for i in range(10)] == ["SUCCEEDED"] * 6 + ["FAILED"] * 2 + [None, None]
    assert (result.counted, result.transactions, result.failed, result.claims) == (8, 1, [], [])


def test_the_batch_that_reaches_the_target_asks_for_the_claim(ddb: Any) -> None:
    open_request(ddb, "r", 3)
    assert count_batch(ddb, TABLES, done("r", [0]), backoff=NO_WAIT).claims == []
    assert count_batch(ddb, TABLES, done("r", [1, 2]), backoff=NO_WAIT).claims == ["r"]


def test_duplicates_in_the_batch_and_cases_counted_before_count_once(ddb: Any) -> None:
    # GIVEN a request whose case 0 was counted by an earlier batch
    open_request(ddb, "r", 4)
    count_batch(ddb, TABLES, done("r", [0]), backoff=NO_WAIT)
    # WHEN a batch brings case 0 again, and case 1 twice (EventBridge delivers at least once)
    result = count_batch(ddb, TABLES, done("r", [0, 1]) + done("r", [1], prefix="again"), backoff=NO_WAIT)
    # THEN only case 1 is new, and nothing is retried
    assert counter(ddb, "r")[c.ATTR_COUNTER] == 2
    assert (result.counted, result.duplicates, result.failed) == (1, 2, [])


def test_a_batch_of_duplicates_of_the_last_case_still_asks_for_the_claim(ddb: Any) -> None:
    # GIVEN a request whose last case was counted, but whose claim was lost with its execution
    open_request(ddb, "r", 1)
    count_batch(ddb, TABLES, done("r", [0]), backoff=NO_WAIT)
    # WHEN the queue delivers that completion again THEN the claim is asked for again
    result = count_batch(ddb, TABLES, done("r", [0]), backoff=NO_WAIT)
    assert (result.counted, result.duplicates, result.claims) == (0, 1, ["r"])


def test_strangers_closed_and_unknown_requests_are_dropped_without_a_write(ddb: Any) -> None:
    # GIVEN a running request of 2 cases, a closed one, and none called "ghost"
    open_request(ddb, "r", 2)
    open_request(ddb, "closed", 2, status=c.STATUS_TIMED_OUT)
    # WHEN a batch brings a case the request does not have, one of the closed request, one of "ghost"
    result = count_batch(ddb, TABLES, done("r", [5]) + done("closed", [0]) + done("ghost", [0]), backoff=NO_WAIT)
    # THEN nothing is counted or written, nothing is retried, and no stray results row appears
    assert counter(ddb, "r")[c.ATTR_COUNTER] == 0 and counter(ddb, "closed")[c.ATTR_COUNTER] == 0
    assert counter(ddb, "r")[c.ATTR_COUNTER_WRITES] == 1
    assert (result.dropped, result.failed, result.transactions) == (3, [], 0)
    assert "Item" not in ddb.get_item(TableName=TABLES.results, Key={**results_key("r", "5")})


def test_a_batch_spanning_requests_and_more_than_99_cases_splits_its_transactions(ddb: Any) -> None:
    # GIVEN two requests, one with more cases in the batch than a transaction can hold
    open_request(ddb, "big", 150)
    open_request(ddb, "small", 2)
    # WHEN one batch brings 150 + 2 completions
    result = count_batch(ddb, TABLES, done("big", range(150)) + done("small", [0, 1]), backoff=NO_WAIT)
    # THEN "big" took two transactions (99 + 51 cases), "small" one, and both reached their target
    assert CASES_PER_TRANSACTION == 99
    assert counter(ddb, "big")[c.ATTR_FAN_IN_BATCHES] == 2 and counter(ddb, "big")[c.ATTR_COUNTER] == 150
    assert counter(ddb, "small")[c.ATTR_FAN_IN_BATCHES] == 1
    assert result.transactions == 3 and sorted(result.claims) == ["big", "small"]


class Conflicting:
    """A DynamoDB client whose first `conflicts` transactions are cancelled with
    TransactionConflict on the counter row (the last item), as DynamoDB cancels a transaction
    that overlaps another on the same item (transaction-apis.html); and which may run
    something between the read and the first transaction (another batch, racing)."""

    def __init__(self, ddb: Any, conflicts: int, before_first: Any = None) -> None:
        self.ddb, self.conflicts, self.before_first = ddb, conflicts, before_first
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ddb, name)

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> Any:
        self.attempts += 1
        if self.attempts == 1 and self.before_first is not None:
            self.before_first()
        if self.attempts <= self.conflicts:
            reasons = [{"Code": "None"}] * (len(TransactItems) - 1) + [
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                               "CancellationReasons": reasons}, "TransactWriteItems")
        return self.ddb.transact_write_items(TransactItems=TransactItems)


def test_conflicts_are_retried_with_growing_jittered_waits_and_recorded(ddb: Any) -> None:
    # GIVEN a counter row another batch keeps busy for 3 attempts
    open_request(ddb, "r", 5)
    waits: list[float] = []
    backoff = Backoff(attempts=8, base=0.05, cap=2.0, sleep=waits.append, rand=lambda: 1.0)
    # WHEN a batch is counted
    result = count_batch(Conflicting(ddb, conflicts=3), TABLES, done("r", range(5)), backoff=backoff)
    # THEN it is counted on the 4th attempt, after waits that double (full jitter's upper bound here)
    assert waits == [0.05, 0.1, 0.2]
    row = counter(ddb, "r")
    assert row[c.ATTR_COUNTER] == 5
    assert (row[c.ATTR_CONFLICT_RETRIES], row[c.ATTR_COUNTER_WRITES]) == (3, 1 + 4)
    assert (result.conflict_retries, result.failed, result.claims) == (3, [], ["r"])


def test_waits_are_capped() -> None:
    waits: list[float] = []
    backoff = Backoff(base=0.05, cap=2.0, sleep=waits.append, rand=lambda: 1.0)
    for attempt in range(10):
        backoff.wait(attempt)
    assert max(waits) == 2.0


def test_a_batch_that_keeps_conflicting_is_returned_for_the_queue_to_deliver_again(ddb: Any) -> None:
    open_request(ddb, "r", 2)
    result = count_batch(Conflicting(ddb, conflicts=100), TABLES, done("r", [0, 1]),
                         backoff=Backoff(attempts=4, sleep=lambda s: None))
    assert sorted(result.failed) == ["m-r-0", "m-r-1"]
    assert counter(ddb, "r")[c.ATTR_COUNTER] == 0 and outcome(ddb, "r", "0") is None


def test_a_duplicate_that_races_in_cancels_only_itself(ddb: Any) -> None:
    # GIVEN a batch whose case 1 another batch counts between this batch's read and its transaction
    open_request(ddb, "r", 3)

    def other_batch() -> None:
        count_batch(ddb, TABLES, done("r", [1], prefix="other"), backoff=NO_WAIT)

    # WHEN the batch is counted
    result = count_batch(Conflicting(ddb, conflicts=0, before_first=other_batch), TABLES, done("r", [0, 1, 2]),
                         backoff=NO_WAIT)
    # THEN the transaction was cancelled on case 1 only, and the rest counted on the next attempt
    assert counter(ddb, "r")[c.ATTR_COUNTER] == 3
    assert (result.counted, result.duplicates, result.attempts, result.claims) == (2, 1, 2, ["r"])


def test_a_request_closed_meanwhile_drops_the_batch(ddb: Any) -> None:
    # GIVEN a request that its deadline closes between the batch's read and its transaction
    open_request(ddb, "r", 3)

    def close() -> None:
        ddb.update_item(TableName=TABLES.counter, Key={c.ATTR_REQUEST_ID: {"S": "r"}},
                        UpdateExpression="SET #s = :t", ExpressionAttributeNames={"#s": c.ATTR_STATUS},
                        ExpressionAttributeValues={":t": {"S": c.STATUS_SUMMARIZING}})

    result = count_batch(Conflicting(ddb, conflicts=0, before_first=close), TABLES, done("r", [0, 1]),
                         backoff=NO_WAIT)
    # THEN nothing is counted, and nothing is delivered again
    assert counter(ddb, "r")[c.ATTR_COUNTER] == 0 and outcome(ddb, "r", "0") is None
    assert (result.dropped, result.failed, result.claims) == (2, [], [])
