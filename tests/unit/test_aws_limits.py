"""The embedded emulator's AWS limits (local/aws_limits/enforce.py) on a clock the tests move:
what waits, how long, and what is cancelled, from the published quotas of quotas.py and the
latencies of assumptions.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.aws_limits.assumptions import ASSUMPTIONS
from local.aws_limits.enforce import AwsLimits, LimitsError
from local.aws_limits.quotas import quota


class Clock:
    """A clock that only sleeping moves; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


class Later:
    """Stands in for the scheduler: keeps what was asked to run later."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self.calls.append((delay, callback))

    def stop(self) -> None:
        pass


def limits(region: str = "us-east-1", *, reserved: dict[str, int] | None = None, concurrency: int = 1000,
           hash_keys: dict[str, str] | None = None, express: set[str] | None = None) -> tuple[AwsLimits, Clock]:
    clock = Clock()
    enforced = AwsLimits(region, lambda_concurrency=concurrency, clock=clock, sleep=clock.sleep)
    enforced.scheduler = Later()  # type: ignore[assignment]
    enforced.attach(reserved=reserved or {}, is_express=lambda arn: arn in (express or set()),
                    partition_key=lambda table: (hash_keys or {}).get(table))
    return enforced, clock


def a(key: str) -> float:
    return ASSUMPTIONS[key].value


def test_putevents_calls_past_the_region_s_rate_wait_for_their_token() -> None:
    # GIVEN eu-south-1, whose PutEvents quota is 400 requests a second (eb-quota.html)
    enforced, clock = limits("eu-south-1")
    assert quota("eb.putevents.rate", "eu-south-1") == 400
    # WHEN 401 calls come at once (none takes any time: the clock moves only when one waits)
    for _ in range(400):
        enforced.before_api_call("events", "PutEvents", {}, {})
    assert clock.slept == []
    enforced.before_api_call("events", "PutEvents", {}, {})
    # THEN the 401st waits one token's refill, 1/400 s
    assert clock.slept == [pytest.approx(1 / 400)]


def test_a_call_takes_at_least_its_assumed_latency_counting_what_it_spent() -> None:
    enforced, clock = limits()
    # GIVEN a PutEvents call that spent 10 ms in the engine
    context: dict[str, Any] = {}
    enforced.before_api_call("events", "PutEvents", {}, context)
    clock.now += 0.010
    # WHEN it returns  THEN it waits the rest of its assumed latency
    enforced.after_api_call("events", "PutEvents", context)
    assert clock.slept == [pytest.approx(a("eb.putevents.call") - 0.010)]
    # AND a call slower than its latency waits no more; a call with no assumed latency none
    slow: dict[str, Any] = {}
    enforced.before_api_call("dynamodb", "GetItem", {}, slow)
    clock.now += 1.0
    enforced.after_api_call("dynamodb", "GetItem", slow)
    other: dict[str, Any] = {}
    enforced.before_api_call("stepfunctions", "DescribeExecution", {}, other)
    enforced.after_api_call("stepfunctions", "DescribeExecution", other)
    assert len(clock.slept) == 1


def test_a_transaction_holds_its_items_so_an_overlapping_one_conflicts() -> None:
    enforced, clock = limits()
    counter = ("counter", {"requestId": {"S": "r"}})
    row = ("results", {"requestShard": {"S": "r#0"}, "caseId": {"S": "1"}})
    # GIVEN a transaction on the counter row and a results row
    assert enforced.transaction_conflict([counter, row]) is None
    held = a("ddb.transaction.base") + 2 * a("ddb.transaction.per.item")
    # WHEN another one on the same counter row starts while it runs
    clock.now += held / 2
    other_row = ("results", {"requestShard": {"S": "r#1"}, "caseId": {"S": "2"}})
    # THEN it is cancelled on that item (TransactionConflict, transaction-apis.html)
    assert enforced.transaction_conflict([other_row, counter]) == 1
    # AND once the first has ended, the same transaction goes through
    clock.now += held
    assert enforced.transaction_conflict([other_row, counter]) is None
    assert enforced.report()["transactionConflicts"] == 1


def test_writes_to_one_partition_past_1000_units_a_second_wait() -> None:
    # GIVEN a results table partitioned by requestShard (each shard a partition: 1,000 WCU/s)
    enforced, clock = limits(hash_keys={"results": "requestShard"})

    def batch(shard: str, n: int) -> dict[str, Any]:
        return {"RequestItems": {"results": [
            {"PutRequest": {"Item": {"requestShard": {"S": shard}, "caseId": {"S": str(i)}}}} for i in range(n)]}}

    # WHEN 40 batches of 25 rows go to one shard, and one to another
    for _ in range(40):
        enforced.before_api_call("dynamodb", "BatchWriteItem", batch("r#0", 25), {})
    enforced.before_api_call("dynamodb", "BatchWriteItem", batch("r#1", 25), {})
    assert clock.slept == []
    # THEN the 41st batch to the first shard waits for its 25 units: 25 ms
    enforced.before_api_call("dynamodb", "BatchWriteItem", batch("r#0", 25), {})
    assert clock.slept == [pytest.approx(0.025)]
    # AND a transaction costs two units an item (prepare and commit)
    transaction = {"TransactItems": [{"Update": {"TableName": "results", "Key": {"requestShard": {"S": "r#1"}}}}]}
    assert enforced._write_units("TransactWriteItems", transaction) == {("results", "{'S': 'r#1'}"): 2}


def test_standard_transitions_take_a_token_and_their_latency_express_only_its_latency() -> None:
    enforced, clock = limits("eu-south-1")
    burst = quota("sfn.transitions.burst", "eu-south-1")
    for _ in range(int(burst)):
        enforced.state_entered(standard=True)
    assert sum(clock.slept) == pytest.approx(burst * a("sfn.standard.state"))
    # the bucket refilled while those states took their time: spend what came back
    refilled = int(clock.now * quota("sfn.transitions.refill", "eu-south-1"))
    for _ in range(refilled):
        enforced.state_entered(standard=True)
    before = len(clock.slept)
    enforced.state_entered(standard=False)
    assert clock.slept[before:] == [a("sfn.express.state")]


def test_async_invocations_wait_in_their_queue_and_retry_reads_with_backoff() -> None:
    # GIVEN a function with 2 reserved executions
    enforced, clock = limits(reserved={"compute": 2})
    ran: list[tuple[str, tuple[bool, bool]]] = []
    jobs: list[Callable[[], None]] = []
    queue = enforced.async_queue("compute", jobs.append)
    scheduler = enforced.scheduler
    assert isinstance(scheduler, Later)
    # WHEN three events arrive at once
    for name in ("a", "b", "c"):
        queue.submit(lambda name=name: ran.append((name, enforced.enter("compute"))))  # type: ignore[misc]
    # THEN two start, the third waits for a read after 1 s, jittered down by up to half
    # (lambda.throttle.jitter)
    assert len(jobs) == 2
    [(delay, read_again)] = scheduler.calls
    assert 0.5 <= delay <= 1.0
    for job in jobs:
        job()
    # (each invocation learns that it holds its execution already, and that it is a cold start:
    # a new execution environment)
    assert ran == [("a", (True, False)), ("b", (True, False))]
    # AND when the next read comes, the executions are free again: the third starts, warm
    read_again()
    jobs[2]()
    assert ran[2] == ("c", (False, False))
    assert enforced.report()["peakConcurrency"] == 2 and clock.slept == []


def test_a_synchronous_invocation_over_the_limit_retries_until_an_execution_frees() -> None:
    enforced, clock = limits(reserved={"emit": 1})
    assert enforced.enter("emit") == (True, True)  # a cold start, whose execution the caller releases

    # GIVEN the only execution busy, freed during the second retry's wait
    def sleep(seconds: float) -> None:
        Clock.sleep(clock, seconds)
        if len(clock.slept) == 2:
            enforced.release("emit")

    enforced.sleep = sleep
    # WHEN another invocation comes  THEN it waits 1 s, then 2 s, then starts warm
    assert enforced.acquire("emit") is False
    assert clock.slept == [1.0, 2.0]


def test_an_invocation_s_start_takes_its_latency_counting_the_handler_s_import() -> None:
    enforced, clock = limits()
    # GIVEN a cold start whose handler took 0.1 s to import
    began = clock()
    clock.now += 0.1
    # WHEN it starts  THEN it waits the rest of a cold start's latency; a warm one its own
    enforced.started(True, since=began)
    enforced.started(False, since=clock())
    assert clock.slept == [pytest.approx(a("lambda.invoke") + a("lambda.cold.start") - 0.1), a("lambda.invoke")]


def test_a_time_scale_stretches_every_wait_and_slows_every_rate() -> None:
    # GIVEN the limits run ten times slower than AWS, on the real clock
    import time

    enforced = AwsLimits("us-east-1", time_scale=10)
    # THEN a tenth of a second of the real clock is a hundredth of AWS's
    began = enforced.clock()
    time.sleep(0.1)
    assert 0.009 <= enforced.clock() - began < 0.05
    # AND a sleep of 5 ms of AWS's lasts 50 ms
    started = time.monotonic()
    enforced.sleep(0.005)
    assert time.monotonic() - started >= 0.05
    with pytest.raises(ValueError, match="1 or more"):
        AwsLimits("us-east-1", time_scale=0.5)


def test_a_stack_that_reserves_more_than_the_account_allows_is_refused() -> None:
    with pytest.raises(LimitsError, match=r"reserves 660 .* must be at least 760, got 500"):
        limits(reserved={"compute": 600, "emit": 60}, concurrency=500)


def test_a_state_machine_delivery_waits_for_its_start_token() -> None:
    # GIVEN eu-south-1 (StartExecution, Standard: 800 burst, 150/s refill) and its bucket spent
    enforced, _ = limits("eu-south-1")
    arn = "arn:aws:states:eu-south-1:123456789012:stateMachine:increment"
    for _ in range(800):
        enforced.start_delay(arn)
    # WHEN EventBridge delivers one more event to it  THEN the delivery waits for its token
    # too: after the target-invocation token, EventBridge's delay and the start latency
    delay = enforced.delivery_delay(arn)
    assert delay == pytest.approx(1 / 150 + a("eb.delivery") + a("sfn.start"))
