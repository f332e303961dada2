"""The published AWS quotas and prices that `fanflow plan` models, in one table with the page
each figure comes from. Plain data: the embedded emulator can import it without SimPy."""

from __future__ import annotations

from dataclasses import dataclass, field

# Pages the figures come from (AWS_LIMITS.md in the shared notes lists the same ones).
SFN_QUOTAS = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
SFN_PRICING = "https://aws.amazon.com/step-functions/pricing/"
# "Transitions in Distributed Map state": each child execution a Distributed Map starts is
# charged one state transition (besides its own states').
SFN_TRANSITIONS = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html"
EB_QUOTAS = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html"
EB_PRICING = "https://aws.amazon.com/eventbridge/pricing/"
LAMBDA_CONCURRENCY = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html"
LAMBDA_RESERVED = "https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html"
LAMBDA_SCALING = "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html"
LAMBDA_ASYNC = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html"
LAMBDA_SQS_SCALING = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html"
LAMBDA_SQS_PARAMETERS = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
DDB_PARTITIONS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html"
DDB_TRANSACTIONS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html"
DDB_PRICING = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
SQS_PRICING = "https://aws.amazon.com/sqs/pricing/"
S3_PRICING = "https://aws.amazon.com/s3/pricing/"

# Regions by tier. Step Functions has two tiers; EventBridge five, named here by their
# PutEvents figure. The EventBridge page lists target invocations per Region (18,750 /
# 4,500 / 2,250 / 1,100 / 750) and PutEvents per Region (10,000 / 2,400 / 1,200 / 600 /
# 400); the two lists pair up Region by Region, so one tier name carries both.
SFN_BIG_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})
EB_TIERS: dict[str, frozenset[str]] = {
    "eb10000": frozenset({"us-east-1", "us-west-2", "eu-west-1"}),
    "eb2400": frozenset({"us-east-2", "eu-central-1"}),
    "eb1200": frozenset({"us-west-1", "ap-northeast-1", "ap-southeast-1", "ap-southeast-2", "eu-west-2"}),
    "eb400": frozenset({"af-south-1", "ap-northeast-3", "ap-southeast-3", "eu-south-1"}),
}
EB_OTHER_TIER = "eb600"


def sfn_tier(region: str) -> str:
    return "sfnBig" if region in SFN_BIG_REGIONS else "sfnOther"


def eb_tier(region: str) -> str:
    return next((tier for tier, regions in EB_TIERS.items() if region in regions), EB_OTHER_TIER)


@dataclass(frozen=True)
class Quota:
    """One published limit. `by_tier` maps a Region tier (see sfn_tier/eb_tier) to its figure;
    `default` holds where the figure is the same everywhere."""

    key: str
    what: str
    unit: str
    source: str
    default: float | None = None
    by_tier: dict[str, float] = field(default_factory=dict)

    def value(self, region: str) -> float:
        for tier in (sfn_tier(region), eb_tier(region)):
            if tier in self.by_tier:
                return self.by_tier[tier]
        if self.default is None:
            raise KeyError(f"quota {self.key} has no figure for {region}")
        return self.default


_EB_PUT: dict[str, float] = {"eb10000": 10_000, "eb2400": 2_400, "eb1200": 1_200, EB_OTHER_TIER: 600, "eb400": 400}
_EB_INVOKE: dict[str, float] = {"eb10000": 18_750, "eb2400": 4_500, "eb1200": 2_250, EB_OTHER_TIER: 1_100, "eb400": 750}

QUOTAS: dict[str, Quota] = {q.key: q for q in (
    Quota("sfn.standard.start.burst", "StartExecution, Standard: token bucket size", "calls", SFN_QUOTAS,
          by_tier={"sfnBig": 1_300, "sfnOther": 800}),
    Quota("sfn.standard.start.refill", "StartExecution, Standard: refill", "calls/s", SFN_QUOTAS,
          by_tier={"sfnBig": 300, "sfnOther": 150}),
    # The page gives Express StartExecution's figures; StartSyncExecution is taken to share them.
    Quota("sfn.express.start.burst", "StartExecution/StartSyncExecution, Express: bucket size", "calls",
          SFN_QUOTAS, default=6_000),
    Quota("sfn.express.start.refill", "StartExecution/StartSyncExecution, Express: refill", "calls/s",
          SFN_QUOTAS, default=6_000),
    Quota("sfn.transitions.burst", "state transitions, Standard: bucket size (lower on new accounts)",
          "transitions", SFN_QUOTAS, by_tier={"sfnBig": 5_000, "sfnOther": 800}),
    Quota("sfn.transitions.refill", "state transitions, Standard: refill", "transitions/s", SFN_QUOTAS,
          by_tier={"sfnBig": 5_000, "sfnOther": 800}),
    Quota("sfn.history.events", "events in one Standard execution's history; then it fails", "events",
          SFN_QUOTAS, default=25_000),
    Quota("sfn.map.inline.concurrency", "inline Map: concurrent iterations at most", "iterations", SFN_QUOTAS,
          default=40),
    Quota("sfn.map.distributed.children", "Distributed Map: child executions of one Map Run running at once "
          "(its MaxConcurrency may ask fewer)", "executions", SFN_QUOTAS, default=10_000),
    Quota("eb.putevents.rate", "PutEvents requests per second (an account's, all buses)", "calls/s", EB_QUOTAS,
          by_tier=_EB_PUT),
    Quota("eb.putevents.entries", "entries per PutEvents call", "entries", EB_QUOTAS, default=10),
    Quota("eb.invocations.rate", "target invocations per second; over it, delayed, not dropped", "invocations/s",
          EB_QUOTAS, by_tier=_EB_INVOKE),
    Quota("lambda.concurrency", "concurrent executions per account and Region (default)", "executions",
          LAMBDA_CONCURRENCY, default=1_000),
    Quota("lambda.unreserved.minimum", "concurrency Lambda keeps unreserved: reservations leave at least this",
          "executions", LAMBDA_RESERVED, default=100),
    Quota("lambda.scaling.environments", "new execution environments per function per 10 s", "environments",
          LAMBDA_SCALING, default=1_000),
    Quota("lambda.async.retry.first", "async throttle retry: first interval", "s", LAMBDA_ASYNC, default=1.0),
    Quota("lambda.async.retry.max", "async throttle retry: interval grows exponentially to at most", "s",
          LAMBDA_ASYNC, default=300.0),
    Quota("lambda.async.max.age", "async event: retried for at most (default)", "s", LAMBDA_ASYNC,
          default=6 * 3600.0),
    Quota("lambda.esm.sqs.initial", "SQS event source: concurrent batches at start", "batches", LAMBDA_SQS_SCALING,
          default=5),
    Quota("lambda.esm.sqs.rampup", "SQS event source: added concurrent batches per minute", "batches/min",
          LAMBDA_SQS_SCALING, default=300),
    Quota("lambda.esm.sqs.batch.max", "SQS event source: batch size at most (standard queue)", "messages",
          LAMBDA_SQS_PARAMETERS, default=10_000),
    Quota("ddb.partition.wcu", "write units per second one partition (so one item) serves", "WCU/s",
          DDB_PARTITIONS, default=1_000),
    Quota("ddb.partition.rcu", "read units per second one partition (so one item) serves", "RCU/s",
          DDB_PARTITIONS, default=3_000),
    Quota("ddb.transaction.items", "distinct items in one TransactWriteItems", "items", DDB_TRANSACTIONS,
          default=100),
    Quota("ddb.transaction.wcu.per.item", "write units a transaction costs per item (prepare and commit)",
          "WCU", DDB_TRANSACTIONS, default=2),
)}


@dataclass(frozen=True)
class Price:
    key: str
    what: str
    usd: float
    per: float  # units the price is for
    source: str


# Prices in USD, us-east-1, on-demand, first usage tier, no free tier (a request is priced as
# if the account's free tier were used up). Only us-east-1 is tabulated: other Regions' prices
# differ (mostly upwards), and the plan says which Region's prices it used.
PRICES: dict[str, dict[str, Price]] = {"us-east-1": {p.key: p for p in (
    Price("sfn.transition", "Step Functions Standard: state transition (retries count)", 0.025, 1_000, SFN_PRICING),
    Price("sfn.express.request", "Step Functions Express: request", 1.00, 1_000_000, SFN_PRICING),
    Price("sfn.express.gbs", "Step Functions Express: duration, GB-second (first 1,000 GB-hours; 64 MB steps, "
          "100 ms steps)", 0.00001667, 1, SFN_PRICING),
    Price("lambda.request", "Lambda: request", 0.20, 1_000_000, LAMBDA_PRICING),
    Price("lambda.gbs", "Lambda x86: duration, GB-second (first tier)", 0.0000166667, 1, LAMBDA_PRICING),
    Price("eb.event", "EventBridge: custom event put on a bus (64 KB chunk)", 1.00, 1_000_000, EB_PRICING),
    Price("ddb.wru", "DynamoDB on-demand: write request unit", 0.625, 1_000_000, DDB_PRICING),
    Price("ddb.rru", "DynamoDB on-demand: read request unit", 0.125, 1_000_000, DDB_PRICING),
    Price("sqs.request", "SQS standard: request (64 KB chunk)", 0.40, 1_000_000, SQS_PRICING),
    Price("s3.put", "S3 Standard: PUT, COPY, POST, LIST request", 0.005, 1_000, S3_PRICING),
    Price("s3.get", "S3 Standard: GET and other requests", 0.0004, 1_000, S3_PRICING),
)}}
PRICE_FALLBACK_REGION = "us-east-1"


def quota(key: str, region: str) -> float:
    return QUOTAS[key].value(region)


def prices_for(region: str) -> tuple[str, dict[str, Price]]:
    """The price list for a Region, and the Region it is really for (us-east-1 when the table
    has none for that Region)."""
    if region in PRICES:
        return region, PRICES[region]
    return PRICE_FALLBACK_REGION, PRICES[PRICE_FALLBACK_REGION]


def known_region(region: str) -> bool:
    """A plausible AWS Region name: letters-letters-digit (the quotas fall back to 'every other
    Region' figures for one the table does not name)."""
    parts = region.split("-")
    return len(parts) >= 3 and all(p.isalpha() and p.islower() for p in parts[:-1]) and parts[-1].isdigit()
