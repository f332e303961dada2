"""Emit: one fan-out chunk. Reads the chunk's cases from the artifacts bucket, registers each
as a pending results row (the case's membership of its request, which the compute targets
and the counting require), then puts one event per case on the bus, ten entries per
PutEvents call.

Emit does not fail a chunk for refused entries: it returns the positions (in the chunk) of
the cases not yet accepted, with a backoff in seconds, and PreProcess calls it again for only
those (so a retry never re-emits what was accepted). On the last attempt the cases still not
accepted are given up: their pending rows are deleted (so that a late event for one of them is
neither recorded nor counted), and the counter row's target is lowered by their number, with
the reason, so the request closes as soon as the emitted cases are counted and its summary
says why.

A request that stops running (cancelled, or closed) stops its fan-out: Emit reads the counter
row (a consistent GetItem, projected) before each PutEvents call, and stops when the request is
no longer RUNNING in the attempt the chunk belongs to. A read costs a few milliseconds beside a
call's tens, and a fiftieth of its price (DynamoDB's on-demand reads against PutEvents' events,
AWS_LIMITS.md); in return a cancel stops the fan-out within one call of its claim. The cases it did not put keep
their pending rows, which the request's summary lists as cancelled."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from . import keys
from .support import batch_write, client, full_jitter, put_events_tracked, require_env
from .telemetry import MetricUnit, Telemetry, log

_ENV = require_env([c.ENV_EVENTBUS_NAME, c.ENV_RESULTS_TABLE, c.ENV_COUNTER_TABLE, c.ENV_ARTIFACTS_BUCKET,
                    c.ENV_FANOUT_ATTEMPTS, c.ENV_FANOUT_BACKOFF_BASE_SECONDS, c.ENV_FANOUT_BACKOFF_MAX_SECONDS])
_EVENTS = client("events")
_DDB = client("dynamodb")
_S3 = client("s3")
_TELEMETRY = Telemetry("emit")
_LOG = _TELEMETRY.logger


def case_entries(request_id: str, cases: list[dict[str, Any]], bus_name: str, deadline: int,
                 shards: int, attempt: int = 1) -> list[dict[str, Any]]:
    """One fan-out event per case; the deadline travels with it, so a compute target can skip
    a case whose request has closed, the request's shard count, which finds its results row,
    and the request's attempt, which its completion echoes (lambda_fns/counting.py)."""
    return [
        {
            "Source": c.PREPROCESS_SOURCE,
            "DetailType": c.CASE_DETAIL_TYPE,
            "EventBusName": bus_name,
            "Detail": json.dumps({"requestId": request_id, "request": case, c.DETAIL_DEADLINE: deadline,
                                  c.DETAIL_SHARDS: shards, c.DETAIL_ATTEMPT: attempt}),
        }
        for case in cases
    ]


def still_running(request_id: str, attempt: int) -> bool:
    """Whether the request still runs in this attempt (not cancelled, closed or redriven since)."""
    item = _DDB.get_item(TableName=_ENV[c.ENV_COUNTER_TABLE], Key=keys.counter_key(request_id), ConsistentRead=True,
                         ProjectionExpression="#s, #a",
                         ExpressionAttributeNames={"#s": c.ATTR_STATUS, "#a": c.ATTR_ATTEMPT}).get("Item") or {}
    return (item.get(c.ATTR_STATUS, {}).get("S") == c.STATUS_RUNNING
            and int(item.get(c.ATTR_ATTEMPT, {}).get("N", "1")) == attempt)


def read_chunk(prefix: str, chunk: int) -> list[dict[str, Any]]:
    body = _S3.get_object(Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET], Key=keys.chunk_key(prefix, chunk))["Body"].read()
    cases: list[dict[str, Any]] = json.loads(body)
    return cases


def register(request_id: str, cases: list[dict[str, Any]], expires_at: int, shards: int, *,
             only_missing: bool, attempt: int = 1) -> int:
    """Write a pending results row per case (BatchWriteItem, 25 per call). `only_missing`, for a
    chunk Step Functions retries after a crash: a row that exists may already hold a result or a
    count, and a put would erase it, so only the cases without a row are registered."""
    case_ids = [case[c.ATTR_CASE_ID] for case in cases]
    if only_missing:
        existing = _existing_rows(request_id, case_ids, shards)
        case_ids = [case_id for case_id in case_ids if case_id not in existing]
    table = _ENV[c.ENV_RESULTS_TABLE]
    batch_write(_DDB, table, [{"PutRequest": {"Item": {
        **keys.results_key(request_id, case_id, shards),
        c.ATTR_REQUEST_ID: {"S": request_id},
        c.ATTR_STATE: {"S": c.CASE_PENDING},
        c.ATTR_ATTEMPT: {"N": str(attempt)},
        c.ATTR_EXPIRES_AT: {"N": str(expires_at)},
    }}} for case_id in case_ids])
    return len(case_ids)


def _existing_rows(request_id: str, case_ids: list[str], shards: int) -> set[str]:
    table = _ENV[c.ENV_RESULTS_TABLE]
    found: set[str] = set()
    for start in range(0, len(case_ids), c.BATCH_GET_MAX_KEYS):
        keys_ = [keys.results_key(request_id, case_id, shards)
                 for case_id in case_ids[start:start + c.BATCH_GET_MAX_KEYS]]
        request: dict[str, Any] = {table: {"Keys": keys_, "ConsistentRead": True, "ProjectionExpression": "#c",
                                           "ExpressionAttributeNames": {"#c": c.ATTR_CASE_ID}}}
        while request:
            response = _DDB.batch_get_item(RequestItems=request)
            found.update(item[c.ATTR_CASE_ID]["S"] for item in response.get("Responses", {}).get(table, []))
            request = response.get("UnprocessedKeys") or {}
    return found


def abandon(request_id: str, chunk: int, cases: list[dict[str, Any]], shards: int, error: str) -> tuple[int, bool]:
    """Give up cases that were never (or not surely) emitted. Each pending row is deleted unless
    its case has been counted already, so nothing counts it later; then the counter row's target
    drops by the number given up, once per chunk (a retried abandon finds the chunk recorded).
    If every other case is counted by then, nothing is left to close the request but this: it
    claims the request for Summary (as Increment's last count would). Returns the number of cases
    given up, and whether it claimed the request."""
    lost = 0
    for case in cases:
        try:
            _DDB.delete_item(TableName=_ENV[c.ENV_RESULTS_TABLE],
                             Key=keys.results_key(request_id, case[c.ATTR_CASE_ID], shards),
                             ConditionExpression="attribute_not_exists(#outcome)",
                             ExpressionAttributeNames={"#outcome": c.ATTR_OUTCOME})
            lost += 1
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            # Counted already (its event was accepted after all): it is not lost.
    if not lost:
        return 0, False
    try:
        _DDB.update_item(
            TableName=_ENV[c.ENV_COUNTER_TABLE],
            Key=keys.counter_key(request_id),
            UpdateExpression="ADD #target :minus, #notEmitted :lost, #lostChunks :chunk "
                             "SET #error = if_not_exists(#error, :error)",
            ConditionExpression="#status = :running AND NOT contains(#lostChunks, :chunkId)",
            ExpressionAttributeNames={"#target": c.ATTR_EXPECTED, "#notEmitted": c.ATTR_NOT_EMITTED,
                                      "#lostChunks": c.ATTR_LOST_CHUNKS, "#error": c.ATTR_FAN_OUT_ERROR,
                                      "#status": c.ATTR_STATUS},
            ExpressionAttributeValues={":minus": {"N": str(-lost)}, ":lost": {"N": str(lost)},
                                       ":chunk": {"NS": [str(chunk)]}, ":chunkId": {"N": str(chunk)},
                                       ":error": {"S": error[:1000]}, ":running": {"S": c.STATUS_RUNNING}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # Recorded by an earlier run of this chunk, or the request has closed already.
    _TELEMETRY.metric(c.METRIC_CASES_NOT_EMITTED, MetricUnit.Count, lost)
    log(_LOG, logging.ERROR, "fan-out chunk given up", chunk=chunk, notEmitted=lost, error=error)
    return lost, claim_if_complete(request_id)


def claim_if_complete(request_id: str) -> bool:
    """Claim the request for Summary if every case it still waits for is counted."""
    try:
        _DDB.update_item(
            TableName=_ENV[c.ENV_COUNTER_TABLE],
            Key=keys.counter_key(request_id),
            UpdateExpression="SET #status = :summarizing, #claimedAt = :now",
            ConditionExpression="#status = :running AND #counter >= #target",
            ExpressionAttributeNames={"#status": c.ATTR_STATUS, "#claimedAt": c.ATTR_CLAIMED_AT,
                                      "#counter": c.ATTR_COUNTER, "#target": c.ATTR_EXPECTED},
            ExpressionAttributeValues={":summarizing": {"S": c.STATUS_SUMMARIZING}, ":running": {"S": c.STATUS_RUNNING},
                                       ":now": {"N": str(int(time.time()))}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    log(_LOG, logging.INFO, "request claimed for Summary after its fan-out loss")
    return True


def _selected(event: dict[str, Any], cases: list[dict[str, Any]]) -> list[int]:
    """The positions of the chunk's cases this call is about: all of them on the first attempt,
    then those not accepted yet (the previous attempt's `pending`)."""
    if int(event.get("attempt", 0)) == 0:
        return list(range(len(cases)))
    return [int(i) for i in event.get("pending") or []]


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """In: requestId, chunk, chunkPrefix, shards, deadline, expiresAt, attempt (0 first), pending
    (the positions not yet accepted, from attempt 1), registered, retryCount ($$.State.RetryCount),
    or abandon: true with an error. Out: the same, with pending (and remaining, their number) the
    positions not yet accepted and waitSeconds before the next attempt, or none when the chunk is
    done (lost: how many were given up; claimed: the loss closed the request)."""
    request_id, chunk, shards = event["requestId"], int(event["chunk"]), int(event[c.DETAIL_SHARDS])
    cases = read_chunk(event["chunkPrefix"], chunk)
    selected = _selected(event, cases)
    if event.get("abandon"):
        error = f"fan-out: chunk {chunk} could not be emitted: {event.get('error') or 'unknown error'}"
        lost, claimed = abandon(request_id, chunk, [cases[i] for i in selected], shards, error)
        return {**_done(event), "lost": lost, "claimed": claimed, "error": error}
    attempt, attempts = int(event.get("attempt", 0)), int(_ENV[c.ENV_FANOUT_ATTEMPTS])
    request_attempt = int(event.get("requestAttempt") or 1)
    if not still_running(request_id, request_attempt):
        log(_LOG, logging.WARNING, "request no longer running: chunk not emitted", chunk=chunk)
        return {**_done(event), "lost": 0, "claimed": False, "stopped": True, "emitted": 0}
    if not event.get("registered"):
        # A crashed invocation may have registered and emitted some cases: then register only the rest.
        register(request_id, cases, int(event["expiresAt"]), shards, only_missing=bool(event.get("retryCount")),
                 attempt=request_attempt)
    entries = case_entries(request_id, [cases[i] for i in selected], _ENV[c.ENV_EVENTBUS_NAME],
                           int(event["deadline"]), shards, request_attempt)
    outcome = put_events_tracked(_EVENTS, entries, keep_going=lambda: still_running(request_id, request_attempt))
    if outcome.stopped_at is not None:
        put = outcome.stopped_at - len(outcome.not_accepted)
        log(_LOG, logging.WARNING, "request no longer running: chunk's emission stopped", chunk=chunk,
            emitted=put, notEmitted=len(entries) - outcome.stopped_at)
        return {**_done(event), "lost": 0, "claimed": False, "stopped": True, "emitted": put,
                "putEventsCalls": outcome.calls}
    pending = [selected[i] for i in outcome.not_accepted]
    out = {**event, "pending": pending, "remaining": len(pending), "attempt": attempt + 1, "registered": True,
           "lost": 0, "claimed": False, "emitted": len(selected) - len(pending), "putEventsCalls": outcome.calls}
    out.pop("retryCount", None)
    if not pending:
        log(_LOG, logging.INFO, "chunk emitted", chunk=chunk, cases=len(selected), putEventsCalls=outcome.calls)
        return out
    codes = ", ".join(sorted(outcome.errors)) or "unknown"
    if attempt + 1 >= attempts:
        error = (f"fan-out: {len(pending)} case(s) of chunk {chunk} were not accepted by EventBridge after "
                 f"{attempts} attempts ({codes})")
        lost, claimed = abandon(request_id, chunk, [cases[i] for i in pending], shards, error)
        return {**_done(out), "lost": lost, "claimed": claimed, "error": error}
    wait = max(1, math.ceil(full_jitter(attempt, base=float(_ENV[c.ENV_FANOUT_BACKOFF_BASE_SECONDS]),
                                        cap=float(_ENV[c.ENV_FANOUT_BACKOFF_MAX_SECONDS]))))
    log(_LOG, logging.WARNING, "chunk partly emitted; resuming", chunk=chunk, notAccepted=len(pending),
        errors=codes, attempt=attempt + 1, waitSeconds=wait)
    return {**out, "waitSeconds": wait}


def _done(event: dict[str, Any]) -> dict[str, Any]:
    out = {**event, "pending": [], "remaining": 0}
    out.pop("retryCount", None)
    return out
