"""Compute: a Lambda compute target (the default one, and any other function target) runs
one case. Simulates the work with a configurable sleep, records the case result for
Summary, and puts the completion event. A computation that raises is reported as a
failed case, with its error, instead of disappearing."""

from __future__ import annotations

import logging
from typing import Any

from . import constants as c
from .casework import Reporting, report_case, run_case, work
from .support import client, require_env
from .telemetry import Telemetry, log

__all__ = ["handler", "work"]

_ENV = require_env(
    [c.ENV_EVENTBUS_NAME, c.ENV_EVENTBUS_SOURCE, c.ENV_EVENTBUS_DETAILTYPE, c.ENV_RESULTS_TABLE,
     c.ENV_COMPUTE_SECONDS, c.ENV_RETENTION_SECONDS, c.ENV_COMPUTE_TYPE]
)
_EVENTS = client("events")
_DDB = client("dynamodb")
_TELEMETRY = Telemetry("compute")
_LOG = _TELEMETRY.logger
_REPORTING = Reporting(
    results_table=_ENV[c.ENV_RESULTS_TABLE],
    bus_name=_ENV[c.ENV_EVENTBUS_NAME],
    retention_seconds=int(_ENV[c.ENV_RETENTION_SECONDS]),
    computed_by=_ENV[c.ENV_COMPUTE_TYPE],
    source=_ENV[c.ENV_EVENTBUS_SOURCE],
    detail_type=_ENV[c.ENV_EVENTBUS_DETAILTYPE],
)


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    # `work` is looked up here, at each call: tests and the embedded runtime's fault
    # injection replace this module's `work`.
    outcome = run_case(detail["request"], float(_ENV[c.ENV_COMPUTE_SECONDS]), work=work)
    if outcome.error:
        log(_LOG, logging.WARNING, "case failed", error=outcome.error)
    out, recorded = report_case(_DDB, _EVENTS, detail, outcome, _REPORTING)
    _TELEMETRY.case_done(_LOG, "case completed", state=outcome.state, duration_ms=outcome.duration_ms,
                         recorded=recorded)
    return out
