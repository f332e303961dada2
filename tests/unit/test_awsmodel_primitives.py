"""The quota primitives the plan (and later the emulator) build on: token bucket, Lambda
concurrency with reserved capacity and scaling rate, a transaction-held item, backoff."""

from __future__ import annotations

import subprocess
import sys

import pytest

from local.aws_limits.primitives import Backoff, ConcurrencyPool, ItemLock, TokenBucket


def test_token_bucket_serves_its_burst_at_once_then_the_refill_rate() -> None:
    # GIVEN a bucket of 1,300 tokens refilled at 300/s (Standard StartExecution, big Regions)
    bucket = TokenBucket(1300, 300)
    # WHEN the burst is taken, then 300 more at the same instant
    assert bucket.reserve(1300, 0.0) == 0.0
    # THEN the next 300 are covered one second later, and the 300 after that a second after them
    assert bucket.reserve(300, 0.0) == pytest.approx(1.0)
    assert bucket.reserve(300, 0.0) == pytest.approx(2.0)


def test_token_bucket_refills_up_to_its_burst_and_no_further() -> None:
    bucket = TokenBucket(10, 5)
    bucket.reserve(10, 0.0)
    assert bucket.tokens(1.0) == pytest.approx(5)
    assert bucket.tokens(100.0) == pytest.approx(10)  # an idle hour does not bank more than the burst


def test_token_bucket_try_take_takes_what_is_there_without_queueing() -> None:
    bucket = TokenBucket(10, 1)
    assert bucket.try_take(7, 0.0) == 7
    assert bucket.try_take(7, 0.0) == 3  # a throttling API: the rest is refused, not queued
    assert bucket.try_take(7, 0.0) == 0
    assert bucket.try_take(7, 2.0) == 2


def test_token_bucket_rejects_a_bucket_that_could_never_grant() -> None:
    with pytest.raises(ValueError, match="positive burst and rate"):
        TokenBucket(0, 10)


def test_concurrency_pool_starts_what_fits_and_counts_the_rest_as_throttled() -> None:
    pool = ConcurrencyPool(50)
    assert pool.try_acquire("compute", 80, 0.0) == (50, 50)  # started, of which cold starts
    assert pool.throttles == 30
    assert pool.try_acquire("summary", 1, 0.0) == (0, 0)  # the account is full for every function
    pool.release("compute", 10)
    assert pool.try_acquire("compute", 10, 1.0) == (10, 0)  # warm environments: no cold start
    assert pool.peak == 50


def test_concurrency_pool_keeps_reserved_capacity_apart() -> None:
    # GIVEN Compute reserved at 900 of 1,000
    pool = ConcurrencyPool(1000, reserved={"compute": 900})
    # WHEN Compute wants far more
    assert pool.try_acquire("compute", 5000, 0.0)[0] == 900
    # THEN the other functions still have the unreserved 100
    assert pool.try_acquire("emit", 40, 0.0)[0] == 40
    assert pool.free("emit") == 60


def test_concurrency_pool_scales_a_function_by_1000_environments_per_10_seconds() -> None:
    pool = ConcurrencyPool(10_000)
    assert pool.try_acquire("compute", 5000, 0.0) == (1000, 1000)
    assert pool.try_acquire("compute", 5000, 5.0) == (500, 500)  # refilled continuously: 100/s
    assert pool.try_acquire("other", 5000, 5.0)[0] == 1000  # the rate is per function


def test_concurrency_pool_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyPool(0)
    with pytest.raises(ValueError, match="exceeds"):
        ConcurrencyPool(100, reserved={"compute": 101})
    pool = ConcurrencyPool(10)
    pool.try_acquire("compute", 2, 0.0)
    with pytest.raises(ValueError, match="releasing 3"):
        pool.release("compute", 3)


def test_item_lock_cancels_an_overlapping_transaction_and_a_plain_write() -> None:
    # GIVEN a transaction holding the counter item for 50 ms
    item = ItemLock()
    assert item.try_transact(0.0, 0.05)
    # WHEN another transaction or a plain write touches it meanwhile: TransactionConflict
    assert not item.try_transact(0.01, 0.05)
    assert not item.try_write(0.02)
    # THEN once it commits, the item is free again
    assert item.try_transact(0.05, 0.05)
    assert (item.commits, item.conflicts) == (2, 2)


def test_backoff_doubles_to_its_cap_and_jitter_shortens_the_wait() -> None:
    # Lambda's async retry on throttles: from 1 s, doubling, to at most 5 minutes.
    backoff = Backoff(base=1.0, cap=300.0, jitter=0.5)
    assert [backoff.interval(k) for k in (1, 2, 3, 9, 10, 20)] == [1, 2, 4, 256, 300, 300]
    assert backoff.delay(3, 0.0) == 4.0
    assert backoff.delay(3, 0.999) == pytest.approx(2.002)
    # By hand: 1 + 2 + ... + 256 = 511 s for 9 retries, then (21,600 - 511) // 300 = 70 more.
    assert Backoff(base=1.0, cap=300.0).attempts_within(6 * 3600) == 79


def test_quotas_and_primitives_load_without_simpy() -> None:
    # The embedded emulator enforces the same quotas in real time (--aws-limits), without the simulator.
    code = ("import sys; import local.aws_limits.quotas, local.aws_limits.primitives, local.aws_limits.assumptions; "
            "sys.exit('simpy' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
