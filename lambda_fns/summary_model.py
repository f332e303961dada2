"""How a request's summary is aggregated from its counter row and case results.
Pure functions: no AWS, so the rules are tested directly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import constants as c


def final_status(*, succeeded: int, failed: int, missing: int, not_emitted: int = 0) -> str:
    """A request whose fan-out lost cases FAILED (it could not run as asked); else one with
    cases that never completed TIMED_OUT; else the failures decide."""
    if not_emitted:
        return c.STATUS_FAILED
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
    outcome) are cases that completed, and the counted outcome is the case's state: a row whose
    own result disagrees with it (a late or duplicated run) gives neither its error nor its
    duration. `case_ids` is the request's manifest, in request order; a case in it without a
    counted result never completed, and one without any row was never emitted (its fan-out batch
    was given up: counter_row names why).
    """
    rows = {row[c.ATTR_CASE_ID]: row for row in results}
    counted = {case_id: row for case_id, row in rows.items() if row.get(c.ATTR_OUTCOME)}
    order = list(case_ids) if case_ids is not None else sorted(counted, key=_natural)
    fan_out_error = counter_row.get(c.ATTR_FAN_OUT_ERROR)
    cases: list[dict[str, Any]] = []
    missing: list[str] = []
    not_emitted: list[str] = []
    for case_id in order:
        row = counted.get(case_id)
        if row is None:
            if fan_out_error and case_id not in rows:
                not_emitted.append(case_id)
                cases.append({"caseId": case_id, "state": c.CASE_NOT_EMITTED})
            else:
                missing.append(case_id)
                cases.append({"caseId": case_id, "state": c.STATUS_TIMED_OUT})
            continue
        outcome = row[c.ATTR_OUTCOME]
        case: dict[str, Any] = {"caseId": case_id, "state": outcome}
        agrees = row.get(c.ATTR_STATE) == outcome
        if agrees and row.get(c.ATTR_DURATION_MS) is not None:
            case["durationMs"] = row[c.ATTR_DURATION_MS]
        error = (row.get(c.ATTR_ERROR) if agrees else None) or row.get(c.ATTR_OUTCOME_ERROR)
        if error:
            case["error"] = error
        cases.append(case)
    succeeded = sum(1 for row in counted.values() if row[c.ATTR_OUTCOME] == c.CASE_SUCCEEDED)
    failed = len(counted) - succeeded
    created = float(counter_row.get(c.ATTR_CREATED_AT, completed_at))
    durations = [case["durationMs"] for case in cases if "durationMs" in case]
    summary = {
        "requestId": counter_row[c.ATTR_REQUEST_ID],
        "status": final_status(succeeded=succeeded, failed=failed, missing=len(missing), not_emitted=len(not_emitted)),
        "target": len(order) if case_ids is not None else int(counter_row[c.ATTR_TARGET]),
        "succeeded": succeeded,
        "failed": failed,
        "timedOut": missing,
        "notEmitted": not_emitted,
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
    if fan_out_error:
        summary["fanOutError"] = fan_out_error
    return summary


def _natural(case_id: str) -> tuple[int, int | str]:
    return (0, int(case_id)) if case_id.isdigit() else (1, case_id)
