"""The plan's phases and binding limits on small requests, where the answer can be worked
out by hand from the quota table and the assumed latencies."""

from __future__ import annotations

import pytest

from local.aws_limits.assumptions import ASSUMPTIONS
from fanflow.awsmodel.planner import plan, plan_variant
from fanflow.awsmodel.world import PlanInputs


def binding(result: dict, phase: str) -> str | None:
    entry = result["phases"][phase]["binding"]
    return None if entry is None else entry["limit"]


def test_one_seed_case_takes_its_work_plus_the_chain_of_hops() -> None:
    # GIVEN one case of 5 s in the seed's design
    result = plan_variant(PlanInputs(cases=1, compute_seconds=5.0), "seed")
    # THEN the phases come in order, nothing waits on a quota after the fan-out, and the whole
    # takes 5 s plus the hops (the seed measured 6.6 s)
    times = [result["phases"][key]["atSeconds"] for key in ("fanOutDone", "lastComputed", "lastCounted",
                                                            "summaryWritten")]
    assert times == sorted(times)
    assert result["wallSeconds"] == pytest.approx(6.6, abs=0.3)
    assert binding(result, "lastComputed") is None
    assert binding(result, "lastCounted") is None
    assert result["historyLimit"] is None


def test_seed_history_passes_25000_events_at_case_3571() -> None:
    # 8 events before the Map, 7 per iteration: 8 + 7 x 3,571 = 25,005 > 25,000.
    result = plan_variant(PlanInputs(cases=5000, compute_seconds=1.0), "seed")
    assert result["historyLimit"]["case"] == 3571
    assert result["historyLimit"]["events"] == 25_005
    assert 0 < result["historyLimit"]["atSeconds"] < result["phases"]["fanOutDone"]["atSeconds"]
    assert any("history passes 25,000" in note for note in result["notes"])


def test_fanflow_history_passes_the_limit_at_batch_3570() -> None:
    # 13 events before the Map, 7 per batch of 100: batch 3,570 is the first past 25,000.
    result = plan_variant(PlanInputs(cases=400_000, compute_seconds=0.0, lambda_concurrency=5000,
                                     compute_reserved=4900), "fanflow")
    assert result["historyLimit"] == {"case": 356_901, "atSeconds": pytest.approx(result["historyLimit"]["atSeconds"]),
                                      "events": 25_003}


def test_lambda_concurrency_binds_the_computation_when_cases_outnumber_it() -> None:
    result = plan_variant(PlanInputs(cases=2000, compute_seconds=5.0, lambda_concurrency=100), "seed")
    assert binding(result, "lastComputed") == "Lambda concurrency"
    # 2,000 cases x 5 s over 100 executions is at least 100 s
    assert result["phases"]["lastComputed"]["atSeconds"] > 100


def test_seed_counting_in_a_small_region_waits_on_standard_start_execution() -> None:
    # GIVEN 20,000 instant cases in eu-south-1 (150 StartExecution/s after an 800 burst)
    result = plan_variant(PlanInputs(cases=20_000, compute_seconds=0.0, region="eu-south-1",
                                     lambda_concurrency=5000), "seed")
    # THEN each completion's Increment execution waits on the bucket: at least (20,000 - 800) / 150 s
    assert binding(result, "lastCounted") == "StartExecution (Standard)"
    assert result["phases"]["lastCounted"]["atSeconds"] >= (20_000 - 800) / 150
    # and the fan-out shares 400 PutEvents/s with the completions
    assert binding(result, "fanOutDone") == "PutEvents requests"


def test_fanflow_fan_out_writes_pending_rows_into_one_partition() -> None:
    # 20,000 pending rows and 20,000 results writes share one partition's 1,000 WCU/s.
    result = plan_variant(PlanInputs(cases=20_000, compute_seconds=0.0, lambda_concurrency=3000,
                                     compute_reserved=2900), "fanflow")
    assert binding(result, "fanOutDone") == "the results rows' partition: writes"
    assert result["phases"]["fanOutDone"]["atSeconds"] >= 20_000 / 1000
    assert binding(result, "lastCounted") == "SQS event source mapping"
    assert result["casesCounted"] == 20_000


def test_fanflow_fan_out_fails_when_compute_takes_the_whole_account() -> None:
    # GIVEN Compute unreserved: its backlog holds every execution, Emit's 3 retries (1, 2, 4 s) run out
    unreserved = plan_variant(PlanInputs(cases=10_000, compute_seconds=5.0), "fanflow")
    assert not unreserved["completes"]
    assert "fan-out aborted" in unreserved["failure"]
    # WHEN Compute is reserved 900 of 1,000: Emit and the fan-in keep 100
    reserved = plan_variant(PlanInputs(cases=10_000, compute_seconds=5.0, compute_reserved=900), "fanflow")
    assert reserved["completes"] and reserved["casesCounted"] == 10_000
    assert reserved["peakConcurrency"] <= 1000


def test_usage_counts_what_each_design_does_per_case() -> None:
    n = 1000
    seed = plan_variant(PlanInputs(cases=n, compute_seconds=1.0), "seed")["usage"]
    # InitCounter and MapRequests, a PushEvent per case, 3 Increment states per case
    assert seed["sfn_transitions"] == 2 + n + 3 * n
    assert seed["eb_events"] == 2 * n
    assert seed["lambda_requests"] == n + 1
    fanflow = plan_variant(PlanInputs(cases=n, compute_seconds=1.0), "fanflow")["usage"]
    assert fanflow["eb_events"] == 2 * n + 1  # case, completion, and the summary's event
    assert fanflow["sfn_transitions"] == 7 + n // 100  # one EmitBatch per batch of 100
    assert fanflow["sfn_express_requests"] >= n / 100  # a batch of at most 100 per execution


def test_plan_reports_each_variant_with_cost_and_curves() -> None:
    result = plan(PlanInputs(cases=300, compute_seconds=1.0))
    assert [v["variant"] for v in result["variants"]] == ["fanflow", "seed"]
    for variant in result["variants"]:
        assert variant["cost"]["totalUsd"] > 0
        assert variant["timeline"]["computed"][-1][1] == 300
        assert variant["timeline"]["counted"][-1][1] == 300
    assert result["planningSeconds"] >= 0


def test_every_assumption_says_where_it_comes_from() -> None:
    for assumption in ASSUMPTIONS.values():
        assert assumption.basis and assumption.what, assumption.key
