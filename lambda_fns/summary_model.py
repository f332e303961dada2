"""How a request's summary is aggregated from its counter row and its results rows. Pure: no
AWS, so the rules are tested directly. Rows are added one at a time (Summary streams them shard
by shard) and the builder keeps what a person reads, not the rows: counts, durations (for
their percentiles), at most SUMMARY_LIST_CAP failed, timed-out and never-emitted cases, and, up
to SUMMARY_INLINE_CASES cases, the per-case list in request order.

A case's line (in the summary's `cases`, and in the per-case results Summary stores) is
`{"caseId", "state"}`, with `durationMs` and `error` when known. Its state is the counted
outcome (SUCCEEDED or FAILED); TIMED_OUT for a case that never completed (registered, never
counted); NOT_EMITTED for a case its fan-out gave up (the counter row names why). A row whose
own result disagrees with the counted outcome (a late or duplicated run) gives neither its
error nor its duration.

A cancelled request's cases that had not completed (or whose completion was not counted) when
it was cancelled are CANCELLED; the others finished before the cancel. After a redrive, every
line says the attempt its case ended on (`attempt`), and the counts are the whole request's."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from . import constants as c


def final_status(*, succeeded: int, failed: int, missing: int, not_emitted: int = 0, cancelled: bool = False) -> str:
    """A cancelled request CANCELLED; else one whose fan-out lost cases FAILED (it could not run
    as asked); else one with cases that never completed TIMED_OUT; else the failures decide."""
    if cancelled:
        return c.STATUS_CANCELLED
    if not_emitted:
        return c.STATUS_FAILED
    if missing:
        return c.STATUS_TIMED_OUT
    if failed == 0:
        return c.STATUS_SUCCEEDED
    if succeeded == 0:
        return c.STATUS_FAILED
    return c.STATUS_PARTIAL


def case_line(row: dict[str, Any]) -> dict[str, Any]:
    """A results row (plain JSON) as its case's line."""
    outcome = row.get(c.ATTR_OUTCOME)
    if not outcome:
        return {"caseId": row[c.ATTR_CASE_ID], "state": c.STATUS_TIMED_OUT}
    line: dict[str, Any] = {"caseId": row[c.ATTR_CASE_ID], "state": outcome}
    agrees = row.get(c.ATTR_STATE) == outcome
    if agrees and row.get(c.ATTR_DURATION_MS) is not None:
        line["durationMs"] = int(row[c.ATTR_DURATION_MS])
    error = (row.get(c.ATTR_ERROR) if agrees else None) or row.get(c.ATTR_OUTCOME_ERROR)
    if error:
        line["error"] = error
    return line


def percentile(ordered: Sequence[int], share: float) -> int:
    """The nearest-rank percentile of sorted values (0 when there are none)."""
    if not ordered:
        return 0
    return int(ordered[max(0, math.ceil(share * len(ordered)) - 1)])


class SummaryBuilder:
    """Aggregates one request. `add` a line per results row (case_line), then `missing` with
    the manifest's caseIds that had no row, then `build`."""

    def __init__(self, counter_row: dict[str, Any], *, list_cap: int = c.SUMMARY_LIST_CAP,
                 inline_cases: int = c.SUMMARY_INLINE_CASES) -> None:
        self.counter_row = counter_row
        self.list_cap = list_cap
        self.fan_out_error = counter_row.get(c.ATTR_FAN_OUT_ERROR)
        self.cancelled = counter_row.get(c.ATTR_CANCELLED_AT) is not None
        self.attempt = int(counter_row.get(c.ATTR_ATTEMPT) or 1)
        # The request's size: as recorded, else its target plus what the fan-out gave up (which lowered it).
        self.target = int(counter_row[c.ATTR_CASES]) if counter_row.get(c.ATTR_CASES) is not None else (
            int(counter_row.get(c.ATTR_EXPECTED, 0)) + int(counter_row.get(c.ATTR_NOT_EMITTED, 0)))
        self.keep_cases = self.target <= inline_cases
        self.lines: dict[str, dict[str, Any]] = {}  # caseId -> line, while keep_cases
        self.counts = {c.CASE_SUCCEEDED: 0, c.CASE_FAILED: 0, c.STATUS_TIMED_OUT: 0, c.CASE_NOT_EMITTED: 0,
                       c.CASE_CANCELLED: 0}
        self.failures: list[dict[str, Any]] = []
        self.timed_out: list[str] = []
        self.not_emitted: list[str] = []
        self.cancelled_cases: list[str] = []
        self.durations = array("q")
        self.rows = 0

    def add(self, line: dict[str, Any]) -> None:
        self.rows += 1
        state = line["state"]
        self.counts[state] = self.counts.get(state, 0) + 1
        if "durationMs" in line:
            self.durations.append(int(line["durationMs"]))
        if state == c.CASE_FAILED and len(self.failures) < self.list_cap:
            self.failures.append({"caseId": line["caseId"], "error": line.get("error", "")})
        elif state == c.STATUS_TIMED_OUT and len(self.timed_out) < self.list_cap:
            self.timed_out.append(line["caseId"])
        elif state == c.CASE_NOT_EMITTED and len(self.not_emitted) < self.list_cap:
            self.not_emitted.append(line["caseId"])
        elif state == c.CASE_CANCELLED and len(self.cancelled_cases) < self.list_cap:
            self.cancelled_cases.append(line["caseId"])
        if self.keep_cases:
            self.lines[line["caseId"]] = line

    def line(self, row: dict[str, Any]) -> dict[str, Any]:
        """A results row's line in this request: case_line, with CANCELLED for a case that had
        not completed when its request was cancelled, and its attempt once the request has more."""
        line = case_line(row)
        if self.cancelled and line["state"] == c.STATUS_TIMED_OUT:
            line["state"] = c.CASE_CANCELLED
        if self.attempt > 1:
            line["attempt"] = int(row.get(c.ATTR_ATTEMPT) or 1)
        return line

    def missing(self, case_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Lines for manifest cases without a row: never emitted when the fan-out gave cases up
        (their rows are deleted), or when the request was cancelled before their chunk was put;
        else never registered, so never completed."""
        state = (c.CASE_NOT_EMITTED if self.fan_out_error else c.CASE_CANCELLED if self.cancelled
                 else c.STATUS_TIMED_OUT)
        lines: list[dict[str, Any]] = [{"caseId": case_id, "state": state} for case_id in case_ids]
        if self.attempt > 1:
            for line in lines:
                line["attempt"] = self.attempt
        for line in lines:
            self.add(line)
        return lines

    def build(self, *, completed_at: float, order: Sequence[str] | None = None) -> dict[str, Any]:
        """The summary; `order` (the manifest's caseIds) orders `cases`, which it holds up to
        SUMMARY_INLINE_CASES cases."""
        succeeded, failed = self.counts[c.CASE_SUCCEEDED], self.counts[c.CASE_FAILED]
        timed_out, not_emitted = self.counts[c.STATUS_TIMED_OUT], self.counts[c.CASE_NOT_EMITTED]
        # The lists in request order when it is known, else in caseId order (rows come shard by shard).
        position = {case_id: i for i, case_id in enumerate(order)} if order is not None else None

        def rank(case_id: str) -> tuple[int, int | str]:
            return (position.get(case_id, len(position)), 0) if position is not None else _natural(case_id)

        self.timed_out.sort(key=rank)
        self.not_emitted.sort(key=rank)
        self.cancelled_cases.sort(key=rank)
        self.failures.sort(key=lambda failure: rank(failure["caseId"]))
        created = float(self.counter_row.get(c.ATTR_CREATED_AT, completed_at))
        durations = sorted(self.durations)
        summary: dict[str, Any] = {
            "requestId": self.counter_row[c.ATTR_REQUEST_ID],
            "status": final_status(succeeded=succeeded, failed=failed, missing=timed_out, not_emitted=not_emitted,
                                   cancelled=self.cancelled),
            "target": max(self.target, self.rows),
            "succeeded": succeeded,
            "failed": failed,
            "timedOut": self.timed_out,
            "notEmitted": self.not_emitted,
            "timedOutCount": timed_out,
            "notEmittedCount": not_emitted,
            "failures": self.failures,  # {"caseId", "error"}, at most SUMMARY_LIST_CAP like the two lists above
            "listsCapped": max(failed, timed_out, not_emitted, self.counts[c.CASE_CANCELLED]) > self.list_cap,
            "attempt": self.attempt,
            "createdAt": created,
            "completedAt": round(completed_at, 3),
            "wallSeconds": round(max(0.0, completed_at - created), 3),
            "computeMs": {
                "total": sum(durations),
                "max": durations[-1] if durations else 0,
                "mean": round(sum(durations) / len(durations), 1) if durations else 0,
                "p50": percentile(durations, 0.50),
                "p90": percentile(durations, 0.90),
                "p99": percentile(durations, 0.99),
            },
        }
        if self.keep_cases:
            known = self.lines
            ordered = list(order) if order is not None else sorted(known, key=_natural)
            seen = set(ordered)
            summary["cases"] = [known[case_id] for case_id in ordered if case_id in known] + [
                line for case_id, line in sorted(known.items(), key=lambda kv: _natural(kv[0])) if case_id not in seen]
        if self.fan_out_error:
            summary["fanOutError"] = self.fan_out_error
        if self.cancelled:
            # Cancelled: the cases that had not completed (never ran, or not counted); the others
            # (succeeded + failed) finished before the cancel.
            summary["cancelled"] = self.cancelled_cases
            summary["cancelledCount"] = self.counts[c.CASE_CANCELLED]
            summary["cancelledAt"] = float(self.counter_row[c.ATTR_CANCELLED_AT])
        if self.attempt > 1:
            summary["redriven"] = int(self.counter_row.get(c.ATTR_REDRIVEN) or 0)
        return summary


def build_summary(counter_row: dict[str, Any], rows: Iterable[dict[str, Any]], case_ids: Sequence[str] | None, *,
                  completed_at: float) -> dict[str, Any]:
    """The summary of a request whose rows fit in memory: each row's line, then the manifest's
    cases without a row, in the manifest's order."""
    builder = SummaryBuilder(counter_row)
    seen: set[str] = set()
    for row in rows:
        seen.add(row[c.ATTR_CASE_ID])
        builder.add(builder.line(row))
    if case_ids is not None:
        builder.missing(case_id for case_id in case_ids if case_id not in seen)
    return builder.build(completed_at=completed_at, order=case_ids)


def _natural(case_id: str) -> tuple[int, int | str]:
    return (0, int(case_id)) if case_id.isdigit() else (1, case_id)
