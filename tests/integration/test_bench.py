"""`fanflow bench` on the embedded target: both variants side by side, with the figures
that show the difference (PutEvents calls, PreProcess history), asserted exactly."""

from __future__ import annotations

import json

import pytest

from fanflow.bench import AWS_HISTORY_LIMIT, BenchRow, _history_verdict, run_bench
from fanflow.cli import main
from lambda_fns import constants as c


@pytest.fixture(scope="module")
def rows() -> list[BenchRow]:
    return run_bench([25, 60], ["fanflow", "seed"], timeout=120)


def by(rows: list[BenchRow], variant: str, cases: int) -> BenchRow:
    [row] = [r for r in rows if r.variant == variant and r.cases == cases]
    return row


def test_both_variants_finish_with_one_summary(rows: list[BenchRow]) -> None:
    for row in rows:
        assert row.wallSeconds is not None and row.wallSeconds > 0, row
        assert row.summaryRuns == 1, row
    assert {row.status for row in rows if row.variant == "fanflow"} == {c.STATUS_SUCCEEDED}
    assert {row.status for row in rows if row.variant == "seed"} == {c.STATUS_SUCCEEDED}  # one word for both


def test_fanflow_batches_put_events_and_the_seed_does_not(rows: list[BenchRow]) -> None:
    # THEN fanflow makes ceil(N/10) PutEvents calls; the seed one per case
    assert by(rows, "fanflow", 25).putEventsCalls == 3
    assert by(rows, "fanflow", 60).putEventsCalls == 6
    assert by(rows, "seed", 25).putEventsCalls == 25
    assert by(rows, "seed", 60).putEventsCalls == 60


def test_preprocess_history_grows_per_case_only_for_the_seed(rows: list[BenchRow]) -> None:
    # THEN the seed's inline Map adds events for every case; fanflow's stays flat below 100 cases
    seed_growth = by(rows, "seed", 60).preprocessHistoryEvents - by(rows, "seed", 25).preprocessHistoryEvents
    assert seed_growth >= 5 * 35
    assert by(rows, "fanflow", 60).preprocessHistoryEvents == by(rows, "fanflow", 25).preprocessHistoryEvents


def test_a_history_beyond_the_aws_limit_is_reported_not_hidden() -> None:
    row = BenchRow("seed", 10_000, 80.0, 500.0, 10_000, AWS_HISTORY_LIMIT + 1, 1, c.STATUS_SUCCEEDED)
    _history_verdict(row)
    assert row.status == "EXCEEDS_AWS_LIMIT"
    assert str(AWS_HISTORY_LIMIT) in row.reason


def test_bench_command_prints_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--sizes", "2", "--variants", "fanflow", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert set(row) >= {"variant", "cases", "wallSeconds", "peakRssMb", "putEventsCalls",
                        "preprocessHistoryEvents", "summaryRuns", "status"}
    assert (row["variant"], row["cases"], row["putEventsCalls"], row["status"]) == ("fanflow", 2, 1, "SUCCEEDED")
