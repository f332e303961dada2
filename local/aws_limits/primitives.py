"""Quota primitives with no clock of their own: a token bucket, an account's Lambda
concurrency with each function's scaling rate, a DynamoDB item that a transaction holds,
and capped exponential backoff. Every method takes `now`, so the same objects serve the
discrete-event plan (SimPy's clock) and, later, the emulator (a monotonic clock)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class TokenBucket:
    """A token bucket of `burst` tokens refilled at `rate` per second.

    `reserve` queues: it takes the tokens now and returns when they are all covered, so calls
    are granted in order at the refill rate once the burst is spent (a caller that retries
    throttled calls until they pass sees the same rate). `try_take` does not queue: it takes
    what is there, as a throttling API does."""

    def __init__(self, burst: float, rate: float, now: float = 0.0) -> None:
        if burst <= 0 or rate <= 0:
            raise ValueError(f"a token bucket needs a positive burst and rate, got {burst} and {rate}")
        self.burst, self.rate = float(burst), float(rate)
        self._tokens, self._last = float(burst), now
        self.granted = 0.0  # tokens handed out

    def tokens(self, now: float) -> float:
        """Tokens in the bucket at `now` (negative while reservations are still being covered)."""
        return min(self.burst, self._tokens + (now - self._last) * self.rate) if now > self._last else self._tokens

    def _settle(self, now: float) -> None:
        if now > self._last:
            self._tokens, self._last = self.tokens(now), now

    def reserve(self, n: float, now: float) -> float:
        """Take `n` tokens; return the time by which the bucket has covered them (`now` if it had them)."""
        self._settle(now)
        self._tokens -= n
        self.granted += n
        return now if self._tokens >= 0 else now + -self._tokens / self.rate

    def try_take(self, n: float, now: float) -> float:
        """Take up to `n` whole tokens, as many as the bucket holds; return how many."""
        self._settle(now)
        take = min(float(n), max(0.0, math.floor(self._tokens + 1e-9)))
        self._tokens -= take
        self.granted += take
        return take


@dataclass
class _Function:
    environments: int = 0  # created so far (kept warm: the plan's horizon is short of Lambda's idle reaping)
    busy: int = 0
    scaling: TokenBucket | None = None


class ConcurrencyPool:
    """An account's Lambda concurrency: `limit` executions at once across its functions, and
    each function adds at most `scale_burst` new execution environments per `scale_period`
    seconds (refilled continuously, as the scaling page says Lambda tries to)."""

    def __init__(self, limit: int, *, scale_burst: int = 1000, scale_period: float = 10.0,
                 reserved: dict[str, int] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"the account needs a concurrency of at least 1, got {limit}")
        self.limit = limit
        self.scale_burst, self.scale_period = scale_burst, scale_period
        self.reserved = dict(reserved or {})
        if sum(self.reserved.values()) > limit:
            raise ValueError("reserved concurrency exceeds the account's limit")
        self.in_use = 0
        self.peak = 0
        self.throttles = 0
        self._functions: dict[str, _Function] = {}

    def _function(self, name: str, now: float) -> _Function:
        fn = self._functions.get(name)
        if fn is None:
            fn = self._functions[name] = _Function(
                scaling=TokenBucket(self.scale_burst, self.scale_burst / self.scale_period, now))
        return fn

    def free(self, name: str | None = None) -> int:
        """Executions `name` could start now (ignoring its scaling rate)."""
        unreserved_busy = sum(f.busy for n, f in self._functions.items() if n not in self.reserved)
        unreserved = self.limit - sum(self.reserved.values())
        if name is not None and name in self.reserved:
            return self.reserved[name] - self._functions.get(name, _Function()).busy
        return max(0, unreserved - unreserved_busy)

    def try_acquire(self, name: str, n: int, now: float) -> tuple[int, int]:
        """Start up to `n` executions of function `name`: returns (started, of which cold starts)."""
        fn = self._function(name, now)
        want = min(n, self.free(name))
        warm = min(want, fn.environments - fn.busy)
        assert fn.scaling is not None
        cold = int(fn.scaling.try_take(want - warm, now)) if want > warm else 0
        started = warm + cold
        fn.environments += cold
        fn.busy += started
        self.in_use += started
        self.peak = max(self.peak, self.in_use)
        if started < n:
            self.throttles += n - started
        return started, cold

    def release(self, name: str, n: int) -> None:
        fn = self._functions[name]
        if n > fn.busy:
            raise ValueError(f"{name}: releasing {n} executions, {fn.busy} running")
        fn.busy -= n
        self.in_use -= n

    def busy(self, name: str) -> int:
        fn = self._functions.get(name)
        return fn.busy if fn else 0

    def environments(self, name: str) -> int:
        fn = self._functions.get(name)
        return fn.environments if fn else 0


class ItemLock:
    """A DynamoDB item as transactions see it (transaction-apis.html): a transaction holds
    its items while it runs; another transaction on the same item meanwhile is cancelled
    with TransactionConflict, and so is a plain write. Nothing queues."""

    def __init__(self) -> None:
        self.held_until = -math.inf
        self.commits = 0
        self.conflicts = 0

    def try_transact(self, now: float, duration: float) -> bool:
        if now < self.held_until:
            self.conflicts += 1
            return False
        self.held_until = now + duration
        self.commits += 1
        return True

    def try_write(self, now: float) -> bool:
        if now < self.held_until:
            self.conflicts += 1
            return False
        return True


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: attempt k (1-based) waits base * factor**(k-1), at most
    `cap`, scaled by a jitter draw u in [0, 1): the wait is interval * (1 - jitter * u)
    (jitter 1 is 'full jitter', 0 none)."""

    base: float
    cap: float
    factor: float = 2.0
    jitter: float = 1.0

    def interval(self, attempt: int) -> float:
        return min(self.cap, self.base * self.factor ** max(0, attempt - 1))

    def delay(self, attempt: int, u: float) -> float:
        return self.interval(attempt) * (1.0 - self.jitter * u)

    def attempts_within(self, seconds: float) -> int:
        """Retries that start within `seconds` without jitter ('retried for up to 6 hours')."""
        total, k = 0.0, 0
        while total + self.interval(k + 1) <= seconds:
            k += 1
            total += self.interval(k)
        return k


@dataclass
class LimitUse:
    """What one limit did in a plan: how often and how long it made work wait."""

    name: str
    figure: str
    source: str = ""  # the page the figure comes from
    waits: dict[str, float] = field(default_factory=dict)  # phase -> case-seconds of waiting
    events: dict[str, int] = field(default_factory=dict)  # phase -> throttles or conflicts

    def add(self, phase: str, case_seconds: float, events: int = 0) -> None:
        if case_seconds > 0:
            self.waits[phase] = self.waits.get(phase, 0.0) + case_seconds
        if events:
            self.events[phase] = self.events.get(phase, 0) + events
