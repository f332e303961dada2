"""The simulated account a plan runs in: a SimPy clock, the quota buckets and Lambda
concurrency of one Region, what each limit made work wait, what the request used, and
Lambda's asynchronous event queue (throttled events retry with backoff)."""

from __future__ import annotations

import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from local.aws_limits.assumptions import assumption
from local.aws_limits.primitives import ConcurrencyPool, LimitUse, TokenBucket
from local.aws_limits.quotas import QUOTAS, quota

from .costs import Usage

PHASES = ("fanOut", "compute", "count", "summary")


@dataclass(frozen=True)
class PlanInputs:
    cases: int
    compute_seconds: float
    region: str = "us-east-1"
    lambda_concurrency: int = 1000
    # Reserved concurrency of each compute function, its ceiling (`-c computeConcurrency`):
    # None as the variant deploys it (fanflow 200, the seed none), 0 none.
    compute_reserved: int | None = None
    # fanflow's floor under each orchestration function (`-c orchestrationConcurrency`): None
    # as deployed (10), 0 none.
    orchestration_reserved: int | None = None
    # fanflow's chunks emitted at once (`-c fanOutConcurrency`): None as deployed (10).
    fan_out_concurrency: int | None = None
    # Assumption overrides by key (see assumptions.ASSUMPTIONS), for the sensitivity report.
    overrides: dict[str, float] = field(default_factory=dict)

    def a(self, key: str) -> float:
        return assumption(key, self.overrides)

    def q(self, key: str) -> float:
        return quota(key, self.region)


class Throttled(Exception):
    """A synchronous invocation still throttled after its caller's retries."""


@dataclass
class Curve:
    """A cumulative count against time (cases computed, cases counted)."""

    increments: list[tuple[float, int]] = field(default_factory=list)
    total: int = 0
    last: float = 0.0

    def add(self, t: float, n: int) -> None:
        if n > 0:
            self.increments.append((t, n))
            self.total += n
            self.last = max(self.last, t)

    def series(self, at_most: int = 400) -> list[tuple[float, int]]:
        """(time, cumulative count) in time order, thinned to about `at_most` points."""
        running, out = 0, [(0.0, 0)]
        for t, n in sorted(self.increments):
            running += n
            out.append((round(t, 3), running))
        step = max(1, math.ceil(len(out) / at_most))
        return out[::step] + ([out[-1]] if (len(out) - 1) % step else [])


class World:
    """One Region's account, on one SimPy clock."""

    def __init__(self, inputs: PlanInputs, *, reserved: dict[str, int] | None = None, seed: int = 0) -> None:
        self.inputs = inputs
        self.env = simpy.Environment()
        self.pool = ConcurrencyPool(inputs.lambda_concurrency,
                                    scale_burst=int(inputs.q("lambda.scaling.environments")),
                                    reserved=reserved)
        self.usage = Usage()
        self.limits: dict[str, LimitUse] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self.computed = Curve()
        self.counted = Curve()
        self.marks: dict[str, float] = {}
        self.notes: list[str] = []
        self.failure: str | None = None
        self.async_queues: list[AsyncQueue] = []
        self.rng = random.Random(seed)  # jitter draws: a plan is repeatable
        self.history: dict[str, float] | None = None  # where PreProcess's history passes the limit
        self.history_events: int | None = None  # PreProcess's history when the request completes, if constant
        self.dropped = 0  # cases dropped from the compute queue after its maximum event age
        self.lost = 0  # cases the fan-out gave up

    # Limits -------------------------------------------------------------------------------
    def limit(self, name: str, figure: str, source: str = "") -> LimitUse:
        use = self.limits.get(name)
        if use is None:
            use = self.limits[name] = LimitUse(name, figure, source)
        return use

    def bucket(self, burst: float, rate: float, name: str, figure: str, source: str) -> TokenBucket:
        """The token bucket of the limit called `name` (one per name)."""
        if name not in self.buckets:
            self.buckets[name] = TokenBucket(burst, rate, self.env.now)
            self.limit(name, figure, source)
        return self.buckets[name]

    def quota_bucket(self, prefix: str, name: str) -> tuple[TokenBucket, str]:
        """The bucket of a published `<prefix>.burst` / `<prefix>.refill` pair."""
        burst, refill = self.inputs.q(f"{prefix}.burst"), self.inputs.q(f"{prefix}.refill")
        figure = f"{burst:,.0f} burst, {refill:,.0f}/s refill"
        return self.bucket(burst, refill, name, figure, QUOTAS[prefix + ".refill"].source), name

    def rate_bucket(self, key: str, name: str, *, scale: float = 1.0, what: str = "") -> tuple[TokenBucket, str]:
        """A per-second quota as a bucket holding one second's worth."""
        rate = self.inputs.q(key) * scale
        return self.bucket(rate, rate, name, f"{rate:,.0f}/s{what}", QUOTAS[key].source), name

    def take(self, bucket_and_name: tuple[TokenBucket, str], n: float, phase: str, cases: float | None = None) -> float:
        """Reserve `n` tokens now; returns the delay until they are covered, and books the wait
        (in case-seconds, for `cases` cases: n by default) against the limit and phase."""
        bucket, name = bucket_and_name
        ready = bucket.reserve(n, self.env.now)
        delay = ready - self.env.now
        if delay > 0:
            self.limits[name].add(phase, (n if cases is None else cases) * delay, 1)
        return delay

    def take_within(self, bucket_and_name: tuple[TokenBucket, str], n: float, phase: str, *, within: float,
                    cases: float | None = None) -> float | None:
        """A throttling API called by a client that retries it for `within` seconds: the tokens
        are taken if the bucket covers them by then (the delay is returned and booked as by
        `take`); otherwise nothing is taken, the caller's `within` seconds are booked as a wait
        with one throttle, and None is returned."""
        bucket, name = bucket_and_name
        delay = max(0.0, (n - bucket.tokens(self.env.now)) / bucket.rate)
        if delay > within:
            self.limits[name].add(phase, (n if cases is None else cases) * within, 1)
            return None
        return self.take(bucket_and_name, n, phase, cases=cases)

    def take_max(self, wants: list[tuple[tuple[TokenBucket, str], float]], phase: str,
                 cases: float | None = None) -> float:
        """Reserve tokens from several buckets at once (a call that needs them all); the
        delay is the longest, booked against the bucket that caused it."""
        delays = []
        for (bucket, name), n in wants:
            delays.append((bucket.reserve(n, self.env.now) - self.env.now, name, n))
        delay, name, n = max(delays, key=lambda item: item[0])
        if delay > 0:
            self.limits[name].add(phase, (n if cases is None else cases) * delay, 1)
        return delay

    def mark(self, key: str, t: float | None = None) -> None:
        self.marks[key] = max(self.marks.get(key, 0.0), self.env.now if t is None else t)

    def at(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay` without a process (cheaper than one per cohort)."""
        event = self.env.timeout(max(0.0, delay))
        event.callbacks.append(lambda _event: callback())

    # Lambda ------------------------------------------------------------------------------
    def invoke_sync(self, function: str, memory_mb: int, body: Callable[[], Generator[Any, Any, Any]], phase: str,
                    *, retry: tuple[int, float, float] = (0, 1.0, 2.0), cap: float = 300.0
                    ) -> Generator[Any, Any, float]:
        """A synchronous invocation (a Step Functions task, an event source mapping): holds one
        execution while `body` runs. On a throttle it retries as its caller does, `retry` =
        (retries, first interval, backoff rate; intervals at most `cap`), then raises
        Throttled. Returns the duration."""
        retries, interval, rate = retry
        for attempt in range(retries + 1):
            started, cold = self.pool.try_acquire(function, 1, self.env.now)
            if started:
                began = self.env.now
                try:
                    yield self.env.timeout(self.inputs.a("lambda.invoke") + cold * self.inputs.a("lambda.cold.start"))
                    yield from body()
                finally:
                    self.pool.release(function, 1)
                    self.usage.lambda_run(1, self.env.now - began, memory_mb)
                return self.env.now - began
            wait = min(cap, interval * rate ** attempt)
            self.concurrency_limit.add(phase, wait, 1)
            if attempt < retries:
                yield self.env.timeout(wait)
        raise Throttled(f"{function} was throttled {retries + 1} times in a row")

    @property
    def concurrency_limit(self) -> LimitUse:
        reserved = "".join(f", {n:,} reserved for {name.split('.')[-1]}" for name, n in self.pool.reserved.items())
        return self.limit("Lambda concurrency", f"{self.pool.limit:,} concurrent executions in the account{reserved}; "
                          f"each function +{self.pool.scale_burst:,} environments per 10 s",
                          QUOTAS["lambda.concurrency"].source)


def history_point(progress: list[tuple[float, int]], before: int, per_item: int, limit: int, *,
                  unit: int) -> dict[str, float] | None:
    """Where a Standard execution's history passes `limit` events: the item (Map iteration)
    whose events pass it, as a case number (items of `unit` cases), and when, from the Map's
    progress [(time, items done)]."""
    item = (limit - before) // per_item + 1
    done = progress[-1][1]
    if item > done:
        return None
    for (t0, n0), (t1, n1) in itertools.pairwise(progress):
        if n1 >= item:
            t = t0 + (t1 - t0) * (item - n0) / max(1, n1 - n0)
            return {"case": (item - 1) * unit + 1, "atSeconds": round(t, 2), "events": before + per_item * item}
    return None


class AsyncQueue:
    """Lambda's asynchronous event queue for one function (invocation-async-error-handling.html).

    Events wait in the queue in order; Lambda reads them and invokes the function while it
    has concurrency. When an invocation is throttled the event goes back to the queue and
    Lambda retries after an interval that starts at 1 s and doubles up to 5 minutes; "if the
    queue contains many entries, Lambda increases the retry interval and reduces the rate at
    which it reads events from the queue". The model applies the backoff to the queue's
    reader, not to each event: a throttled read waits the interval (jittered), a read that
    starts anything resets it. Per-event backoff would make the seed's times grow faster than
    linearly with its size; its measured times grow linearly (see tests/unit/test_plan_seed_check.py).

    With `max_age` (the function's maximum event age), an event still queued that long is
    discarded when the queue is next read, and `on_expired` gets how many were."""

    def __init__(self, world: World, function: str, memory_mb: int, *, run_seconds: Callable[[], float],
                 on_done: Callable[[int], None], phase: str = "compute", max_age: float | None = None,
                 on_expired: Callable[[int], None] | None = None) -> None:
        self.world, self.function, self.memory_mb = world, function, memory_mb
        self.run_seconds, self.on_done, self.phase = run_seconds, on_done, phase
        self.max_age, self.on_expired = max_age, on_expired
        self.expired = 0
        self.first, self.cap = world.inputs.q("lambda.async.retry.first"), world.inputs.q("lambda.async.retry.max")
        self.jitter = world.inputs.a("lambda.throttle.jitter")
        self.backlog: deque[list[float]] = deque()  # [arrival time, events] in order
        self.waiting = 0
        self.attempt = 0  # throttled reads in a row
        self.sleeping = False
        self.started = 0
        self.throttled_reads = 0
        self.limit = world.concurrency_limit
        world.async_queues.append(self)

    def submit(self, n: int) -> None:
        if n <= 0:
            return
        self.backlog.append([self.world.env.now, float(n)])
        self.waiting += n
        if not self.sleeping:
            self._read()

    def _read(self) -> None:
        world = self.world
        self.sleeping = False
        if self.max_age is not None:
            self._expire()
        if not self.waiting:
            self.attempt = 0
            return
        started, cold = world.pool.try_acquire(self.function, self.waiting, world.env.now)
        if started:
            self._dequeue(started)
            self._run(started - cold, 0.0)
            self._run(cold, world.inputs.a("lambda.cold.start"))
            self.attempt = 0
        if self.waiting:
            self.attempt += 1
            self.throttled_reads += 1
            interval = min(self.cap, self.first * 2 ** (self.attempt - 1))
            self.sleeping = True
            world.at(interval * (1.0 - self.jitter * world.rng.random()), self._read)

    def _expire(self) -> None:
        """Discard the events queued longer than the maximum event age (the oldest are first)."""
        assert self.max_age is not None
        now, dropped = self.world.env.now, 0
        while self.backlog and now - self.backlog[0][0] > self.max_age:
            dropped += int(self.backlog.popleft()[1])
        if dropped:
            self.waiting -= dropped
            self.expired += dropped
            self.limit.add(self.phase, dropped * self.max_age)
            if self.on_expired is not None:
                self.on_expired(dropped)

    def _dequeue(self, n: int) -> None:
        now, left = self.world.env.now, n
        waited = 0.0
        while left:
            head = self.backlog[0]
            take = min(left, int(head[1]))
            waited += take * (now - head[0])
            head[1] -= take
            left -= take
            if not head[1]:
                self.backlog.popleft()
        self.waiting -= n
        self.limit.add(self.phase, waited)

    def _run(self, n: int, extra: float) -> None:
        if n <= 0:
            return
        world = self.world
        self.started += n
        duration = world.inputs.a("lambda.invoke") + extra + self.run_seconds()
        world.usage.lambda_run(n, duration, self.memory_mb)
        world.at(duration, lambda: self._finish(n))

    def _finish(self, n: int) -> None:
        self.world.pool.release(self.function, n)
        self.on_done(n)
