"""Emit: one fan-out batch. Puts one event per case on the bus, ten entries per PutEvents
call, and fails the Map iteration (which Step Functions retries) if any entry is refused."""

from __future__ import annotations

import json
import logging
from typing import Any

from . import constants as c
from .support import client, put_events, require_env
from .telemetry import Telemetry, log

_ENV = require_env([c.ENV_EVENTBUS_NAME])
_EVENTS = client("events")
_TELEMETRY = Telemetry("emit")
_LOG = _TELEMETRY.logger


def case_entries(request_id: str, cases: list[dict[str, Any]], bus_name: str) -> list[dict[str, Any]]:
    return [
        {
            "Source": c.PREPROCESS_SOURCE,
            "DetailType": c.CASE_DETAIL_TYPE,
            "EventBusName": bus_name,
            "Detail": json.dumps({"requestId": request_id, "request": case}),
        }
        for case in cases
    ]


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id, cases = event["requestId"], event["cases"]
    calls = put_events(_EVENTS, case_entries(request_id, cases, _ENV[c.ENV_EVENTBUS_NAME]))
    log(_LOG, logging.INFO, "batch emitted", cases=len(cases), putEventsCalls=calls)
    return {"emitted": len(cases), "putEventsCalls": calls}
