"""One case's computation and how it is reported, shared by every compute target: the
Compute function, the compute workflow's step and `fanflow worker`. Nothing here reads
configuration or creates clients: callers pass their own, so any process can use it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import constants as c
from .support import put_events

Work = Callable[[dict[str, Any], float], Any]


def work(request: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The computation itself; the sample sleeps. A case may set computeSeconds."""
    seconds = float(request.get("computeSeconds", seconds))
    if seconds > 0:  # time.sleep(0) would only hand the processor to another thread
        time.sleep(seconds)
    return {"caseId": request[c.ATTR_CASE_ID]}


@dataclass(frozen=True)
class CaseOutcome:
    state: str
    error: str | None
    started: float
    finished: float

    @property
    def duration_ms(self) -> int:
        return int((self.finished - self.started) * 1000)


def run_case(request: dict[str, Any], seconds: float, *, work: Work = work) -> CaseOutcome:
    """Run `work` on the case; a computation that raises is a failed case, with its error."""
    started = time.time()
    error = None
    try:
        work(request, seconds)
        state = c.CASE_SUCCEEDED
    except Exception as exc:  # the case fails; the request still completes
        state, error = c.CASE_FAILED, f"{type(exc).__name__}: {exc}"
    return CaseOutcome(state=state, error=error, started=started, finished=time.time())


def completion_detail(detail: dict[str, Any], state: str, error: str | None) -> dict[str, Any]:
    """The completion event's detail: the fan-out event's detail plus the outcome (see
    constants.DETAIL_COUNT_AS)."""
    return {"requestId": detail["requestId"], "request": detail["request"], "state": state,
            "error": error or "", c.DETAIL_COUNT_AS: c.COUNT_AS[state]}


def record_result(dynamodb: Any, table: str, request_id: str, case_id: str, *, state: str, started: float,
                  finished: float, error: str | None, expires_at: int, computed_by: str) -> bool:
    """Write the case's results row, unless Increment has already counted the case (a
    duplicate run then changes nothing: the counted result stands). False in that case."""
    item: dict[str, Any] = {
        c.ATTR_REQUEST_ID: {"S": request_id},
        c.ATTR_CASE_ID: {"S": case_id},
        c.ATTR_STATE: {"S": state},
        c.ATTR_STARTED_AT: {"N": f"{started:.3f}"},
        c.ATTR_FINISHED_AT: {"N": f"{finished:.3f}"},
        c.ATTR_DURATION_MS: {"N": str(int((finished - started) * 1000))},
        c.ATTR_EXPIRES_AT: {"N": str(expires_at)},
        c.ATTR_COMPUTED_BY: {"S": computed_by},
    }
    if error:
        item[c.ATTR_ERROR] = {"S": error[:1000]}
    try:
        dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(#outcome)",
                          ExpressionAttributeNames={"#outcome": c.ATTR_OUTCOME})
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


@dataclass(frozen=True)
class Reporting:
    """Where a computed case is reported: its results row and its completion event."""

    results_table: str
    bus_name: str
    retention_seconds: int
    computed_by: str
    source: str = c.COMPUTE_SOURCE
    detail_type: str = c.COMPLETION_DETAIL_TYPE


def report_case(dynamodb: Any, events: Any, detail: dict[str, Any], outcome: CaseOutcome,
                reporting: Reporting) -> tuple[dict[str, Any], bool]:
    """Record the case's result, then put its completion event (checked: a dropped completion
    would leave the request waiting). Returns the completion detail and whether the row
    was written (False: the case had been counted already)."""
    recorded = record_result(
        dynamodb, reporting.results_table, detail["requestId"], detail["request"][c.ATTR_CASE_ID],
        state=outcome.state, started=outcome.started, finished=outcome.finished, error=outcome.error,
        expires_at=int(outcome.finished) + reporting.retention_seconds, computed_by=reporting.computed_by,
    )
    out = completion_detail(detail, outcome.state, outcome.error)
    put_events(events, [{
        "Source": reporting.source,
        "DetailType": reporting.detail_type,
        "EventBusName": reporting.bus_name,
        "Detail": json.dumps(out),
    }])
    return out, recorded
