"""fanflow/views.py and the operating side of fanflow/render.py: request views, ordering,
rate and ETA, and progress output that never floods a non-interactive stream."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from fanflow import render
from fanflow import views as ops
from fanflow.client import Progress
from lambda_fns import constants as c

NOW = 1_800_000_000.0


def row(request_id: str, *, status: str = c.STATUS_RUNNING, counter: int = 0, target: int = 10,
        created: float = NOW - 60, **extra: Any) -> dict[str, Any]:
    return {c.ATTR_REQUEST_ID: request_id, c.ATTR_STATUS: status, c.ATTR_COUNTER: counter, c.ATTR_EXPECTED: target,
            c.ATTR_SUCCEEDED: counter, c.ATTR_FAILED: 0, c.ATTR_CREATED_AT: int(created),
            c.ATTR_DEADLINE: int(created) + 480, **extra}


def test_a_running_request_shows_its_age_and_time_to_deadline() -> None:
    # GIVEN a request created 60 s ago with a 480 s deadline, 4 of 10 cases counted
    view = ops.request_view(row("r", counter=4), now=NOW)
    # WHEN it is viewed THEN it is open, 60 s old, with 420 s left and no duration yet
    assert (view["status"], view["counter"], view["target"], view["final"]) == (c.STATUS_RUNNING, 4, 10, False)
    assert view["ageSeconds"] == 60.0
    assert view["secondsToDeadline"] == 420.0
    assert view["durationSeconds"] is None


def test_a_closed_request_shows_how_long_it_took_and_no_deadline() -> None:
    # GIVEN a request closed 12.5 s after it was created
    closed = row("r", status=c.STATUS_PARTIAL, counter=10, **{c.ATTR_COMPLETED_AT: NOW - 47.5})
    # WHEN it is viewed THEN it is final, took 12.5 s, and its deadline no longer matters
    view = ops.request_view(closed, now=NOW)
    assert view["final"] is True
    assert view["durationSeconds"] == 12.5
    assert view["secondsToDeadline"] is None


def test_status_view_keeps_the_summary_without_its_case_list_but_with_the_failures() -> None:
    # GIVEN a closed request and its summary with 25 failed cases among 30
    cases = [{"caseId": str(i), "state": c.CASE_FAILED if i < 25 else c.CASE_SUCCEEDED, "error": f"E{i}"}
             for i in range(30)]
    summary = {"requestId": "r", "status": c.STATUS_PARTIAL, "succeeded": 5, "failed": 25, "timedOut": [],
               "cases": cases, "wallSeconds": 3.0, "computeMs": {"mean": 1, "max": 2, "total": 30}}
    view = ops.status_view(row("r", status=c.STATUS_PARTIAL, **{c.ATTR_SUMMARY_KEY: "summaries/r.json"}),
                           now=NOW, summary=summary)
    # WHEN it is shown THEN the per-case list is left out, and the first failures are listed with errors
    assert "cases" not in view["summary"]
    assert view["summary"]["failedCases"] == cases[:ops.MAX_LISTED_FAILURES]
    assert view["summaryKey"] == "summaries/r.json"
    json.dumps(view)  # and it is plain JSON


def test_status_view_lists_the_failures_of_a_summary_too_large_to_hold_its_cases() -> None:
    # GIVEN the summary of a request over SUMMARY_INLINE_CASES: no per-case list, its failures capped
    failures = [{"caseId": str(i), "error": f"E{i}"} for i in range(c.SUMMARY_LIST_CAP)]
    summary = {"requestId": "r", "status": c.STATUS_PARTIAL, "succeeded": 40_000, "failed": 2_000, "timedOut": [],
               "failures": failures, "listsCapped": True, "wallSeconds": 3.0}
    view = ops.status_view(row("r", status=c.STATUS_PARTIAL), now=NOW, summary=summary)
    # THEN the first failures are listed from the capped list, which is not repeated whole
    assert view["summary"]["failedCases"] == failures[:ops.MAX_LISTED_FAILURES]
    assert "failures" not in view["summary"] and view["summary"]["listsCapped"] is True


def test_newest_first_sorts_by_creation_and_limits() -> None:
    # GIVEN three requests created at different times
    rows = [row("old", created=NOW - 300), row("new", created=NOW - 1), row("mid", created=NOW - 60)]
    # WHEN they are listed with a limit of two THEN the two newest come first
    assert [v["requestId"] for v in ops.newest_first(rows, now=NOW, limit=2)] == ["new", "mid"]
    assert [v["requestId"] for v in ops.newest_first(rows, now=NOW, limit=None)] == ["new", "mid", "old"]


def test_starting_view_tells_a_request_being_prepared_from_a_rejected_one() -> None:
    # GIVEN PreProcess executions without a counter row
    starting = ops.starting_view("r", {"status": "RUNNING"})
    rejected = ops.starting_view("r", {"status": "FAILED", "error": "InvalidRequest", "cause": "no cases"})
    # WHEN they are viewed THEN one is starting, the other rejected with its reason
    assert (starting["status"], starting["final"]) == (ops.STARTING, False)
    assert (rejected["status"], rejected["error"], rejected["cause"]) == (ops.REJECTED, "InvalidRequest", "no cases")


def test_rate_meter_measures_recent_throughput_and_eta() -> None:
    # GIVEN observations: nothing for 5 s, then 10 cases per second
    meter = ops.RateMeter(window_seconds=4.0)
    assert meter.rate is None and meter.eta(10) is None
    for second in range(0, 6):
        meter.observe(float(second), 0)
    for second in range(6, 12):
        meter.observe(float(second), (second - 5) * 10)
    # WHEN the rate is read THEN it reflects the recent window, not the idle start
    assert meter.rate == pytest.approx(10.0)
    # AND the ETA of 40 more cases is 4 s; nothing left is no time left
    assert meter.eta(40) == pytest.approx(4.0)
    assert meter.eta(0) == 0.0


def test_watch_view_is_plain_json_with_rate_and_eta() -> None:
    # GIVEN a progress of 30 of 100 at 10 cases/s
    meter = ops.RateMeter()
    meter.observe(0.0, 10)
    meter.observe(2.0, 30)
    view = ops.watch_view(Progress("r", c.STATUS_RUNNING, 30, 100, 29, 1), meter, elapsed=2.0)
    # WHEN it is rendered as JSON THEN it carries the counts, the rate and the ETA
    assert json.loads(json.dumps(view)) == {"requestId": "r", "status": c.STATUS_RUNNING, "completed": 30,
                                            "target": 100, "succeeded": 29, "failed": 1, "elapsedSeconds": 2.0,
                                            "ratePerSecond": 10.0, "etaSeconds": 7.0}


# ---------------------------------------------------------------------------- output volume


def test_run_progress_prints_at_most_one_line_per_tenth_when_not_a_terminal() -> None:
    # GIVEN the `fanflow run` reporter on a stream that is not a terminal (a CI log, a pipe)
    stream = io.StringIO()
    # WHEN 10,000 cases report progress one poll at a time
    with render.ProgressReporter(stream) as reporter:
        for done in range(10_001):
            reporter.update(Progress("r", c.STATUS_RUNNING, done, 10_000, done, 0))
    # THEN it wrote one line per tenth of the way, no more
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11
    assert lines[-1].startswith("r: 10000/10000 cases")


def test_watch_prints_plain_lines_per_tenth_and_state_change_when_not_a_terminal() -> None:
    # GIVEN the watch reporter on a stream that is not a terminal
    stream = io.StringIO()
    meter = ops.RateMeter()
    # WHEN 1,000 polls report progress, then the request is summarized and closed
    with render.WatchReporter(stream) as reporter:
        for done in range(1001):
            meter.observe(done / 100, done)
            reporter.update(ops.watch_view(Progress("r", c.STATUS_RUNNING, done, 1000, done, 0), meter,
                                           elapsed=done / 100))
        for status in (c.STATUS_SUMMARIZING, c.STATUS_SUCCEEDED, c.STATUS_SUCCEEDED):
            reporter.update(ops.watch_view(Progress("r", status, 1000, 1000, 1000, 0), meter, elapsed=10.0))
    # THEN it wrote a line per tenth and one per change of state, each with rate and ETA
    lines = stream.getvalue().splitlines()
    assert len(lines) == 13
    assert "100.0 cases/s" in lines[5] and "ETA" in lines[5]
    assert lines[-1].startswith("r: 1000/1000 cases (ok 1000  failed 0  succeeded)")


def test_watch_draws_a_live_bar_on_a_terminal() -> None:
    # GIVEN the watch reporter on a terminal WHEN progress arrives THEN it draws a bar with rate and ETA
    stream = io.StringIO()
    meter = ops.RateMeter()
    with render.WatchReporter(stream, force_terminal=True) as reporter:
        for done in (0, 50):
            meter.observe(float(done), done)
            reporter.update(ops.watch_view(Progress("r", c.STATUS_RUNNING, done, 100, done, 0), meter,
                                           elapsed=float(done)))
    assert "50/100" in stream.getvalue() and "1.0 cases/s" in stream.getvalue()


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (0, "0 s"), (0.25, "250 ms"), (12.34, "12.3 s"),
                                               (245, "4 min 05 s"), (7620, "2 h 07 min"), (90_000, "1 d 01 h")])
def test_durations_read_naturally(seconds: float | None, text: str) -> None:
    # GIVEN a number of seconds WHEN it is shown THEN it reads as a person would write it
    assert render.duration(seconds) == text
