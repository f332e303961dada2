"""fanflow's design as infra/stack.py deploys it, service by service, with its deployed settings
(lambda_fns/constants.py, infra/components/).

Fan-out. PreProcess (Standard) takes the new request's branch (Redrive?), runs Prepare (which
reads the request from S3 when it came by reference, and writes its cases back in chunks of
1,000 with 16 writers, and a manifest) and OpenRequest (the counter row). FanOut is a
Distributed Map over the chunk numbers, 10 Standard child executions at once. A child runs
EmitChunk: Emit reads its chunk (S3 GET), checks that the request still runs (a consistent
GetItem of the counter row), registers the chunk's pending results rows (BatchWriteItem, 25 a
call) and puts its events ten per PutEvents call, checking the request again before each call.
A call still throttled after its four tries leaves its entries pending; the child waits
(BackOffBeforeResuming: 2 s doubling to 60 s, full jitter) and runs Emit again for them alone,
up to 8 attempts in all, then gives them up, lowering the request's target. The children keep
their own histories: PreProcess's holds the Map Run's few events at any size.

Compute. Each case's event invokes Compute asynchronously. Compute has reserved concurrency
200, its ceiling (so do the other two compute functions, unused here), and each orchestration
function a floor of 10 (infra/components/concurrency.py). An event still in Lambda's queue
after Compute's maximum event age (1 hour, infra/components/compute.py) is dropped; its
on-failure record reaches the fan-in as a FAILED completion. Compute reads its results row,
works, records its result and puts one completion.

Fan-in. A rule sends each completion to an SQS queue; an event source mapping hands batches of
up to 99 (window 1 s, at most 10 at once) to FanInConsumer, which runs the Express Increment
workflow synchronously: CountBatch reads the batch's rows and the counter row (one consistent
BatchGetItem), counts them in one transaction on the counter row and the rows (retried on a
conflict), and reads the counter row again; the batch that reaches the target claims the
request and invokes Summary asynchronously, which reads the rows shard by shard.

Results rows are sharded (lambda_fns/keys.py): shards = min(cases, 4 x min(chunks, 10)), each a
partition of its own, so their writes spread over shards x 1,000 WCU/s. The counter row is one
item: 1,000 WCU/s and 3,000 RCU/s, and one transaction at a time."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from lambda_fns import constants as c
from lambda_fns import keys
from local.aws_limits.primitives import Backoff, ItemLock
from local.aws_limits.quotas import QUOTAS

from .world import AsyncQueue, PlanInputs, Throttled, World

PREPARE, EMIT, COMPUTE = "fanflow.Prepare", "fanflow.Emit", "fanflow.Compute"
CONSUMER, COUNT_BATCH, SUMMARY = "fanflow.FanInConsumer", "fanflow.CountBatch", "fanflow.Summary"
# Deployed and reserved, but idle in a request: a redrive's and the other compute targets' functions.
LIFECYCLE, COMPUTE_LARGE, WORKFLOW_STEP = "fanflow.Lifecycle", "fanflow.ComputeLarge", "fanflow.WorkflowStep"


class BatchFailed(Exception):
    """A counting batch failed part-way: `left` of its messages were not counted."""

    def __init__(self, left: int, reason: str) -> None:
        super().__init__(reason)
        self.left = left


@dataclass(frozen=True)
class FanflowDesign:
    # Fan-out (lambda_fns/constants.py, prepare.py, emit.py, support.put_events_tracked).
    chunk_cases: int = c.FANOUT_CHUNK_CASES
    fan_out_concurrency: int = c.FANOUT_MAX_CONCURRENCY  # the Distributed Map's MaxConcurrency
    prepare_writers: int = 16  # prepare.WRITERS: PutObject calls in flight
    max_inline_request_bytes: int = c.MAX_REQUEST_BYTES  # above it the client stores the request in S3
    batch_write_rows: int = c.BATCH_WRITE_MAX_ITEMS
    put_entries: int = c.PUT_EVENTS_MAX_ENTRIES
    # A PutEvents call is tried 4 times, sleeping min(0.1 x 2^k, 2) s between tries.
    put_call_sleeps: tuple[float, ...] = (0.1, 0.2, 0.4)
    fanout_attempts: int = c.FANOUT_ATTEMPTS
    # BackOffBeforeResuming: max(1, ceil(u x min(60, 2 x 2^attempt))) s, u uniform in [0, 1).
    fanout_backoff: Backoff = field(default_factory=lambda: Backoff(
        base=c.FANOUT_BACKOFF_BASE_SECONDS, cap=c.FANOUT_BACKOFF_MAX_SECONDS, jitter=1.0))
    # Every Lambda task's retry of a throttled invocation (infra/components/functions.THROTTLE_RETRY):
    # 12 attempts, 1 s doubling, at most 60 s apart.
    task_throttle_retry: tuple[int, float, float] = (11, 1.0, 2.0)
    task_throttle_cap: float = 60.0
    # Reserved concurrency (infra/components/concurrency.py): each compute function's ceiling and
    # each orchestration function's floor (Emit's at least the Map's concurrency, the fan-in's at
    # least the event source mapping's).
    compute_concurrency: int = 200
    orchestration_concurrency: int = 10
    compute_max_event_age: float = 3600.0  # infra/components/compute.py: configure_async_invoke
    # Fan-in (lambda_fns/constants.py, counting.py, fan_in_consumer.py, infra/components/fan_in.py).
    esm_batch_size: int = c.FAN_IN_BATCH_SIZE
    esm_window: float = c.FAN_IN_BATCH_WINDOW_SECONDS
    esm_max_concurrency: int = c.FAN_IN_MAX_CONCURRENCY
    rows_per_transaction: int = c.TRANSACTION_MAX_ITEMS - 1
    # counting.Backoff: 8 attempts, waiting u x min(2, 0.05 x 2^attempt) after each conflict.
    conflict_backoff: Backoff = field(default_factory=lambda: Backoff(base=0.05, cap=2.0, jitter=1.0))
    conflict_attempts: int = 8
    # A batch item failure is offered again after 2 s doubling with each receive, at most 300 s
    # (fan_in_consumer.RETRY_DELAY_SECONDS); after 5 receives it goes to the dead-letter queue.
    retry_delay: tuple[float, float] = (2.0, 300.0)
    max_receives: int = c.FAN_IN_MAX_RECEIVES
    visibility_timeout: float = 6.0 * c.FAN_IN_CONSUMER_TIMEOUT_SECONDS  # a batch whose consumer never ran
    # A throttled event source mapping invocation is retried, assumed up to a minute apart,
    # until the messages' retention (4 days) runs out.
    esm_retry: tuple[int, float, float] = (6_000, 1.0, 2.0)
    esm_retry_cap: float = 60.0
    # Memory (infra/components: python_function's 256 MB unless set).
    compute_memory_mb: int = 256
    emit_memory_mb: int = 256
    prepare_memory_mb: int = 3008
    summary_memory_mb: int = 1769
    consumer_memory_mb: int = 256
    count_batch_memory_mb: int = 256
    # State transitions (Standard), from infra/components/fan_out.py. PreProcess, a new request that
    # completes before its deadline: Redrive?, Prepare, OpenRequest, FanOut, KeepRequestRef,
    # NextClaimSlot, AwaitDeadline; at the deadline ClaimTimeout (its condition fails: the request
    # is closed), ReadRequestStatus, ClaimHeld?, FanOutFailed?, RequestClosed.
    preprocess_transitions_before_map: int = 3
    preprocess_transitions_after_map: int = 3
    preprocess_transitions_at_deadline: int = 5
    # A chunk's child execution: the start Step Functions charges (quotas.SFN_TRANSITIONS), then
    # EmitChunk and ChunkPending?; once done ChunkOutcome? and ChunkEmitted (or ChunkLost); each
    # resume BackOffBeforeResuming, EmitChunk and ChunkPending? again.
    child_start_transitions: int = 1
    child_emit_transitions: int = 2
    child_end_transitions: int = 2
    child_resume_transitions: int = 3
    # PreProcess's history when the request completes (it then waits for its deadline):
    # ExecutionStarted, Redrive?'s 2 events, Prepare's and OpenRequest's 5 each, the Map's 4
    # (MapStateEntered, MapRunStarted, MapRunSucceeded, MapStateExited), KeepRequestRef's and
    # NextClaimSlot's 2 each, and AwaitDeadline's WaitStateEntered: 22, as `fanflow run --json`
    # measures it at 1,000 to 100,000 cases (docs/embedded-engine.md).
    history_events: int = 22
    # Express Increment: CountBatch, SummarizeFinished (a Map over the batch's claims) and Counted;
    # the claiming batch adds ClaimSummary and StartSummary.
    express_states: int = 3
    express_claim_states: int = 2


DESIGN = FanflowDesign()


def fan_out_concurrency(inputs: PlanInputs, design: FanflowDesign = DESIGN) -> int:
    return design.fan_out_concurrency if inputs.fan_out_concurrency is None else inputs.fan_out_concurrency


def reserved_concurrency(inputs: PlanInputs, design: FanflowDesign = DESIGN) -> dict[str, int]:
    """Each function's reserved concurrency as infra/stack.py sets it for these inputs."""
    compute = design.compute_concurrency if inputs.compute_reserved is None else inputs.compute_reserved
    floor = (design.orchestration_concurrency if inputs.orchestration_reserved is None
             else inputs.orchestration_reserved)
    reserved: dict[str, int] = {}
    if compute:
        reserved.update(dict.fromkeys((COMPUTE, COMPUTE_LARGE, WORKFLOW_STEP), compute))
    if floor:
        fan_in = max(floor, design.esm_max_concurrency)
        reserved.update({PREPARE: floor, LIFECYCLE: floor, EMIT: max(floor, fan_out_concurrency(inputs, design)),
                         SUMMARY: floor, CONSUMER: fan_in, COUNT_BATCH: fan_in})
    return reserved


def run(world: World, design: FanflowDesign = DESIGN) -> None:
    inputs, env = world.inputs, world.env
    cases, usage = inputs.cases, world.usage
    a = inputs.a
    concurrency = fan_out_concurrency(inputs, design)
    chunks = keys.chunk_count(cases, design.chunk_cases)
    shards = keys.shard_count(cases, chunk_cases=design.chunk_cases, fan_out_concurrency=concurrency)
    spread = a("ddb.shards.spread")
    start = world.quota_bucket("sfn.standard.start", "StartExecution (Standard)")
    express = world.quota_bucket("sfn.express.start", "StartSyncExecution (Express)")
    transitions = world.quota_bucket("sfn.transitions", "state transitions (Standard)")
    put_events = world.rate_bucket("eb.putevents.rate", "PutEvents requests")
    invocations = world.rate_bucket("eb.invocations.rate", "EventBridge target invocations")
    counter_wcu = world.rate_bucket("ddb.partition.wcu", "the counter item's write throughput",
                                    what=" write units on one item")
    counter_rcu = world.rate_bucket("ddb.partition.rcu", "the counter item's read throughput",
                                    what=" read units on one item (consistent reads: 1 each)")
    results_wcu = world.rate_bucket("ddb.partition.wcu", "the results shards: writes", scale=shards * spread,
                                    what=f" write units over {shards:,} shard(s) of the request")
    results_rcu = world.rate_bucket("ddb.partition.rcu", "the results shards: reads", scale=shards * spread,
                                    what=f" read units over {shards:,} shard(s) of the request")
    counter_item = ItemLock()
    conflicts = world.limit("counter row: transaction conflicts",
                            f"one transaction at a time on the counter item; a concurrent one is cancelled "
                            f"(TransactionConflict) and retried after up to {design.conflict_backoff.base:g}-"
                            f"{design.conflict_backoff.cap:g} s", QUOTAS["ddb.transaction.items"].source)
    state = a("sfn.standard.state")
    target = [cases]  # lowered by the cases a chunk gives up
    lost = [0]  # cases the fan-out gave up
    lost_why: list[str] = []
    dropped = [0]  # events dropped from Compute's queue after its maximum event age
    world.history_events = design.history_events
    usage.sfn_transitions += design.preprocess_transitions_at_deadline
    usage.ddb_write_units += 1  # ClaimTimeout at the deadline: a failed conditional write costs a unit
    usage.ddb_read_units += 1  # ReadRequestStatus, consistent

    # Fan-in: the queue and its event source mapping -------------------------------------
    queue: deque[list[float]] = deque()  # [visible since, messages, receives so far]
    queue_size = [0]
    arrived = env.event()
    summary_claimed = [False]

    def enqueue(n: int, *, receives: int = 0) -> None:
        queue.append([env.now, float(n), float(receives)])
        queue_size[0] += n
        if not receives:
            usage.sqs_requests += n  # one SendMessage per completion (the rule's SQS target)
        if not arrived.triggered:
            arrived.succeed()

    def summary_seconds() -> float:
        """Summary: the counter row, every results row shard by shard (consistent Query pages of
        1 MB, one shard at a time, so one partition's reads at a time), the manifest up to
        10,000 cases, the parts of 100,000 lines, the summary, its close and its event."""
        rows_bytes = cases * a("ddb.result.row.bytes")
        per_shard = rows_bytes / shards
        pages = shards * max(1, math.ceil(per_shard / 1_000_000))
        read_units = shards * math.ceil(per_shard / 4096)
        usage.ddb_read_units += read_units + 1
        usage.ddb_write_units += 2  # the close, then publishedAt
        # Parts of every case's line, and of the cases that did not succeed (dropped: FAILED; lost: NOT_EMITTED).
        parts = math.ceil(cases / c.RESULTS_PART_LINES) + math.ceil((dropped[0] + lost[0]) / c.RESULTS_PART_LINES)
        usage.s3_puts += parts + 1
        manifest = cases <= c.SUMMARY_INLINE_CASES or lost[0] > 0  # the request's order, or the cases without a row
        usage.s3_gets += manifest
        usage.eb_events += 1
        put = world.take(put_events, 1, "summary")
        # Reading a shard is paced by its partition's 3,000 RCU/s when that is slower than the pages' latency.
        read_rate = inputs.q("ddb.partition.rcu") * spread
        paced = read_units / read_rate
        latency = pages * a("ddb.read")
        if paced > latency:
            world.limit("a results shard: Summary's reads",
                        f"{read_rate:,.0f}/s read units on the shard Summary is reading (it reads one at a time)",
                        QUOTAS["ddb.partition.rcu"].source).add("summary", paced - latency, 1)
        return (a("ddb.read") + max(paced, latency) + cases * a("summary.row.seconds") + manifest * a("s3.get")
                + (parts + 1) * a("s3.put") + 2 * a("ddb.write") + put + a("eb.putevents.call"))

    summary = AsyncQueue(world, SUMMARY, design.summary_memory_mb, phase="summary", run_seconds=summary_seconds,
                         on_done=lambda n: world.mark("summaryWritten"))

    def claim_and_summarize() -> Generator[Any, Any, None]:
        """ClaimSummary (a conditional write on the counter row), then Summary asynchronously."""
        summary_claimed[0] = True
        world.mark("lastCounted")
        usage.ddb_write_units += 1
        yield env.timeout(world.take(counter_wcu, 1, "summary") + a("ddb.write") + a("lambda.invoke"))
        summary.submit(1)

    def count_batch(n: int) -> Generator[Any, Any, None]:
        """CountBatch for one request's batch of n (at most 99): one consistent BatchGetItem of the
        rows and the counter row, one transaction (retried on a conflict), a GetItem."""
        usage.ddb_read_units += n + 1
        wait = world.take_max([(results_rcu, n), (counter_rcu, 1)], "count", cases=n)
        yield env.timeout(wait + math.ceil((n + 1) / c.BATCH_GET_MAX_KEYS) * a("ddb.read"))
        left = n
        while left:
            rows = min(left, design.rows_per_transaction)
            duration = a("ddb.transaction.base") + a("ddb.transaction.per.item") * (rows + 1)
            for attempt in range(1, design.conflict_attempts + 1):
                if counter_item.try_transact(env.now, duration):
                    usage.ddb_write_units += 2 * (rows + 1)
                    wait = world.take_max([(counter_wcu, 2), (results_wcu, 2 * rows)], "count", cases=rows)
                    yield env.timeout(wait + duration)
                    world.counted.add(env.now, rows)
                    break
                delay = design.conflict_backoff.delay(attempt, world.rng.random())
                conflicts.add("count", rows * delay, 1)
                yield env.timeout(delay)
            else:
                raise BatchFailed(left, f"CountBatch gave up after {design.conflict_attempts} transaction conflicts")
            left -= rows
        usage.ddb_read_units += 1  # GetItem of the counter row, consistent
        yield env.timeout(world.take(counter_rcu, 1, "count") + a("ddb.read"))

    def give_back(n: int, receives: int, delay: float, reason: str) -> None:
        """A batch's messages that were not counted: offered again after `delay`, or dead-lettered
        after their last receive (the request then waits for its deadline)."""
        if receives >= design.max_receives:
            world.failure = (f"{n} completion(s) went to the dead-letter queue after {design.max_receives} "
                             f"receives ({reason}): the request closes TIMED_OUT at its deadline")
            return
        world.notes.append(f"fan-in batches were not counted and were offered again ({reason})")
        world.at(delay, lambda: enqueue(n, receives=receives))

    def consume(n: int, receives: int, pollers: simpy.Resource, slot: Any) -> Generator[Any, Any, None]:
        def consumer() -> Generator[Any, Any, None]:
            yield env.timeout(world.take(express, 1, "count") + a("sfn.start"))
            began = env.now
            try:
                yield from world.invoke_sync(COUNT_BATCH, design.count_batch_memory_mb, lambda: count_batch(n),
                                             "count", retry=design.task_throttle_retry,
                                             cap=design.task_throttle_cap)
                yield env.timeout(design.express_states * a("sfn.express.state"))
                if world.counted.total >= target[0] and not summary_claimed[0]:
                    yield env.timeout(design.express_claim_states * a("sfn.express.state"))
                    yield from claim_and_summarize()
            finally:
                usage.express_run(1, env.now - began, a("sfn.express.memory.mb"))
        try:
            yield from world.invoke_sync(CONSUMER, design.consumer_memory_mb, consumer, "count",
                                         retry=design.esm_retry, cap=design.esm_retry_cap)
            usage.sqs_requests += math.ceil(n / 10)  # DeleteMessageBatch
        except BatchFailed as exc:
            # The batch's uncounted messages are batch item failures: the consumer shortens their
            # visibility to 2 s doubling with each receive.
            delay = min(design.retry_delay[1], design.retry_delay[0] * 2 ** (receives - 1))
            usage.sqs_requests += exc.left + math.ceil((n - exc.left) / 10)  # ChangeMessageVisibility, delete
            conflicts.add("count", exc.left * delay, 1)
            give_back(exc.left, receives, delay, str(exc))
        except Throttled as exc:
            # CountBatch (or the consumer) never ran: the messages come back after the visibility timeout.
            world.concurrency_limit.add("count", n * design.visibility_timeout, 1)
            give_back(n, receives, design.visibility_timeout, str(exc))
        finally:
            pollers.release(slot)

    def event_source_mapping() -> Generator[Any, Any, None]:
        nonlocal arrived
        pollers = simpy.Resource(env, capacity=design.esm_max_concurrency)
        esm = world.limit("SQS event source mapping",
                          f"batches of {design.esm_batch_size}, window {design.esm_window:g} s, "
                          f"MaximumConcurrency {design.esm_max_concurrency}; starts at "
                          f"{inputs.q('lambda.esm.sqs.initial'):.0f} batches, +{inputs.q('lambda.esm.sqs.rampup'):.0f}"
                          "/min", QUOTAS["lambda.esm.sqs.rampup"].source)
        first: float | None = None
        while world.failure is None:
            if not queue_size[0]:
                arrived = env.event()
                yield arrived
            gather_start = env.now
            first = gather_start if first is None else first
            while queue_size[0] < design.esm_batch_size and gather_start + design.esm_window - env.now > 1e-9:
                arrived = env.event()
                yield arrived | env.timeout(gather_start + design.esm_window - env.now)
            # Scaling: concurrent batches start at 5 and grow by up to 300 a minute.
            initial, per_minute = inputs.q("lambda.esm.sqs.initial"), inputs.q("lambda.esm.sqs.rampup")
            if pollers.count >= initial + per_minute * (env.now - first) / 60 and pollers.count < pollers.capacity:
                grown = first + (pollers.count + 1 - initial) * 60 / per_minute
                yield env.timeout(max(0.0, grown - env.now))
            slot = pollers.request()
            yield slot
            n = min(design.esm_batch_size, queue_size[0])
            waited, left, receives = 0.0, n, 0
            while left:
                head = queue[0]
                take = min(left, int(head[1]))
                waited += take * max(0.0, env.now - head[0] - design.esm_window)
                receives = max(receives, int(head[2]))
                head[1] -= take
                left -= take
                if not head[1]:
                    queue.popleft()
            queue_size[0] -= n
            esm.add("count", waited)
            usage.sqs_requests += math.ceil(n / 10)  # ReceiveMessage, 10 per call
            yield env.timeout(a("sqs.call"))
            env.process(consume(n, receives + 1, pollers, slot))

    def reach_queue(n: int, delay: float) -> None:
        """n completion events put on the bus `delay` from now: the rule's SQS target, then the queue."""
        delay += world.take(invocations, n, "count")
        world.at(delay + a("eb.delivery") + a("sqs.call"), lambda: enqueue(n))

    # Compute -----------------------------------------------------------------------------
    def completed(n: int) -> None:
        world.computed.add(env.now, n)
        world.mark("lastComputed")
        usage.eb_events += n
        usage.ddb_read_units += n  # each case's results row, read first (consistent)
        usage.ddb_write_units += n  # and its result
        reach_queue(n, world.take_max([(results_wcu, n), (results_rcu, n), (put_events, n)], "count"))

    def expired(n: int) -> None:
        """Events Lambda dropped after Compute's maximum event age: their on-failure records go
        to the bus, and the failure rule sends them to the fan-in as FAILED completions."""
        dropped[0] += n
        usage.eb_events += n
        reach_queue(n, world.take(put_events, n * a("lambda.destination.putevents"), "count", cases=n))

    compute = AsyncQueue(world, COMPUTE, design.compute_memory_mb, on_done=completed,
                         run_seconds=lambda: (inputs.compute_seconds + a("ddb.read") + a("ddb.write")
                                              + a("eb.putevents.call")),
                         max_age=design.compute_max_event_age, on_expired=expired)

    def deliver(n: int) -> None:
        delay = world.take(invocations, n, "compute")
        world.at(delay + a("eb.delivery"), lambda: compute.submit(n))

    # Fan-out -----------------------------------------------------------------------------
    put_retry_window = sum(design.put_call_sleeps) + len(design.put_call_sleeps) * a("eb.putevents.call")

    def lose(n: int, why: str) -> None:
        """A chunk gives up n cases: the request's target drops by them; if every other case is
        counted already, the chunk's Emit claims the request and the child runs Summary."""
        lost[0] += n
        target[0] -= n
        lost_why.append(why)
        usage.ddb_write_units += n + 1  # the pending rows deleted, the counter row's target lowered
        if world.counted.total >= target[0] and not summary_claimed[0]:
            env.process(claim_and_summarize())

    def emit(n_pending: int, registered: bool, weight: float, waits: list[float],
             refused_out: list[int]) -> Generator[Any, Any, None]:
        """One Emit invocation for a chunk's `n_pending` cases not yet accepted; sets how many are
        still refused in `refused_out`. Its token delays are booked for `weight` cases and added
        to `waits`."""
        usage.s3_gets += 1  # the chunk, read by every invocation
        usage.ddb_read_units += 1  # still_running at the start
        delay = world.take(counter_rcu, 1, "fanOut", cases=weight)
        waits[0] += delay
        yield env.timeout(delay + a("s3.get") + a("ddb.read"))
        if not registered:
            rows_left = n_pending
            while rows_left:
                rows = min(design.batch_write_rows, rows_left)
                usage.ddb_write_units += rows
                delay = world.take(results_wcu, rows, "fanOut", cases=weight)
                waits[0] += delay
                yield env.timeout(delay + a("ddb.write"))
                rows_left -= rows
        refused, left = 0, n_pending
        while left:
            entries = min(design.put_entries, left)
            left -= entries
            usage.ddb_read_units += 1  # still_running before the call
            delay = world.take(counter_rcu, 1, "fanOut", cases=weight)
            put = world.take_within(put_events, 1, "fanOut", within=put_retry_window, cases=weight)
            if put is None:  # throttled on each of its tries: the entries stay pending
                waits[0] += delay + put_retry_window
                yield env.timeout(delay + a("ddb.read") + put_retry_window)
                refused += entries
                continue
            waits[0] += delay + put
            yield env.timeout(delay + a("ddb.read") + put + a("eb.putevents.call"))
            usage.eb_events += entries
            deliver(entries)
        refused_out[0] = refused

    chunk_slots = world.limit("Distributed Map concurrency",
                              f"{concurrency} chunks' child executions at once (FanOut's MaxConcurrency; "
                              f"a Map Run may run {inputs.q('sfn.map.distributed.children'):,.0f})",
                              QUOTAS["sfn.map.distributed.children"].source)
    child_starts = a("sfn.map.child.start.tokens")

    def child(index: int) -> Generator[Any, Any, None]:
        """One chunk's Standard child execution: EmitChunk until nothing is pending, resuming
        after a backoff, giving up what is still refused after the last attempt."""
        n = min(design.chunk_cases, cases - index * design.chunk_cases)
        # The cases not yet emitted wait while this chunk goes through, a slot's share of them:
        # on its token delays (booked to their limits as they occur) and, for the cases of the
        # chunks that find no slot while it runs, on its own latencies (booked to the Map's
        # concurrency).
        weight = (cases - index * design.chunk_cases) / concurrency
        queued = max(0, cases - (index + concurrency) * design.chunk_cases) / concurrency
        began, waits = env.now, [0.0]

        def step(count: int, latency: float = 0.0) -> Generator[Any, Any, None]:
            usage.sfn_transitions += count
            delay = world.take(transitions, count, "fanOut", cases=weight)
            waits[0] += delay
            yield env.timeout(delay + count * state + latency)

        if child_starts:
            delay = world.take(start, child_starts, "fanOut", cases=weight)
            waits[0] += delay
            yield env.timeout(delay)
        yield from step(design.child_start_transitions, a("sfn.start"))
        pending, registered = n, False
        for attempt in range(design.fanout_attempts):
            if attempt:
                wait = max(1, math.ceil(design.fanout_backoff.delay(attempt, world.rng.random())))
                yield from step(design.child_resume_transitions - design.child_emit_transitions, wait)
            yield from step(design.child_emit_transitions)
            refused = [pending]
            try:
                yield from world.invoke_sync(
                    EMIT, design.emit_memory_mb, functools.partial(emit, pending, registered, weight, waits, refused),
                    "fanOut", retry=design.task_throttle_retry, cap=design.task_throttle_cap)
            except Throttled as exc:
                lose(pending, f"chunk {index}: Emit {exc}, and AbandonChunk gave it up")
                break
            registered, pending = True, refused[0]
            if not pending:
                break
        else:
            lose(pending, f"chunk {index}: entries still refused after {design.fanout_attempts} attempts")
        yield from step(design.child_end_transitions)
        chunk_slots.add("fanOut", queued * max(0.0, env.now - began - waits[0]))

    def fan_out() -> Generator[Any, Any, None]:
        """FanOut: the Map runs `concurrency` children at once, starting the next as one ends."""
        next_chunk = [0]

        def slot() -> Generator[Any, Any, None]:
            while next_chunk[0] < chunks and world.failure is None:
                index = next_chunk[0]
                next_chunk[0] += 1
                yield from child(index)

        yield simpy.AllOf(env, [env.process(slot()) for _ in range(min(concurrency, chunks))])

    def preprocess() -> Generator[Any, Any, None]:
        yield env.timeout(world.take(start, 1, "fanOut") + a("sfn.start"))
        usage.sfn_transitions += design.preprocess_transitions_before_map
        yield env.timeout(world.take(transitions, 1, "fanOut") + state)  # Redrive?: a new request

        def prepare() -> Generator[Any, Any, None]:
            by_reference = cases * a("request.case.bytes") > design.max_inline_request_bytes
            usage.s3_puts += chunks + 1 + by_reference  # chunks, manifest (and the client's copy of the request)
            usage.s3_gets += by_reference
            writes = math.ceil((chunks + 1) / design.prepare_writers)
            yield env.timeout(by_reference * a("s3.get") + writes * a("s3.put"))
        yield env.timeout(world.take(transitions, 1, "fanOut") + state)  # the Prepare task
        yield from world.invoke_sync(PREPARE, design.prepare_memory_mb, prepare, "fanOut",
                                     retry=design.task_throttle_retry, cap=design.task_throttle_cap)
        usage.ddb_write_units += 1  # OpenRequest
        yield env.timeout(world.take_max([(transitions, 1), (counter_wcu, 1)], "fanOut") + state + a("ddb.write"))
        usage.sfn_transitions += 1  # FanOut, the Map state itself
        yield env.timeout(world.take(transitions, 1, "fanOut") + state)
        yield from fan_out()
        if world.failure is None:
            world.mark("fanOutDone")
        usage.sfn_transitions += design.preprocess_transitions_after_map

    env.process(preprocess())
    env.process(event_source_mapping())
    env.run()
    # Pollers waiting on an empty queue long-poll (20 s a call): a few calls while the request runs.
    usage.sqs_requests += math.ceil(inputs.q("lambda.esm.sqs.initial") * env.now / 20)
    if lost[0]:
        world.notes.append(f"the fan-out gave up {lost[0]:,} case(s) (first {lost_why[0]}): the request closes "
                           "FAILED once the emitted cases are counted")
    if dropped[0]:
        world.notes.append(f"{dropped[0]:,} case(s) waited in Compute's queue longer than its maximum event age "
                           f"({design.compute_max_event_age / 3600:g} h) and were dropped: Lambda reports them, "
                           "and they count as FAILED")
    world.dropped, world.lost = dropped[0], lost[0]
