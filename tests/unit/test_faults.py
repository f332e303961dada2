"""local/faults.py: fault choices depend on the seed and the case, nothing else."""

from __future__ import annotations

from lambda_fns import constants as c
from local.faults import FaultPlan

CASES = [str(i) for i in range(300)]


def choices(plan: FaultPlan, request_id: str) -> tuple[list[str], list[str], list[str], list[str]]:
    return ([case for case in CASES if plan.duplicate(c.PREPROCESS_SOURCE, request_id, case)],
            [case for case in CASES if plan.duplicate(c.COMPUTE_SOURCE, request_id, case)],
            [case for case in CASES if plan.fail(case)],
            [case for case in CASES if plan.drop(request_id, case)])


def test_the_same_seed_and_cases_give_the_same_faults_whatever_the_request_id() -> None:
    # GIVEN two runs with the same seed and rates, whose generated requests have different requestIds
    first = choices(FaultPlan(duplicate_rate=0.5, failure_rate=0.3, drop_rate=0.1, seed=7), "req-1700000000000")
    second = choices(FaultPlan(duplicate_rate=0.5, failure_rate=0.3, drop_rate=0.1, seed=7), "req-1700000004321")
    # THEN every choice is the same, and each kind picked some cases
    assert first == second
    assert all(picked for picked in first)


def test_another_seed_gives_other_faults() -> None:
    assert choices(FaultPlan(drop_rate=0.5, seed=7), "r") != choices(FaultPlan(drop_rate=0.5, seed=8), "r")


def test_the_report_files_faults_under_their_request() -> None:
    # GIVEN one plan used by two requests  THEN each report has its own duplicated and dropped events
    plan = FaultPlan(duplicate_rate=1.0, drop_rate=1.0)
    plan.duplicate(c.PREPROCESS_SOURCE, "a", "0")
    plan.drop("b", "1")
    assert plan.report("a")["duplicatedEvents"] == [f"{c.PREPROCESS_SOURCE}:0"]
    assert plan.report("a")["droppedCompletions"] == [] and plan.report("b")["droppedCompletions"] == ["1"]
