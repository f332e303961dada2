"""Cost arithmetic against figures worked out by hand from the price table (us-east-1)."""

from __future__ import annotations

import pytest

from fanflow.awsmodel.costs import Usage, request_cost
from local.aws_limits.quotas import PRICES, QUOTAS


def test_each_service_line_is_units_times_the_published_price() -> None:
    # GIVEN what a million-case request might use
    usage = Usage(sfn_transitions=4_000_000, eb_events=2_000_000, ddb_write_units=4_000_000,
                  ddb_read_units=1_000_000, sqs_requests=1_200_000, s3_puts=1_001, s3_gets=10_000)
    usage.lambda_run(1_000_000, 5.0, 256)
    cost = request_cost(usage, "us-east-1")
    usd = cost["usd"]
    # THEN, by hand: 4M transitions x $0.025/1,000 = $100
    assert usd["stepFunctions"] == pytest.approx(100.0)
    # 1M requests x $0.20/M = $0.20; 1M x 5 s x 0.25 GB = 1.25M GB-s x $0.0000166667 = $20.83
    assert usd["lambdaRequests"] == pytest.approx(0.20)
    assert usd["lambdaGbSeconds"] == pytest.approx(20.833, abs=0.001)
    assert usd["eventBridge"] == pytest.approx(2.0)  # 2M events x $1/M
    assert usd["dynamoDbWrites"] == pytest.approx(2.5)  # 4M WRU x $0.625/M
    assert usd["dynamoDbReads"] == pytest.approx(0.125)  # 1M RRU x $0.125/M
    assert usd["sqs"] == pytest.approx(0.48)  # 1.2M x $0.40/M
    assert usd["s3"] == pytest.approx(1_001 * 0.005 / 1000 + 10_000 * 0.0004 / 1000)
    assert cost["totalUsd"] == pytest.approx(sum(usd.values()))
    assert cost["pricesFrom"] == "us-east-1"


def test_express_bills_100_ms_steps_and_64_mb_steps() -> None:
    usage = Usage()
    usage.express_run(10_000, 0.31, 64)  # 0.4 s billed, 64 MB
    assert usage.sfn_express_requests == 10_000
    assert usage.sfn_express_gb_seconds == pytest.approx(10_000 * 0.4 * 0.0625)
    cost = request_cost(usage, "us-east-1")["usd"]["stepFunctions"]
    assert cost == pytest.approx(10_000 * 1.00 / 1e6 + 250 * 0.00001667, abs=1e-6)  # reported to 6 decimals


def test_lambda_bills_each_run_to_the_millisecond() -> None:
    usage = Usage()
    usage.lambda_run(1, 0.0101, 1024)
    assert usage.lambda_gb_seconds == pytest.approx(0.011)


def test_a_region_without_its_own_prices_says_whose_it_used() -> None:
    assert request_cost(Usage(eb_events=1), "eu-south-1")["pricesFrom"] == "us-east-1"


def test_every_quota_and_price_names_its_published_source() -> None:
    for entry in [*QUOTAS.values(), *PRICES["us-east-1"].values()]:
        assert entry.source.startswith("https://"), entry.key
        assert "amazon.com" in entry.source, entry.key


def test_quota_tiers_follow_the_region() -> None:
    # us-east-1 is a big Region; eu-south-1 has the 150/s refill and the 400 PutEvents/s tier.
    assert QUOTAS["sfn.standard.start.refill"].value("us-east-1") == 300
    assert QUOTAS["sfn.standard.start.refill"].value("eu-south-1") == 150
    assert QUOTAS["eb.putevents.rate"].value("eu-south-1") == 400
    assert QUOTAS["eb.invocations.rate"].value("eu-south-1") == 750
    assert QUOTAS["eb.putevents.rate"].value("ca-central-1") == 600  # every other Region
    assert QUOTAS["sfn.express.start.refill"].value("eu-south-1") == 6000
