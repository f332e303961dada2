"""How a request's summary is aggregated from its counter row and case results.
Pure functions: no AWS, so the rules are tested directly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import constants as c


def final_status(*, succeeded: int, failed: int, missing: int) -> str:
    if missing:
        return c.STATUS_TIMED_OUT
    if failed == 0:
        return c.STATUS_SUCCEEDED
    if succeeded == 0:
        return c.STATUS_FAILED
    return c.STATUS_PARTIAL


def build_summary(
    counter_row: dict[str, Any],
    results: Iterable[dict[str, Any]],
    case_ids: Sequence[str] | None,
    *,
    completed_at: float,
) -> dict[str, Any]:
    """The summary of one request.

    `results` are the plain results rows; only rows that Increment counted (those with an
    outcome) are cases that completed. `case_ids` is the request's manifest, in request
    order; cases in it without a counted result are reported as timed out.
    """
    counted = {row[c.ATTR_CASE_ID]: row for row in results if row.get(c.ATTR_OUTCOME)}
    order = list(case_ids) if case_ids is not None else sorted(counted, key=_natural)
    cases: list[dict[str, Any]] = []
    missing: list[str] = []
    for case_id in order:
        row = counted.get(case_id)
        if row is None:
            missing.append(case_id)
            cases.append({"caseId": case_id, "state": c.STATUS_TIMED_OUT})
            continue
        case: dict[str, Any] = {"caseId": case_id, "state": row[c.ATTR_OUTCOME]}
        if row.get(c.ATTR_DURATION_MS) is not None:
            case["durationMs"] = row[c.ATTR_DURATION_MS]
        error = row.get(c.ATTR_ERROR) or row.get(c.ATTR_OUTCOME_ERROR)
        if error:
            case["error"] = error
        cases.append(case)
    succeeded = sum(1 for row in counted.values() if row[c.ATTR_OUTCOME] == c.CASE_SUCCEEDED)
    failed = len(counted) - succeeded
    created = float(counter_row.get(c.ATTR_CREATED_AT, completed_at))
    durations = [case["durationMs"] for case in cases if "durationMs" in case]
    return {
        "requestId": counter_row[c.ATTR_REQUEST_ID],
        "status": final_status(succeeded=succeeded, failed=failed, missing=len(missing)),
        "target": int(counter_row[c.ATTR_TARGET]),
        "succeeded": succeeded,
        "failed": failed,
        "timedOut": missing,
        "createdAt": created,
        "completedAt": round(completed_at, 3),
        "wallSeconds": round(max(0.0, completed_at - created), 3),
        "computeMs": {
            "total": sum(durations),
            "max": max(durations, default=0),
            "mean": round(sum(durations) / len(durations), 1) if durations else 0,
        },
        "cases": cases,
    }


def _natural(case_id: str) -> tuple[int, int | str]:
    return (0, int(case_id)) if case_id.isdigit() else (1, case_id)
