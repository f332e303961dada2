"""What `fanflow status`, `watch` and `list` show, computed from counter rows and summaries
as plain JSON-ready dicts. Pure functions: no AWS, no clock of their own."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lambda_fns import constants as c

from .client import Progress

# The counter row fields every view carries, under their row names.
ROW_FIELDS = (c.ATTR_REQUEST_ID, c.ATTR_STATUS, c.ATTR_COUNTER, c.ATTR_EXPECTED, c.ATTR_SUCCEEDED, c.ATTR_FAILED,
              c.ATTR_CREATED_AT, c.ATTR_DEADLINE, c.ATTR_COMPLETED_AT, c.ATTR_CANCELLED_AT, c.ATTR_REDRIVEN)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def request_view(row: dict[str, Any], *, now: float) -> dict[str, Any]:
    """One request as `list` and `status` show it: its counts, its state, how old it is,
    how long it took (once closed) or how long it has left (while open)."""
    view = {name: row.get(name) for name in ROW_FIELDS}
    for name in (c.ATTR_COUNTER, c.ATTR_SUCCEEDED, c.ATTR_FAILED):
        view[name] = int(row.get(name) or 0)
    view[c.ATTR_EXPECTED] = int(row.get(c.ATTR_EXPECTED) or 0)
    view[c.ATTR_ATTEMPT] = int(row.get(c.ATTR_ATTEMPT) or 1)  # 1, then one more per redrive
    created, completed, deadline = (_number(row.get(name)) for name in
                                    (c.ATTR_CREATED_AT, c.ATTR_COMPLETED_AT, c.ATTR_DEADLINE))
    view["final"] = row.get(c.ATTR_STATUS) in c.FINAL_STATUSES
    view["ageSeconds"] = round(max(0.0, now - created), 3) if created is not None else None
    view["durationSeconds"] = (round(max(0.0, completed - created), 3)
                               if completed is not None and created is not None else None)
    view["secondsToDeadline"] = (round(deadline - now, 3)
                                 if deadline is not None and not view["final"] else None)
    return view


def status_view(row: dict[str, Any], *, now: float, summary: dict[str, Any] | None) -> dict[str, Any]:
    """`fanflow status`: the request view, plus its summary when Summary has written one.
    The summary's per-case list is left out (it has one entry per case); the failed cases
    are kept, up to `MAX_LISTED_FAILURES`, with their errors."""
    view = request_view(row, now=now)
    view["summaryKey"] = row.get(c.ATTR_SUMMARY_KEY)
    view["summary"] = None
    if summary is not None:
        compact = {key: value for key, value in summary.items() if key not in ("cases", "failures")}
        failures = summary.get("failures")  # at most SUMMARY_LIST_CAP, whatever the size
        if failures is None:  # a summary written before the capped lists
            failures = [case for case in summary.get("cases", []) if case.get("state") == c.CASE_FAILED]
        compact["failedCases"] = failures[:MAX_LISTED_FAILURES]
        view["summary"] = compact
    return view


MAX_LISTED_FAILURES = 20

# A request whose PreProcess execution exists but has not written the counter row.
STARTING = "STARTING"  # Prepare is validating it
REJECTED = "REJECTED"  # PreProcess failed before opening it (an invalid request)


def starting_view(request_id: str, execution: dict[str, Any] | None) -> dict[str, Any]:
    """`fanflow status` before the counter row exists, from the PreProcess execution."""
    status = (execution or {}).get("status", "RUNNING")
    view: dict[str, Any] = {"requestId": request_id, "status": STARTING if status == "RUNNING" else REJECTED,
                            "final": status != "RUNNING", "preprocess": status}
    if execution and execution.get("error"):
        view["error"], view["cause"] = execution["error"], execution.get("cause", "")
    return view


def newest_first(rows: list[dict[str, Any]], *, now: float, limit: int | None) -> list[dict[str, Any]]:
    """`fanflow list`: request views sorted by creation time, newest first (ties by id)."""
    views = [request_view(row, now=now) for row in rows]
    views.sort(key=lambda v: (-(_number(v[c.ATTR_CREATED_AT]) or 0.0), str(v[c.ATTR_REQUEST_ID])))
    return views if limit is None else views[:limit]


@dataclass
class RateMeter:
    """Cases per second over a sliding window of observations, and the time left at that rate."""

    window_seconds: float = 10.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def observe(self, at: float, completed: int) -> None:
        self._samples.append((at, completed))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window_seconds:
            self._samples.popleft()

    @property
    def rate(self) -> float | None:
        """Cases per second, once two observations are apart in time; None before."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def eta(self, remaining: int) -> float | None:
        """Seconds until `remaining` more cases complete at the current rate; None if unknown."""
        if remaining <= 0:
            return 0.0
        rate = self.rate
        return remaining / rate if rate else None


def watch_view(progress: Progress, meter: RateMeter, *, elapsed: float) -> dict[str, Any]:
    """One `fanflow watch --json` line."""
    rate = meter.rate
    eta = meter.eta(progress.target - progress.completed)
    return {"requestId": progress.request_id, "status": progress.status, "completed": progress.completed,
            "target": progress.target, "succeeded": progress.succeeded, "failed": progress.failed,
            "elapsedSeconds": round(elapsed, 3),
            "ratePerSecond": None if rate is None else round(rate, 2),
            "etaSeconds": None if eta is None else round(eta, 1)}
