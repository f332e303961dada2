"""local/faults.py and the embedded runtime's use of it: fault choices depend on the seed, the
case and its attempt, nothing else; by default they hit a case's first attempt only."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from lambda_fns import casework
from lambda_fns import constants as c
from local.faults import FaultPlan, attempt_of
from local.runtime import EmbeddedEmulator

CASES = [str(i) for i in range(300)]


def choices(plan: FaultPlan, request_id: str, attempt: int = 1) -> tuple[list[str], ...]:
    return ([case for case in CASES if plan.duplicate(c.PREPROCESS_SOURCE, request_id, case, attempt)],
            [case for case in CASES if plan.duplicate(c.COMPUTE_SOURCE, request_id, case, attempt)],
            [case for case in CASES if plan.fail(request_id, case, attempt)],
            [case for case in CASES if plan.drop(request_id, case, attempt)])


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
    # GIVEN one plan used by two requests (an endpoint's)  THEN each report has its own faults
    plan = FaultPlan(duplicate_rate=1.0, drop_rate=1.0, failure_rate=1.0)
    plan.duplicate(c.PREPROCESS_SOURCE, "a", "0")
    plan.drop("b", "1")
    plan.fail("b", "2")
    assert plan.report("a")["duplicatedEvents"] == [f"{c.PREPROCESS_SOURCE}:0"]
    assert plan.report("a")["droppedCompletions"] == [] and plan.report("b")["droppedCompletions"] == ["1"]
    assert plan.report("a")["failedCases"] == [] and plan.report("b")["failedCases"] == ["2"]


# -- attempts ---------------------------------------------------------------------------------
def test_by_default_faults_hit_the_first_attempt_only() -> None:
    # GIVEN a plan that hits every case
    plan = FaultPlan(duplicate_rate=1.0, failure_rate=1.0, drop_rate=1.0)
    # THEN attempt 1 is hit by every kind of fault, and attempt 2 (a redrive) by none
    assert all(picked == CASES for picked in choices(plan, "r", attempt=1))
    assert all(picked == [] for picked in choices(plan, "r", attempt=2))


@pytest.mark.parametrize("every_attempt", [False, True])
def test_the_first_attempt_draws_as_before_attempts_existed(every_attempt: bool) -> None:
    # GIVEN seed 3 at rate 0.1 over 40 cases, with or without every_attempt
    plan = FaultPlan(duplicate_rate=0.1, failure_rate=0.1, drop_rate=0.1, seed=3, every_attempt=every_attempt)
    cases = [str(i) for i in range(40)]
    # THEN attempt 1 gets the faults this seed gave before attempts existed (a seed in a script stays valid)
    assert [case for case in cases if plan.fail("r", case, 1)] == ["12", "31", "32", "33"]
    assert [case for case in cases if plan.drop("r", case, 1)] == ["11", "18", "27"]
    assert [case for case in cases if plan.duplicate(c.COMPUTE_SOURCE, "r", case, 1)] == ["2", "9", "14", "23", "32"]


def test_every_attempt_draws_each_attempt_afresh_and_repeatably() -> None:
    # GIVEN a plan for every attempt
    def plan() -> FaultPlan:
        return FaultPlan(duplicate_rate=0.5, failure_rate=0.5, drop_rate=0.5, seed=11, every_attempt=True)

    first, second = choices(plan(), "r", attempt=1), choices(plan(), "r", attempt=2)
    # THEN attempt 2 is hit too, but not the same cases as attempt 1 (a failed case may succeed on redrive)
    assert all(picked for picked in second)
    assert all(a != b for a, b in zip(first, second, strict=True))
    # AND the same seed picks the same cases for attempt 2 again
    assert choices(plan(), "r", attempt=2) == second
    # AND at rate 1 every attempt is hit
    assert all(picked == CASES for picked in choices(FaultPlan(failure_rate=1.0, duplicate_rate=1.0, drop_rate=1.0,
                                                               every_attempt=True), "r", attempt=3))


@pytest.mark.parametrize(("detail", "attempt"), [
    ({}, 1), ({"attempt": 1}, 1), ({"attempt": 2}, 2), ({"attempt": 3.0}, 3),
    ({"attempt": 0}, 1), ({"attempt": "2"}, 1), ({"attempt": True}, 1), ({"attempt": 1.5}, 1), (None, 1),
])
def test_an_event_without_a_whole_attempt_of_1_or_more_is_attempt_1(detail: Any, attempt: int) -> None:
    assert attempt_of(detail) == attempt


# -- the embedded runtime applies them to payloads ----------------------------------------------
COMPUTE, STEP, OTHER = "Fanflow-Compute", "Fanflow-WorkflowStep", "Fanflow-Summary"


class RecordingPool:
    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit(self, fn: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        self.submitted.append(event)


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An emulator that is not started: its fault injection is called directly with payloads."""
    monkeypatch.setenv("FANFLOW_CACHE_DIR", str(tmp_path))

    def make(plan: FaultPlan) -> EmbeddedEmulator:
        emu = EmbeddedEmulator(faults=plan)
        emu.outputs = {c.OUTPUT_COMPUTE_FUNCTIONS: f"{COMPUTE},{STEP}"}
        emu._pool = RecordingPool()  # type: ignore[assignment]
        return emu

    return make


def fan_out_event(case_id: str, attempt: int | None) -> dict[str, Any]:
    detail: dict[str, Any] = {"requestId": "r", "request": {"caseId": case_id}, c.DETAIL_SHARDS: 1}
    if attempt is not None:
        detail["attempt"] = attempt
    return {"source": c.PREPROCESS_SOURCE, "detail-type": c.CASE_DETAIL_TYPE, "detail": detail}


def completion_event(case_id: str, attempt: int | None) -> dict[str, Any]:
    event = fan_out_event(case_id, attempt)
    return {**event, "source": c.COMPUTE_SOURCE, "detail-type": c.COMPLETION_DETAIL_TYPE,
            "detail": {**event["detail"], "state": c.CASE_SUCCEEDED, "error": ""}}


def delivered(emu: EmbeddedEmulator, event: dict[str, Any]) -> int:
    pool: Any = emu._pool
    before = len(pool.submitted)
    emu._deliver({"Arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}, event)
    return len(pool.submitted) - before


@pytest.mark.parametrize(("every_attempt", "attempt", "copies"), [
    (False, None, 2), (False, 1, 2), (False, 2, 1), (True, 1, 2), (True, 2, 2)])
def test_deliveries_are_duplicated_on_the_attempts_the_plan_covers(emulator: Any, every_attempt: bool,
                                                                   attempt: int | None, copies: int) -> None:
    emu = emulator(FaultPlan(duplicate_rate=1.0, every_attempt=every_attempt))
    assert delivered(emu, fan_out_event("0", attempt)) == copies
    assert delivered(emu, completion_event("0", attempt)) == copies


@pytest.mark.parametrize(("every_attempt", "attempt", "copies"), [
    (False, None, 0), (False, 1, 0), (False, 2, 1), (True, 1, 0), (True, 2, 0)])
def test_completions_are_dropped_on_the_attempts_the_plan_covers(emulator: Any, every_attempt: bool,
                                                                 attempt: int | None, copies: int) -> None:
    emu = emulator(FaultPlan(drop_rate=1.0, every_attempt=every_attempt))
    assert delivered(emu, completion_event("0", attempt)) == copies
    assert delivered(emu, fan_out_event("0", attempt)) == 1  # only completion events are lost


def compute_module() -> ModuleType:
    """A compute handler as lambda_fns.compute's: it looks its module's `work` up at each call."""
    module = ModuleType("compute")

    def handler(event: dict[str, Any], context: Any) -> str:
        detail = event.get("detail", event)
        return casework.run_case(detail["request"], 0.0, work=module.work).state

    module.handler = handler  # type: ignore[attr-defined]
    module.work = casework.work  # type: ignore[attr-defined]
    return module


def injected(emu: EmbeddedEmulator, function_name: str) -> ModuleType:
    module = compute_module()
    emu._inject_compute_failures(SimpleNamespace(function_name=function_name, handler="pkg.compute.handler"), module)
    return module


@pytest.mark.parametrize(("every_attempt", "attempt", "state"), [
    (False, None, c.CASE_FAILED), (False, 1, c.CASE_FAILED), (False, 2, c.CASE_SUCCEEDED),
    (True, 1, c.CASE_FAILED), (True, 2, c.CASE_FAILED)])
def test_computations_fail_on_the_attempts_the_plan_covers(emulator: Any, every_attempt: bool,
                                                           attempt: int | None, state: str) -> None:
    plan = FaultPlan(failure_rate=1.0, every_attempt=every_attempt)
    emu = emulator(plan)
    # GIVEN the Compute function's handler, and the compute workflow step's, with faults injected
    compute, step = injected(emu, COMPUTE), injected(emu, STEP)
    # WHEN the Compute function gets a fan-out event, and the step the case reference its workflow passes on
    event = fan_out_event("4", attempt)
    assert compute.handler(event, None) == state  # type: ignore[attr-defined]
    assert step.handler(event["detail"], None) == state  # type: ignore[attr-defined]
    # THEN the failures are filed under the event's request
    assert plan.report("r")["failedCases"] == (["4"] if state == c.CASE_FAILED else [])


def test_a_retry_of_an_event_fails_again_and_other_functions_are_left_alone(emulator: Any) -> None:
    emu = emulator(FaultPlan(failure_rate=1.0))
    compute, other = injected(emu, COMPUTE), injected(emu, OTHER)
    # Lambda retries an event as it was: the same attempt, so the same choice
    assert [compute.handler(fan_out_event("1", 1), None) for _ in range(3)] == [c.CASE_FAILED] * 3  # type: ignore[attr-defined]
    assert other.handler(fan_out_event("1", 1), None) == c.CASE_SUCCEEDED  # type: ignore[attr-defined]
