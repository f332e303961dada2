"""A request's life after it starts: cancel it, or redrive what failed or never completed.

Cancel (the Cancel workflow's first step): claims a RUNNING request for Summary and marks it
cancelled, in one conditional write. From then on nothing is counted (the fan-in counts only
while the request is RUNNING), Emit stops putting cases (it reads the row every
emit.CANCEL_CHECK_CASES cases), and the workflow stops the request's PreProcess execution and
runs Summary, which closes the request as CANCELLED.

Redrive (PreProcess's first step when its input is `{"redrive": {...}}`): for a request that
ended PARTIAL, FAILED, TIMED_OUT or CANCELLED, re-emit only the cases that failed (`failed`)
and those that never completed (`timedOut`: never counted, or never emitted), under the same
requestId, as the next attempt. In order, so that nothing is counted twice:

1. the counter row takes the new attempt and this execution's ARN while the request is still
   closed (a conditional write: of two redrives, one goes on);
2. each redriven case's results row is reset to PENDING in the new attempt (its counted mark
   removed); a case that never had a row gets one. The fan-in counts a completion only for
   the attempt its row waits for, so a late completion of an earlier attempt is dropped;
3. the redriven cases are written in chunks, and the counter row opens again (RUNNING) with
   counts recounted from the rows: the cases counted already plus the redriven ones are the
   target, which is reached exactly when every redriven case has completed.

A retried run of the same execution resumes from the row (its attempt and execution ARN say it
is this redrive's). Nothing here reads configuration or creates clients but the handler."""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from . import keys
from .request_model import claim_slots, default_deadline_seconds, iso
from .support import client, plain_item, require_env
from .telemetry import Telemetry

_TELEMETRY = Telemetry("lifecycle")

# Results rows reset at once (UpdateItem calls in flight).
RESET_WRITERS = 16
# What a redrive needs of each results row.
_ROW_ATTRIBUTES = (c.ATTR_CASE_ID, c.ATTR_OUTCOME, c.ATTR_ATTEMPT)


class RequestNotFound(Exception):
    """No counter row has this requestId."""


class RequestNotRunning(Exception):
    """A cancel of a request that is not RUNNING (closing, or closed)."""


class RedriveRefused(Exception):
    """A redrive that cannot be done; the message says why."""


@dataclass(frozen=True)
class Tables:
    counter: str
    results: str
    bucket: str


def _row(dynamodb: Any, tables: Tables, request_id: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(TableName=tables.counter, Key=keys.counter_key(request_id),
                             ConsistentRead=True).get("Item")
    return plain_item(item) if item else None


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


# -- cancel --------------------------------------------------------------------------------------
def cancel(dynamodb: Any, tables: Tables, request_id: str, *, now: float) -> dict[str, Any]:
    """Claim a RUNNING request for its cancelled Summary. Returns what the Cancel workflow
    needs: the PreProcess execution to stop ("" when the row does not name one) and the attempt."""
    try:
        item = dynamodb.update_item(
            TableName=tables.counter, Key=keys.counter_key(request_id),
            UpdateExpression="SET #status = :summarizing, #claimedAt = :claimedAt, #cancelledAt = :now "
                             "ADD #writes :one",
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": c.ATTR_STATUS, "#claimedAt": c.ATTR_CLAIMED_AT,
                                      "#cancelledAt": c.ATTR_CANCELLED_AT, "#writes": c.ATTR_COUNTER_WRITES},
            ExpressionAttributeValues={":summarizing": {"S": c.STATUS_SUMMARIZING}, ":running": {"S": c.STATUS_RUNNING},
                                       ":claimedAt": {"N": str(int(now))}, ":now": {"N": f"{now:.3f}"},
                                       ":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ClientError as exc:
        if not _conditional_failed(exc):
            raise
        row = _row(dynamodb, tables, request_id)
        if row is None:
            raise RequestNotFound(f"no request {request_id!r}") from None
        status = row.get(c.ATTR_STATUS)
        if status == c.STATUS_SUMMARIZING:
            raise RequestNotRunning(f"request {request_id!r} is closing (SUMMARIZING): every case it waits for has "
                                    "been counted, or its deadline has passed") from None
        raise RequestNotRunning(f"request {request_id!r} has finished ({status}); only a running request can be "
                                "cancelled") from None
    row = plain_item(item)
    return {"requestId": request_id, "executionArn": row.get(c.ATTR_EXECUTION_ARN) or "",
            "attempt": int(row.get(c.ATTR_ATTEMPT) or 1), "cancelledAt": f"{now:.3f}"}


# -- redrive -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedriveSettings:
    chunk_cases: int
    compute_concurrency: int
    max_redrives: int = c.MAX_REDRIVES


def _check_redrivable(row: dict[str, Any] | None, request_id: str, execution_arn: str,
                      settings: RedriveSettings) -> tuple[int, bool]:
    """The attempt this redrive makes, and whether it resumes an earlier run of the same execution."""
    if row is None:
        raise RedriveRefused(f"no request {request_id!r}")
    attempt = int(row.get(c.ATTR_ATTEMPT) or 1)
    status = row.get(c.ATTR_STATUS)
    # Taken by a redrive that has not reopened the request (step 1 done, not step 3).
    taken = keys.redrive_opening(row)
    if taken and row.get(c.ATTR_EXECUTION_ARN) == execution_arn:
        return attempt, True  # this execution took the attempt; a retried run goes on with it
    if taken:
        raise RedriveRefused(f"request {request_id!r} is being redriven (attempt {attempt}, by execution "
                             f"{row.get(c.ATTR_EXECUTION_ARN)})")
    if status not in c.REDRIVABLE_STATUSES:
        what = ("is still running" if status in (c.STATUS_RUNNING, c.STATUS_SUMMARIZING)
                else "succeeded: every case succeeded, so there is nothing to redrive")
        raise RedriveRefused(f"request {request_id!r} {what} (status {status}); a redrive takes up a request that "
                             f"ended {', '.join(sorted(c.REDRIVABLE_STATUSES))}")
    if attempt - 1 >= settings.max_redrives:
        raise RedriveRefused(f"request {request_id!r} has been redriven {attempt - 1} times, the limit "
                             f"({settings.max_redrives}); start a new request for what is left")
    for name in (c.ATTR_MANIFEST_KEY, c.ATTR_CHUNK_PREFIX):
        if not row.get(name):
            raise RedriveRefused(f"request {request_id!r} was started by an earlier version of the stack (its "
                                 f"counter row has no {name}); it cannot be redriven")
    return attempt + 1, False


def _selected(case_ids: list[str], rows: dict[str, dict[str, Any]], attempt: int, *, failed: bool,
              timed_out: bool) -> list[int]:
    """The positions (in the request) of the cases to re-emit."""
    chosen = []
    for position, case_id in enumerate(case_ids):
        row = rows.get(case_id)
        if row is None:
            take = timed_out  # never emitted (given up, or cancelled before its chunk was put)
        elif int(row.get(c.ATTR_ATTEMPT) or 1) == attempt:
            take = True  # reset by this redrive's earlier run
        else:
            outcome = row.get(c.ATTR_OUTCOME)
            take = (failed and outcome == c.CASE_FAILED) or (timed_out and not outcome)
        if take:
            chosen.append(position)
    return chosen


def _reset(dynamodb: Any, tables: Tables, request_id: str, case_id: str, shards: int, attempt: int,
           exists: bool, expires_at: int) -> None:
    key = keys.results_key(request_id, case_id, shards)
    if not exists:
        try:
            dynamodb.put_item(TableName=tables.results, Item={
                **key, c.ATTR_REQUEST_ID: {"S": request_id}, c.ATTR_STATE: {"S": c.CASE_PENDING},
                c.ATTR_ATTEMPT: {"N": str(attempt)}, c.ATTR_EXPIRES_AT: {"N": str(expires_at)},
            }, ConditionExpression="attribute_not_exists(#caseId)",
                ExpressionAttributeNames={"#caseId": c.ATTR_CASE_ID})
            return
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
    try:
        dynamodb.update_item(
            TableName=tables.results, Key=key,
            UpdateExpression="SET #state = :pending, #attempt = :attempt REMOVE #outcome, #outcomeError, #error, "
                             "#started, #finished, #duration, #by",
            # A case that succeeded keeps its result, whatever a selection said.
            ConditionExpression="attribute_not_exists(#outcome) OR #outcome <> :succeeded",
            ExpressionAttributeNames={"#state": c.ATTR_STATE, "#attempt": c.ATTR_ATTEMPT, "#outcome": c.ATTR_OUTCOME,
                                      "#outcomeError": c.ATTR_OUTCOME_ERROR, "#error": c.ATTR_ERROR,
                                      "#started": c.ATTR_STARTED_AT, "#finished": c.ATTR_FINISHED_AT,
                                      "#duration": c.ATTR_DURATION_MS, "#by": c.ATTR_COMPUTED_BY},
            ExpressionAttributeValues={":pending": {"S": c.CASE_PENDING}, ":attempt": {"N": str(attempt)},
                                       ":succeeded": {"S": c.CASE_SUCCEEDED}},
        )
    except ClientError as exc:
        if not _conditional_failed(exc):
            raise


def redrive(dynamodb: Any, s3: Any, tables: Tables, event: dict[str, Any], *, execution_arn: str, token: str,
            now: float, settings: RedriveSettings) -> dict[str, Any]:
    """Redrive a request (module docstring); the PreProcess state its fan-out and close need."""
    request_id = event.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise RedriveRefused("a redrive names the request: {\"redrive\": {\"requestId\": \"...\"}}")
    failed, timed_out = bool(event.get("failed", True)), bool(event.get("timedOut", True))
    if not (failed or timed_out):
        raise RedriveRefused("a redrive takes up failed cases, timed-out cases or both; it was asked for neither")
    row = _row(dynamodb, tables, request_id)
    attempt, resuming = _check_redrivable(row, request_id, execution_arn, settings)
    assert row is not None
    shards, expires_at = int(row.get(c.ATTR_SHARDS) or 1), int(row[c.ATTR_EXPIRES_AT])
    manifest = json.loads(s3.get_object(Bucket=tables.bucket, Key=row[c.ATTR_MANIFEST_KEY])["Body"].read())
    case_ids: list[str] = manifest["caseIds"]
    rows = {item[c.ATTR_CASE_ID]["S"]: plain_item(item)
            for item in keys.results_items(dynamodb, tables.results, request_id, shards, attributes=_ROW_ATTRIBUTES)}
    chosen = _selected(case_ids, rows, attempt, failed=failed, timed_out=timed_out)
    if not chosen:
        asked = " and ".join(name for name, on in (("failed", failed), ("timed-out", timed_out)) if on)
        raise RedriveRefused(f"request {request_id!r} ({row.get(c.ATTR_STATUS)}) has no {asked} cases to redrive")
    requested = event.get("deadlineSeconds")
    seconds = int(requested) if requested else default_deadline_seconds(
        len(chosen), concurrency=settings.compute_concurrency)
    deadline = math.ceil(now + seconds)
    if deadline + c.CLOSE_MARGIN_SECONDS > expires_at:
        raise RedriveRefused(f"request {request_id!r}'s records expire at {iso(expires_at)}: a redrive with a "
                             f"deadline of {seconds} s would close after that; use a shorter deadline")
    if not resuming:
        _claim_attempt(dynamodb, tables, request_id, row, attempt, execution_arn)
    chosen_ids = {case_ids[i] for i in chosen}
    with ThreadPoolExecutor(max_workers=RESET_WRITERS, thread_name_prefix="redrive-reset") as pool:
        for _ in pool.map(lambda case_id: _reset(dynamodb, tables, request_id, case_id, shards, attempt,
                                                 case_id in rows, expires_at), sorted(chosen_ids)):
            pass
    prefix = _write_chunks(s3, tables.bucket, row, chosen, request_id, attempt, token, settings.chunk_cases)
    # Recount from the rows: cases counted already (and kept) plus the redriven ones make the target.
    succeeded = sum(1 for case_id, r in rows.items() if case_id not in chosen_ids and
                    r.get(c.ATTR_OUTCOME) == c.CASE_SUCCEEDED)
    kept_failed = sum(1 for case_id, r in rows.items() if case_id not in chosen_ids and
                      r.get(c.ATTR_OUTCOME) == c.CASE_FAILED)
    never_emitted = sum(1 for case_id in case_ids if case_id not in rows and case_id not in chosen_ids)
    _open_attempt(dynamodb, tables, request_id, row, attempt, execution_arn, deadline=deadline,
                  succeeded=succeeded, failed=kept_failed, redriven=len(chosen), cases=len(case_ids),
                  not_emitted=never_emitted if row.get(c.ATTR_FAN_OUT_ERROR) else 0)
    chunk_count = keys.chunk_count(len(chosen), settings.chunk_cases)
    return {
        "requestId": request_id,
        "requestAttempt": str(attempt),
        "registered": True,
        "redriven": len(chosen),
        "deadline": str(deadline),
        "deadlineIso": iso(deadline),
        "expiresAt": str(expires_at),
        "chunks": list(range(chunk_count)),
        "chunkCount": str(chunk_count),
        "chunkPrefix": prefix,
        "shards": str(shards),
        "claimSlots": claim_slots(deadline),
    }


def _claim_attempt(dynamodb: Any, tables: Tables, request_id: str, row: dict[str, Any], attempt: int,
                   execution_arn: str) -> None:
    """Step 1: the new attempt, while the request stays closed; only one redrive gets it."""
    previous = attempt - 1
    try:
        dynamodb.update_item(
            TableName=tables.counter, Key=keys.counter_key(request_id),
            UpdateExpression="SET #attempt = :attempt, #execution = :execution ADD #writes :one",
            ConditionExpression="#status = :status AND " + ("(#attempt = :previous OR attribute_not_exists(#attempt))"
                                                            if previous == 1 else "#attempt = :previous"),
            ExpressionAttributeNames={"#attempt": c.ATTR_ATTEMPT, "#execution": c.ATTR_EXECUTION_ARN,
                                      "#status": c.ATTR_STATUS, "#writes": c.ATTR_COUNTER_WRITES},
            ExpressionAttributeValues={":attempt": {"N": str(attempt)}, ":execution": {"S": execution_arn},
                                       ":status": {"S": row[c.ATTR_STATUS]}, ":previous": {"N": str(previous)},
                                       ":one": {"N": "1"}},
        )
    except ClientError as exc:
        if not _conditional_failed(exc):
            raise
        raise RedriveRefused(f"request {request_id!r} changed while this redrive started (another redrive, "
                             "most likely); nothing was changed by this one") from None


def _write_chunks(s3: Any, bucket: str, row: dict[str, Any], chosen: list[int], request_id: str, attempt: int,
                  token: str, chunk_cases: int) -> str:
    """The redriven cases, from the request's own chunks, in new chunks of `chunk_cases`."""
    source_prefix, source_size = row[c.ATTR_CHUNK_PREFIX], int(row.get(c.ATTR_CHUNK_CASES) or c.FANOUT_CHUNK_CASES)
    by_chunk: dict[int, list[int]] = {}
    for position in chosen:
        by_chunk.setdefault(position // source_size, []).append(position % source_size)
    cases: list[dict[str, Any]] = []
    for chunk, offsets in sorted(by_chunk.items()):
        body = s3.get_object(Bucket=bucket, Key=keys.chunk_key(source_prefix, chunk))["Body"].read()
        stored = json.loads(body)
        cases.extend(stored[offset] for offset in offsets)
    prefix = keys.redrive_chunk_prefix(request_id, attempt, token)
    for number, start in enumerate(range(0, len(cases), chunk_cases)):
        s3.put_object(Bucket=bucket, Key=keys.chunk_key(prefix, number),
                      Body=json.dumps(cases[start:start + chunk_cases], separators=(",", ":")).encode(),
                      ContentType="application/json")
    return prefix


def _open_attempt(dynamodb: Any, tables: Tables, request_id: str, row: dict[str, Any], attempt: int,
                  execution_arn: str, *, deadline: int, succeeded: int, failed: int, redriven: int, cases: int,
                  not_emitted: int) -> None:
    """Step 3: RUNNING again, in this attempt, with the counts recounted."""
    remove = [c.ATTR_CLAIMED_AT, c.ATTR_PUBLISHED_AT, c.ATTR_SUMMARY_KEY, c.ATTR_COMPLETED_AT,
              c.ATTR_CANCELLED_AT, c.ATTR_LOST_CHUNKS]
    if not not_emitted:
        remove += [c.ATTR_FAN_OUT_ERROR]
    names = {f"#r{i}": name for i, name in enumerate(remove)}
    dynamodb.update_item(
        TableName=tables.counter, Key=keys.counter_key(request_id),
        UpdateExpression="SET #status = :running, #counter = :counter, #succeeded = :succeeded, #failed = :failed, "
                         "#target = :target, #cases = :cases, #deadline = :deadline, #redriven = :redriven, "
                         "#notEmitted = :notEmitted ADD #writes :one REMOVE " + ", ".join(names),
        ConditionExpression="#attempt = :attempt AND #execution = :execution AND #status = :status",
        ExpressionAttributeNames={**names, "#status": c.ATTR_STATUS, "#counter": c.ATTR_COUNTER,
                                  "#succeeded": c.ATTR_SUCCEEDED, "#failed": c.ATTR_FAILED,
                                  "#target": c.ATTR_EXPECTED, "#cases": c.ATTR_CASES, "#deadline": c.ATTR_DEADLINE,
                                  "#redriven": c.ATTR_REDRIVEN, "#notEmitted": c.ATTR_NOT_EMITTED,
                                  "#writes": c.ATTR_COUNTER_WRITES, "#attempt": c.ATTR_ATTEMPT,
                                  "#execution": c.ATTR_EXECUTION_ARN},
        ExpressionAttributeValues={":running": {"S": c.STATUS_RUNNING}, ":counter": {"N": str(succeeded + failed)},
                                   ":succeeded": {"N": str(succeeded)}, ":failed": {"N": str(failed)},
                                   ":target": {"N": str(succeeded + failed + redriven)}, ":cases": {"N": str(cases)},
                                   ":deadline": {"N": str(deadline)}, ":redriven": {"N": str(redriven)},
                                   ":notEmitted": {"N": str(not_emitted)}, ":one": {"N": "1"},
                                   ":attempt": {"N": str(attempt)}, ":execution": {"S": execution_arn},
                                   ":status": {"S": row[c.ATTR_STATUS]}},
    )


# -- the function --------------------------------------------------------------------------------
_CLIENTS: dict[str, Any] = {}
# Read once, at import (cold start), as the other handlers read theirs; checked at the first call,
# so that the functions above can be imported (and tested) without them.
_ENV_AT_START = dict(os.environ)


def _clients() -> tuple[Any, Any, Tables, RedriveSettings]:
    env = require_env([c.ENV_COUNTER_TABLE, c.ENV_RESULTS_TABLE, c.ENV_ARTIFACTS_BUCKET, c.ENV_CHUNK_CASES,
                       c.ENV_COMPUTE_CONCURRENCY], _ENV_AT_START)
    if not _CLIENTS:
        _CLIENTS["dynamodb"] = client("dynamodb", max_pool_connections=RESET_WRITERS)
        _CLIENTS["s3"] = client("s3")
    tables = Tables(counter=env[c.ENV_COUNTER_TABLE], results=env[c.ENV_RESULTS_TABLE],
                    bucket=env[c.ENV_ARTIFACTS_BUCKET])
    settings = RedriveSettings(chunk_cases=int(env[c.ENV_CHUNK_CASES]),
                               compute_concurrency=int(env[c.ENV_COMPUTE_CONCURRENCY]))
    return _CLIENTS["dynamodb"], _CLIENTS["s3"], tables, settings


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """In: {"action": "cancel", "requestId"} or {"action": "redrive", "redrive": {...}, "executionArn"}."""
    dynamodb, s3, tables, settings = _clients()
    if event.get("action") == "cancel":
        return cancel(dynamodb, tables, str(event.get("requestId") or ""), now=time.time())
    if event.get("action") == "redrive":
        redrive_input = event.get("redrive")
        if not isinstance(redrive_input, dict):
            raise RedriveRefused("a redrive's input is {\"redrive\": {\"requestId\": \"...\"}}")
        return redrive(dynamodb, s3, tables, redrive_input, execution_arn=str(event["executionArn"]),
                       token=str(context.aws_request_id), now=time.time(), settings=settings)
    raise ValueError(f"unknown action {event.get('action')!r}")
