"""Workflow step: the computing step of the compute workflow. Runs one case and records
its result; the workflow itself puts the completion event, so a crash here still ends in
a FAILED completion (the workflow's Catch)."""

from __future__ import annotations

import logging
from typing import Any

from . import constants as c
from .casework import record_result, run_case, work
from .support import client, require_env
from .telemetry import Telemetry, log

__all__ = ["handler", "work"]

_ENV = require_env([c.ENV_RESULTS_TABLE, c.ENV_COMPUTE_SECONDS, c.ENV_RETENTION_SECONDS, c.ENV_COMPUTE_TYPE])
_DDB = client("dynamodb")
_TELEMETRY = Telemetry("workflow_step")
_LOG = _TELEMETRY.logger


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`{"requestId", "request"}` in; `{"state"}` out, with `"error"` when the case failed."""
    request_id, request = event["requestId"], event["request"]
    outcome = run_case(request, float(_ENV[c.ENV_COMPUTE_SECONDS]), work=work)
    if outcome.error:
        log(_LOG, logging.WARNING, "case failed", error=outcome.error)
    recorded = record_result(
        _DDB, _ENV[c.ENV_RESULTS_TABLE], request_id, request[c.ATTR_CASE_ID], state=outcome.state,
        started=outcome.started, finished=outcome.finished, error=outcome.error,
        expires_at=int(outcome.finished) + int(_ENV[c.ENV_RETENTION_SECONDS]), computed_by=_ENV[c.ENV_COMPUTE_TYPE],
    )
    _TELEMETRY.case_done(_LOG, "step completed", state=outcome.state, duration_ms=outcome.duration_ms,
                         recorded=recorded)
    return {"state": outcome.state, **({"error": outcome.error} if outcome.error else {})}
