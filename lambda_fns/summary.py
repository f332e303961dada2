"""Summary: runs for a request claimed for it (SUMMARIZING), when Increment counts the last case,
when a fan-out loss leaves nothing to wait for, or at the deadline. Aggregates the case results,
closes the counter row with the final status, stores the summary in the artifacts bucket and
publishes the outcome on the bus.

Exactly once at the edges: the close is conditional on the claim it summarized under, so of two
Summaries only one closes; the stored summary is written only after the close, from the closed
row (a retry writes the same document, and never over an existing one); the completion event is
published after the summary is stored and marked published on the row, so a retry (or PreProcess
at the deadline) publishes it if the closing run could not. A run that finds the request closed
completes what is missing and nothing else."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from .summary_model import build_summary
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


def summary_key(request_id: str) -> str:
    return f"summaries/{request_id}.json"


def _counter_row(request_id: str) -> dict[str, Any]:
    item = _DDB.get_item(
        TableName=_ENV[c.ENV_COUNTER_TABLE], Key={c.ATTR_REQUEST_ID: {"S": request_id}}, ConsistentRead=True
    ).get("Item")
    if item is None:
        raise LookupError(f"no counter row for request {request_id!r}")
    return plain_item(item)


def _results(request_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": _ENV[c.ENV_RESULTS_TABLE],
        "KeyConditionExpression": "#rid = :rid",
        "ExpressionAttributeNames": {"#rid": c.ATTR_REQUEST_ID},
        "ExpressionAttributeValues": {":rid": {"S": request_id}},
        "ConsistentRead": True,
    }
    while True:
        page = _DDB.query(**kwargs)
        rows.extend(plain_item(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _summary(row: dict[str, Any], completed_at: float) -> dict[str, Any]:
    request_id = row[c.ATTR_REQUEST_ID]
    manifest = json.loads(
        _S3.get_object(Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET], Key=row[c.ATTR_MANIFEST_KEY])["Body"].read()
    )
    return build_summary(row, _results(request_id), manifest["caseIds"], completed_at=completed_at)


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
            Key={c.ATTR_REQUEST_ID: {"S": row[c.ATTR_REQUEST_ID]}},
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
    try:
        _S3.put_object(Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET], Key=key, Body=json.dumps(summary).encode(),
                       ContentType="application/json", IfNoneMatch="*")
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
            Key={c.ATTR_REQUEST_ID: {"S": row[c.ATTR_REQUEST_ID]}},
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
    """The completion event's detail: the summary without its per-case list, lists capped."""
    compact = {k: v for k, v in summary.items() if k != "cases"}
    compact["timedOut"] = summary["timedOut"][:100]
    compact["notEmitted"] = summary["notEmitted"][:100]
    compact["summaryKey"] = key
    return compact


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = event["requestId"]
    key = summary_key(request_id)
    row = _counter_row(request_id)
    status = row[c.ATTR_STATUS]
    if status == c.STATUS_RUNNING:
        log(_LOG, logging.ERROR, "request not claimed for Summary; nothing done", reason=event.get("reason"))
        return {"requestId": request_id, "status": status, "summarized": False}
    if status == c.STATUS_SUMMARIZING:
        now = time.time()
        summary = _summary(row, now)
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
        summary = _summary(row, float(row.get(c.ATTR_COMPLETED_AT, time.time())))
        summary["status"] = row[c.ATTR_STATUS]
    stored = _store(key, summary)
    compact = compact_summary(summary, key)
    published = _publish(row, compact)
    log(_LOG, logging.INFO, "request summarized", status=summary["status"], succeeded=summary["succeeded"],
        failed=summary["failed"], timedOut=len(summary["timedOut"]), notEmitted=len(summary["notEmitted"]),
        stored=stored, published=published)
    return {**compact, "summarized": True}
