"""Run the model of a design for one request and say what it predicts: the time of each
phase and the limit that bound it, PreProcess's history (its size, or where it passes its
limit), what the request costs, and the curves of cases computed and counted."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from lambda_fns import constants as c
from lambda_fns.request_model import default_deadline_seconds
from local.aws_limits.assumptions import ASSUMPTIONS

from . import fanflow_flow, seed_flow
from .costs import request_cost
from .world import PlanInputs, World


def seed_reserved(inputs: PlanInputs) -> dict[str, int]:
    """The seed reserves nothing (infra/seed_variant.py); --compute-reserved gives its Compute a ceiling."""
    return {seed_flow.COMPUTE: inputs.compute_reserved} if inputs.compute_reserved else {}


# Each variant's model, and the reserved concurrency of its functions for given inputs.
VARIANTS: dict[str, tuple[Callable[[World], None], Callable[[PlanInputs], dict[str, int]]]] = {
    "fanflow": (fanflow_flow.run, fanflow_flow.reserved_concurrency),
    "seed": (seed_flow.run, seed_reserved),
}
PHASE_MARKS = (("fanOutDone", "fanOut"), ("lastComputed", "compute"), ("lastCounted", "count"),
               ("summaryWritten", "summary"))
SIGNIFICANT_WAIT = 0.02  # a limit binds a phase when work waited on it at least this share of the phase


def replications(cases: int) -> int:
    """Runs whose median is reported: a small request's time hangs on a few jitter draws."""
    return 9 if cases <= 2_000 else 3 if cases <= 20_000 else 1


def reservation_problem(inputs: PlanInputs, variant: str) -> str | None:
    """Why the variant's reserved concurrency cannot be deployed in the account, or None: Lambda
    keeps some of an account's concurrency unreserved (configuration-concurrency.html)."""
    reserved = VARIANTS[variant][1](inputs)
    keep = int(inputs.q("lambda.unreserved.minimum"))
    if not reserved or sum(reserved.values()) + keep <= inputs.lambda_concurrency:
        return None
    listed = ", ".join(f"{name.split('.')[-1]} {n:,}" for name, n in reserved.items())
    return (f"{variant}'s reserved concurrency ({listed}: {sum(reserved.values()):,} in all) must leave "
            f"{keep} of the account's {inputs.lambda_concurrency:,} unreserved")


def simulate(inputs: PlanInputs, variant: str, *, seed: int = 0) -> World:
    run, reservations = VARIANTS[variant]
    problem = reservation_problem(inputs, variant)
    if problem:
        raise ValueError(problem)
    world = World(inputs, reserved=reservations(inputs) or None, seed=seed)
    run(world)
    return world


def wall(world: World) -> float:
    return world.marks["summaryWritten"] if "summaryWritten" in world.marks and not world.failure else math.inf


def binding_limits(world: World) -> dict[str, dict[str, Any]]:
    cases = world.inputs.cases
    phases: dict[str, dict[str, Any]] = {}
    previous = 0.0
    for mark, phase in PHASE_MARKS:
        at = world.marks.get(mark)
        entry: dict[str, Any] = {"atSeconds": None if at is None else round(at, 2), "binding": None}
        if at is not None:
            scale = (cases * at) if phase != "summary" else max(1e-9, at - previous)
            uses = sorted((use for use in world.limits.values() if use.waits.get(phase, 0) >= SIGNIFICANT_WAIT * scale),
                          key=lambda use: -use.waits[phase])
            entry["binding"] = None if not uses else {
                "limit": uses[0].name, "figure": uses[0].figure, "source": uses[0].source,
                "waitCaseSeconds": round(uses[0].waits[phase], 1),
                "throttles": uses[0].events.get(phase, 0),
                # Limits that held the phase back nearly as much (at least half as long).
                "alsoBinding": [use.name for use in uses[1:] if use.waits[phase] >= uses[0].waits[phase] / 2]}
            previous = at
        phases[mark] = entry
    return phases


def fanflow_deadline_seconds(inputs: PlanInputs) -> int:
    """The deadline Prepare gives a request that names none: its size in waves of Compute's
    ceiling (the account's default concurrency when Compute is unreserved), bounded by the
    default retention."""
    ceiling = fanflow_flow.reserved_concurrency(inputs).get(fanflow_flow.COMPUTE) or c.ACCOUNT_LAMBDA_CONCURRENCY
    return min(default_deadline_seconds(inputs.cases, concurrency=ceiling),
               c.max_deadline_seconds(c.DEFAULT_RETENTION_DAYS * 86_400))


def notes(world: World, variant: str) -> list[str]:
    out = list(dict.fromkeys(world.notes))
    total = wall(world)
    if variant == "fanflow" and math.isfinite(total) and total > fanflow_deadline_seconds(world.inputs):
        out.append(f"longer than the default deadline for its size ({fanflow_deadline_seconds(world.inputs):,} s): "
                   f"give the request deadlineSeconds of at least {math.ceil(total * 1.5)}")
    # fanflow's model drops what waits longer than Compute's maximum event age; the seed's keeps Lambda's default.
    if variant != "fanflow" and math.isfinite(total) and total > world.inputs.q("lambda.async.max.age"):
        out.append("longer than Lambda's async event age (6 h): queued events would be dropped")
    if world.failure and "throttled" in world.failure:
        out.append("an orchestration function was throttled: give it a floor of reserved concurrency, as fanflow "
                   "deploys (--orchestration-reserved), or a ceiling to Compute (--compute-reserved)")
    if world.history:
        out.append(f"PreProcess fails when its history passes {world.inputs.q('sfn.history.events'):,.0f} events "
                   f"(case {world.history['case']:,}, {world.history['atSeconds']:,} s): the times assume it did not")
    return out


def plan_variant(inputs: PlanInputs, variant: str) -> dict[str, Any]:
    runs = sorted((simulate(inputs, variant, seed=seed) for seed in range(replications(inputs.cases))), key=wall)
    world = runs[len(runs) // 2]
    total = wall(world)
    return {
        "variant": variant,
        "completes": math.isfinite(total),
        "failure": world.failure,
        "wallSeconds": round(total, 2) if math.isfinite(total) else None,
        "wallSecondsRange": [round(wall(runs[0]), 2), round(wall(runs[-1]), 2)] if len(runs) > 1 else None,
        "replications": len(runs),
        "phases": binding_limits(world),
        "historyLimit": world.history,
        # PreProcess's history when the request completes, when it does not grow with the cases.
        "historyEvents": world.history_events,
        "reservedConcurrency": {name.split(".")[-1]: n for name, n in VARIANTS[variant][1](inputs).items()},
        "cost": request_cost(world.usage, inputs.region),
        "usage": world.usage.as_dict(),
        "peakConcurrency": world.pool.peak,
        "casesComputed": world.computed.total,
        "casesCounted": world.counted.total,
        # Cases dropped from the compute queue after its maximum event age (counted FAILED), and
        # cases the fan-out gave up (never emitted).
        "casesDropped": world.dropped,
        "casesNotEmitted": world.lost,
        "timeline": {"computed": world.computed.series(), "counted": world.counted.series()},
        "notes": notes(world, variant),
    }


def plan(inputs: PlanInputs, variants: tuple[str, ...] = ("fanflow", "seed")) -> dict[str, Any]:
    started = time.perf_counter()
    results = [plan_variant(inputs, variant) for variant in variants]
    return {
        "cases": inputs.cases, "computeSeconds": inputs.compute_seconds, "region": inputs.region,
        "lambdaConcurrency": inputs.lambda_concurrency,
        # As given (None: as each variant deploys it; each variant's reservedConcurrency says what that is).
        "computeReservedConcurrency": inputs.compute_reserved,
        "orchestrationReservedConcurrency": inputs.orchestration_reserved,
        "fanOutConcurrency": inputs.fan_out_concurrency,
        "variants": results,
        "planningSeconds": round(time.perf_counter() - started, 3),
    }


# Assumptions varied by the sensitivity report, and how (factors on the assumed value).
SENSITIVITY_FACTORS = (0.5, 2.0)


def scaled_concurrency(inputs: PlanInputs, variant: str, factor: float) -> tuple[str, PlanInputs]:
    """The concurrency that decides a variant's computation, scaled: fanflow's compute ceiling when
    its compute functions are reserved (the account grown to hold the reservations if need be),
    else the account's concurrency (a seed Compute reservation keeps its unreserved rest)."""
    keep = int(inputs.q("lambda.unreserved.minimum"))
    if variant == "fanflow":
        reserved = fanflow_flow.reserved_concurrency(inputs)
        ceiling = reserved.get(fanflow_flow.COMPUTE, 0)
        if ceiling:
            changed = dataclasses.replace(inputs, compute_reserved=max(1, round(ceiling * factor)))
            needed = sum(fanflow_flow.reserved_concurrency(changed).values()) + keep
            return "computeConcurrency", dataclasses.replace(changed, lambda_concurrency=max(
                inputs.lambda_concurrency, needed))
        concurrency = max(sum(reserved.values()) + keep, round(inputs.lambda_concurrency * factor))
        return "lambdaConcurrency", dataclasses.replace(inputs, lambda_concurrency=concurrency)
    concurrency = max(1, round(inputs.lambda_concurrency * factor))
    if not inputs.compute_reserved:
        return "lambdaConcurrency", dataclasses.replace(inputs, lambda_concurrency=concurrency)
    unreserved = inputs.lambda_concurrency - inputs.compute_reserved
    return "lambdaConcurrency", dataclasses.replace(inputs, lambda_concurrency=max(concurrency, unreserved + 1),
                                                    compute_reserved=max(1, concurrency - unreserved))


def sensitivity(inputs: PlanInputs, variant: str, keys: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """How much the predicted wall time moves when each assumption is halved and doubled (one
    assumed to be 0 has no halves), and when the concurrency that decides the computation is,
    largest first."""
    base = statistics.median(wall(simulate(inputs, variant, seed=s)) for s in range(replications(inputs.cases)))
    rows: list[dict[str, Any]] = []

    def moved(changed: PlanInputs) -> float:
        value = statistics.median(wall(simulate(changed, variant, seed=s)) for s in range(replications(inputs.cases)))
        return math.inf if not math.isfinite(value) else round(100 * (value / base - 1), 1)

    for key in keys or tuple(ASSUMPTIONS):
        value = ASSUMPTIONS[key].value
        if not value:
            continue
        changes = {}
        for factor in SENSITIVITY_FACTORS:
            new = min(1.0, value * factor) if ASSUMPTIONS[key].unit == "fraction" else value * factor
            overrides = dict(inputs.overrides, **{key: new})
            changes[f"x{factor:g}"] = moved(dataclasses.replace(inputs, overrides=overrides))
        rows.append({"assumption": key, "value": value, "unit": ASSUMPTIONS[key].unit, "wallChangePercent": changes})
    changes, name, value = {}, "", 0
    for factor in SENSITIVITY_FACTORS:
        name, changed = scaled_concurrency(inputs, variant, factor)
        changes[f"x{factor:g}"] = moved(changed)
    name, _ = scaled_concurrency(inputs, variant, 1.0)
    value = (fanflow_flow.reserved_concurrency(inputs).get(fanflow_flow.COMPUTE, 0) if name == "computeConcurrency"
             else inputs.lambda_concurrency)
    rows.append({"assumption": name, "value": value, "unit": "executions", "wallChangePercent": changes})
    rows.sort(key=lambda row: -max(abs(v) for v in row["wallChangePercent"].values()))
    return [dict(row, baseWallSeconds=round(base, 2)) for row in rows]
