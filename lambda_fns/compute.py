"""Compute: runs one case. Simulates the work with a configurable sleep, records the
case result for Summary, and puts the completion event. A computation that raises is
reported as a failed case, with its error, instead of disappearing."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from . import constants as c
from .support import client, put_events, require_env
from .telemetry import MetricUnit, Telemetry, log

_ENV = require_env(
    [c.ENV_EVENTBUS_NAME, c.ENV_EVENTBUS_SOURCE, c.ENV_EVENTBUS_DETAILTYPE, c.ENV_RESULTS_TABLE,
     c.ENV_COMPUTE_SECONDS, c.ENV_RETENTION_SECONDS]
)
_EVENTS = client("events")
_DDB = client("dynamodb")
_TELEMETRY = Telemetry("compute")
_LOG = _TELEMETRY.logger


def work(request: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The computation itself; the sample sleeps. A case may set computeSeconds."""
    time.sleep(float(request.get("computeSeconds", seconds)))
    return {"caseId": request[c.ATTR_CASE_ID]}


def completion_detail(detail: dict[str, Any], state: str, error: str | None) -> dict[str, Any]:
    out = {"requestId": detail["requestId"], "request": detail["request"], "state": state}
    if error:
        out["error"] = error
    return out


def record_result(table: str, request_id: str, case_id: str, *, state: str, started: float,
                  finished: float, error: str | None, expires_at: int) -> None:
    """Write the case's results row, unless Increment has already counted the case (a
    duplicate run then changes nothing: the counted result stands)."""
    item: dict[str, Any] = {
        c.ATTR_REQUEST_ID: {"S": request_id},
        c.ATTR_CASE_ID: {"S": case_id},
        c.ATTR_STATE: {"S": state},
        c.ATTR_STARTED_AT: {"N": f"{started:.3f}"},
        c.ATTR_FINISHED_AT: {"N": f"{finished:.3f}"},
        c.ATTR_DURATION_MS: {"N": str(int((finished - started) * 1000))},
        c.ATTR_EXPIRES_AT: {"N": str(expires_at)},
    }
    if error:
        item[c.ATTR_ERROR] = {"S": error[:1000]}
    try:
        _DDB.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(#outcome)",
                      ExpressionAttributeNames={"#outcome": c.ATTR_OUTCOME})
    except _DDB.exceptions.ConditionalCheckFailedException:
        log(_LOG, logging.INFO, "case already counted; result of this run not recorded")


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    request_id, case_id = detail["requestId"], detail["request"][c.ATTR_CASE_ID]
    started = time.time()
    error = None
    try:
        work(detail["request"], float(_ENV[c.ENV_COMPUTE_SECONDS]))
        state = c.CASE_SUCCEEDED
    except Exception as exc:  # the case fails; the request still completes
        state, error = c.CASE_FAILED, f"{type(exc).__name__}: {exc}"
        log(_LOG, logging.WARNING, "case failed", error=error)
    finished = time.time()
    record_result(_ENV[c.ENV_RESULTS_TABLE], request_id, case_id, state=state, started=started,
                  finished=finished, error=error,
                  expires_at=int(finished) + int(_ENV[c.ENV_RETENTION_SECONDS]))
    out = completion_detail(detail, state, error)
    put_events(_EVENTS, [{
        "Source": _ENV[c.ENV_EVENTBUS_SOURCE],
        "DetailType": _ENV[c.ENV_EVENTBUS_DETAILTYPE],
        "EventBusName": _ENV[c.ENV_EVENTBUS_NAME],
        "Detail": json.dumps(out),
    }])
    duration_ms = int((finished - started) * 1000)
    _TELEMETRY.metric(c.METRIC_CASES_COMPLETED, MetricUnit.Count, 1)
    _TELEMETRY.metric(c.METRIC_CASES_FAILED, MetricUnit.Count, int(state == c.CASE_FAILED))
    _TELEMETRY.metric(c.METRIC_COMPUTE_DURATION, MetricUnit.Milliseconds, duration_ms)
    log(_LOG, logging.INFO, "case completed", state=state, durationMs=duration_ms)
    return out
