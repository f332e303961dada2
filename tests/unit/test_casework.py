"""lambda_fns/casework.py (one case's computation and report, shared by every compute target)
and the compute workflow's step handler, against moto."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fns import casework
from lambda_fns import constants as c
from lambda_fns.support import plain_item
from tests.tables import create_results_table, results_key

REGION = "us-east-1"
RESULTS = "results"


def test_run_case_reports_a_raising_computation_as_a_failed_case() -> None:
    # GIVEN a computation that raises  WHEN the case runs  THEN it is FAILED with the error, not raised
    def broken(request: dict[str, Any], seconds: float) -> None:
        raise ZeroDivisionError("division by zero")

    outcome = casework.run_case({"caseId": "1"}, 0.0, work=broken)
    assert (outcome.state, outcome.error) == (c.CASE_FAILED, "ZeroDivisionError: division by zero")
    assert outcome.finished >= outcome.started and outcome.duration_ms >= 0


def test_run_case_honours_the_case_s_own_compute_seconds() -> None:
    outcome = casework.run_case({"caseId": "1", "computeSeconds": 0.05}, 10.0)
    assert outcome.state == c.CASE_SUCCEEDED and outcome.error is None
    assert 40 <= outcome.duration_ms < 1000


def test_a_case_with_unusable_compute_seconds_fails_on_every_target() -> None:
    # The integration tests use this to make a case fail whichever target computes it.
    outcome = casework.run_case({"caseId": "1", "computeSeconds": "soon"}, 0.0)
    assert outcome.state == c.CASE_FAILED and "could not convert string to float" in (outcome.error or "")


def test_the_completion_detail_is_the_fan_out_detail_plus_the_outcome() -> None:
    detail = {"requestId": "r", "request": {"caseId": "1", "computeType": "queue"}, "extra": "dropped",
              c.DETAIL_SHARDS: 4}
    assert casework.completion_detail(detail, c.CASE_SUCCEEDED, None) == {
        "requestId": "r", "request": {"caseId": "1", "computeType": "queue"}, "state": c.CASE_SUCCEEDED,
        "error": "", c.DETAIL_SHARDS: 4}  # the shard count travels on: it finds the case's results row
    # A fan-out event without a shard count is a request of one shard.
    assert casework.completion_detail({**detail, c.DETAIL_SHARDS: None}, c.CASE_SUCCEEDED, None)[c.DETAIL_SHARDS] == 1
    failed = casework.completion_detail(detail, c.CASE_FAILED, "E: x")
    assert (failed["state"], failed["error"]) == (c.CASE_FAILED, "E: x")
    assert "countAs" not in failed  # the fan-in counts by the state, never by what an event names


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "FANFLOW_LOG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_results_table(dynamodb, RESULTS)
        yield dynamodb


def row(dynamodb: Any, request_id: str, case_id: str) -> dict[str, Any]:
    return plain_item(dynamodb.get_item(TableName=RESULTS, Key={**results_key(request_id, case_id)})["Item"])


def pending(dynamodb: Any, request_id: str, case_id: str) -> None:
    """A case registered by Emit: its pending row."""
    dynamodb.put_item(TableName=RESULTS, Item={**results_key(request_id, case_id),
                                               c.ATTR_STATE: {"S": c.CASE_PENDING}, c.ATTR_EXPIRES_AT: {"N": "99"}})


def count(dynamodb: Any, request_id: str, case_id: str, outcome: str) -> None:
    """What Increment does to a counted case's row."""
    dynamodb.update_item(TableName=RESULTS, Key={**results_key(request_id, case_id)},
                         UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": c.ATTR_OUTCOME},
                         ExpressionAttributeValues={":o": {"S": outcome}})


def exists(dynamodb: Any, request_id: str, case_id: str) -> bool:
    return "Item" in dynamodb.get_item(TableName=RESULTS, Key={**results_key(request_id, case_id)})


REPORTING = casework.Reporting(results_table=RESULTS, bus_name="bus", computed_by=c.COMPUTE_TYPE_LAMBDA)


class Recorder:
    """A `work` that counts its calls."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[float] = []
        self.error = error

    def __call__(self, request: dict[str, Any], seconds: float) -> None:
        self.calls.append(seconds)
        if self.error:
            raise self.error


def test_record_result_writes_only_a_pending_row(aws: Any) -> None:
    # GIVEN a case Emit registered
    pending(aws, "r", "1")
    # WHEN the workflow target records its result  THEN the pending row takes it, with who computed it
    assert casework.record_result(aws, RESULTS, "r", "1", 1, state=c.CASE_SUCCEEDED, started=1.0, finished=1.5,
                                  error=None, computed_by=c.COMPUTE_TYPE_WORKFLOW)
    stored = row(aws, "r", "1")
    assert (stored[c.ATTR_STATE], stored[c.ATTR_COMPUTED_BY], stored[c.ATTR_DURATION_MS]) == (
        c.CASE_SUCCEEDED, c.COMPUTE_TYPE_WORKFLOW, 500)
    assert stored[c.ATTR_EXPIRES_AT] == 99, "the row keeps the expiry Emit gave it"
    # WHEN a duplicate run records another result  THEN the stored result stands, and the caller is told
    assert casework.record_result(aws, RESULTS, "r", "1", 1, state=c.CASE_FAILED, started=2.0, finished=3.0,
                                  error="late", computed_by=c.COMPUTE_TYPE_QUEUE) is False
    assert (row(aws, "r", "1")[c.ATTR_STATE], row(aws, "r", "1")[c.ATTR_COMPUTED_BY]) == (
        c.CASE_SUCCEEDED, c.COMPUTE_TYPE_WORKFLOW)


def test_record_result_creates_no_row_for_a_case_not_in_the_request(aws: Any) -> None:
    # GIVEN no row for the case (a forged or stray completion's case)
    # WHEN a result is recorded  THEN nothing is written
    assert casework.record_result(aws, RESULTS, "r", "ghost", 1, state=c.CASE_SUCCEEDED, started=1.0, finished=1.5,
                                  error=None, computed_by=c.COMPUTE_TYPE_LAMBDA) is False
    assert not exists(aws, "r", "ghost")


def test_a_pending_case_is_computed_and_recorded(aws: Any) -> None:
    pending(aws, "r", "1")
    work = Recorder()
    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "1"}, "deadline": 2e9}, REPORTING,
                                   seconds=0.0, work=work)
    assert (settled.state, settled.computed, settled.skipped) == (c.CASE_SUCCEEDED, True, None)
    assert len(work.calls) == 1 and row(aws, "r", "1")[c.ATTR_STATE] == c.CASE_SUCCEEDED


def test_a_retried_case_reports_its_stored_result_without_computing_again(aws: Any) -> None:
    # GIVEN a case whose first run stored a failure (and whose completion may have been lost)
    pending(aws, "r", "1")
    casework.record_result(aws, RESULTS, "r", "1", 1, state=c.CASE_FAILED, started=1.0, finished=2.0, error="E: first",
                           computed_by=c.COMPUTE_TYPE_LAMBDA)
    # WHEN it is delivered again
    work = Recorder()
    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "1"}}, REPORTING, seconds=0.0,
                                   work=work)
    # THEN it is not computed, and the stored result is what it reports
    assert work.calls == []
    assert (settled.state, settled.error, settled.computed) == (c.CASE_FAILED, "E: first", False)


def test_a_counted_case_is_neither_computed_nor_reported(aws: Any) -> None:
    # GIVEN a case Increment counted (after a crash, from the failure record: its row has no result)
    pending(aws, "r", "1")
    count(aws, "r", "1", c.CASE_FAILED)
    work = Recorder()
    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "1"}}, REPORTING, seconds=0.0,
                                   work=work)
    assert (work.calls, settled.skipped, settled.state) == ([], casework.SKIP_COUNTED, None)
    assert row(aws, "r", "1")[c.ATTR_STATE] == c.CASE_PENDING, "the counted outcome stays the only result"


def test_a_case_not_in_the_request_is_not_computed(aws: Any) -> None:
    work = Recorder()
    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "ghost"}}, REPORTING, seconds=0.0,
                                   work=work)
    assert (work.calls, settled.skipped) == ([], casework.SKIP_NOT_IN_REQUEST)
    assert not exists(aws, "r", "ghost")


def test_a_case_received_after_its_deadline_is_skipped_and_marked(aws: Any) -> None:
    # GIVEN a pending case whose request's deadline has passed
    pending(aws, "r", "1")
    work = Recorder()
    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "1"}, "deadline": 1000}, REPORTING,
                                   seconds=0.0, work=work, now=lambda: 1001.0)
    # THEN it is not computed, and its row says why
    assert (work.calls, settled.skipped, settled.state) == ([], c.CASE_EXPIRED, None)
    assert row(aws, "r", "1")[c.ATTR_STATE] == c.CASE_EXPIRED
    # AND a case still within its deadline is computed
    pending(aws, "r", "2")
    assert casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "2"}, "deadline": 1000}, REPORTING,
                                seconds=0.0, work=work, now=lambda: 999.0).computed


def test_a_run_that_loses_the_race_reports_the_winner_s_result(aws: Any) -> None:
    # GIVEN a pending case, and another run that stores its result while this one computes
    pending(aws, "r", "1")

    def slow(request: dict[str, Any], seconds: float) -> None:
        casework.record_result(aws, RESULTS, "r", "1", 1, state=c.CASE_FAILED, started=0.0, finished=1.0,
                               error="E: other", computed_by=c.COMPUTE_TYPE_QUEUE)

    settled = casework.settle_case(aws, {"requestId": "r", "request": {"caseId": "1"}}, REPORTING, seconds=0.0,
                                   work=slow)
    # THEN this run reports the stored (other) result, not its own
    assert (settled.state, settled.error, settled.computed) == (c.CASE_FAILED, "E: other", False)


def test_a_case_s_compute_seconds_is_bounded() -> None:
    work = Recorder()
    casework.run_case({"caseId": "1", "computeSeconds": 10_000}, 0.0, work=work)
    casework.run_case({"caseId": "2", "computeSeconds": -5}, 0.0, work=work)
    casework.run_case({"caseId": "3"}, 0.25, work=work)
    assert work.calls == [c.MAX_CASE_COMPUTE_SECONDS, 0.0, 0.25]
    assert c.MAX_CASE_COMPUTE_SECONDS < c.COMPUTE_TIMEOUT_SECONDS


@pytest.fixture
def step(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The workflow step handler, imported fresh with its environment inside moto."""
    for name, value in {c.ENV_RESULTS_TABLE: RESULTS, c.ENV_COMPUTE_SECONDS: "0",
                        c.ENV_COMPUTE_TYPE: c.COMPUTE_TYPE_WORKFLOW}.items():
        monkeypatch.setenv(name, value)
    logger = logging.getLogger("lambda_fns.telemetry.workflow_step")
    before = list(logger.handlers)
    sys.modules.pop("lambda_fns.workflow_step", None)
    yield importlib.import_module("lambda_fns.workflow_step")
    sys.modules.pop("lambda_fns.workflow_step", None)
    for handler in logger.handlers[:]:
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()


def context() -> SimpleNamespace:
    return SimpleNamespace(aws_request_id="ctx", function_name="step")


def test_the_step_records_the_result_and_returns_the_state_for_the_workflow(aws: Any, step: ModuleType) -> None:
    # GIVEN the workflow's input to its step, for a registered case  WHEN the step runs
    pending(aws, "r", "2")
    out = step.handler({"requestId": "r", "request": {"caseId": "2", "computeType": "workflow"}}, context())
    # THEN it tells the workflow the state (no error), and recorded the row as the workflow target's
    assert out == {"state": c.CASE_SUCCEEDED}
    recorded = row(aws, "r", "2")
    assert recorded[c.ATTR_STATE] == c.CASE_SUCCEEDED and recorded[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_WORKFLOW


def test_the_step_reports_a_failing_computation_instead_of_raising(aws: Any, step: ModuleType,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step, "work", lambda request, seconds: (_ for _ in ()).throw(KeyError("weights")))
    pending(aws, "r", "3")
    out = step.handler({"requestId": "r", "request": {"caseId": "3"}}, context())
    assert out == {"state": c.CASE_FAILED, "error": "KeyError: 'weights'"}
    assert row(aws, "r", "3")[c.ATTR_ERROR] == "KeyError: 'weights'"


def test_the_step_tells_the_workflow_when_no_completion_is_due(aws: Any, step: ModuleType) -> None:
    # GIVEN a case past its deadline  WHEN the step runs  THEN it says so, and computes nothing
    pending(aws, "r", "4")
    assert step.handler({"requestId": "r", "request": {"caseId": "4"}, "deadline": 1}, context()) == {
        "skipped": c.CASE_EXPIRED}
    assert row(aws, "r", "4")[c.ATTR_STATE] == c.CASE_EXPIRED
