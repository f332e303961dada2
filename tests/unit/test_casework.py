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
from tests.tables import create_results_table

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
    detail = {"requestId": "r", "request": {"caseId": "1", "computeType": "queue"}, "extra": "dropped"}
    assert casework.completion_detail(detail, c.CASE_SUCCEEDED, None) == {
        "requestId": "r", "request": {"caseId": "1", "computeType": "queue"}, "state": c.CASE_SUCCEEDED,
        "error": "", "countAs": c.ATTR_SUCCEEDED}
    failed = casework.completion_detail(detail, c.CASE_FAILED, "E: x")
    assert (failed["state"], failed["error"], failed["countAs"]) == (c.CASE_FAILED, "E: x", c.ATTR_FAILED)


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
    return plain_item(dynamodb.get_item(TableName=RESULTS, Key={c.ATTR_REQUEST_ID: {"S": request_id},
                                                                c.ATTR_CASE_ID: {"S": case_id}})["Item"])


def test_record_result_names_the_target_and_never_overwrites_a_counted_case(aws: Any) -> None:
    # GIVEN a result recorded by the workflow target
    assert casework.record_result(aws, RESULTS, "r", "1", state=c.CASE_SUCCEEDED, started=1.0, finished=1.5,
                                  error=None, expires_at=99, computed_by=c.COMPUTE_TYPE_WORKFLOW)
    assert row(aws, "r", "1")[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_WORKFLOW
    assert row(aws, "r", "1")[c.ATTR_DURATION_MS] == 500
    # WHEN Increment has counted it and a duplicate run records another result
    aws.update_item(TableName=RESULTS, Key={c.ATTR_REQUEST_ID: {"S": "r"}, c.ATTR_CASE_ID: {"S": "1"}},
                    UpdateExpression="SET #o = :o", ExpressionAttributeNames={"#o": c.ATTR_OUTCOME},
                    ExpressionAttributeValues={":o": {"S": c.CASE_SUCCEEDED}})
    recorded = casework.record_result(aws, RESULTS, "r", "1", state=c.CASE_FAILED, started=2.0, finished=3.0,
                                      error="late", expires_at=99, computed_by=c.COMPUTE_TYPE_QUEUE)
    # THEN the counted result stands, and the caller is told
    assert recorded is False
    assert row(aws, "r", "1")[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_WORKFLOW
    assert row(aws, "r", "1")[c.ATTR_STATE] == c.CASE_SUCCEEDED


@pytest.fixture
def step(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The workflow step handler, imported fresh with its environment inside moto."""
    for name, value in {c.ENV_RESULTS_TABLE: RESULTS, c.ENV_COMPUTE_SECONDS: "0", c.ENV_RETENTION_SECONDS: "60",
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
    # GIVEN the workflow's input to its step  WHEN the step runs
    out = step.handler({"requestId": "r", "request": {"caseId": "2", "computeType": "workflow"}}, context())
    # THEN it tells the workflow the state (no error), and recorded the row as the workflow target's
    assert out == {"state": c.CASE_SUCCEEDED}
    recorded = row(aws, "r", "2")
    assert recorded[c.ATTR_STATE] == c.CASE_SUCCEEDED and recorded[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_WORKFLOW


def test_the_step_reports_a_failing_computation_instead_of_raising(aws: Any, step: ModuleType,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step, "work", lambda request, seconds: (_ for _ in ()).throw(KeyError("weights")))
    out = step.handler({"requestId": "r", "request": {"caseId": "3"}}, context())
    assert out == {"state": c.CASE_FAILED, "error": "KeyError: 'weights'"}
    assert row(aws, "r", "3")[c.ATTR_ERROR] == "KeyError: 'weights'"
