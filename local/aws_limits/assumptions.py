"""What `fanflow plan` assumes beyond the published quotas: every latency of a call or a hop,
and the few behaviours AWS does not publish. Each figure says where it comes from. The
single-case seed run (6.6 s for 5 s of work, so 1.6 s for the whole chain of hops) bounds
the sum of the latencies; how that sum splits between hops is the assumption."""

from __future__ import annotations

from dataclasses import dataclass

SEED_SHEET = "seed: performance/Concurrency_StepFunction_Performance.xlsx (AWS_LIMITS.md, 1 case: 6.6 s)"
NOT_PUBLISHED = "not published by AWS; assumed"


@dataclass(frozen=True)
class Assumption:
    key: str
    value: float
    unit: str
    what: str
    basis: str


ASSUMPTIONS: dict[str, Assumption] = {a.key: a for a in (
    # Latencies of one call or hop.
    Assumption("sfn.start", 0.05, "s", "StartExecution until the first state runs",
               f"{NOT_PUBLISHED}; part of the seed's 1.6 s chain ({SEED_SHEET})"),
    Assumption("sfn.standard.state", 0.05, "s", "one Standard state transition (scheduling, history write)",
               f"{NOT_PUBLISHED}; part of the seed's 1.6 s chain"),
    Assumption("sfn.express.state", 0.01, "s", "one Express state transition",
               f"{NOT_PUBLISHED}; Express keeps no history, so faster than Standard"),
    Assumption("eb.putevents.call", 0.03, "s", "one PutEvents call (up to 10 entries)",
               f"{NOT_PUBLISHED}; tens of ms, as any regional API call"),
    Assumption("eb.delivery", 0.25, "s", "PutEvents accepted until the rule's target is invoked",
               "EventBridge publishes no figure; Amazon Key reported 80 ms p90 (AWS Architecture Blog, "
               "2026-02) and AWS cut its latency in 2023 (PostNL Engineering, 2023-02-20); 0.25 s fits the seed's "
               "1.6 s chain with two deliveries in it"),
    Assumption("lambda.invoke", 0.02, "s", "invoking a warm execution environment",
               f"{NOT_PUBLISHED}; tens of ms"),
    Assumption("lambda.cold.start", 0.35, "s",
               "starting a new execution environment (Python or Node.js, small package)",
               "Lambda docs: cold starts range from under 100 ms to over 1 s "
               "(docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html); two in the seed's chain"),
    Assumption("ddb.write", 0.01, "s", "one DynamoDB write (PutItem, UpdateItem, one BatchWriteItem call)",
               "DynamoDB: single-digit millisecond latency (aws.amazon.com/dynamodb)"),
    Assumption("ddb.read", 0.005, "s", "one DynamoDB read (GetItem, one BatchGetItem or Query page)",
               "DynamoDB: single-digit millisecond latency"),
    Assumption("ddb.transaction.base", 0.02, "s", "a TransactWriteItems holds its items this long, plus per item",
               f"{NOT_PUBLISHED}; two phases (prepare, commit) of a write each"),
    Assumption("ddb.transaction.per.item", 0.0003, "s", "a TransactWriteItems' extra time per item",
               f"{NOT_PUBLISHED}; 100 items add 30 ms"),
    Assumption("sqs.call", 0.02, "s", "one SQS call (SendMessage, ReceiveMessage with messages, delete)",
               f"{NOT_PUBLISHED}; tens of ms"),
    Assumption("s3.put", 0.05, "s", "one S3 PUT of a small object", "S3 performance guidelines: tens to low "
               "hundreds of ms for small objects (docs.aws.amazon.com/AmazonS3/latest/userguide/"
               "optimizing-performance-guidelines.html)"),
    Assumption("s3.get", 0.03, "s", "one S3 GET of a small object", "as s3.put"),
    # Behaviours AWS does not publish.
    Assumption("lambda.throttle.jitter", 0.5, "fraction",
               "a throttled async event retries after an interval drawn uniformly from [(1-j)*b, b], b the "
               "documented interval (1 s doubling to 5 min)",
               "the Lambda page gives the intervals, not their jitter; without jitter the retries would "
               "arrive in lock-step"),
    Assumption("lambda.retry.race.window", 0.1, "s",
               "when an environment frees up, the async queue's retries that would arrive within this window "
               "take it before anyone else",
               f"{NOT_PUBLISHED}; with a large backlog (many retries per second) a freed environment goes to the "
               "backlog, with a small one it waits for the next retry"),
    Assumption("ddb.shards.spread", 1.0, "fraction",
               "share of its shards' combined throughput (shards x 1,000 WCU/s, x 3,000 RCU/s) a request's results "
               "rows get: 1 when the rows spread evenly and each shard is a partition of its own",
               "lambda_fns/keys.py puts a case in shard CRC-32(caseId) mod shards, even in expectation; DynamoDB "
               "serves each partition key value up to 1,000 WCU/s and 3,000 RCU/s (burst-adaptive-capacity.html) "
               "and does not say how it places distinct keys on partitions; a fresh on-demand table's own ceiling "
               "(about 4,000 WCU/s until it has seen more) is not modelled"),
    Assumption("ddb.result.row.bytes", 200, "bytes", "size of one results row", "fanflow's rows: ids, state, "
               "times, error (lambda_fns/casework.py)"),
    Assumption("sfn.express.memory.mb", 64, "MB", "memory an Express Increment execution is billed for",
               "Step Functions pricing bills Express memory in 64 MB steps; a small definition and payload "
               "fits the first"),
    Assumption("sfn.map.child.start.tokens", 0, "tokens",
               "StartExecution tokens (Standard bucket) one Distributed Map child execution takes",
               "the Step Functions quotas page (service-quotas.html) gives the StartExecution bucket for the API and "
               "does not say that a Distributed Map's children draw on it; Step Functions starts them itself and "
               "charges one state transition per child (concepts-transitions.html, 'Transitions in Distributed Map "
               "state'), which the plan takes from the transitions bucket. At fanflow's MaxConcurrency (10) children "
               "start a few a second, far below either bucket's refill; override to 1 to plan as if they drew on it"),
    Assumption("lambda.destination.putevents", 1, "calls",
               "PutEvents calls of the account's quota one on-failure record takes when Lambda puts it on the bus",
               f"{NOT_PUBLISHED}; Lambda puts the record with the function's own role "
               "(invocation-async-retain-records.html), so it is taken as one of the account's PutEvents calls"),
    Assumption("summary.row.seconds", 0.00005, "s",
               "Summary's CPU per results row (parse the Query page, plain JSON, its line, the aggregate, its "
               "JSON Lines entry) on its one vCPU (1,769 MB)",
               "measured 28 us per row on the project's 2-core machine for plain_item, SummaryBuilder.line/add and "
               "json.dumps over 100,000 rows; botocore's response parsing, not measured, assumed as much again"),
    Assumption("request.case.bytes", 17, "bytes", "one case in a request as JSON",
               "the seed's sample data sets: {\"caseId\":\"0\"} and its comma (sample_data_sets/dataset_1000.json, "
               "16,942 bytes for 1,000 cases); above MAX_REQUEST_BYTES a request travels by reference through S3"),
    Assumption("seed.compute.overhead", 0.05, "s", "the seed's Compute function besides its sleep "
               "(its completion PutEvents and runtime)", f"{NOT_PUBLISHED}; one PutEvents call and change"),
)}


def assumption(key: str, overrides: dict[str, float] | None = None) -> float:
    if overrides and key in overrides:
        return float(overrides[key])
    return ASSUMPTIONS[key].value
