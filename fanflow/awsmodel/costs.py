"""What one request uses of each priced service, and what that costs in a Region."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from local.aws_limits.quotas import prices_for


@dataclass
class Usage:
    sfn_transitions: float = 0  # Standard state transitions
    sfn_express_requests: float = 0
    sfn_express_gb_seconds: float = 0
    lambda_requests: float = 0
    lambda_gb_seconds: float = 0
    eb_events: float = 0  # custom events put on a bus
    ddb_write_units: float = 0
    ddb_read_units: float = 0
    sqs_requests: float = 0
    s3_puts: float = 0
    s3_gets: float = 0

    def lambda_run(self, count: float, seconds: float, memory_mb: int) -> None:
        """`count` invocations of `seconds` each (billed per ms) of a function with `memory_mb`."""
        self.lambda_requests += count
        self.lambda_gb_seconds += count * math.ceil(seconds * 1000) / 1000 * memory_mb / 1024

    def express_run(self, count: float, seconds: float, memory_mb: float) -> None:
        """Express bills duration in 100 ms steps and memory in 64 MB steps."""
        self.sfn_express_requests += count
        billed_seconds = math.ceil(seconds * 10 - 1e-9) / 10
        billed_gb = math.ceil(memory_mb / 64) * 64 / 1024
        self.sfn_express_gb_seconds += count * billed_seconds * billed_gb

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 3) for key, value in asdict(self).items()}


# service -> (usage field, price key) pairs; the services the plan reports, in order.
SERVICE_LINES: dict[str, tuple[tuple[str, str], ...]] = {
    "stepFunctions": (("sfn_transitions", "sfn.transition"), ("sfn_express_requests", "sfn.express.request"),
                      ("sfn_express_gb_seconds", "sfn.express.gbs")),
    "lambdaRequests": (("lambda_requests", "lambda.request"),),
    "lambdaGbSeconds": (("lambda_gb_seconds", "lambda.gbs"),),
    "eventBridge": (("eb_events", "eb.event"),),
    "dynamoDbWrites": (("ddb_write_units", "ddb.wru"),),
    "dynamoDbReads": (("ddb_read_units", "ddb.rru"),),
    "sqs": (("sqs_requests", "sqs.request"),),
    "s3": (("s3_puts", "s3.put"), ("s3_gets", "s3.get")),
}


def request_cost(usage: Usage, region: str) -> dict[str, object]:
    """USD per service for one request, the total, and the Region whose prices were used."""
    priced_region, prices = prices_for(region)
    services: dict[str, float] = {}
    for service, lines in SERVICE_LINES.items():
        services[service] = sum(getattr(usage, field) * prices[key].usd / prices[key].per for field, key in lines)
    return {"usd": {name: round(value, 6) for name, value in services.items()},
            "totalUsd": round(sum(services.values()), 6), "pricesFrom": priced_region}
