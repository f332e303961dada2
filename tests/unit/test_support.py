"""lambda_fns/support.py: PutEvents in checked batches, configuration, plain DynamoDB items."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambda_fns import constants as c
from lambda_fns.support import (
    ConfigurationError,
    PutEventsFailed,
    UnprocessedItems,
    batch_write,
    full_jitter,
    plain_item,
    put_events,
    put_events_tracked,
    require_env,
)


def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def events() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "events", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber


def entries(n: int) -> list[dict[str, Any]]:
    return [
        {
            "Source": c.PREPROCESS_SOURCE,
            "DetailType": c.CASE_DETAIL_TYPE,
            "EventBusName": "bus",
            "Detail": json.dumps({"requestId": "r", "request": {"caseId": str(i)}}),
        }
        for i in range(n)
    ]


def ok(n: int) -> dict[str, Any]:
    return {"FailedEntryCount": 0, "Entries": [{"EventId": f"id-{i}"} for i in range(n)]}


def test_23_entries_make_3_calls_of_10_10_3(events: tuple[Any, Stubber]) -> None:
    # GIVEN 23 entries and an EventBridge that accepts everything
    client, stubber = events
    batch = entries(23)
    for chunk in (batch[0:10], batch[10:20], batch[20:23]):
        stubber.add_response("put_events", ok(len(chunk)), {"Entries": chunk})
    # WHEN they are put
    calls = put_events(client, batch, sleep=no_sleep)
    # THEN three calls in order, of 10, 10 and 3 entries
    assert calls == 3
    stubber.assert_no_pending_responses()


def test_exactly_ten_entries_make_one_call(events: tuple[Any, Stubber]) -> None:
    # GIVEN exactly PUT_EVENTS_MAX_ENTRIES entries  WHEN put  THEN one call
    client, stubber = events
    batch = entries(c.PUT_EVENTS_MAX_ENTRIES)
    stubber.add_response("put_events", ok(len(batch)), {"Entries": batch})
    assert put_events(client, batch, sleep=no_sleep) == 1
    stubber.assert_no_pending_responses()


def test_only_the_failed_entry_is_retried(events: tuple[Any, Stubber]) -> None:
    # GIVEN a first response in which entry 2 of 4 failed, and a retry that succeeds
    client, stubber = events
    batch = entries(4)
    first = {
        "FailedEntryCount": 1,
        "Entries": [
            {"EventId": "a"},
            {"EventId": "b"},
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
            {"EventId": "d"},
        ],
    }
    stubber.add_response("put_events", first, {"Entries": batch})
    stubber.add_response("put_events", ok(1), {"Entries": [batch[2]]})
    slept: list[float] = []
    # WHEN they are put
    calls = put_events(client, batch, sleep=slept.append)
    # THEN the retry carried exactly the failed entry, after one back-off
    assert calls == 2
    assert len(slept) == 1 and slept[0] > 0
    stubber.assert_no_pending_responses()


def test_retry_is_per_batch(events: tuple[Any, Stubber]) -> None:
    # GIVEN 12 entries whose first batch has one failure (entry 9)
    client, stubber = events
    batch = entries(12)
    first = ok(10)
    first["FailedEntryCount"] = 1
    first["Entries"][9] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
    stubber.add_response("put_events", first, {"Entries": batch[:10]})
    stubber.add_response("put_events", ok(1), {"Entries": [batch[9]]})
    stubber.add_response("put_events", ok(2), {"Entries": batch[10:]})
    # WHEN put  THEN the failed entry is retried before the second batch is sent
    assert put_events(client, batch, sleep=no_sleep) == 3
    stubber.assert_no_pending_responses()


def test_entry_failing_every_attempt_raises_naming_the_error_code(events: tuple[Any, Stubber]) -> None:
    # GIVEN an entry that fails on every one of the 3 attempts
    client, stubber = events
    batch = entries(3)
    refused = {"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"}
    stubber.add_response(
        "put_events",
        {"FailedEntryCount": 1, "Entries": [{"EventId": "a"}, refused, {"EventId": "c"}]},
        {"Entries": batch},
    )
    for _ in range(2):
        stubber.add_response("put_events", {"FailedEntryCount": 1, "Entries": [refused]}, {"Entries": [batch[1]]})
    # WHEN put  THEN PutEventsFailed names the count, the attempts and the error code
    with pytest.raises(PutEventsFailed) as info:
        put_events(client, batch, attempts=3, sleep=no_sleep)
    assert "AccessDeniedException" in str(info.value)
    assert "1 event(s) refused after 3 attempts" in str(info.value)
    stubber.assert_no_pending_responses()


def test_default_attempts_then_raise(events: tuple[Any, Stubber]) -> None:
    # GIVEN one entry refused on every call  WHEN put with the default attempts
    client, stubber = events
    batch = entries(1)
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
    for _ in range(4):
        stubber.add_response("put_events", refused, {"Entries": batch})
    slept: list[float] = []
    # THEN four calls, three back-offs, growing, and an error naming the code
    with pytest.raises(PutEventsFailed, match="InternalFailure"):
        put_events(client, batch, sleep=slept.append)
    assert len(slept) == 3 and slept == sorted(slept) and slept[0] < slept[-1]
    stubber.assert_no_pending_responses()


def test_no_entries_make_no_calls(events: tuple[Any, Stubber]) -> None:
    # GIVEN nothing to put  WHEN put  THEN no call is made
    client, stubber = events
    assert put_events(client, [], sleep=no_sleep) == 0
    stubber.assert_no_pending_responses()


def test_tracked_put_names_the_entries_not_accepted_instead_of_raising(events: tuple[Any, Stubber]) -> None:
    # GIVEN 13 entries: entry 2 is refused on every attempt, and the second call is throttled outright
    client, stubber = events
    batch = entries(13)
    refused = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
    stubber.add_response("put_events", {"FailedEntryCount": 1, "Entries": [
        {"EventId": str(i)} if i != 2 else refused for i in range(10)]}, {"Entries": batch[:10]})
    stubber.add_response("put_events", {"FailedEntryCount": 1, "Entries": [refused]}, {"Entries": [batch[2]]})
    stubber.add_client_error("put_events", "ThrottlingException", "Rate exceeded", expected_params={
        "Entries": batch[10:]})
    stubber.add_response("put_events", ok(3), {"Entries": batch[10:]})
    # WHEN put with two attempts per call
    outcome = put_events_tracked(client, batch, attempts=2, sleep=no_sleep)
    # THEN nothing is raised: entry 2 is named as not accepted, the throttled call was retried and
    # accepted, and the errors are reported
    assert outcome.not_accepted == [2]
    assert outcome.calls == 4
    assert outcome.errors == {"ThrottlingException"}
    stubber.assert_no_pending_responses()


def test_full_jitter_is_uniform_below_a_capped_exponential() -> None:
    assert full_jitter(0, base=2, cap=60, rand=lambda: 1.0) == 2
    assert full_jitter(3, base=2, cap=60, rand=lambda: 0.5) == 8
    assert full_jitter(10, base=2, cap=60, rand=lambda: 1.0) == 60
    assert full_jitter(10, base=2, cap=60, rand=lambda: 0.0) == 0


def test_batch_write_sends_25_per_call_and_resends_the_unprocessed_items() -> None:
    # GIVEN 30 put requests and a DynamoDB that leaves two of the first call's unprocessed once
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    requests = [{"PutRequest": {"Item": {"k": {"S": str(i)}}}} for i in range(30)]
    with Stubber(ddb) as stubber:
        stubber.add_response("batch_write_item", {"UnprocessedItems": {"t": requests[3:5]}},
                             {"RequestItems": {"t": requests[:25]}})
        stubber.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": {"t": requests[3:5]}})
        stubber.add_response("batch_write_item", {}, {"RequestItems": {"t": requests[25:]}})
        slept: list[float] = []
        # WHEN written  THEN three calls, one backoff, nothing lost
        assert batch_write(ddb, "t", requests, sleep=slept.append) == 3
        assert len(slept) == 1
        stubber.assert_no_pending_responses()


def test_batch_write_raises_when_items_stay_unprocessed() -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    requests = [{"PutRequest": {"Item": {"k": {"S": "0"}}}}]
    with Stubber(ddb) as stubber:
        for _ in range(3):
            stubber.add_response("batch_write_item", {"UnprocessedItems": {"t": requests}},
                                 {"RequestItems": {"t": requests}})
        with pytest.raises(UnprocessedItems, match="1 item"):
            batch_write(ddb, "t", requests, attempts=3, sleep=no_sleep)


# --- require_env -----------------------------------------------------------------------------


def test_require_env_returns_the_values() -> None:
    # GIVEN every variable set  THEN their values, and only those
    env = {"A": "1", "B": "two", "OTHER": "x"}
    assert require_env(["A", "B"], env) == {"A": "1", "B": "two"}


def test_require_env_names_every_missing_variable() -> None:
    # GIVEN one variable unset and one empty
    env = {"A": "1", "C": ""}
    # WHEN required  THEN ConfigurationError names both missing ones, not the present one
    with pytest.raises(ConfigurationError) as info:
        require_env(["A", "B", "C"], env)
    message = str(info.value)
    assert "B" in message and "C" in message
    assert message == "missing environment variable(s): B, C"


def test_require_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a variable in the process environment and one absent
    monkeypatch.setenv("FANFLOW_TEST_PRESENT", "yes")
    monkeypatch.delenv("FANFLOW_TEST_ABSENT", raising=False)
    # THEN the present one is read and the absent one is named
    assert require_env(["FANFLOW_TEST_PRESENT"]) == {"FANFLOW_TEST_PRESENT": "yes"}
    with pytest.raises(ConfigurationError, match="FANFLOW_TEST_ABSENT"):
        require_env(["FANFLOW_TEST_PRESENT", "FANFLOW_TEST_ABSENT"])


# --- plain_item ------------------------------------------------------------------------------


def test_plain_item_converts_numbers_and_sets() -> None:
    # GIVEN a typed DynamoDB item with whole and fractional numbers, sets, a map and a list
    item = {
        "requestId": {"S": "r"},
        "counter": {"N": "42"},
        "createdAt": {"N": "1700000000.250"},
        "zero": {"N": "0.0"},
        "ids": {"SS": ["b", "c", "a"]},
        "nums": {"NS": ["3", "1.5", "2"]},
        "nested": {"M": {"n": {"N": "7"}, "l": {"L": [{"N": "1"}, {"N": "2.5"}, {"S": "x"}]}}},
        "flag": {"BOOL": True},
        "none": {"NULL": True},
    }
    # WHEN made plain
    plain = plain_item(item)
    # THEN numbers are int or float, sets are sorted lists, structure is kept
    assert plain == {
        "requestId": "r",
        "counter": 42,
        "createdAt": 1700000000.25,
        "zero": 0,
        "ids": ["a", "b", "c"],
        "nums": [1.5, 2, 3],
        "nested": {"n": 7, "l": [1, 2.5, "x"]},
        "flag": True,
        "none": None,
    }
    assert type(plain["counter"]) is int and type(plain["zero"]) is int
    assert type(plain["createdAt"]) is float
    assert not any(isinstance(v, Decimal) for v in plain["nums"])
    # AND the result is JSON-serialisable
    json.dumps(plain)
