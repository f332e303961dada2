"""Compute: a Lambda compute target (the default one, and any other function target) runs
one case. Simulates the work with a configurable sleep, records the case result for
Summary, and puts the completion event. A computation that raises is reported as a
failed case, with its error, instead of disappearing. A case received after its deadline,
not in the request, or already counted is not computed (lambda_fns.casework.settle_case)."""

from __future__ import annotations

from typing import Any

from . import constants as c
from .casework import Reporting, completion_detail, report_case, work
from .support import client, require_env
from .telemetry import Telemetry

__all__ = ["handler", "work"]

_ENV = require_env(
    [c.ENV_EVENTBUS_NAME, c.ENV_EVENTBUS_SOURCE, c.ENV_EVENTBUS_DETAILTYPE, c.ENV_RESULTS_TABLE,
     c.ENV_COMPUTE_SECONDS, c.ENV_COMPUTE_TYPE]
)
_EVENTS = client("events")
_DDB = client("dynamodb")
_TELEMETRY = Telemetry("compute")
_LOG = _TELEMETRY.logger
_REPORTING = Reporting(
    results_table=_ENV[c.ENV_RESULTS_TABLE],
    bus_name=_ENV[c.ENV_EVENTBUS_NAME],
    computed_by=_ENV[c.ENV_COMPUTE_TYPE],
    source=_ENV[c.ENV_EVENTBUS_SOURCE],
    detail_type=_ENV[c.ENV_EVENTBUS_DETAILTYPE],
)


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    # `work` is looked up here, at each call: tests and the embedded runtime's fault
    # injection replace this module's `work`.
    settled = report_case(_DDB, _EVENTS, detail, _REPORTING, seconds=float(_ENV[c.ENV_COMPUTE_SECONDS]), work=work)
    _TELEMETRY.case_settled(_LOG, settled)
    if settled.state is None:
        return {"requestId": detail["requestId"], "request": detail["request"], "skipped": settled.skipped}
    return completion_detail(detail, settled.state, settled.error)
