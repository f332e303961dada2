"""A request's timeline (fan-out, each case's start and end, fan-in, summary), built after
the fact from what the system records anyway: the PreProcess execution history, the
results rows, the counter row and the summary. Queried through boto3, so it works on every
target; `fanflow run --trace FILE` writes it and `fanflow report FILE` reads it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lambda_fns import constants as c

from .client import FanflowClient

VERSION = 1

# PreProcess history events that mark the request's phases: (event type, state name) -> timeline event.
# The state names are those of infra/components/fan_out.py.
HISTORY_MARKS = {
    ("ExecutionStarted", None): "request.started",
    ("TaskStateExited", "OpenRequest"): "request.opened",
    ("MapStateEntered", "FanOut"): "fanout.started",
    ("MapStateExited", "FanOut"): "fanout.finished",
    ("WaitStateExited", "AwaitDeadline"): "deadline.reached",
    ("ExecutionFailed", None): "request.failed",
}


class TimelineError(ValueError):
    """A timeline file that cannot be read; the message says why."""


def _state_name(event: dict[str, Any]) -> str | None:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict) and "name" in value:
            return str(value["name"])
    return None


def _epoch(value: Any) -> float:
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


def build(row: dict[str, Any], results: list[dict[str, Any]], history: list[dict[str, Any]],
          summary: dict[str, Any] | None) -> dict[str, Any]:
    """The timeline: events in time order, each `t` seconds after the request started."""
    marks: list[tuple[float, dict[str, Any]]] = []
    for event in history:
        kind = HISTORY_MARKS.get((event["type"], _state_name(event)))
        if kind:
            marks.append((_epoch(event["timestamp"]), {"event": kind}))
    finished: list[float] = []
    for result in results:
        if result.get(c.ATTR_STARTED_AT) is None or result.get(c.ATTR_FINISHED_AT) is None:
            continue  # counted from a crash record: no compute times
        case_id = result[c.ATTR_CASE_ID]
        state = result.get(c.ATTR_OUTCOME) or result.get(c.ATTR_STATE)
        marks.append((float(result[c.ATTR_STARTED_AT]), {"event": "case.started", "caseId": case_id}))
        marks.append((float(result[c.ATTR_FINISHED_AT]), {"event": "case.finished", "caseId": case_id,
                                                          "state": state,
                                                          "durationMs": result.get(c.ATTR_DURATION_MS)}))
        finished.append(float(result[c.ATTR_FINISHED_AT]))
    if finished:
        # From the last completion on, the request waits only for counting and Summary.
        marks.append((max(finished), {"event": "fanin.lastCompletion"}))
    completed_at = row.get(c.ATTR_COMPLETED_AT) or (summary or {}).get("completedAt")
    if completed_at is not None:
        marks.append((float(completed_at), {"event": "summary.written", "status": row.get(c.ATTR_STATUS)}))
    started = [at for at, mark in marks if mark["event"] == "request.started"]
    origin = started[0] if started else float(row.get(c.ATTR_CREATED_AT) or min((at for at, _ in marks), default=0))
    order = {kind: i for i, kind in enumerate(
        ["request.started", "request.opened", "fanout.started", "case.started", "case.finished",
         "fanout.finished", "fanin.lastCompletion", "deadline.reached", "summary.written", "request.failed"])}
    marks.sort(key=lambda m: (m[0], order[m[1]["event"]]))
    return {
        "version": VERSION,
        "requestId": row[c.ATTR_REQUEST_ID],
        "status": row.get(c.ATTR_STATUS),
        "target": int(row.get(c.ATTR_EXPECTED) or 0),
        "timedOut": list((summary or {}).get("timedOut", [])),
        "origin": round(origin, 3),
        "events": [{"t": round(at - origin, 3), **mark} for at, mark in marks],
    }


def collect(client: FanflowClient, request_id: str, *, execution_arn: str | None = None) -> dict[str, Any]:
    """Query the target for the request's records and build its timeline."""
    row = client.existing_row(request_id)
    if row is None:
        raise TimelineError(f"request {request_id!r} has no counter row yet: nothing to draw")
    history = client.execution_history(execution_arn or client.execution_arn(request_id))
    return build(row, client.results(request_id), history, client.find_summary(row))


def write(timeline: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(timeline, indent=1) + "\n")


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise TimelineError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise TimelineError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("events"), list):
        raise TimelineError(f"{path} is not a fanflow timeline (write one with `fanflow run --trace FILE`)")
    return data


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted-or-not `values` (not empty)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def analyse(timeline: dict[str, Any]) -> dict[str, Any]:
    """What `fanflow report` prints: phase durations, case durations, throughput, and the
    completion curve and durations the plot draws."""
    events = timeline["events"]
    first = {e["event"]: e["t"] for e in reversed(events)}
    finished = [e for e in events if e["event"] == "case.finished"]
    started = [e["t"] for e in events if e["event"] == "case.started"]
    durations = [float(e["durationMs"]) for e in finished if e.get("durationMs") is not None]

    def span(start: str | None, end: str | None, *, start_t: float | None = None,
             end_t: float | None = None) -> float | None:
        a = start_t if start_t is not None else first.get(start) if start else None
        b = end_t if end_t is not None else first.get(end) if end else None
        return None if a is None or b is None else round(b - a, 3)

    compute_start, compute_end = (min(started), max(e["t"] for e in finished)) if finished and started else (None,
                                                                                                         None)
    phases = {
        "prepare": span("request.started", "request.opened"),
        "fanOut": span("fanout.started", "fanout.finished"),
        "compute": span(None, None, start_t=compute_start, end_t=compute_end),
        "fanIn": span("fanin.lastCompletion", "summary.written"),
        "total": span("request.started", "summary.written", start_t=0.0),
    }
    completions: list[list[float]] = []
    failures = 0
    for i, event in enumerate(finished, start=1):
        failures += event.get("state") == c.CASE_FAILED
        completions.append([event["t"], i, failures])
    compute_span = phases["compute"]
    return {
        "requestId": timeline["requestId"],
        "status": timeline["status"],
        "target": timeline["target"],
        "casesFinished": len(finished),
        "casesFailed": failures,
        "timedOut": len(timeline.get("timedOut", [])),
        "phases": phases,
        "marks": {kind: first[kind] for kind in ("fanout.started", "fanout.finished", "fanin.lastCompletion",
                                                 "deadline.reached", "summary.written") if kind in first},
        "caseDurationMs": {
            "min": min(durations), "p50": percentile(durations, 0.5), "p90": percentile(durations, 0.9),
            "p99": percentile(durations, 0.99), "max": max(durations),
            "mean": round(sum(durations) / len(durations), 1),
        } if durations else None,
        "casesPerSecond": round(len(finished) / compute_span, 2) if compute_span else None,
        "completions": completions,  # [t, cases finished, of which failed]
        "durationsMs": durations,
    }
