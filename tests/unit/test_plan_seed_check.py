"""The plan against measured reality: the seed's own runs on AWS.

Source: the seed's performance/Concurrency_StepFunction_Performance.xlsx, "Multiple Step
Function with EventBridge (No Callback)", medians of three runs, cases of 5 s each, as
summarized in the shared AWS_LIMITS.md. Concurrent Lambda invocations seen: 40 to 55.
"""

from __future__ import annotations

import pytest

from fanflow.awsmodel.planner import plan_variant
from fanflow.awsmodel.world import PlanInputs

MEASURED_MEDIAN_SECONDS = {1: 6.6, 5: 7.1, 10: 7.1, 20: 7.6, 40: 11.6, 100: 22.0, 200: 37.4, 500: 90.4,
                           700: 103.1, 1000: 160.6}
# The account concurrency the runs imply: 40 to 55 concurrent invocations were seen; the
# check takes 45, inside that range. Every other figure is the plan's default.
SEED_ACCOUNT_CONCURRENCY = 45


@pytest.mark.parametrize("cases", [100, 500, 1000])
def test_seed_plan_is_within_25_percent_of_the_measured_median(cases: int) -> None:
    result = plan_variant(PlanInputs(cases=cases, compute_seconds=5.0, lambda_concurrency=SEED_ACCOUNT_CONCURRENCY),
                          "seed")
    measured = MEASURED_MEDIAN_SECONDS[cases]
    assert result["wallSeconds"] == pytest.approx(measured, rel=0.25)


def test_seed_plan_for_one_case_is_the_measured_chain_of_hops() -> None:
    result = plan_variant(PlanInputs(cases=1, compute_seconds=5.0, lambda_concurrency=SEED_ACCOUNT_CONCURRENCY),
                          "seed")
    assert result["wallSeconds"] == pytest.approx(MEASURED_MEDIAN_SECONDS[1], rel=0.1)
