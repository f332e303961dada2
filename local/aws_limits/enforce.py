"""The embedded emulator under one Region's published limits, in real time (`--aws-limits
REGION` on `fanflow run`, `fanflow up` and `fanflow bench`): the quotas of quotas.py, the
latencies of assumptions.py and the primitives of primitives.py, the same ones `fanflow plan`'s
simulation runs on, enforced on the monotonic clock where the engine's calls pass
(local/moto_patches/limits.py, adaptation 27, and the runtime's Lambda and EventBridge paths).

What is enforced, and how a call over a limit behaves:
- Token buckets: StartExecution (Standard; Express and StartSyncExecution), Standard state
  transitions, PutEvents requests, EventBridge target invocations, and each DynamoDB
  partition's 1,000 write units a second (a partition is a table's partition key value: a
  request's counter row, one shard of its results). A call over a bucket waits until the
  bucket covers it, as a caller that retries its throttled calls sees the same rate (the
  plan's buckets do the same: primitives.TokenBucket.reserve).
- Latencies: every call takes at least its assumed latency (a PutEvents call, a DynamoDB read
  or write, a transaction for its items, an SQS call, an S3 GET or PUT), each state transition
  its own, a Lambda invocation its start (a cold start for each new execution environment),
  an execution its start, an EventBridge delivery its delay. What the engine spends itself
  counts towards it: a call already slower than its latency waits no more.
- Lambda: the account's concurrency with each function's reserved concurrency (read from the
  deployed functions) and each function's scaling rate (primitives.ConcurrencyPool). An
  asynchronous invocation waits in its function's queue, read as the plan reads it
  (fanflow/awsmodel/world.AsyncQueue): a read that finds no concurrency retries after an
  interval that starts at 1 s and doubles up to 5 minutes, jittered. A synchronous invocation
  over the limit retries after 1 s, doubling up to a minute, until it runs (its caller's retries;
  the plan gives up after the caller's count, which no check here reaches).
- DynamoDB transactions hold their items for their duration: a transaction on an item another
  one holds is cancelled with TransactionConflict (transaction-apis.html), which the counting
  code retries as it does on AWS.

Not enforced: DynamoDB reads per partition, plain writes to an item a transaction holds, the
SQS event source's ramp-up from 5 concurrent batches, an asynchronous event's maximum age (the
plan drops an event that waits in Compute's queue longer than its hour; here it waits on), and
the quotas of the calls the client makes to watch a request (DescribeExecution, its GetItem of
the counter row): they do not bind at the sizes the emulator runs.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .assumptions import assumption
from .primitives import ConcurrencyPool, ItemLock, TokenBucket
from .quotas import quota

_BEGAN = "fanflow_limits_began"
_LATENCY = "fanflow_limits_latency"

DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
# The latency (an assumptions.py key) each call takes at least, by (service, operation);
# None: any operation of the service.
CALL_LATENCY: dict[tuple[str, str | None], str] = {
    ("events", "PutEvents"): "eb.putevents.call",
    **{("dynamodb", op): "ddb.write" for op in DYNAMODB_WRITES - {"TransactWriteItems"}},
    **{("dynamodb", op): "ddb.read" for op in DYNAMODB_READS},
    ("sqs", None): "sqs.call",
    ("s3", "PutObject"): "s3.put",
    ("s3", "GetObject"): "s3.get",
}
SYNC_RETRY_FIRST, SYNC_RETRY_CAP = 1.0, 60.0
# Transactions' item locks kept at most; beyond it, those no longer held are dropped.
_ITEM_LOCKS_KEPT = 10_000

# Set while a thread runs an invocation whose concurrency its async queue acquired already:
# whether it starts a new execution environment (a cold start).
_ADMITTED: contextvars.ContextVar[bool | None] = contextvars.ContextVar("fanflow_limits_admitted", default=None)


class LimitsError(ValueError):
    """The deployed stack cannot run under the limits asked (its reserved concurrency)."""


class Scheduler:
    """Runs callbacks at their time on one thread (each should only hand work on)."""

    def __init__(self, name: str = "fanflow-limits", *, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale  # a delay of d AWS seconds runs d * time_scale seconds later
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._wake:
            due = time.monotonic() + max(0.0, delay) * self.time_scale
            heapq.heappush(self._heap, (due, next(self._order), callback))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # a failed hand-off must not stop the others
                import logging

                logging.getLogger("fanflow.embedded").exception("a scheduled call failed")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)


@dataclass
class LimitStats:
    """What the limits did to a run: per limit, how often work waited and for how long in all."""

    waits: dict[str, list[float]] = field(default_factory=dict)  # name -> [times, seconds]
    conflicts: int = 0
    cold_starts: int = 0
    throttled_reads: int = 0

    def add(self, name: str, seconds: float) -> None:
        entry = self.waits.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def as_dict(self, pool: ConcurrencyPool | None) -> dict[str, Any]:
        waits = {name: {"times": int(n), "seconds": round(s, 3)} for name, (n, s) in sorted(self.waits.items())}
        return {"waits": waits,
                "transactionConflicts": self.conflicts, "coldStarts": self.cold_starts,
                "throttledAsyncReads": self.throttled_reads,
                "peakConcurrency": pool.peak if pool is not None else 0}


class AwsLimits:
    """One Region's limits for the whole embedded account. Thread-safe; waits sleep in the
    calling thread, never while holding the lock."""

    def __init__(self, region: str, *, lambda_concurrency: int = 1000, overrides: dict[str, float] | None = None,
                 seed: int = 0, time_scale: float = 1.0, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        """`time_scale` K > 1 runs the account K times slower than AWS would (every figure here
        is in AWS's seconds; the clock and the sleeps convert): for a machine whose CPU cannot
        keep up with AWS's pace, so that the limits, not the emulator, set the pace. The
        runtime stretches the compute time and the fan-in's batching window by K too."""
        if time_scale < 1:
            raise ValueError(f"the time scale must be 1 or more, got {time_scale}")
        self.region, self.lambda_concurrency, self.time_scale = region, lambda_concurrency, time_scale
        self.overrides = dict(overrides or {})
        self.clock: Callable[[], float] = clock or (lambda: time.monotonic() / time_scale)
        self.sleep: Callable[[float], None] = sleep or (lambda seconds: time.sleep(seconds * time_scale))
        self.rng = random.Random(seed)
        self.stats = LimitStats()
        self._lock = threading.Lock()
        now = self.clock()

        def bucket(prefix: str) -> TokenBucket:
            return TokenBucket(quota(f"{prefix}.burst", region), quota(f"{prefix}.refill", region), now)

        def per_second(key: str) -> TokenBucket:
            rate = quota(key, region)
            return TokenBucket(rate, rate, now)

        self.buckets: dict[str, TokenBucket] = {
            "StartExecution (Standard)": bucket("sfn.standard.start"),
            "StartExecution (Express)": bucket("sfn.express.start"),
            "state transitions (Standard)": bucket("sfn.transitions"),
            "PutEvents requests": per_second("eb.putevents.rate"),
            "EventBridge target invocations": per_second("eb.invocations.rate"),
        }
        self._partition_wcu = quota("ddb.partition.wcu", region)
        self._partitions: dict[tuple[str, str], TokenBucket] = {}
        self._items: dict[tuple[str, str], ItemLock] = {}
        self.pool: ConcurrencyPool | None = None
        self._queues: dict[str, AsyncInvocations] = {}
        self.scheduler: Scheduler | None = None
        # Told by the runtime once the stack is deployed (see `attach`).
        self._is_express: Callable[[str], bool] = lambda arn: False
        self._partition_key: Callable[[str], str | None] = lambda table: None
        self._express_arns: dict[str, bool] = {}
        self._hash_keys: dict[str, str | None] = {}

    # -- set-up ----------------------------------------------------------------------------
    def a(self, key: str) -> float:
        return assumption(key, self.overrides)

    def attach(self, *, reserved: dict[str, int], is_express: Callable[[str], bool],
               partition_key: Callable[[str], str | None]) -> None:
        """The deployed account: each function's reserved concurrency, whether a state machine
        is Express, and a table's partition key attribute. Raises ValueError when the
        functions reserve more than the account's concurrency allows (LimitsError)."""
        reserving = sum(reserved.values())
        if reserving + 100 > self.lambda_concurrency:
            raise LimitsError(f"the stack reserves {reserving:,} concurrent executions and Lambda keeps 100 "
                              f"unreserved: the account's concurrency must be at least {reserving + 100:,}, got "
                              f"{self.lambda_concurrency:,} (--lambda-concurrency)")
        self.pool = ConcurrencyPool(self.lambda_concurrency,
                                    scale_burst=int(quota("lambda.scaling.environments", self.region)),
                                    reserved=reserved)
        self._is_express, self._partition_key = is_express, partition_key
        self.scheduler = self.scheduler or Scheduler(time_scale=self.time_scale)

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {"region": self.region, "lambdaConcurrency": self.lambda_concurrency,
                    "timeScale": self.time_scale, **self.stats.as_dict(self.pool)}

    # -- waiting ---------------------------------------------------------------------------
    def _reserve(self, name: str, bucket: TokenBucket, n: float = 1.0) -> float:
        """Take `n` tokens; the delay until the bucket covers them (booked against `name`)."""
        with self._lock:
            now = self.clock()
            delay = bucket.reserve(n, now) - now
            if delay > 0:
                self.stats.add(name, delay)
        return max(0.0, delay)

    def _wait(self, name: str, bucket: TokenBucket, n: float = 1.0) -> None:
        delay = self._reserve(name, bucket, n)
        if delay > 0:
            self.sleep(delay)

    # -- Step Functions --------------------------------------------------------------------
    def state_entered(self, standard: bool) -> None:
        if standard:
            self._wait("state transitions (Standard)", self.buckets["state transitions (Standard)"])
        self.sleep(self.a("sfn.standard.state" if standard else "sfn.express.state"))

    def express(self, state_machine_arn: str) -> bool:
        known = self._express_arns.get(state_machine_arn)
        if known is None:
            known = self._express_arns[state_machine_arn] = bool(self._is_express(state_machine_arn))
        return known

    def start_delay(self, state_machine_arn: str, *, sync: bool = False) -> float:
        """An execution's start: its StartExecution token, then its start latency."""
        express = sync or self.express(state_machine_arn)
        name = "StartExecution (Express)" if express else "StartExecution (Standard)"
        return self._reserve(name, self.buckets[name]) + self.a("sfn.start")

    # -- API calls (adaptation 27) -----------------------------------------------------------
    def before_api_call(self, service: str, operation: str, params: dict[str, Any], context: dict[str, Any]) -> None:
        context[_BEGAN] = self.clock()
        if service == "events" and operation == "PutEvents":
            self._wait("PutEvents requests", self.buckets["PutEvents requests"])
        elif service == "stepfunctions" and operation in ("StartExecution", "StartSyncExecution"):
            self.sleep(self.start_delay(str(params.get("stateMachineArn", "")), sync=operation == "StartSyncExecution"))
            context[_BEGAN] = self.clock()
        elif service == "dynamodb" and operation in DYNAMODB_WRITES:
            writes = self._write_units(operation, params)
            for (table, value), units in writes.items():
                self._wait(f"DynamoDB partition writes ({table})", self._partition(table, value), units)
            if operation == "TransactWriteItems":
                items = len(params.get("TransactItems") or [])
                context[_LATENCY] = self.a("ddb.transaction.base") + self.a("ddb.transaction.per.item") * items
            context[_BEGAN] = self.clock()

    def after_api_call(self, service: str, operation: str, context: dict[str, Any]) -> None:
        latency = context.get(_LATENCY)
        if latency is None:
            key = CALL_LATENCY.get((service, operation)) or CALL_LATENCY.get((service, None))
            if key is None:
                return
            latency = self.a(key)
        began = context.get(_BEGAN)
        if began is None:
            return
        left = float(latency) - (self.clock() - began)
        if left > 0:
            self.sleep(left)

    def _partition(self, table: str, value: str) -> TokenBucket:
        key = (table, value)
        with self._lock:
            found = self._partitions.get(key)
            if found is None:
                found = self._partitions[key] = TokenBucket(self._partition_wcu, self._partition_wcu, self.clock())
            return found

    def _hash_key(self, table: str) -> str | None:
        if table not in self._hash_keys:
            self._hash_keys[table] = self._partition_key(table)
        return self._hash_keys[table]

    def _write_units(self, operation: str, params: dict[str, Any]) -> dict[tuple[str, str], float]:
        """Write units by (table, partition key value): 1 an item (fanflow's items are under
        1 KB), 2 an item of a transaction (prepare and commit)."""
        units: dict[tuple[str, str], float] = {}

        def add(table: Any, item: Any, n: float) -> None:
            attribute = self._hash_key(str(table))
            if attribute is None or not isinstance(item, dict) or attribute not in item:
                return
            key = (str(table), repr(item[attribute]))
            units[key] = units.get(key, 0.0) + n

        if operation == "PutItem":
            add(params.get("TableName"), params.get("Item"), 1)
        elif operation in ("UpdateItem", "DeleteItem"):
            add(params.get("TableName"), params.get("Key"), 1)
        elif operation == "BatchWriteItem":
            for table, requests in (params.get("RequestItems") or {}).items():
                for request in requests:
                    put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                    add(table, put["Item"] if put else (delete or {}).get("Key"), 1)
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems") or []:
                for op_type, op in entry.items():
                    add(op.get("TableName"), op.get("Item") if op_type == "Put" else op.get("Key"), 2)
        return units

    # -- DynamoDB transactions -----------------------------------------------------------------
    def transaction_conflict(self, items: list[tuple[str, dict[str, Any]]]) -> int | None:
        """A transaction on `items` (table name, key) starts now: the index of the first item
        another transaction still holds (it is cancelled with TransactionConflict), or None, and
        then it holds them all for its duration."""
        duration = self.a("ddb.transaction.base") + self.a("ddb.transaction.per.item") * len(items)
        keys = [(table, repr(sorted(key.items()))) for table, key in items]
        with self._lock:
            now = self.clock()
            for index, key in enumerate(keys):
                held = self._items.get(key)
                if held is not None and not held.try_write(now):
                    self.stats.conflicts += 1
                    return index
            if len(self._items) > _ITEM_LOCKS_KEPT:
                self._items = {k: lock for k, lock in self._items.items() if lock.held_until > now}
            for key in keys:
                self._items.setdefault(key, ItemLock()).try_transact(now, duration)
        return None

    # -- Lambda ------------------------------------------------------------------------------
    def enter(self, function: str) -> tuple[bool, bool]:
        """An invocation of `function` is about to run in this thread: (whether it is a cold
        start, whether this call took the execution and must `release` it). One its async queue
        admitted has its execution already; a synchronous one waits for it here."""
        admitted = _ADMITTED.get()
        if admitted is not None:
            return admitted, False
        return self.acquire(function), True

    def started(self, cold: bool, *, since: float) -> None:
        """The invocation's start takes its assumed latency (a cold start's for a new execution
        environment), counting what the engine spent since `since` (importing the handler)."""
        left = self.a("lambda.invoke") + (self.a("lambda.cold.start") if cold else 0.0) - (self.clock() - since)
        if left > 0:
            self.sleep(left)

    def acquire(self, function: str) -> bool:
        """An execution of `function` for a synchronous invocation, retrying as its caller does
        while there is none; whether it is a new execution environment."""
        assert self.pool is not None, "attach() first"
        attempt = 0
        while True:
            with self._lock:
                started, cold = self.pool.try_acquire(function, 1, self.clock())
                self.stats.cold_starts += cold
            if started:
                break
            attempt += 1
            wait = min(SYNC_RETRY_CAP, SYNC_RETRY_FIRST * 2 ** (attempt - 1))
            with self._lock:
                self.stats.add("Lambda concurrency", wait)
            self.sleep(wait)
        return bool(cold)

    def release(self, function: str) -> None:
        assert self.pool is not None
        with self._lock:
            self.pool.release(function, 1)

    def async_queue(self, function: str, run: Callable[[Callable[[], None]], None]) -> AsyncInvocations:
        """`function`'s asynchronous invocation queue; `run(job)` hands a job to a thread."""
        with self._lock:
            queue = self._queues.get(function)
            if queue is None:
                queue = self._queues[function] = AsyncInvocations(self, function, run)
            return queue

    # -- EventBridge -----------------------------------------------------------------------------
    def delivery_delay(self, target_arn: str) -> float:
        """Until a rule's target is invoked: its invocation token, the delivery's latency, and for
        a state machine its StartExecution token and start."""
        delay = self._reserve("EventBridge target invocations", self.buckets["EventBridge target invocations"])
        delay += self.a("eb.delivery")
        if target_arn.startswith("arn:aws:states:"):
            delay += self.start_delay(target_arn)
        return delay


class AsyncInvocations:
    """One function's asynchronous event queue under the account's concurrency, read as the
    plan reads it (fanflow/awsmodel/world.AsyncQueue): in order; a read starts as many events
    as there is concurrency for; a read that leaves events waiting reads again after an
    interval that starts at 1 s and doubles to 5 minutes (jittered), and one that starts any
    resets it (invocation-async-error-handling.html)."""

    def __init__(self, limits: AwsLimits, function: str, run: Callable[[Callable[[], None]], None]) -> None:
        self.limits, self.function, self.run = limits, function, run
        self.first = quota("lambda.async.retry.first", limits.region)
        self.cap = quota("lambda.async.retry.max", limits.region)
        self.jitter = limits.a("lambda.throttle.jitter")
        self.backlog: deque[tuple[float, Callable[[], None]]] = deque()
        self.attempt = 0
        self.sleeping = False
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self.backlog.append((self.limits.clock(), job))
            if not self.sleeping:
                self._read_locked()

    def _read(self) -> None:
        with self._lock:
            self._read_locked()

    def _read_locked(self) -> None:
        limits = self.limits
        assert limits.pool is not None and limits.scheduler is not None, "attach() first"
        self.sleeping = False
        if not self.backlog:
            self.attempt = 0
            return
        with limits._lock:
            now = limits.clock()
            started, cold = limits.pool.try_acquire(self.function, len(self.backlog), now)
            limits.stats.cold_starts += cold
            for index in range(started):
                arrived, job = self.backlog.popleft()
                if now - arrived > 0.001:  # waited for a read after a throttled one
                    limits.stats.add("Lambda concurrency", now - arrived)
                self.run(self._admitted(job, cold=index >= started - cold))
            if self.backlog:
                limits.stats.throttled_reads += 1
        if started:
            self.attempt = 0
        if self.backlog:
            self.attempt += 1
            self.sleeping = True
            interval = min(self.cap, self.first * 2 ** (self.attempt - 1))
            limits.scheduler.later(interval * (1.0 - self.jitter * limits.rng.random()), self._read)

    def _admitted(self, job: Callable[[], None], *, cold: bool) -> Callable[[], None]:
        limits = self.limits

        def run() -> None:
            token = _ADMITTED.set(cold)
            try:
                job()
            finally:
                _ADMITTED.reset(token)
                limits.release(self.function)

        return run
