"""One case's computation and how it is reported, shared by every compute target: the
Compute function, the compute workflow's step and `fanflow worker`. Nothing here reads
configuration or creates clients: callers pass their own, so any process can use it.

A case is computed only when its request still wants it: its deadline has not passed, its
results row exists (Emit registered it: it is a case of the request) and holds no result yet.
A case whose result is stored already (a retried or duplicated delivery) is reported from the
stored result, never computed again, so the row and the counted outcome agree."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from . import keys
from .support import put_events

Work = Callable[[dict[str, Any], float], Any]

# Why a case was not computed (and no completion was put for it).
SKIP_EXPIRED = c.CASE_EXPIRED  # received after its request's deadline: the request has closed, or is closing
SKIP_NOT_IN_REQUEST = "NOT_IN_REQUEST"  # no results row: not a case of this request (or given up, or expired)
SKIP_COUNTED = "COUNTED"  # counted already: its outcome stands


def work(request: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The computation itself; the sample sleeps `seconds` (run_case resolves the case's own)."""
    if seconds > 0:  # time.sleep(0) would only hand the processor to another thread
        time.sleep(seconds)
    return {"caseId": request[c.ATTR_CASE_ID]}


def compute_seconds(request: dict[str, Any], default: float, maximum: float) -> float:
    """The simulated work of a case: its own computeSeconds if it sets one, else `default`, never
    more than `maximum` (a compute target's time limit, so a case always reports) nor less than 0."""
    return min(max(0.0, float(request.get("computeSeconds", default))), maximum)


@dataclass(frozen=True)
class CaseOutcome:
    state: str
    error: str | None
    started: float
    finished: float

    @property
    def duration_ms(self) -> int:
        return int((self.finished - self.started) * 1000)


def run_case(request: dict[str, Any], seconds: float, *, work: Work = work,
             max_seconds: float = c.MAX_CASE_COMPUTE_SECONDS) -> CaseOutcome:
    """Run `work` on the case; a computation that raises is a failed case, with its error."""
    started = time.time()
    error = None
    try:
        work(request, compute_seconds(request, seconds, max_seconds))
        state = c.CASE_SUCCEEDED
    except Exception as exc:  # the case fails; the request still completes
        state, error = c.CASE_FAILED, f"{type(exc).__name__}: {exc}"
    return CaseOutcome(state=state, error=error, started=started, finished=time.time())


def completion_detail(detail: dict[str, Any], state: str, error: str | None) -> dict[str, Any]:
    """The completion event's detail: the case's reference plus its outcome, and the request's
    shard count (which finds the case's results row) and attempt from the fan-out event."""
    out = {"requestId": detail["requestId"], "request": detail["request"], "state": state,
           "error": error or "", c.DETAIL_SHARDS: shards_in(detail)}
    if c.DETAIL_ATTEMPT in detail:
        out[c.DETAIL_ATTEMPT] = detail[c.DETAIL_ATTEMPT]
    return out


def shards_in(detail: dict[str, Any]) -> int:
    """The request's shard count a fan-out event carries (1 when it carries none)."""
    return keys.shards_of(detail) or 1


def read_result(dynamodb: Any, table: str, request_id: str, case_id: str, shards: int) -> dict[str, Any] | None:
    """The case's results row (state, error, outcome), None when the case has none."""
    item = dynamodb.get_item(
        TableName=table, Key=keys.results_key(request_id, case_id, shards), ConsistentRead=True,
        ProjectionExpression="#s, #e, #o, #a",
        ExpressionAttributeNames={"#s": c.ATTR_STATE, "#e": c.ATTR_ERROR, "#o": c.ATTR_OUTCOME, "#a": c.ATTR_ATTEMPT},
    ).get("Item")
    if item is None:
        return None
    return {name: value.get("S", value.get("N")) for name, value in item.items() if "S" in value or "N" in value}



def record_result(dynamodb: Any, table: str, request_id: str, case_id: str, shards: int, *, state: str,
                  started: float,
                  finished: float, error: str | None, computed_by: str) -> bool:
    """Write the case's result into its pending results row. Only a pending row takes a result: a
    case that is not in the request (no row), or whose result is stored already, is not written
    (False). The write names the result's attributes only (grants.RESULT_ATTRIBUTES): a compute
    role can neither erase nor test the counted mark; the row keeps the expiry Emit gave it."""
    names = {"#state": c.ATTR_STATE, "#started": c.ATTR_STARTED_AT, "#finished": c.ATTR_FINISHED_AT,
             "#duration": c.ATTR_DURATION_MS, "#by": c.ATTR_COMPUTED_BY}
    values: dict[str, Any] = {
        ":state": {"S": state}, ":started": {"N": f"{started:.3f}"}, ":finished": {"N": f"{finished:.3f}"},
        ":duration": {"N": str(int((finished - started) * 1000))}, ":by": {"S": computed_by},
        ":pending": {"S": c.CASE_PENDING},
    }
    update = "SET #state = :state, #started = :started, #finished = :finished, #duration = :duration, #by = :by"
    if error:
        names["#error"], values[":error"] = c.ATTR_ERROR, {"S": error[:1000]}
        update += ", #error = :error"
    try:
        dynamodb.update_item(TableName=table, Key=keys.results_key(request_id, case_id, shards),
                             UpdateExpression=update, ConditionExpression="#state = :pending",
                             ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def mark_expired(dynamodb: Any, table: str, request_id: str, case_id: str, shards: int) -> None:
    """Note on a pending row that its case arrived after the deadline and was not computed."""
    try:
        dynamodb.update_item(TableName=table, Key=keys.results_key(request_id, case_id, shards),
                             UpdateExpression="SET #state = :expired",
                             ConditionExpression="#state = :pending", ExpressionAttributeNames={"#state": c.ATTR_STATE},
                             ExpressionAttributeValues={":expired": {"S": c.CASE_EXPIRED},
                                                        ":pending": {"S": c.CASE_PENDING}})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


@dataclass(frozen=True)
class Reporting:
    """Where a computed case is reported: its results row and its completion event."""

    results_table: str
    bus_name: str
    computed_by: str
    source: str = c.COMPUTE_SOURCE
    detail_type: str = c.COMPLETION_DETAIL_TYPE


@dataclass(frozen=True)
class Settled:
    """What became of a case: computed now (`outcome`), reported from its stored result, or
    skipped (`skipped` names why, and nothing is reported)."""

    state: str | None = None
    error: str | None = None
    outcome: CaseOutcome | None = None  # set when this run computed the case
    skipped: str | None = None

    @property
    def computed(self) -> bool:
        return self.outcome is not None


def settle_case(dynamodb: Any, detail: dict[str, Any], reporting: Reporting, *, seconds: float,
                work: Work = work, max_seconds: float = c.MAX_CASE_COMPUTE_SECONDS,
                now: Callable[[], float] = time.time) -> Settled:
    """Decide whether to compute a case, compute it if so, and record its result."""
    request_id, case_id, shards = detail["requestId"], detail["request"][c.ATTR_CASE_ID], shards_in(detail)
    table = reporting.results_table
    deadline = detail.get(c.DETAIL_DEADLINE)
    if deadline is not None and now() > float(deadline):
        # Only a row that still waits for this event's attempt: after a redrive, a late event of
        # an earlier attempt (with its earlier deadline) must not mark the redriven case expired.
        stored = read_result(dynamodb, table, request_id, case_id, shards)
        if stored is not None and int(stored.get(c.ATTR_ATTEMPT) or 1) == (keys.attempt_of(detail) or 1):
            mark_expired(dynamodb, table, request_id, case_id, shards)
        return Settled(skipped=SKIP_EXPIRED)
    stored = read_result(dynamodb, table, request_id, case_id, shards)
    settled = _from_stored(stored)
    if settled is not None:
        return settled
    outcome = run_case(detail["request"], seconds, work=work, max_seconds=max_seconds)
    if record_result(dynamodb, table, request_id, case_id, shards, state=outcome.state, started=outcome.started,
                     finished=outcome.finished, error=outcome.error, computed_by=reporting.computed_by):
        return Settled(state=outcome.state, error=outcome.error, outcome=outcome)
    # Another run of the case stored its result first: that result is the case's.
    return (_from_stored(read_result(dynamodb, table, request_id, case_id, shards))
            or Settled(skipped=SKIP_NOT_IN_REQUEST))


def _from_stored(stored: dict[str, Any] | None) -> Settled | None:
    """The case's fate from its row, None when it is pending (to be computed)."""
    if stored is None:
        return Settled(skipped=SKIP_NOT_IN_REQUEST)
    if stored.get(c.ATTR_OUTCOME):
        return Settled(skipped=SKIP_COUNTED)
    state = stored.get(c.ATTR_STATE)
    if state in c.CASE_RESULT_STATES:
        return Settled(state=state, error=stored.get(c.ATTR_ERROR))
    if state == c.CASE_EXPIRED:
        return Settled(skipped=SKIP_EXPIRED)
    return None


def put_completion(events: Any, detail: dict[str, Any], state: str, error: str | None,
                   reporting: Reporting) -> dict[str, Any]:
    """Put the case's completion event (checked: a dropped completion would leave the request waiting)."""
    out = completion_detail(detail, state, error)
    put_events(events, [{
        "Source": reporting.source,
        "DetailType": reporting.detail_type,
        "EventBusName": reporting.bus_name,
        "Detail": json.dumps(out),
    }])
    return out


def report_case(dynamodb: Any, events: Any, detail: dict[str, Any], reporting: Reporting, *, seconds: float,
                work: Work = work, max_seconds: float = c.MAX_CASE_COMPUTE_SECONDS) -> Settled:
    """Settle the case and, unless it was skipped, put its completion event."""
    settled = settle_case(dynamodb, detail, reporting, seconds=seconds, work=work, max_seconds=max_seconds)
    if settled.state is not None:
        put_completion(events, detail, settled.state, settled.error, reporting)
    return settled
