"""The plan's phases, binding limits and usage on requests whose answer can be bounded by hand
from the quota table, the assumed latencies and the deployed design (lambda_fns/constants.py,
infra/components/)."""

from __future__ import annotations

import math

import pytest

from fanflow.awsmodel.planner import plan, plan_variant, sensitivity
from fanflow.awsmodel.world import PlanInputs
from lambda_fns import keys
from local.aws_limits.assumptions import ASSUMPTIONS


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


def test_usage_counts_what_each_design_does_per_case() -> None:
    n = 1000
    seed = plan_variant(PlanInputs(cases=n, compute_seconds=1.0), "seed")["usage"]
    # InitCounter and MapRequests, a PushEvent per case, 3 Increment states per case
    assert seed["sfn_transitions"] == 2 + n + 3 * n
    assert seed["eb_events"] == 2 * n
    assert seed["lambda_requests"] == n + 1
    fanflow = plan_variant(PlanInputs(cases=n, compute_seconds=1.0), "fanflow")["usage"]
    assert fanflow["eb_events"] == 2 * n + 1  # case, completion, and the summary's event
    assert fanflow["sfn_transitions"] == 12 + 5  # PreProcess's 12, one chunk's child execution 5
    assert fanflow["sfn_express_requests"] >= n / 99  # a batch of at most 99 per execution


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


# fanflow as deployed ---------------------------------------------------------------------

def a(key: str) -> float:
    return ASSUMPTIONS[key].value


def emit_seconds(cases: int) -> float:
    """One Emit's own calls for a chunk, one after another: its S3 GET and first check, a
    BatchWriteItem per 25 pending rows, then a check (GetItem) and a PutEvents call per 10 cases."""
    return (a("s3.get") + a("ddb.read") + math.ceil(cases / 25) * a("ddb.write")
            + math.ceil(cases / 10) * (a("ddb.read") + a("eb.putevents.call")))


def test_one_fanflow_case_takes_its_work_plus_the_chain_of_hops() -> None:
    result = plan_variant(PlanInputs(cases=1, compute_seconds=5.0), "fanflow")
    times = [result["phases"][key]["atSeconds"] for key in ("fanOutDone", "lastComputed", "lastCounted",
                                                            "summaryWritten")]
    assert times == sorted(times)
    # Its work, the case's and the completion's deliveries, and the fan-in's 1 s batching window at least
    assert result["wallSeconds"] >= 5.0 + 2 * a("eb.delivery") + 1.0
    assert [binding(result, phase) for phase in ("fanOutDone", "lastComputed", "lastCounted")] == [None] * 3
    assert result["casesCounted"] == 1


def test_one_chunk_fans_out_at_its_emit_calls_pace() -> None:
    # GIVEN 1,000 cases: one chunk, so one child execution of the Distributed Map
    result = plan_variant(PlanInputs(cases=1000, compute_seconds=1.0), "fanflow")
    # THEN no quota holds the fan-out back: it takes the chunk's calls, one after another
    assert binding(result, "fanOutDone") is None
    assert result["phases"]["fanOutDone"]["atSeconds"] >= emit_seconds(1000)


def test_distributed_map_concurrency_binds_the_fan_out_of_more_chunks_than_it_runs_at_once() -> None:
    # GIVEN 20,000 cases: 20 chunks, 10 child executions at once (FANOUT_MAX_CONCURRENCY)
    deployed = plan_variant(PlanInputs(cases=20_000, compute_seconds=1.0), "fanflow")
    # THEN the chunks go through in two rounds, and the Map's concurrency is what binds
    assert binding(deployed, "fanOutDone") == "Distributed Map concurrency"
    assert deployed["phases"]["fanOutDone"]["atSeconds"] >= 2 * emit_seconds(1000)
    # WHEN the Map runs all 20 at once, one round
    wider = plan_variant(PlanInputs(cases=20_000, compute_seconds=1.0, fan_out_concurrency=20), "fanflow")
    assert binding(wider, "fanOutDone") is None
    assert wider["phases"]["fanOutDone"]["atSeconds"] < 2 * emit_seconds(1000)


def test_results_shards_spread_the_writes_so_no_partition_binds_at_100000_cases() -> None:
    cases = 100_000
    shards = keys.shard_count(cases)  # 4 per chunk emitted at once: 40
    sharded = plan_variant(PlanInputs(cases=cases, compute_seconds=0.0), "fanflow")
    limits = {binding(sharded, phase) for phase in sharded["phases"]}
    assert not limits & {"the results shards: writes", "the results shards: reads"}
    # WHEN the request gets only one partition's throughput (the design before sharding)
    one_partition = plan_variant(PlanInputs(cases=cases, compute_seconds=0.0,
                                            overrides={"ddb.shards.spread": 1 / shards}), "fanflow")
    # THEN its 100,000 pending rows alone take 100 s at 1,000 WCU/s, and those writes bind the fan-out
    assert binding(one_partition, "fanOutDone") == "the results shards: writes"
    assert one_partition["phases"]["fanOutDone"]["atSeconds"] >= cases / 1000


def test_preprocess_history_stays_constant_whatever_the_size() -> None:
    # ExecutionStarted, Redrive? (2), Prepare (5), OpenRequest (5), the Map Run (4: MapStateEntered,
    # MapRunStarted, MapRunSucceeded, MapStateExited), KeepRequestRef (2), NextClaimSlot (2),
    # AwaitDeadline's WaitStateEntered: the 22 `fanflow run --json` measured at 1,000 to 100,000 cases.
    events = 1 + 2 + 5 + 5 + 4 + 2 + 2 + 1
    for cases in (1, 30_000):  # the seed's PreProcess passes 25,000 events at case 3,571
        result = plan_variant(PlanInputs(cases=cases, compute_seconds=0.0), "fanflow")
        assert result["historyLimit"] is None
        assert result["historyEvents"] == events
        assert not any("history" in note for note in result["notes"])


def test_fanflow_usage_books_a_counter_read_per_put_events_call_and_a_chunk_read_per_emit() -> None:
    # GIVEN 2,500 cases: chunks of 1,000, 1,000 and 500; 250 PutEvents calls; 12 shards
    n, chunks, calls, shards = 2500, 3, 250, keys.shard_count(2500)
    result = plan_variant(PlanInputs(cases=n, compute_seconds=1.0), "fanflow")
    usage = result["usage"]
    batches = usage["sfn_express_requests"]  # one Express Increment per fan-in batch
    summary_reads = 1 + shards * math.ceil(n * a("ddb.result.row.bytes") / shards / 4096)
    assert usage["ddb_read_units"] == (
        1  # ReadRequestStatus at the deadline
        + chunks  # each Emit checks the counter row when it starts...
        + calls  # ...and before every PutEvents call
        + n  # Compute reads its case's row
        + n + 2 * batches  # CountBatch: the rows and the counter row, then the counter row again
        + summary_reads)
    assert usage["s3_gets"] == chunks + 1  # each Emit reads its chunk; Summary the manifest (at most 10,000 cases)
    # PreProcess's 12 transitions, and per child execution its start, EmitChunk, ChunkPending?,
    # ChunkOutcome?, ChunkEmitted
    assert usage["sfn_transitions"] == 12 + 5 * chunks
    assert usage["eb_events"] == 2 * n + 1
    reads_usd = result["cost"]["usd"]["dynamoDbReads"]
    assert reads_usd == pytest.approx(usage["ddb_read_units"] * 0.125 / 1e6, abs=1e-6)


def test_compute_ceiling_as_deployed_binds_the_computation() -> None:
    # GIVEN 2,000 cases of 5 s and the deployed reservations: Compute's ceiling is 200
    deployed = plan_variant(PlanInputs(cases=2000, compute_seconds=5.0), "fanflow")
    assert deployed["reservedConcurrency"]["Compute"] == 200
    assert binding(deployed, "lastComputed") == "Lambda concurrency"
    assert deployed["phases"]["lastComputed"]["atSeconds"] >= 2000 * 5.0 / 200
    # Compute 200 and each orchestration function in use (Prepare, Emit, the fan-in's two, Summary) 10 at most
    assert deployed["peakConcurrency"] <= 200 + 5 * 10
    # WHEN Compute is unreserved (-c computeConcurrency=0), it takes what the floors leave (1,000 - 60)
    unreserved = plan_variant(PlanInputs(cases=2000, compute_seconds=5.0, compute_reserved=0), "fanflow")
    assert "Compute" not in unreserved["reservedConcurrency"]
    assert unreserved["phases"]["lastComputed"]["atSeconds"] >= 2000 * 5.0 / (1000 - 60)
    assert unreserved["wallSeconds"] < deployed["wallSeconds"]


def test_cases_waiting_past_computes_maximum_event_age_are_dropped_and_counted_failed() -> None:
    # GIVEN 30,000 cases of 30 s: Compute's ceiling of 200 computes at most 24,000 an hour
    cases, seconds = 30_000, 30.0
    result = plan_variant(PlanInputs(cases=cases, compute_seconds=seconds), "fanflow")
    # THEN what was not started within the hour (1 h: infra/components/compute.py) is dropped,
    fan_out = result["phases"]["fanOutDone"]["atSeconds"]
    assert result["casesDropped"] >= cases - 200 * (3600 + fan_out + seconds) / seconds
    # its failure records reach the fan-in, and every case is counted, computed or not
    assert result["casesComputed"] + result["casesDropped"] == cases
    assert result["casesCounted"] == cases and result["completes"]
    assert any("maximum event age" in note for note in result["notes"])


def test_throttled_put_events_entries_are_resumed_after_a_backoff() -> None:
    # GIVEN eu-south-1 (400 PutEvents/s) and 100 chunks emitted at once, with instant cases whose
    # completions share the quota
    cases = 100_000
    result = plan_variant(PlanInputs(cases=cases, compute_seconds=0.0, region="eu-south-1",
                                     fan_out_concurrency=100), "fanflow")
    # THEN PutEvents binds the fan-out, and some children resume their refused entries: three
    # more transitions (BackOffBeforeResuming, EmitChunk, ChunkPending?) each time
    assert binding(result, "fanOutDone") == "PutEvents requests"
    resumes, rest = divmod(result["usage"]["sfn_transitions"] - (12 + 5 * 100), 3)
    assert resumes > 0 and rest == 0
    assert result["casesNotEmitted"] == 0 and result["casesCounted"] == cases


def test_reservations_must_leave_lambdas_unreserved_minimum() -> None:
    # 3 compute functions x 300 + 6 orchestration floors x 10 = 960: more than 1,000 - 100
    with pytest.raises(ValueError, match="must leave 100 of the account's 1,000 unreserved"):
        plan_variant(PlanInputs(cases=10, compute_seconds=1.0, compute_reserved=300), "fanflow")
    assert plan_variant(PlanInputs(cases=10, compute_seconds=1.0, compute_reserved=280), "fanflow")["completes"]


def test_fanflow_sensitivity_scales_the_compute_ceiling() -> None:
    rows = sensitivity(PlanInputs(cases=2000, compute_seconds=5.0), "fanflow", keys=("eb.delivery",))
    ceiling = next(row for row in rows if row["assumption"] == "computeConcurrency")
    assert ceiling["value"] == 200
    # Halved, the 2,000 cases need at least 100 s of computation instead of 50: slower; doubled, faster
    assert ceiling["wallChangePercent"]["x0.5"] > 0 > ceiling["wallChangePercent"]["x2"]
