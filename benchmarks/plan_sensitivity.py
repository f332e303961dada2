"""Which assumptions move `fanflow plan`'s answer most: each assumed latency or behaviour
(local/aws_limits/assumptions.py) halved and doubled, and the account's concurrency, for
a few requests; prints one line per assumption, largest effect first.

    python benchmarks/plan_sensitivity.py            # the default cases below
    python benchmarks/plan_sensitivity.py --top 5 --json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from fanflow.awsmodel.planner import sensitivity
from fanflow.awsmodel.world import PlanInputs

CASES = (
    ("seed, 1,000 x 5 s, concurrency 45 (the seed's measured runs)", "seed",
     PlanInputs(cases=1000, compute_seconds=5.0, lambda_concurrency=45)),
    ("fanflow as deployed (Compute's ceiling 200), 100,000 x 5 s, us-east-1", "fanflow",
     PlanInputs(cases=100_000, compute_seconds=5.0)),
    ("fanflow, Compute unreserved, 100,000 x 5 s, us-east-1", "fanflow",
     PlanInputs(cases=100_000, compute_seconds=5.0, compute_reserved=0)),
    ("fanflow as deployed, 20,000 x 0 s, us-east-1", "fanflow",
     PlanInputs(cases=20_000, compute_seconds=0.0)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=8, help="lines per case (default: %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: list[dict[str, Any]] = []
    for title, variant, inputs in CASES:
        started = time.perf_counter()
        rows = sensitivity(inputs, variant)[: args.top]
        report.append({"case": title, "rows": rows, "seconds": round(time.perf_counter() - started, 1)})
    if args.json:
        print(json.dumps(report))
        return
    for entry in report:
        base = entry["rows"][0]["baseWallSeconds"]
        print(f"{entry['case']}: {base:,.1f} s predicted ({entry['seconds']} s to vary)")
        for row in entry["rows"]:
            change = row["wallChangePercent"]
            print(f"  {row['assumption']:<28} {row['value']:>8g} {row['unit']:<11} halved {change['x0.5']:+7.1f}%  "
                  f"doubled {change['x2']:+7.1f}%")


if __name__ == "__main__":
    main()
