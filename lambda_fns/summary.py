"""Summary: runs for a request claimed for it (SUMMARIZING), when Increment counts the last case,
when a fan-out loss leaves nothing to wait for, or at the deadline. Aggregates the case results,
closes the counter row with the final status, stores the summary in the artifacts bucket and
publishes the outcome on the bus.

Exactly once at the edges: the close is conditional on the claim it summarized under, so of two
Summaries only one closes; the stored summary is written only after the close, from the closed
row (a retry writes the same document, and never over an existing one); the completion event is
published after the summary is stored and marked published on the row, so a retry (or PreProcess
at the deadline) publishes it if the closing run could not. A run that finds the request closed
completes what is missing and nothing else.

At any size: the results rows are read shard by shard, a page at a time, into a SummaryBuilder
that keeps counts, durations and capped lists (lambda_fns/summary_model.py), while every case's
line is written to S3 as JSON Lines in parts (every case, and every case that did not succeed),
under the run's own prefix: the stored summary names the parts of the run that closed the
request. Up to SUMMARY_INLINE_CASES cases the summary also holds the whole per-case list."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from . import keys
from .summary_model import SummaryBuilder
from .support import client, plain_item, put_events, require_env
from .telemetry import MetricUnit, Telemetry, log

_ENV = require_env(
    [c.ENV_COUNTER_TABLE, c.ENV_RESULTS_TABLE, c.ENV_ARTIFACTS_BUCKET, c.ENV_EVENTBUS_NAME]
)
_DDB = client("dynamodb")
_S3 = client("s3")
_EVENTS = client("events")
_TELEMETRY = Telemetry("summary")
_LOG = _TELEMETRY.logger
# What a case's line needs of its results row.
_ROW_ATTRIBUTES = (c.ATTR_CASE_ID, c.ATTR_STATE, c.ATTR_ERROR, c.ATTR_DURATION_MS, c.ATTR_OUTCOME,
                   c.ATTR_OUTCOME_ERROR, c.ATTR_ATTEMPT)
# The completion event's lists: far below EventBridge's 256 KB per event.
EVENT_LIST_CAP = 100
EVENT_ERROR_CHARS = 200


def _counter_row(request_id: str) -> dict[str, Any]:
    item = _DDB.get_item(
        TableName=_ENV[c.ENV_COUNTER_TABLE], Key=keys.counter_key(request_id), ConsistentRead=True
    ).get("Item")
    if item is None:
        raise LookupError(f"no counter row for request {request_id!r}")
    return plain_item(item)


def results_rows(dynamodb: Any, table: str, request_id: str, shards: int) -> Any:
    """Every results row of a request, plain, with what a case's line needs (keys.results_items)."""
    return (plain_item(item) for item in keys.results_items(dynamodb, table, request_id, shards,
                                                            attributes=_ROW_ATTRIBUTES))


class PartWriter:
    """Per-case lines as JSON Lines objects of RESULTS_PART_LINES lines each. A part is written
    once (IfNoneMatch): under the run's own prefix, so a competing Summary's parts never mix
    with this one's."""

    def __init__(self, s3: Any, bucket: str, prefix: str, kind: str, lines: int | None = None) -> None:
        self.s3, self.bucket, self.prefix, self.kind = s3, bucket, prefix, kind
        self.size = lines or c.RESULTS_PART_LINES
        self.buffer: list[str] = []
        self.keys: list[str] = []
        self.lines = 0

    def add(self, line: dict[str, Any]) -> None:
        self.buffer.append(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
        self.lines += 1
        if len(self.buffer) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        key = f"{self.prefix}{self.kind}-{len(self.keys):05d}.jsonl"
        _put_once(self.s3, self.bucket, key, ("\n".join(self.buffer) + "\n").encode(), "application/x-ndjson")
        self.keys.append(key)
        self.buffer = []


def _summary(row: dict[str, Any], completed_at: float, token: str) -> dict[str, Any]:
    """Aggregate the request, writing every case's line to the per-case results as it goes."""
    request_id = row[c.ATTR_REQUEST_ID]
    bucket = _ENV[c.ENV_ARTIFACTS_BUCKET]
    prefix = keys.results_prefix(request_id, token)
    builder = SummaryBuilder(row)
    every, unsucceeded = PartWriter(_S3, bucket, prefix, "cases"), PartWriter(_S3, bucket, prefix, "not-succeeded")

    def add(line: dict[str, Any]) -> None:
        every.add(line)
        if line["state"] != c.CASE_SUCCEEDED:
            unsucceeded.add(line)

    seen: set[str] = set()
    for result in results_rows(_DDB, _ENV[c.ENV_RESULTS_TABLE], request_id, int(row.get(c.ATTR_SHARDS, 1))):
        line = builder.line(result)
        seen.add(line["caseId"])
        builder.add(line)
        add(line)
    order: list[str] | None = None
    if builder.keep_cases or len(seen) < builder.target:
        # The manifest: the request's order, and its cases that have no row.
        manifest = json.loads(_S3.get_object(Bucket=bucket, Key=row[c.ATTR_MANIFEST_KEY])["Body"].read())
        order = manifest["caseIds"]
        for line in builder.missing(case_id for case_id in order if case_id not in seen):
            add(line)
    every.flush()
    unsucceeded.flush()
    summary = builder.build(completed_at=completed_at, order=order if builder.keep_cases else None)
    summary["results"] = {"format": "jsonl", "cases": every.keys, "notSucceeded": unsucceeded.keys,
                          "lines": every.lines}
    return summary


def _close(row: dict[str, Any], summary: dict[str, Any], key: str, now: float) -> bool:
    """Close the row with the final status, under the claim the summary was made under. False
    when the row is no longer that claim's (another Summary closed it, or took the claim over)."""
    claimed_at = row.get(c.ATTR_CLAIMED_AT)
    values: dict[str, Any] = {":final": {"S": summary["status"]}, ":key": {"S": key}, ":done": {"N": f"{now:.3f}"},
                              ":summarizing": {"S": c.STATUS_SUMMARIZING}, ":one": {"N": "1"}}
    if claimed_at is None:
        claim = "attribute_not_exists(#claimedAt)"
    else:
        claim, values[":claimedAt"] = "#claimedAt = :claimedAt", {"N": str(claimed_at)}
    try:
        _DDB.update_item(
            TableName=_ENV[c.ENV_COUNTER_TABLE],
            Key=keys.counter_key(row[c.ATTR_REQUEST_ID]),
            UpdateExpression="SET #status = :final, #key = :key, #done = :done ADD #writes :one",
            ConditionExpression=f"#status = :summarizing AND {claim}",
            ExpressionAttributeNames={"#status": c.ATTR_STATUS, "#key": c.ATTR_SUMMARY_KEY,
                                      "#done": c.ATTR_COMPLETED_AT, "#claimedAt": c.ATTR_CLAIMED_AT,
                                      "#writes": c.ATTR_COUNTER_WRITES},
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _store(key: str, summary: dict[str, Any]) -> bool:
    """Write the summary unless it is stored already (a retry's document is the same)."""
    return _put_once(_S3, _ENV[c.ENV_ARTIFACTS_BUCKET], key, json.dumps(summary).encode(), "application/json")


def _put_once(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> bool:
    """PutObject unless the key exists (False then: what is stored stands)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
        return False
    return True


def _publish(row: dict[str, Any], compact: dict[str, Any]) -> bool:
    """Publish fanflow.request.completed unless the row says it was; then say it was."""
    if row.get(c.ATTR_PUBLISHED_AT) is not None:
        return False
    put_events(_EVENTS, [{
        "Source": c.SUMMARY_SOURCE,
        "DetailType": c.SUMMARY_DETAIL_TYPE,
        "EventBusName": _ENV[c.ENV_EVENTBUS_NAME],
        "Detail": json.dumps(compact),
    }])
    try:
        _DDB.update_item(
            TableName=_ENV[c.ENV_COUNTER_TABLE],
            Key=keys.counter_key(row[c.ATTR_REQUEST_ID]),
            UpdateExpression="SET #published = :now",
            ConditionExpression="attribute_not_exists(#published)",
            ExpressionAttributeNames={"#published": c.ATTR_PUBLISHED_AT},
            ExpressionAttributeValues={":now": {"N": f"{time.time():.3f}"}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    return True


def compact_summary(summary: dict[str, Any], key: str) -> dict[str, Any]:
    """The completion event's detail: the summary without its per-case list, its lists capped
    at EVENT_LIST_CAP (their full counts stay) so that the event stays far below 256 KB."""
    compact = {k: v for k, v in summary.items() if k != "cases"}
    compact["timedOut"] = summary["timedOut"][:EVENT_LIST_CAP]
    compact["notEmitted"] = summary["notEmitted"][:EVENT_LIST_CAP]
    if "cancelled" in summary:
        compact["cancelled"] = summary["cancelled"][:EVENT_LIST_CAP]
    compact["failures"] = [{"caseId": failure["caseId"], "error": str(failure.get("error", ""))[:EVENT_ERROR_CHARS]}
                           for failure in summary.get("failures", [])[:EVENT_LIST_CAP]]
    compact["summaryKey"] = key
    return compact


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = event["requestId"]
    row = _counter_row(request_id)
    key = keys.summary_key(request_id, int(row.get(c.ATTR_ATTEMPT) or 1))  # one summary per attempt
    status = row[c.ATTR_STATUS]
    if status == c.STATUS_RUNNING:
        log(_LOG, logging.ERROR, "request not claimed for Summary; nothing done", reason=event.get("reason"))
        return {"requestId": request_id, "status": status, "summarized": False}
    if status == c.STATUS_SUMMARIZING:
        now = time.time()
        summary = _summary(row, now, context.aws_request_id)
        if not _close(row, summary, key, now):
            row = _counter_row(request_id)
            if row[c.ATTR_STATUS] not in c.FINAL_STATUSES:
                # Another Summary took the claim over: it summarizes; this one stops here.
                log(_LOG, logging.WARNING, "claim taken over by another Summary; nothing done")
                return {"requestId": request_id, "status": row[c.ATTR_STATUS], "summarized": False}
            log(_LOG, logging.INFO, "request closed by another Summary")
            return {"requestId": request_id, "status": row[c.ATTR_STATUS], "summarized": False}
        # Counted once per request: by the invocation that closed it.
        _TELEMETRY.dimension(c.DIMENSION_STATUS, summary["status"])
        _TELEMETRY.metric(c.METRIC_REQUESTS_COMPLETED, MetricUnit.Count, 1)
        _TELEMETRY.metric(c.METRIC_REQUEST_DURATION, MetricUnit.Seconds, summary["wallSeconds"])
        row.update({c.ATTR_STATUS: summary["status"], c.ATTR_COMPLETED_AT: round(now, 3)})
    else:
        # Closed: complete what a run that closed it may not have (the stored summary, the event),
        # from the closed row, so the document is the one the close decided.
        summary = _summary(row, float(row.get(c.ATTR_COMPLETED_AT, time.time())), context.aws_request_id)
        summary["status"] = row[c.ATTR_STATUS]
    stored = _store(key, summary)
    compact = compact_summary(summary, key)
    published = _publish(row, compact)
    log(_LOG, logging.INFO, "request summarized", status=summary["status"], succeeded=summary["succeeded"],
        failed=summary["failed"], timedOut=summary["timedOutCount"], notEmitted=summary["notEmittedCount"],
        parts=len(summary["results"]["cases"]), stored=stored, published=published)
    return {**compact, "summarized": True}
