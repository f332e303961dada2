"""Run the model of a design for one request and say what it predicts: the time of each
phase and the limit that bound it, where PreProcess's history passes its limit, what the
request costs, and the curves of cases computed and counted."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

from . import fanflow_flow, seed_flow
from local.aws_limits.assumptions import ASSUMPTIONS
from .costs import request_cost
from .world import PlanInputs, World

VARIANTS: dict[str, tuple[Callable[[World], None], str]] = {
    "fanflow": (fanflow_flow.run, fanflow_flow.COMPUTE),
    "seed": (seed_flow.run, seed_flow.COMPUTE),
}
PHASE_MARKS = (("fanOutDone", "fanOut"), ("lastComputed", "compute"), ("lastCounted", "count"),
               ("summaryWritten", "summary"))
DEFAULT_DEADLINE_SECONDS = 480  # lambda_fns/constants.DEFAULT_DEADLINE_SECONDS
SIGNIFICANT_WAIT = 0.02  # a limit binds a phase when work waited on it at least this share of the phase


def replications(cases: int) -> int:
    """Runs whose median is reported: a small request's time hangs on a few jitter draws."""
    return 9 if cases <= 2_000 else 3 if cases <= 20_000 else 1


def simulate(inputs: PlanInputs, variant: str, *, seed: int = 0) -> World:
    run, compute = VARIANTS[variant]
    reserved = {compute: inputs.compute_reserved} if inputs.compute_reserved else None
    world = World(inputs, reserved=reserved, seed=seed)
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


def notes(world: World, variant: str) -> list[str]:
    out = list(dict.fromkeys(world.notes))
    total = wall(world)
    if variant == "fanflow" and math.isfinite(total) and total > DEFAULT_DEADLINE_SECONDS:
        out.append(f"longer than fanflow's default deadline ({DEFAULT_DEADLINE_SECONDS} s): "
                   f"give the request deadlineSeconds of at least {math.ceil(total * 1.5)}")
    if math.isfinite(total) and total > world.inputs.q("lambda.async.max.age"):
        out.append("longer than Lambda's async event age (6 h): queued events would be dropped")
    if world.failure and "throttled" in world.failure and world.inputs.compute_reserved is None:
        headroom = world.inputs.lambda_concurrency - 100
        out.append("Compute's backlog held every execution in the account: reserve its concurrency so that Emit "
                   "and the fan-in keep some" + (f" (--compute-reserved {headroom})" if headroom > 0 else ""))
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
        "cost": request_cost(world.usage, inputs.region),
        "usage": world.usage.as_dict(),
        "peakConcurrency": world.pool.peak,
        "casesComputed": world.computed.total,
        "casesCounted": world.counted.total,
        "timeline": {"computed": world.computed.series(), "counted": world.counted.series()},
        "notes": notes(world, variant),
    }


def plan(inputs: PlanInputs, variants: tuple[str, ...] = ("fanflow", "seed")) -> dict[str, Any]:
    started = time.perf_counter()
    results = [plan_variant(inputs, variant) for variant in variants]
    return {
        "cases": inputs.cases, "computeSeconds": inputs.compute_seconds, "region": inputs.region,
        "lambdaConcurrency": inputs.lambda_concurrency, "computeReservedConcurrency": inputs.compute_reserved,
        "variants": results,
        "planningSeconds": round(time.perf_counter() - started, 3),
    }


# Assumptions varied by the sensitivity report, and how (factors on the assumed value).
SENSITIVITY_FACTORS = (0.5, 2.0)


def sensitivity(inputs: PlanInputs, variant: str, keys: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """How much the predicted wall time moves when each assumption is halved and doubled,
    and when the account's concurrency is, largest first."""
    base = statistics.median(wall(simulate(inputs, variant, seed=s)) for s in range(replications(inputs.cases)))
    rows: list[dict[str, Any]] = []

    def moved(changed: PlanInputs) -> float:
        value = statistics.median(wall(simulate(changed, variant, seed=s)) for s in range(replications(inputs.cases)))
        return math.inf if not math.isfinite(value) else round(100 * (value / base - 1), 1)

    for key in keys or tuple(ASSUMPTIONS):
        value = ASSUMPTIONS[key].value
        changes = {}
        for factor in SENSITIVITY_FACTORS:
            unit = ASSUMPTIONS[key].unit
            new = (min(1.0, value * factor) if unit == "fraction"
                   else max(1.0, value * factor) if unit == "partitions" else value * factor)
            overrides = dict(inputs.overrides, **{key: new})
            changes[f"x{factor:g}"] = moved(dataclasses.replace(inputs, overrides=overrides))
        rows.append({"assumption": key, "value": value, "unit": ASSUMPTIONS[key].unit, "wallChangePercent": changes})
    # The account's concurrency scaled; a Compute reservation keeps the same unreserved rest.
    unreserved = None if inputs.compute_reserved is None else inputs.lambda_concurrency - inputs.compute_reserved
    changes = {}
    for factor in SENSITIVITY_FACTORS:
        concurrency = max(1, round(inputs.lambda_concurrency * factor))
        reserved = None if unreserved is None else max(1, concurrency - unreserved)
        changes[f"x{factor:g}"] = moved(dataclasses.replace(inputs, lambda_concurrency=concurrency,
                                                            compute_reserved=reserved))
    rows.append({"assumption": "lambdaConcurrency", "value": inputs.lambda_concurrency, "unit": "executions",
                 "wallChangePercent": changes})
    rows.sort(key=lambda row: -max(abs(v) for v in row["wallChangePercent"].values()))
    return [dict(row, baseWallSeconds=round(base, 2)) for row in rows]
