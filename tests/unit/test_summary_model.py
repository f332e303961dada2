"""lambda_fns/summary_model.py: the final status and the per-case summary."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_fns import constants as c
from lambda_fns.summary_model import SummaryBuilder, build_summary, case_line, final_status, percentile

COUNTER = {"requestId": "req-1", "target": 4, "counter": 4, "createdAt": 1000, "status": c.STATUS_SUMMARIZING}


def row(case_id: str, outcome: str | None, *, duration: int | None = None, error: str | None = None) -> dict[str, Any]:
    """A plain results row as Compute and Increment leave it."""
    out: dict[str, Any] = {"requestId": "req-1", "caseId": case_id, "state": outcome or c.CASE_SUCCEEDED}
    if outcome is not None:
        out["outcome"] = outcome
    if duration is not None:
        out["durationMs"] = duration
    if error is not None:
        out["error"] = error
    return out


@pytest.mark.parametrize(
    ("succeeded", "failed", "missing", "expected"),
    [
        (4, 0, 0, c.STATUS_SUCCEEDED),
        (3, 1, 0, c.STATUS_PARTIAL),
        (1, 3, 0, c.STATUS_PARTIAL),
        (0, 4, 0, c.STATUS_FAILED),
        (3, 0, 1, c.STATUS_TIMED_OUT),
        (0, 3, 1, c.STATUS_TIMED_OUT),
        (0, 0, 4, c.STATUS_TIMED_OUT),
    ],
)
def test_final_status(succeeded: int, failed: int, missing: int, expected: str) -> None:
    # GIVEN counts  WHEN the final status is decided  THEN missing wins, then failures decide
    assert final_status(succeeded=succeeded, failed=failed, missing=missing) == expected


def test_all_succeeded() -> None:
    # GIVEN every case counted as succeeded
    rows = [row(str(i), c.CASE_SUCCEEDED, duration=10 * (i + 1)) for i in range(4)]
    # WHEN summarised
    summary = build_summary(COUNTER, rows, ["0", "1", "2", "3"], completed_at=1012.5)
    # THEN SUCCEEDED with the counts, timing and cases
    assert summary["status"] == c.STATUS_SUCCEEDED
    assert (summary["succeeded"], summary["failed"], summary["timedOut"]) == (4, 0, [])
    assert summary["requestId"] == "req-1" and summary["target"] == 4
    assert summary["wallSeconds"] == 12.5
    # (percentiles by nearest rank: the 2nd, 4th and 4th of the 4 sorted durations)
    assert summary["computeMs"] == {"total": 100, "max": 40, "mean": 25.0, "p50": 20, "p90": 40, "p99": 40}
    assert [case["state"] for case in summary["cases"]] == [c.CASE_SUCCEEDED] * 4


def test_mix_is_partial_with_exact_counts() -> None:
    # GIVEN 3 succeeded and 1 failed
    rows = [
        row("0", c.CASE_SUCCEEDED),
        row("1", c.CASE_FAILED, error="ValueError: bad"),
        row("2", c.CASE_SUCCEEDED),
        row("3", c.CASE_SUCCEEDED),
    ]
    # WHEN summarised
    summary = build_summary(COUNTER, rows, ["0", "1", "2", "3"], completed_at=1001)
    # THEN PARTIAL, 3 and 1, nothing timed out
    assert summary["status"] == c.STATUS_PARTIAL
    assert summary["succeeded"] == 3
    assert summary["failed"] == 1
    assert summary["timedOut"] == []


def test_all_failed() -> None:
    # GIVEN every case counted as failed  WHEN summarised  THEN FAILED
    rows = [row(str(i), c.CASE_FAILED, error="boom") for i in range(4)]
    summary = build_summary(COUNTER, rows, ["0", "1", "2", "3"], completed_at=1001)
    assert summary["status"] == c.STATUS_FAILED
    assert (summary["succeeded"], summary["failed"]) == (0, 4)


def test_manifest_cases_without_a_counted_row_time_out_in_request_order() -> None:
    # GIVEN a manifest in non-natural order, and counted rows for only two of its cases
    manifest = ["z", "10", "a", "2", "b"]
    rows = [row("a", c.CASE_SUCCEEDED), row("2", c.CASE_FAILED, error="x")]
    # WHEN summarised
    summary = build_summary(COUNTER, rows, manifest, completed_at=1001)
    # THEN TIMED_OUT, naming exactly the missing ones in request order
    assert summary["status"] == c.STATUS_TIMED_OUT
    assert summary["timedOut"] == ["z", "10", "b"]
    assert (summary["succeeded"], summary["failed"]) == (1, 1)
    states = {case["caseId"]: case["state"] for case in summary["cases"]}
    assert states == {
        "z": c.STATUS_TIMED_OUT,
        "10": c.STATUS_TIMED_OUT,
        "a": c.CASE_SUCCEEDED,
        "2": c.CASE_FAILED,
        "b": c.STATUS_TIMED_OUT,
    }


def test_rows_without_an_outcome_do_not_count() -> None:
    # GIVEN rows Compute wrote (state, durationMs) that Increment never counted
    rows = [
        row("0", c.CASE_SUCCEEDED, duration=5),
        row("1", None, duration=7),  # state SUCCEEDED but no outcome
        {"requestId": "req-1", "caseId": "2", "state": c.CASE_FAILED, "error": "late", "outcome": ""},
    ]
    # WHEN summarised
    summary = build_summary(COUNTER, rows, ["0", "1", "2"], completed_at=1001)
    # THEN only the counted one counts; the others are timed out, without their duration or error
    assert summary["status"] == c.STATUS_TIMED_OUT
    assert (summary["succeeded"], summary["failed"]) == (1, 0)
    assert summary["timedOut"] == ["1", "2"]
    assert summary["cases"][1] == {"caseId": "1", "state": c.STATUS_TIMED_OUT}
    assert summary["cases"][2] == {"caseId": "2", "state": c.STATUS_TIMED_OUT}
    assert summary["computeMs"]["total"] == 5


def test_error_and_duration_are_carried_per_case() -> None:
    # GIVEN a failed case with an error and a duration, a succeeded one with a duration, one without
    rows = [
        row("0", c.CASE_FAILED, duration=12, error="ValueError: nope"),
        row("1", c.CASE_SUCCEEDED, duration=0),
        row("2", c.CASE_SUCCEEDED),
    ]
    # WHEN summarised
    summary = build_summary(COUNTER, rows, ["0", "1", "2"], completed_at=1001)
    # THEN each case carries its own fields and no others
    assert summary["cases"] == [
        {"caseId": "0", "state": c.CASE_FAILED, "durationMs": 12, "error": "ValueError: nope"},
        {"caseId": "1", "state": c.CASE_SUCCEEDED, "durationMs": 0},
        {"caseId": "2", "state": c.CASE_SUCCEEDED},
    ]


def test_cases_follow_manifest_order_not_result_order() -> None:
    # GIVEN results returned in DynamoDB's (lexical) order and a manifest in request order
    manifest = [str(i) for i in range(12)]
    rows = [row(case_id, c.CASE_SUCCEEDED) for case_id in sorted(manifest)]
    assert [r["caseId"] for r in rows][:3] == ["0", "1", "10"]
    # WHEN summarised  THEN cases follow the manifest
    summary = build_summary(COUNTER, rows, manifest, completed_at=1001)
    assert [case["caseId"] for case in summary["cases"]] == manifest


def test_without_a_manifest_cases_are_in_natural_order_and_none_time_out() -> None:
    # GIVEN no manifest  WHEN summarised  THEN the counted cases, numeric ids first in numeric order
    rows = [row(case_id, c.CASE_SUCCEEDED) for case_id in ["b", "10", "2", "a", "1"]]
    summary = build_summary(COUNTER, rows, None, completed_at=1001)
    assert [case["caseId"] for case in summary["cases"]] == ["1", "2", "10", "a", "b"]
    assert summary["timedOut"] == []
    assert summary["status"] == c.STATUS_SUCCEEDED


def test_the_counted_outcome_is_authoritative_over_a_disagreeing_row() -> None:
    # GIVEN a case counted FAILED (a crash's failure record) whose row a late duplicate run marked SUCCEEDED
    late = {"requestId": "req-1", "caseId": "0", "state": c.CASE_SUCCEEDED, "durationMs": 9, "outcome": c.CASE_FAILED,
            "outcomeError": "Task timed out"}
    agreeing = row("1", c.CASE_SUCCEEDED, duration=4)
    # WHEN summarised  THEN the case is FAILED with the counted error, and the late run's duration is not used
    summary = build_summary({**COUNTER, "target": 2}, [late, agreeing], ["0", "1"], completed_at=1001)
    assert summary["cases"][0] == {"caseId": "0", "state": c.CASE_FAILED, "error": "Task timed out"}
    assert summary["cases"][1] == {"caseId": "1", "state": c.CASE_SUCCEEDED, "durationMs": 4}
    assert summary["computeMs"]["total"] == 4 and (summary["succeeded"], summary["failed"]) == (1, 1)


def test_cases_a_fan_out_gave_up_are_not_emitted_and_fail_the_request() -> None:
    # GIVEN a request of 4 whose fan-out gave up cases 2 and 3 (no rows), the others counted
    counter = {**COUNTER, "target": 2, c.ATTR_FAN_OUT_ERROR: "fan-out: 2 case(s) of batch 0 were not accepted"}
    rows = [row("0", c.CASE_SUCCEEDED), row("1", c.CASE_SUCCEEDED)]
    # WHEN summarised
    summary = build_summary(counter, rows, ["0", "1", "2", "3"], completed_at=1001)
    # THEN the request FAILED, naming the cases never emitted and why; none timed out; its target is 4
    assert summary["status"] == c.STATUS_FAILED
    assert (summary["notEmitted"], summary["timedOut"], summary["target"]) == (["2", "3"], [], 4)
    assert summary["fanOutError"].startswith("fan-out: 2 case(s)")
    assert [case["state"] for case in summary["cases"]] == [c.CASE_SUCCEEDED] * 2 + [c.CASE_NOT_EMITTED] * 2


def test_a_registered_case_that_never_completed_timed_out_even_after_a_fan_out_loss() -> None:
    # GIVEN a fan-out loss recorded, and a case emitted (its row exists) that never completed
    counter = {**COUNTER, "target": 2, c.ATTR_FAN_OUT_ERROR: "fan-out: batch 1 could not be emitted"}
    rows = [row("0", c.CASE_SUCCEEDED), {"requestId": "req-1", "caseId": "1", "state": c.CASE_PENDING}]
    summary = build_summary(counter, rows, ["0", "1", "2"], completed_at=1001)
    assert (summary["timedOut"], summary["notEmitted"], summary["status"]) == (["1"], ["2"], c.STATUS_FAILED)


# --- a summary that scales: capped lists, percentiles, the per-case list only up to a size ---


def test_the_lists_are_capped_and_the_counts_stay_whole() -> None:
    # GIVEN 6 cases: 1 succeeded, 3 failed, 2 never completed, with lists capped at 2
    builder = SummaryBuilder({**COUNTER, "target": 6}, list_cap=2)
    rows = [row("0", c.CASE_SUCCEEDED)] + [row(str(i), c.CASE_FAILED, error=f"E{i}") for i in (1, 2, 3)]
    for item in rows:
        builder.add(case_line(item))
    builder.missing(["4", "5"])
    summary = builder.build(completed_at=1010.0, order=[str(i) for i in range(6)])
    # THEN every count is whole, each list holds at most 2, and the summary says they are capped
    assert (summary["succeeded"], summary["failed"], summary["timedOutCount"]) == (1, 3, 2)
    assert summary["failures"] == [{"caseId": "1", "error": "E1"}, {"caseId": "2", "error": "E2"}]
    assert summary["timedOut"] == ["4", "5"]
    assert summary["listsCapped"] is True
    assert summary["status"] == c.STATUS_TIMED_OUT
    # AND the per-case list still holds every case, in request order
    assert [line["caseId"] for line in summary["cases"]] == [str(i) for i in range(6)]


def test_above_the_inline_size_the_summary_holds_no_per_case_list() -> None:
    # GIVEN a request larger than the inline size (3 here; 10,000 deployed)
    builder = SummaryBuilder({**COUNTER, "target": 4}, inline_cases=3)
    for i in range(4):
        builder.add(case_line(row(str(i), c.CASE_SUCCEEDED, duration=i)))
    summary = builder.build(completed_at=1001.0)
    # THEN it has the counts but no `cases` (Summary stores them beside it, in parts)
    assert "cases" not in summary and summary["succeeded"] == 4 and summary["listsCapped"] is False


def test_compute_time_percentiles_are_nearest_rank() -> None:
    # GIVEN 100 succeeded cases of 1..100 ms (added in any order)
    builder = SummaryBuilder({**COUNTER, "target": 100})
    for ms in reversed(range(1, 101)):
        builder.add(case_line(row(f"c{ms}", c.CASE_SUCCEEDED, duration=ms)))
    compute = builder.build(completed_at=1001.0)["computeMs"]
    # THEN p50, p90 and p99 are the 50th, 90th and 99th durations
    assert compute == {"total": 5050, "max": 100, "mean": 50.5, "p50": 50, "p90": 90, "p99": 99}
    assert percentile([], 0.5) == 0


def test_cases_the_fan_out_gave_up_are_not_emitted_and_fail_the_request() -> None:
    # GIVEN a request whose fan-out gave 2 cases up (their rows deleted, the target lowered)
    counter = {**COUNTER, "target": 2, "notEmitted": 2, c.ATTR_FAN_OUT_ERROR: "fan-out: chunk 0 ..."}
    builder = SummaryBuilder(counter)
    for i in range(2):
        builder.add(case_line(row(str(i), c.CASE_SUCCEEDED)))
    builder.missing(["2", "3"])
    summary = builder.build(completed_at=1001.0, order=["0", "1", "2", "3"])
    # THEN the request's size is 4, the 2 are NOT_EMITTED, and the request FAILED with the reason
    assert summary["target"] == 4 and summary["notEmitted"] == ["2", "3"] and summary["notEmittedCount"] == 2
    assert summary["status"] == c.STATUS_FAILED and summary["fanOutError"].startswith("fan-out: chunk 0")


def test_the_lists_are_in_request_order_whatever_order_the_shards_give_the_rows() -> None:
    # GIVEN failed and never-completed cases arriving shard by shard, out of request order
    order = ["b", "a", "10", "9"]
    for known_order, expected in ((order, ["b", "a", "10", "9"]), (None, ["9", "10", "a", "b"])):
        builder = SummaryBuilder({**COUNTER, "target": 8})
        for case_id in ("9", "a", "10", "b"):
            builder.add(case_line(row(case_id, c.CASE_FAILED, error="E")))
            builder.add({"caseId": f"t{case_id}", "state": c.STATUS_TIMED_OUT})
        summary = builder.build(completed_at=1001.0, order=known_order)
        # THEN the lists follow the request's order when known (else caseIds, numbers first)
        assert [failure["caseId"] for failure in summary["failures"]] == expected
        if known_order is None:
            assert summary["timedOut"] == ["t10", "t9", "ta", "tb"]
