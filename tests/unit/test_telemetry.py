"""lambda_fns/telemetry.py: every log line of an invocation names its request and case,
concurrent invocations do not mix their keys, metrics leave as one EMF line per invocation,
and neither logs nor metrics carry case payloads."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_fns import constants as c
from lambda_fns.telemetry import MetricUnit, Telemetry, log, request_keys
from tests.tables import create_results_table, results_key

REGION = "us-east-1"


def context(request_id: str = "ctx-1") -> SimpleNamespace:
    """What the Lambda runtime (and the embedded runner) passes."""
    return SimpleNamespace(function_name="fanflow-fn", memory_limit_in_mb=256, aws_request_id=request_id,
                           invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fanflow-fn")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def case_event(request_id: str, case_id: str, **case: Any) -> dict[str, Any]:
    return {"source": c.PREPROCESS_SOURCE, "detail-type": c.CASE_DETAIL_TYPE,
            "detail": {"requestId": request_id, "request": {"caseId": case_id, **case}}}


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "lambda.log"


@pytest.fixture
def telemetry(log_file: Path) -> Telemetry:
    return Telemetry("probe", environ={c.ENV_LOG_FILE: str(log_file)})


# ---------------------------------------------------------------------------- keys


@pytest.mark.parametrize(("event", "keys"), [
    (case_event("r1", "7"), {"requestId": "r1", "caseId": "7"}),  # fan-out and completion events
    ({"requestId": "r2", "reason": c.REASON_COMPLETED}, {"requestId": "r2"}),  # Summary
    ({"requestId": "r3", "cases": [{"caseId": "1"}, {"caseId": "2"}]}, {"requestId": "r3"}),  # Emit: a batch
    ({"requests": [{"caseId": "1"}]}, {}),  # a malformed request: nothing to name
    ({"requestId": 42}, {}),
    ("not an object", {}),
])
def test_request_keys_name_the_request_and_case_of_each_event_shape(event: Any, keys: dict[str, str]) -> None:
    # GIVEN an event as one of fanflow's functions receives it WHEN its keys are taken THEN only the ids come out
    assert request_keys(event) == keys


def test_request_keys_are_bounded_in_length() -> None:
    # GIVEN ids longer than any valid request allows WHEN keys are taken THEN they are cut to the limits
    keys = request_keys(case_event("r" * 500, "k" * 500))
    assert len(keys["requestId"]) == c.MAX_REQUEST_ID_LENGTH and len(keys["caseId"]) == c.MAX_CASE_ID_LENGTH


# ---------------------------------------------------------------------------- logs


def test_every_line_of_an_invocation_carries_its_request_case_and_context(telemetry: Telemetry,
                                                                           log_file: Path) -> None:
    # GIVEN an instrumented handler that logs twice, without naming the request itself
    @telemetry.instrument
    def handler(event: dict[str, Any], ctx: Any) -> str:
        log(telemetry.logger, 20, "started")
        log(telemetry.logger, 30, "halfway", step=2)
        return "done"

    # WHEN it runs for case 7 of request r1, then again
    assert handler(case_event("r1", "7"), context("aws-1")) == "done"
    handler(case_event("r1", "8"), context("aws-2"))
    # THEN every line names the request, the case and the Lambda invocation, in Powertools' shape
    first, second, third, _ = lines(log_file)
    assert first["message"] == "started" and first["level"] == "INFO"
    assert (first["requestId"], first["caseId"], second["caseId"], third["caseId"]) == ("r1", "7", "7", "8")
    assert second["step"] == 2
    assert first["service"] == c.SERVICE_NAME
    assert first["function_name"] == "fanflow-fn" and first["function_request_id"] == "aws-1"
    assert third["function_request_id"] == "aws-2"
    assert first["location"].startswith("handler:")  # the caller, not the log helper
    # AND only the first invocation of the container is a cold start
    assert (first["cold_start"], third["cold_start"]) == (True, False)


def test_keys_do_not_outlive_the_invocation(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN an invocation for case 7 has run
    telemetry.instrument(lambda event, ctx: log(telemetry.logger, 20, "inside"))(case_event("r1", "7"), context())
    # WHEN the same thread logs afterwards THEN the line names no request or case
    log(telemetry.logger, 20, "outside")
    outside = lines(log_file)[-1]
    assert outside["message"] == "outside"
    assert "requestId" not in outside and "caseId" not in outside


def test_concurrent_invocations_keep_their_own_keys(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN an instrumented handler whose invocations overlap (the embedded runtime runs them in threads)
    barrier = threading.Barrier(8)

    @telemetry.instrument
    def handler(event: dict[str, Any], ctx: Any) -> None:
        log(telemetry.logger, 20, "before", expected=event["detail"]["request"]["caseId"])
        barrier.wait(timeout=10)
        log(telemetry.logger, 20, "after", expected=event["detail"]["request"]["caseId"])

    # WHEN eight cases run at once
    threads = [threading.Thread(target=handler, args=(case_event("r", str(i)), context(str(i)))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN each line names the case that logged it
    logged = [line for line in lines(log_file) if "message" in line]
    assert len(logged) == 16
    assert all(line["caseId"] == line["expected"] == line["function_request_id"] for line in logged)


def test_a_crash_is_logged_with_its_keys_and_raised(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN a handler that raises
    @telemetry.instrument
    def handler(event: dict[str, Any], ctx: Any) -> None:
        raise KeyError("boom")

    # WHEN it runs THEN the error still reaches the runtime
    with pytest.raises(KeyError):
        handler(case_event("r9", "3"), context())
    # AND an ERROR line names the request, the case and the error type
    [crash] = lines(log_file)
    assert (crash["level"], crash["message"], crash["error"]) == ("ERROR", "invocation failed", "KeyError")
    assert (crash["requestId"], crash["caseId"]) == ("r9", "3")


def test_logs_go_to_stdout_without_a_log_file(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no FANFLOW_LOG_FILE (the Lambda runtime): stdout is the function's log stream
    telemetry = Telemetry("stdout-probe", environ={})
    # WHEN an invocation logs THEN its line is on stdout
    telemetry.instrument(lambda event, ctx: log(telemetry.logger, 20, "hello"))({"requestId": "r"}, context())
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert (line["message"], line["requestId"]) == ("hello", "r")


# ---------------------------------------------------------------------------- metrics


def emf(path: Path) -> list[dict[str, Any]]:
    return [line for line in lines(path) if "_aws" in line]


def test_metrics_leave_as_one_emf_line_when_the_invocation_ends(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN a handler that records two metrics and a dimension
    @telemetry.instrument
    def handler(event: dict[str, Any], ctx: Any) -> None:
        telemetry.dimension(c.DIMENSION_STATUS, "PARTIAL")
        telemetry.metric(c.METRIC_REQUESTS_COMPLETED, MetricUnit.Count, 1)
        telemetry.metric(c.METRIC_REQUEST_DURATION, MetricUnit.Seconds, 2.5)

    # WHEN it runs
    handler({"requestId": "r"}, context())
    # THEN one EMF document in the Fanflow namespace holds both, with the service and status dimensions
    [document] = emf(log_file)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == c.METRICS_NAMESPACE
    assert sorted(directive["Dimensions"][0]) == sorted([c.DIMENSION_SERVICE, c.DIMENSION_STATUS])
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        c.METRIC_REQUESTS_COMPLETED: "Count", c.METRIC_REQUEST_DURATION: "Seconds"}
    assert document[c.METRIC_REQUEST_DURATION] == [2.5]
    assert (document[c.DIMENSION_SERVICE], document[c.DIMENSION_STATUS]) == (c.SERVICE_NAME, "PARTIAL")


def test_metrics_are_flushed_even_when_the_handler_raises(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN a handler that records a metric and then raises
    @telemetry.instrument
    def handler(event: dict[str, Any], ctx: Any) -> None:
        telemetry.metric(c.METRIC_CASES_COMPLETED, MetricUnit.Count, 1)
        raise RuntimeError("late failure")

    # WHEN it runs THEN the metric is still written
    with pytest.raises(RuntimeError):
        handler(case_event("r", "1"), context())
    assert [document[c.METRIC_CASES_COMPLETED] for document in emf(log_file)] == [[1.0]]


def test_no_metrics_no_emf_line_and_none_outside_an_invocation(telemetry: Telemetry, log_file: Path) -> None:
    # GIVEN a handler that records nothing WHEN it runs THEN no EMF line is written
    telemetry.instrument(lambda event, ctx: None)({"requestId": "r"}, context())
    assert emf(log_file) == []
    # AND recording outside an invocation is a programming error, said plainly
    with pytest.raises(RuntimeError, match="inside an instrumented handler"):
        telemetry.metric(c.METRIC_CASES_COMPLETED, MetricUnit.Count, 1)


# ---------------------------------------------------------------------------- the compute handler


@pytest.fixture
def compute(monkeypatch: pytest.MonkeyPatch, log_file: Path) -> Iterator[ModuleType]:
    """lambda_fns.compute imported fresh inside moto, logging to a file as in the embedded runtime."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", c.ENV_LOG_FILE: str(log_file),
                        c.ENV_EVENTBUS_NAME: "bus", c.ENV_EVENTBUS_SOURCE: c.COMPUTE_SOURCE,
                        c.ENV_EVENTBUS_DETAILTYPE: c.COMPLETION_DETAIL_TYPE, c.ENV_RESULTS_TABLE: "results",
                        c.ENV_COMPUTE_SECONDS: "0", c.ENV_RETENTION_SECONDS: "3600",
                        c.ENV_COMPUTE_TYPE: c.COMPUTE_TYPE_LAMBDA}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("events", region_name=REGION).create_event_bus(Name="bus")
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_results_table(dynamodb, "results")
        for case_id in ("1", "2"):  # registered by Emit: cases of the request
            dynamodb.put_item(TableName="results", Item={**results_key("req-log", case_id),
                                                         c.ATTR_STATE: {"S": c.CASE_PENDING}})
        sys.modules.pop("lambda_fns.compute", None)
        yield importlib.import_module("lambda_fns.compute")
        sys.modules.pop("lambda_fns.compute", None)


def test_compute_logs_name_request_and_case_and_never_the_payload(
        compute: ModuleType, log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two cases whose payloads hold a secret, one of which fails
    def work(request: dict[str, Any], seconds: float) -> dict[str, Any]:
        if request["caseId"] == "2":
            raise ValueError("out of range")
        return {"caseId": request["caseId"]}

    monkeypatch.setattr(compute, "work", work)
    # WHEN Compute runs both
    for case_id in ("1", "2"):
        compute.handler(case_event("req-log", case_id, apiKey="s3cr3t-payload"), context(f"aws-{case_id}"))
    # THEN every log line names the request and its case
    text = log_file.read_text()
    logged = [line for line in lines(log_file) if "message" in line]
    assert [(line["message"], line["caseId"]) for line in logged] == [
        ("case completed", "1"), ("case failed", "2"), ("case completed", "2")]
    assert all(line["requestId"] == "req-log" for line in logged)
    assert logged[1]["error"] == "ValueError: out of range"
    # AND each case's metrics say it was computed, whether it failed, and how long it took
    documents = emf(log_file)
    assert [(d[c.METRIC_CASES_COMPLETED], d[c.METRIC_CASES_FAILED]) for d in documents] == [([1.0], [0.0]),
                                                                                          ([1.0], [1.0])]
    assert all(c.METRIC_COMPUTE_DURATION in d for d in documents)
    # AND the payload appears nowhere
    assert "s3cr3t-payload" not in text
