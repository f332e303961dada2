"""Workflow step: the computing step of the compute workflow. Settles one case (computes it and
records its result, or finds its stored result, or skips it); the workflow itself puts the
completion event, so a crash here still ends in a FAILED completion (the workflow's Catch)."""

from __future__ import annotations

from typing import Any

from . import constants as c
from .casework import Reporting, settle_case, work
from .support import client, require_env
from .telemetry import Telemetry

__all__ = ["handler", "work"]

_ENV = require_env([c.ENV_RESULTS_TABLE, c.ENV_COMPUTE_SECONDS, c.ENV_COMPUTE_TYPE])
_DDB = client("dynamodb")
_TELEMETRY = Telemetry("workflow_step")
_LOG = _TELEMETRY.logger
# The workflow puts the completion event: the step only records (no bus here).
_REPORTING = Reporting(results_table=_ENV[c.ENV_RESULTS_TABLE], bus_name="", computed_by=_ENV[c.ENV_COMPUTE_TYPE])


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """`{"requestId", "request", "deadline"}` in; `{"state"}` out, with `"error"` when the case
    failed, or `{"skipped": reason}` when no completion is due."""
    settled = settle_case(_DDB, event, _REPORTING, seconds=float(_ENV[c.ENV_COMPUTE_SECONDS]), work=work)
    _TELEMETRY.case_settled(_LOG, settled)
    if settled.state is None:
        return {"skipped": settled.skipped}
    return {"state": settled.state, **({"error": settled.error} if settled.error else {})}
