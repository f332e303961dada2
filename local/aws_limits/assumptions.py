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
    Assumption("ddb.results.partitions", 1, "partitions",
               "partitions serving one request's results rows (they share the partition key requestId)",
               "DynamoDB splits a hot partition key by sort key only after traffic stays high "
               "(burst-adaptive-capacity.html) and does not say when; the plan assumes it has not"),
    Assumption("ddb.result.row.bytes", 200, "bytes", "size of one results row", "fanflow's rows: ids, state, "
               "times, error (lambda_fns/casework.py)"),
    Assumption("sfn.express.memory.mb", 64, "MB", "memory an Express Increment execution is billed for",
               "Step Functions pricing bills Express memory in 64 MB steps; a small definition and payload "
               "fits the first"),
    Assumption("seed.compute.overhead", 0.05, "s", "the seed's Compute function besides its sleep "
               "(its completion PutEvents and runtime)", f"{NOT_PUBLISHED}; one PutEvents call and change"),
)}


def assumption(key: str, overrides: dict[str, float] | None = None) -> float:
    if overrides and key in overrides:
        return float(overrides[key])
    return ASSUMPTIONS[key].value
