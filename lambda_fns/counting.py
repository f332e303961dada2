"""Batched fan-in: what a completion is, and how a batch of them is counted exactly once.

A batch (up to 100 completions from the buffer queue) is counted with one DynamoDB
transaction per request in the batch (at most 99 cases each: TransactWriteItems takes 100
items, and one is the request's counter row). Each case's results row gets its counted mark
(`outcome`) only if the row exists (the case belongs to the request: Emit registered it)
and has no mark yet; the counter row gets the batch's counts only while the request is
RUNNING. Nothing here reads configuration or creates clients: the caller passes a DynamoDB
client, so the logic runs the same in Lambda, in tests and in any process.

Why read first: a consistent BatchGetItem of the batch's rows drops cases counted before
(duplicates, which EventBridge and async Lambda produce) and completions for closed or
unknown requests before any write, so a duplicate costs a read, not a cancelled
transaction on the busiest item. A duplicate that races in between still cancels the
transaction; its cancellation reason names the item, and the rest is counted on the next
attempt. `TransactionConflict` (a concurrent transaction on the same counter row) and
throttling are retried with capped, full-jitter exponential backoff; what still cannot be
counted is returned as failed, for the queue to deliver again.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import constants as c
from . import keys

# What a completion carries into the workflow input: errors are cut so that a batch of
# 100 stays far below the 256 KB state limit (the results row keeps the long form).
MAX_ERROR_CHARS = 1000
CASES_PER_TRANSACTION = c.TRANSACTION_MAX_ITEMS - 1  # one item is the counter row
# Cancellation reasons worth another attempt (TransactWriteItems API reference,
# "CancellationReasons"); "ConditionalCheckFailed" is final for its item.
RETRIED_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
                             "RequestLimitExceeded", "InternalServerError"})
RETRIED_ERRORS = frozenset({"TransactionConflictException", "ThrottlingException", "InternalServerError",
                            "ProvisionedThroughputExceededException", "RequestLimitExceeded",
                            "TransactionInProgressException"})


class MalformedCompletion(ValueError):
    """A message that is not a completion fanflow can count."""


@dataclass(frozen=True)
class Completion:
    message_id: str
    request_id: str
    case_id: str
    state: str  # constants.CASE_SUCCEEDED or CASE_FAILED
    error: str
    shards: int | None = None  # the request's results shards, as the event carried them (else read)
    attempt: int = 1  # the request's attempt the case was emitted in (constants.DETAIL_ATTEMPT)

    def to_input(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messageId": self.message_id, "requestId": self.request_id, "caseId": self.case_id,
                               "state": self.state, "error": self.error}
        if self.shards is not None:
            out[c.DETAIL_SHARDS] = self.shards
        if self.attempt != 1:
            out[c.DETAIL_ATTEMPT] = self.attempt
        return out

    @classmethod
    def from_input(cls, item: Mapping[str, Any]) -> Completion:
        try:
            completion = cls(str(item["messageId"]), item["requestId"], item["caseId"], item["state"],
                             str(item.get("error") or ""), keys.shards_of(dict(item)), attempt_of(dict(item)))
        except (KeyError, TypeError) as exc:
            raise MalformedCompletion(f"a completion lacks {exc}") from None
        _check(completion)
        return completion


def attempt_of(detail: Any) -> int:
    """The attempt a completion names (keys.attempt_of); MalformedCompletion when it is not one."""
    attempt = keys.attempt_of(detail)
    if attempt is None:
        raise MalformedCompletion(f"attempt must be a whole number of 1 or more, got {detail[c.DETAIL_ATTEMPT]!r}")
    return attempt


def _check(completion: Completion) -> None:
    for name in ("request_id", "case_id"):
        value = getattr(completion, name)
        if not isinstance(value, str) or not value:
            raise MalformedCompletion(f"{name} must be a non-empty string, got {value!r}")
    if completion.state not in c.CASE_RESULT_STATES:
        raise MalformedCompletion(f"state must be {c.CASE_SUCCEEDED} or {c.CASE_FAILED}, got {completion.state!r}")


def parse_completion(message_id: str, body: str) -> Completion:
    """A completion from a buffer-queue message body: an EventBridge event, either a case
    completion (source constants.COMPUTE_SOURCE) or the record Lambda sends to an
    EventBridge on-failure destination when a compute invocation failed for good (source
    "lambda"). The state comes from the event, never the counter it adds to: an event can
    only ever add one to `succeeded` or to `failed`."""
    try:
        event = json.loads(body)
        source, detail = event["source"], event["detail"]
        if source == c.COMPUTE_SOURCE:
            request_id, case_id = detail["requestId"], detail["request"][c.ATTR_CASE_ID]
            state, error, shards = detail["state"], detail.get("error") or "", keys.shards_of(detail)
            attempt = attempt_of(detail)
        elif source == c.LAMBDA_DESTINATION_SOURCE and event.get("detail-type") == c.LAMBDA_FAILURE_DETAIL_TYPE:
            case_event = detail["requestPayload"]["detail"]
            request_id, case_id = case_event["requestId"], case_event["request"][c.ATTR_CASE_ID]
            state, error, shards = c.CASE_FAILED, failure_error(detail), keys.shards_of(case_event)
            attempt = attempt_of(case_event)
        else:
            raise MalformedCompletion(f"not a completion: source {source!r}")
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, MalformedCompletion):
            raise
        raise MalformedCompletion(f"not a completion event ({type(exc).__name__}: {exc})") from None
    completion = Completion(message_id, request_id, case_id, state, str(error)[:MAX_ERROR_CHARS], shards, attempt)
    _check(completion)
    return completion


def failure_error(detail: Mapping[str, Any]) -> str:
    """The error of a failed asynchronous invocation, from what its destination record
    holds: the function's error payload when there is one (a crash, a timeout), else the
    condition that ended it (for example `RetriesExhausted` or `EventAgeExceeded`)."""
    response = detail.get("responsePayload")
    context = detail.get("requestContext")
    condition = str((context.get("condition") if isinstance(context, Mapping) else None) or "failed")
    if isinstance(response, Mapping):
        kind, message = response.get("errorType"), response.get("errorMessage")
        if message or kind:
            return f"{kind}: {message}" if kind and message else str(message or kind)
    return f"compute invocation failed ({condition})"


@dataclass
class BatchResult:
    """What became of a batch: the messages to deliver again, the requests whose count
    reached their target (to be claimed for Summary), and what was done on the way."""

    failed: list[str] = field(default_factory=list)  # message ids
    claims: list[str] = field(default_factory=list)  # request ids
    counted: int = 0
    duplicates: int = 0  # counted before, or twice in this batch
    dropped: int = 0  # not in the request, or the request is closed or unknown
    stale: int = 0  # from an earlier attempt of the request than the one its case waits for
    transactions: int = 0  # committed
    attempts: int = 0  # transactions tried, committed or not
    conflict_retries: int = 0

    def to_output(self, claimed_at: float) -> dict[str, Any]:
        return {"failed": self.failed, "claims": [{"requestId": rid, "claimedAt": f"{claimed_at:.3f}"}
                                                  for rid in self.claims],
                "stats": {"counted": self.counted, "duplicates": self.duplicates, "dropped": self.dropped,
                          "stale": self.stale,
                          "transactions": self.transactions, "attempts": self.attempts,
                          "conflictRetries": self.conflict_retries}}


@dataclass(frozen=True)
class Tables:
    counter: str
    results: str


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
    Backoff And Jitter"): attempt n waits uniform(0, min(cap, base * 2**n))."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random

    def wait(self, attempt: int) -> None:
        self.sleep(self.rand() * min(self.cap, self.base * 2**attempt))


Log = Callable[..., None]


def _no_log(message: str, **fields: Any) -> None:
    return None


def count_batch(dynamodb: Any, tables: Tables, completions: Iterable[Completion], *,
                backoff: Backoff | None = None, log: Log = _no_log) -> BatchResult:
    """Count a batch exactly once; see the module docstring."""
    backoff = backoff or Backoff()
    result = BatchResult()
    by_request: dict[str, dict[str, Completion]] = {}
    for completion in completions:
        cases = by_request.setdefault(completion.request_id, {})
        first = cases.get(completion.case_id)
        if first is None:
            cases[completion.case_id] = completion
        elif completion.attempt > first.attempt:
            # A case's completions from two attempts: the earlier attempt's is stale (a redrive
            # moved its row on), whichever came first in the batch.
            result.stale += 1
            cases[completion.case_id] = completion
        elif completion.attempt < first.attempt:
            result.stale += 1
        else:
            result.duplicates += 1  # the first one stands for it, counted or delivered again
    for request_id, cases in by_request.items():
        reached = False
        shards = _shards(dynamodb, tables, request_id, cases.values(), backoff)
        for chunk in _chunks(list(cases.values()), CASES_PER_TRANSACTION):
            outcome = _count_chunk(dynamodb, tables, request_id, shards, chunk, backoff, result, log)
            if outcome is None:  # could not be counted now: the queue delivers it again
                result.failed.extend(completion.message_id for completion in chunk)
                continue
            reached = reached or outcome
        if reached:
            result.claims.append(request_id)
    return result


def _chunks(items: list[Completion], size: int) -> Iterator[list[Completion]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _shards(dynamodb: Any, tables: Tables, request_id: str, completions: Iterable[Completion],
            backoff: Backoff) -> int:
    """The request's shard count: as its completions carry it, else from its counter row (a
    completion from a compute target that does not echo it); 1 when neither says."""
    for completion in completions:
        if completion.shards is not None:
            return completion.shards
    for attempt in range(backoff.attempts):
        try:
            item = dynamodb.get_item(TableName=tables.counter, Key=_counter_key(request_id), ConsistentRead=True,
                                     ProjectionExpression="#shards",
                                     ExpressionAttributeNames={"#shards": c.ATTR_SHARDS}).get("Item") or {}
        except Exception as exc:
            if _error_code(exc) not in RETRIED_ERRORS:
                raise
            backoff.wait(attempt)
            continue
        return int(item.get(c.ATTR_SHARDS, {}).get("N", "1"))
    return 1


def _results_key(request_id: str, completion: Completion, shards: int) -> dict[str, Any]:
    # A completion's own shard count wins: one that carries a wrong count finds no row (not in the request).
    return keys.results_key(request_id, completion.case_id, completion.shards or shards)


def _counter_key(request_id: str) -> dict[str, Any]:
    return keys.counter_key(request_id)


def _read(dynamodb: Any, tables: Tables, request_id: str, shards: int, chunk: list[Completion],
          backoff: Backoff) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]] | None:
    """The counter row and the chunk's existing results rows, read consistently (at most
    100 keys: one BatchGetItem). None when throttled past the retry budget."""
    request: dict[str, Any] = {
        tables.results: {"Keys": [_results_key(request_id, x, shards) for x in chunk], "ConsistentRead": True},
        tables.counter: {"Keys": [_counter_key(request_id)], "ConsistentRead": True},
    }
    found: dict[str, list[dict[str, Any]]] = {tables.results: [], tables.counter: []}
    for attempt in range(backoff.attempts):
        try:
            response = dynamodb.batch_get_item(RequestItems=request)
        except Exception as exc:
            if _error_code(exc) not in RETRIED_ERRORS:
                raise
            backoff.wait(attempt)
            continue
        for table, items in response.get("Responses", {}).items():
            found[table].extend(items)
        request = response.get("UnprocessedKeys") or {}
        if not request:
            counter = found[tables.counter][0] if found[tables.counter] else None
            rows = {item[c.ATTR_CASE_ID]["S"]: item for item in found[tables.results]}
            return counter, rows
        backoff.wait(attempt)
    return None


def _count_chunk(dynamodb: Any, tables: Tables, request_id: str, shards: int, chunk: list[Completion],
                 backoff: Backoff, result: BatchResult, log: Log) -> bool | None:
    """Count one request's chunk (≤ 99 cases). True when the request's count has reached
    its target (a claim candidate), False when not, None when the chunk must be retried."""
    read = _read(dynamodb, tables, request_id, shards, chunk, backoff)
    if read is None:
        return None
    counter, rows = read
    if counter is None or counter.get(c.ATTR_STATUS, {}).get("S") != c.STATUS_RUNNING:
        status = "unknown" if counter is None else counter.get(c.ATTR_STATUS, {}).get("S")
        log("completions for a closed or unknown request dropped", requestId=request_id, status=status,
            cases=len(chunk))
        result.dropped += len(chunk)
        return False
    pending: list[Completion] = []
    for completion in chunk:
        row = rows.get(completion.case_id)
        if row is None:
            log("completion for a case not in the request dropped", requestId=request_id,
                caseId=completion.case_id)
            result.dropped += 1
        elif c.ATTR_OUTCOME in row:
            result.duplicates += 1
        elif int(row.get(c.ATTR_ATTEMPT, {}).get("N", "1")) != completion.attempt:
            log("completion from another attempt of the request dropped", requestId=request_id,
                caseId=completion.case_id, attempt=completion.attempt)
            result.stale += 1
        else:
            pending.append(completion)
    if not pending:
        # Nothing new, but the delivery that counted the last case may have failed before its
        # claim: the request may still need claiming.
        return _reached(counter)
    conflicts = 0
    for attempt in range(backoff.attempts):
        result.attempts += 1
        try:
            dynamodb.transact_write_items(TransactItems=_transaction(tables, request_id, shards, pending, conflicts,
                                                                     attempts=attempt + 1))
        except Exception as exc:
            code = _error_code(exc)
            if code == "TransactionCanceledException":
                reasons = [reason.get("Code") or "None" for reason in _reasons(exc)]
                if len(reasons) == len(pending) + 1 and reasons[-1] == "ConditionalCheckFailed":
                    log("completions for a request closed meanwhile dropped", requestId=request_id,
                        cases=len(pending))
                    result.dropped += len(pending)
                    return False
                if len(reasons) == len(pending) + 1 and "ConditionalCheckFailed" in reasons[:-1]:
                    # Counted by a concurrent batch meanwhile (or removed): drop those, count the rest.
                    raced = [x for x, reason in zip(pending, reasons, strict=False)
                             if reason == "ConditionalCheckFailed"]
                    result.duplicates += len(raced)
                    pending = [x for x, reason in zip(pending, reasons, strict=False)
                               if reason != "ConditionalCheckFailed"]
                    if not pending:
                        return _reached(_counter_now(dynamodb, tables, request_id))
                    continue
                if not any(reason in RETRIED_REASONS for reason in reasons):
                    raise
            elif code not in RETRIED_ERRORS:
                raise
            conflicts += 1
            result.conflict_retries += 1
            backoff.wait(attempt)
            continue
        result.transactions += 1
        result.counted += len(pending)
        return _reached(_counter_now(dynamodb, tables, request_id))
    log("batch not counted after retries; the queue delivers it again", requestId=request_id,
        cases=len(pending), attempts=backoff.attempts)
    return None


def _transaction(tables: Tables, request_id: str, shards: int, pending: list[Completion], conflicts: int, *,
                 attempts: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"Update": {
        "TableName": tables.results,
        "Key": _results_key(request_id, x, shards),
        "UpdateExpression": "SET #outcome = :state, #outcomeError = :error",
        # The row exists: Emit registered the case, so it belongs to the request; and it waits for
        # this completion's attempt (a redrive moved it on, or not).
        "ConditionExpression": "attribute_exists(#caseId) AND attribute_not_exists(#outcome) AND "
                               + ("(attribute_not_exists(#attempt) OR #attempt = :attempt)" if x.attempt == 1
                                  else "#attempt = :attempt"),
        "ExpressionAttributeNames": {"#outcome": c.ATTR_OUTCOME, "#outcomeError": c.ATTR_OUTCOME_ERROR,
                                     "#caseId": c.ATTR_CASE_ID, "#attempt": c.ATTR_ATTEMPT},
        "ExpressionAttributeValues": {":state": {"S": x.state}, ":error": {"S": x.error},
                                      ":attempt": {"N": str(x.attempt)}},
    }} for x in pending]
    succeeded = sum(1 for x in pending if x.state == c.CASE_SUCCEEDED)
    # Fixed expressions: which counter a case adds to follows from its state, never from the event.
    items.append({"Update": {
        "TableName": tables.counter,
        "Key": _counter_key(request_id),
        "UpdateExpression": "ADD #counter :n, #succeeded :s, #failed :f, #batches :one, #conflicts :conflicts, "
                            "#writes :attempts",
        "ConditionExpression": "#status = :running",
        "ExpressionAttributeNames": {"#counter": c.ATTR_COUNTER, "#succeeded": c.ATTR_SUCCEEDED,
                                     "#failed": c.ATTR_FAILED, "#batches": c.ATTR_FAN_IN_BATCHES,
                                     "#conflicts": c.ATTR_CONFLICT_RETRIES, "#writes": c.ATTR_COUNTER_WRITES,
                                     "#status": c.ATTR_STATUS},
        "ExpressionAttributeValues": {":n": {"N": str(len(pending))}, ":s": {"N": str(succeeded)},
                                      ":f": {"N": str(len(pending) - succeeded)}, ":one": {"N": "1"},
                                      ":conflicts": {"N": str(conflicts)}, ":attempts": {"N": str(attempts)},
                                      ":running": {"S": c.STATUS_RUNNING}},
    }})
    return items


def _counter_now(dynamodb: Any, tables: Tables, request_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=tables.counter, Key=_counter_key(request_id), ConsistentRead=True,
        ProjectionExpression="#s, #n, #t",
        ExpressionAttributeNames={"#s": c.ATTR_STATUS, "#n": c.ATTR_COUNTER, "#t": c.ATTR_EXPECTED},
    ).get("Item")
    return item


def _reached(counter: Mapping[str, Any] | None) -> bool:
    if counter is None or counter.get(c.ATTR_STATUS, {}).get("S") != c.STATUS_RUNNING:
        return False
    return int(counter[c.ATTR_COUNTER]["N"]) >= int(counter[c.ATTR_EXPECTED]["N"])


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _reasons(exc: Exception) -> list[dict[str, Any]]:
    response = getattr(exc, "response", None)
    reasons = response.get("CancellationReasons") if isinstance(response, Mapping) else None
    return list(reasons) if isinstance(reasons, list) else []
