"""The table in docs/design.md, "Performance on AWS, planned": `fanflow plan` for 1,000 / 100,000 /
1,000,000 cases of 5 s in us-east-1 and in eu-south-1 (a Region with the 150/s StartExecution
refill and the 400 PutEvents/s tier), for fanflow as deployed (Compute's ceiling 200), fanflow
with Compute unreserved (`-c computeConcurrency=0`: it takes what the orchestration floors
leave of the account's 1,000, as the seed's Compute does), and the seed, printed as Markdown.

    python benchmarks/plan_table.py
"""

from __future__ import annotations

import time

from fanflow.awsmodel.planner import plan
from fanflow.awsmodel.world import PlanInputs

SIZES = (1_000, 100_000, 1_000_000)
REGIONS = ("us-east-1", "eu-south-1")
SETUPS = (("fanflow", None), ("fanflow", 0), ("seed", None))


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def row(region: str, cases: int, variant: str, reserved: int | None) -> tuple[str, float]:
    started = time.perf_counter()
    result = plan(PlanInputs(cases=cases, compute_seconds=5.0, region=region, compute_reserved=reserved), (variant,))
    planned = time.perf_counter() - started
    v = result["variants"][0]
    phases = v["phases"]
    name = {None: variant, 0: f"{variant}, Compute unreserved"}.get(reserved, f"{variant}, Compute {reserved}")
    if variant == "fanflow" and reserved is None:
        name += f" (Compute {v['reservedConcurrency']['Compute']})"

    def bound(key: str) -> str:
        binding = phases[key]["binding"]
        return "-" if binding is None else binding["limit"]

    history = v["historyLimit"]
    caveat = (f"passes 25,000 events at case {history['case']:,}" if history
              else f"{v['historyEvents']} events" if v["historyEvents"] is not None else "under 25,000 events")
    dropped = f"{v['casesDropped']:,} dropped" if v["casesDropped"] else "all"
    if not v["completes"]:
        return f"| {region} | {cases:,} | {name} | fails ({v['failure']}) | - | - | - | - | - | {caveat} |", planned

    def phase(key: str) -> str:
        return f"{minutes(phases[key]['atSeconds'])} ({bound(key)})"

    return (f"| {region} | {cases:,} | {name} | {minutes(v['wallSeconds'])} | {phase('fanOutDone')} | "
            f"{phase('lastComputed')} | {dropped} | {phase('lastCounted')} | ${v['cost']['totalUsd']:,.2f} | "
            f"{caveat} |", planned)


def main() -> None:
    print("| Region | cases | design | wall | fan-out done (binds) | last computed (binds) | computed "
          "| last counted (binds) | cost per request | PreProcess history |")
    print("| --- | ---: | --- | ---: | --- | --- | ---: | --- | ---: | --- |")
    slowest = 0.0
    for region in REGIONS:
        for cases in SIZES:
            for variant, reserved in SETUPS:
                line, planned = row(region, cases, variant, reserved)
                slowest = max(slowest, planned)
                print(line)
    print(f"\n(slowest plan: {slowest:.1f} s)")


if __name__ == "__main__":
    main()
