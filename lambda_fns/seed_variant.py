"""The seed's own compute and summary functions, kept only for `fanflow bench`'s
seed-faithful variant: compute sleeps and puts one completion event; summary marks the
counter row. No results, no failure accounting, no idempotency: that is the point."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .support import client

_EVENTS = client("events")
_DDB = client("dynamodb")
# Read once at cold start, as Lambda's environment is fixed per container.
_ENV = dict(os.environ)


def compute_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    time.sleep(float(_ENV.get("COMPUTE_SECONDS", "0")))
    out = dict(detail, state="SUCCEEDED")
    # The seed ignores the PutEvents response.
    _EVENTS.put_events(Entries=[{
        "Source": _ENV["EVENTBUS_SOURCE"], "DetailType": _ENV["EVENTBUS_DETAILTYPE"],
        "EventBusName": _ENV["EVENTBUS_NAME"], "Detail": json.dumps(out),
    }])
    return out


def summary_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = event["requestId"]["S"]
    _DDB.update_item(
        TableName=_ENV["COUNTER_TABLE_NAME"], Key={"requestId": {"S": request_id}},
        UpdateExpression="SET summarizedAt = :now", ExpressionAttributeValues={":now": {"N": str(time.time())}},
    )
    return {"requestId": request_id, "summary": "done"}
