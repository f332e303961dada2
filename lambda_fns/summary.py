"""Summary: runs once per request, when Increment counts the last case or PreProcess's
deadline passes. Aggregates the case results, stores the summary in the artifacts bucket,
closes the counter row and publishes the outcome on the bus."""

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
    [c.ENV_COUNTER_TABLE, c.ENV_RESULTS_TABLE, c.ENV_ARTIFACTS_BUCKET, c.ENV_EVENTBUS_NAME,
     c.ENV_RETENTION_SECONDS]
)
_DDB = client("dynamodb")
_S3 = client("s3")
_EVENTS = client("events")
_TELEMETRY = Telemetry("summary")
_LOG = _TELEMETRY.logger


def summary_key(request_id: str) -> str:
    return f"summaries/{request_id}.json"


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


def _expire_untimed(request_id: str, rows: list[dict[str, Any]], expires_at: int) -> None:
    # Rows created only by Increment (a seed-style compute writes none) carry no TTL yet.
    for row in rows:
        if c.ATTR_EXPIRES_AT not in row:
            _DDB.update_item(
                TableName=_ENV[c.ENV_RESULTS_TABLE],
                Key={c.ATTR_REQUEST_ID: {"S": request_id}, c.ATTR_CASE_ID: {"S": row[c.ATTR_CASE_ID]}},
                UpdateExpression="SET #e = :e",
                ExpressionAttributeNames={"#e": c.ATTR_EXPIRES_AT},
                ExpressionAttributeValues={":e": {"N": str(expires_at)}},
            )


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = event["requestId"]
    item = _DDB.get_item(
        TableName=_ENV[c.ENV_COUNTER_TABLE], Key={c.ATTR_REQUEST_ID: {"S": request_id}}, ConsistentRead=True
    ).get("Item")
    if item is None:
        raise LookupError(f"no counter row for request {request_id!r}")
    row = plain_item(item)
    rows = _results(request_id)
    manifest = json.loads(
        _S3.get_object(Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET], Key=row[c.ATTR_MANIFEST_KEY])["Body"].read()
    )
    now = time.time()
    summary = build_summary(row, rows, manifest["caseIds"], completed_at=now)
    key = summary_key(request_id)
    _S3.put_object(Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET], Key=key,
                   Body=json.dumps(summary).encode(), ContentType="application/json")
    _expire_untimed(request_id, rows, int(now) + int(_ENV[c.ENV_RETENTION_SECONDS]))
    try:
        _DDB.update_item(
            TableName=_ENV[c.ENV_COUNTER_TABLE],
            Key={c.ATTR_REQUEST_ID: {"S": request_id}},
            UpdateExpression="SET #status = :final, #key = :key, #done = :done ADD #writes :one",
            ConditionExpression="#status = :summarizing",
            ExpressionAttributeNames={"#status": c.ATTR_STATUS, "#key": c.ATTR_SUMMARY_KEY,
                                      "#done": c.ATTR_COMPLETED_AT, "#writes": c.ATTR_COUNTER_WRITES},
            ExpressionAttributeValues={":final": {"S": summary["status"]}, ":key": {"S": key},
                                       ":done": {"N": f"{now:.3f}"}, ":one": {"N": "1"},
                                       ":summarizing": {"S": c.STATUS_SUMMARIZING}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # A retried invocation: the row is already closed, and the summary is the same.
        log(_LOG, logging.INFO, "request already closed")
    else:  # counted once per request: by the invocation that closed it
        _TELEMETRY.dimension(c.DIMENSION_STATUS, summary["status"])
        _TELEMETRY.metric(c.METRIC_REQUESTS_COMPLETED, MetricUnit.Count, 1)
        _TELEMETRY.metric(c.METRIC_REQUEST_DURATION, MetricUnit.Seconds, summary["wallSeconds"])
    compact = {k: v for k, v in summary.items() if k != "cases"}
    compact["timedOut"] = summary["timedOut"][:100]
    compact["summaryKey"] = key
    put_events(_EVENTS, [{
        "Source": c.SUMMARY_SOURCE,
        "DetailType": c.SUMMARY_DETAIL_TYPE,
        "EventBusName": _ENV[c.ENV_EVENTBUS_NAME],
        "Detail": json.dumps(compact),
    }])
    log(_LOG, logging.INFO, "request summarized", status=summary["status"], succeeded=summary["succeeded"],
        failed=summary["failed"], timedOut=len(summary["timedOut"]))
    return compact
