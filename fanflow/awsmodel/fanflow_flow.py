"""fanflow's design with the batched fan-in, service by service: PreProcess (Standard) runs
Prepare, OpenRequest and an inline Map (40 at a time) over batches of 100 cases, each an
Emit invocation that writes the batch's pending results rows and puts its events ten per
call; each event invokes Compute asynchronously, which writes its results row and puts
one completion; a rule sends completions to an SQS queue; an event source mapping hands
batches to a consumer that runs the Express Increment workflow synchronously: CountBatch
reads the batch's rows and counts them in one transaction per request on the counter row
(retried on conflict), then a GetItem; the batch that reaches the target claims the
summary and invokes Summary asynchronously."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from local.aws_limits.primitives import Backoff, ItemLock
from local.aws_limits.quotas import QUOTAS
from .world import AsyncQueue, Throttled, World, history_point

PREPARE, EMIT, COMPUTE = "fanflow.Prepare", "fanflow.Emit", "fanflow.Compute"
CONSUMER, COUNT_BATCH, SUMMARY = "fanflow.CountConsumer", "fanflow.CountBatch", "fanflow.Summary"


class BatchFailed(Exception):
    """A counting batch failed part-way: `left` of its messages were not counted."""

    def __init__(self, left: int, reason: str) -> None:
        super().__init__(reason)
        self.left = left


@dataclass(frozen=True)
class FanflowDesign:
    fanout_batch: int = 100  # cases per Emit (lambda_fns/constants.FANOUT_BATCH_SIZE)
    map_concurrency: int = 40  # constants.FANOUT_MAX_CONCURRENCY
    manifest_chunk: int = 1000  # cases per S3 object Prepare writes
    prepare_put_parallelism: int = 10  # S3 PUTs Prepare has in flight (a thread pool; assumed)
    batch_write_rows: int = 25  # BatchWriteItem's limit
    esm_batch_size: int = 100
    esm_window: float = 1.0  # MaximumBatchingWindowInSeconds
    esm_max_concurrency: int = 10  # ScalingConfig.MaximumConcurrency
    rows_per_transaction: int = 99  # TransactWriteItems' 100 items less the counter row
    # CountBatch's backoff on a conflict: capped exponential with full jitter.
    conflict_backoff: Backoff = field(default_factory=lambda: Backoff(base=0.05, cap=1.0, jitter=1.0))
    conflict_attempts: int = 10
    emit_retry: tuple[int, float, float] = (3, 1.0, 2.0)  # EmitBatch's Retry: 3 more, 1 s, x2
    task_retry: tuple[int, float, float] = (6, 2.0, 2.0)  # other Lambda tasks
    # A throttled batch stays in the queue and is received again: retried, assumed up to a
    # minute apart, until its messages' retention runs out (4 days by default).
    esm_retry: tuple[int, float, float] = (6_000, 1.0, 2.0)
    esm_retry_cap: float = 60.0
    visibility_timeout: float = 60.0  # the count queue's (assumed: the fan-in is not deployed yet)
    # Memory of each function: infra/components (Compute 256, Emit 256, Prepare 512, Summary
    # 1024); the two fan-in functions are not deployed yet and assumed small.
    compute_memory_mb: int = 256
    emit_memory_mb: int = 256
    prepare_memory_mb: int = 512
    summary_memory_mb: int = 1024
    consumer_memory_mb: int = 256
    count_batch_memory_mb: int = 512
    # PreProcess history: ExecutionStarted, Prepare's and OpenRequest's 5 events each,
    # MapStateEntered and MapStateStarted; 7 per Map iteration (one per batch).
    history_before: int = 13
    history_per_batch: int = 7
    # Standard transitions besides one EmitBatch per batch: Prepare, OpenRequest, FanOut,
    # KeepRequestRef, AwaitDeadline, then ClaimTimeout and CompletedBeforeDeadline.
    preprocess_transitions: int = 7
    express_states: int = 3  # CountBatch, ReadCounter, Reached?; + ClaimSummary, RunSummary once


def run(world: World, design: FanflowDesign = FanflowDesign()) -> None:
    inputs, env = world.inputs, world.env
    cases, usage = inputs.cases, world.usage
    a = inputs.a
    batches = math.ceil(cases / design.fanout_batch)
    start = world.quota_bucket("sfn.standard.start", "StartExecution (Standard)")
    express = world.quota_bucket("sfn.express.start", "StartSyncExecution (Express)")
    transitions = world.quota_bucket("sfn.transitions", "state transitions (Standard)")
    put_events = world.rate_bucket("eb.putevents.rate", "PutEvents requests")
    invocations = world.rate_bucket("eb.invocations.rate", "EventBridge target invocations")
    counter_wcu = world.rate_bucket("ddb.partition.wcu", "the counter item's write throughput",
                                    what=" write units on one item")
    partitions = a("ddb.results.partitions")
    results_wcu = world.rate_bucket("ddb.partition.wcu", "the results rows' partition: writes", scale=partitions,
                                    what=f" write units on {partitions:g} partition(s) (one requestId)")
    results_rcu = world.rate_bucket("ddb.partition.rcu", "the results rows' partition: reads", scale=partitions,
                                    what=f" read units on {partitions:g} partition(s)")
    counter_item = ItemLock()
    conflicts = world.limit("counter row: transaction conflicts",
                            f"one transaction at a time on the counter item; a concurrent one is cancelled "
                            f"(TransactionConflict) and retried after {design.conflict_backoff.base:g}-"
                            f"{design.conflict_backoff.cap:g} s", QUOTAS["ddb.transaction.items"].source)
    state = a("sfn.standard.state")
    usage.sfn_transitions += design.preprocess_transitions
    map_progress: list[tuple[float, int]] = [(0.0, 0)]

    # Fan-in: the queue and its event source mapping -------------------------------------
    queue: deque[list[float]] = deque()  # [sent at, messages]
    queue_size = [0]
    arrived = env.event()
    summary_claimed = [False]
    taken = [0]  # messages handed to a batch

    def enqueue(n: int, *, again: bool = False) -> None:
        queue.append([env.now, float(n)])
        queue_size[0] += n
        if not again:
            usage.sqs_requests += n  # one SendMessage per completion (the rule's SQS target)
        if not arrived.triggered:
            arrived.succeed()

    def summary_seconds() -> float:
        rows_bytes = cases * a("ddb.result.row.bytes")
        pages = math.ceil(rows_bytes / 1_000_000)
        read_units = math.ceil(rows_bytes / 4096) / 2  # eventually consistent Query
        usage.ddb_read_units += read_units + 1
        usage.ddb_write_units += 1
        usage.s3_gets += 1
        usage.s3_puts += 1
        usage.eb_events += 1
        wait = world.take(results_rcu, read_units, "summary", cases=1)
        return wait + pages * a("ddb.read") + a("s3.get") + a("s3.put") + a("ddb.write") + a("eb.putevents.call")

    summary = AsyncQueue(world, SUMMARY, design.summary_memory_mb, phase="summary", run_seconds=summary_seconds,
                         on_done=lambda n: world.mark("summaryWritten"))

    def count_batch(n: int) -> Generator[Any, Any, None]:
        # BatchGetItem, consistent, 100 keys per call.
        reads = math.ceil(n / 100)
        usage.ddb_read_units += n
        yield env.timeout(world.take(results_rcu, n, "count") + reads * a("ddb.read"))
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
        yield env.timeout(a("ddb.read"))

    def consume(n: int, pollers: simpy.Resource, slot: Any) -> Generator[Any, Any, None]:
        def consumer() -> Generator[Any, Any, None]:
            yield env.timeout(world.take(express, 1, "count") + a("sfn.start"))
            began = env.now
            yield from world.invoke_sync(COUNT_BATCH, design.count_batch_memory_mb, lambda: count_batch(n), "count",
                                         retry=design.task_retry)
            yield env.timeout(design.express_states * a("sfn.express.state"))
            if world.counted.total >= cases and not summary_claimed[0]:
                summary_claimed[0] = True
                world.mark("lastCounted")
                usage.ddb_write_units += 1  # ClaimSummary
                yield env.timeout(world.take(counter_wcu, 1, "summary") + a("ddb.write") + a("lambda.invoke"))
                summary.submit(1)
            usage.express_run(1, env.now - began, a("sfn.express.memory.mb"))
        try:
            yield from world.invoke_sync(CONSUMER, design.consumer_memory_mb, consumer, "count",
                                         retry=design.esm_retry, cap=design.esm_retry_cap)
            usage.sqs_requests += math.ceil(n / 10)  # DeleteMessageBatch
        except (Throttled, BatchFailed) as exc:
            # The Express execution failed: the batch's messages come back after the queue's
            # visibility timeout, and the rows not yet counted are counted then.
            left = exc.left if isinstance(exc, BatchFailed) else n
            world.notes.append(f"fan-in batches failed and were received again after {design.visibility_timeout:g} s "
                               f"({exc})")
            limit = conflicts if isinstance(exc, BatchFailed) else world.concurrency_limit
            limit.add("count", left * design.visibility_timeout, 1)
            taken[0] -= left
            world.at(design.visibility_timeout, lambda: enqueue(left, again=True))
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
        while taken[0] < cases and world.failure is None:
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
            waited, left = 0.0, n
            while left:
                head = queue[0]
                take = min(left, int(head[1]))
                waited += take * max(0.0, env.now - head[0] - design.esm_window)
                head[1] -= take
                left -= take
                if not head[1]:
                    queue.popleft()
            queue_size[0] -= n
            esm.add("count", waited)
            usage.sqs_requests += math.ceil(n / 10)  # ReceiveMessage, 10 per call
            taken[0] += n
            yield env.timeout(a("sqs.call"))
            env.process(consume(n, pollers, slot))

    # Compute -----------------------------------------------------------------------------
    def completed(n: int) -> None:
        world.computed.add(env.now, n)
        world.mark("lastComputed")
        usage.eb_events += n
        usage.ddb_write_units += n  # each case's results row
        delay = world.take_max([(results_wcu, n), (put_events, n)], "count")
        delay += world.take(invocations, n, "count")
        world.at(delay + a("eb.delivery") + a("sqs.call"), lambda: enqueue(n))

    compute = AsyncQueue(world, COMPUTE, design.compute_memory_mb, on_done=completed,
                         run_seconds=lambda: inputs.compute_seconds + a("ddb.write") + a("eb.putevents.call"))

    def deliver(n: int) -> None:
        delay = world.take(invocations, n, "compute")
        world.at(delay + a("eb.delivery"), lambda: compute.submit(n))

    # Fan-out -----------------------------------------------------------------------------
    def emit(n: int, weight: float, waited: list[float]) -> Generator[Any, Any, None]:
        """One Emit run; its token delays are booked for `weight` cases and summed in `waited`."""
        yield env.timeout(a("s3.get"))
        usage.s3_gets += 1
        for _ in range(math.ceil(n / design.batch_write_rows)):
            rows = min(design.batch_write_rows, n)
            usage.ddb_write_units += rows
            delay = world.take(results_wcu, rows, "fanOut", cases=weight)
            waited[0] += delay
            yield env.timeout(delay + a("ddb.write"))
        sent = 0
        while sent < n:
            entries = min(10, n - sent)
            delay = world.take(put_events, 1, "fanOut", cases=weight)
            waited[0] += delay
            yield env.timeout(delay + a("eb.putevents.call"))
            usage.eb_events += entries
            sent += entries
            deliver(entries)

    next_batch = [0]
    slots = world.limit("inline Map concurrency", f"{design.map_concurrency} Emit iterations at once "
                        "(FanOut's MaxConcurrency)", QUOTAS["sfn.map.inline.concurrency"].source)

    def map_slot() -> Generator[Any, Any, None]:
        while next_batch[0] < batches and world.failure is None:
            index = next_batch[0]
            next_batch[0] += 1
            n = min(design.fanout_batch, cases - index * design.fanout_batch)
            # The cases not yet emitted wait on this slot's iteration: a share of them, one slot
            # of 40, waits on its token delays and on its latency (the Map's concurrency).
            weight = (cases - index * design.fanout_batch) / design.map_concurrency
            began, waited = env.now, [0.0]
            usage.sfn_transitions += 1
            waited[0] += world.take(transitions, 1, "fanOut", cases=weight)
            yield env.timeout(waited[0] + state)
            try:
                yield from world.invoke_sync(EMIT, design.emit_memory_mb, functools.partial(emit, n, weight, waited),
                                             "fanOut", retry=design.emit_retry)
            except Throttled as exc:
                world.failure = (f"fan-out aborted at batch {index + 1} of {batches}: Emit {exc} (the Map fails, "
                                 "the request times out at its deadline)")
                return
            slots.add("fanOut", weight * (env.now - began - waited[0]))
            map_progress.append((env.now, len(map_progress)))

    def preprocess() -> Generator[Any, Any, None]:
        yield env.timeout(world.take(start, 1, "fanOut") + a("sfn.start"))

        def prepare() -> Generator[Any, Any, None]:
            chunks = math.ceil(cases / design.manifest_chunk)
            usage.s3_puts += chunks + 1
            yield env.timeout(math.ceil(chunks / design.prepare_put_parallelism) * a("s3.put") + a("s3.put"))
        yield from world.invoke_sync(PREPARE, design.prepare_memory_mb, prepare, "fanOut", retry=design.task_retry)
        yield env.timeout(world.take(transitions, 2, "fanOut") + 2 * state + a("ddb.write"))  # OpenRequest
        usage.ddb_write_units += 1
        world.take(counter_wcu, 1, "fanOut")
        workers = [env.process(map_slot()) for _ in range(min(design.map_concurrency, batches))]
        yield simpy.AllOf(env, workers)
        if world.failure is None:
            world.mark("fanOutDone")

    env.process(preprocess())
    env.process(event_source_mapping())
    env.run()
    # Pollers waiting on an empty queue long-poll (20 s a call): a few calls while the request runs.
    usage.sqs_requests += math.ceil(inputs.q("lambda.esm.sqs.initial") * env.now / 20)
    map_progress.sort()
    progress = [(t, i) for i, (t, _) in enumerate(map_progress)]
    world.history = history_point(progress, design.history_before, design.history_per_batch,
                                  int(inputs.q("sfn.history.events")), unit=design.fanout_batch)
