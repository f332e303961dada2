"""The embedded target's delivery threads: every call runs, sleeping calls run side by side
up to the limit, and computing calls do not multiply threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from local.delivery_pool import DeliveryPool


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_every_call_runs_and_a_failing_call_does_not_stop_the_pool() -> None:
    pool = DeliveryPool(4, min_workers=2)
    done: list[int] = []
    lock = threading.Lock()

    def record(n: int) -> None:
        if n == 3:
            raise RuntimeError("this delivery fails")
        with lock:
            done.append(n)

    try:
        for n in range(50):
            pool.submit(record, n)
        wait_for(lambda: len(done) == 49)
        assert sorted(done) == [n for n in range(50) if n != 3]
    finally:
        pool.shutdown()


def test_sleeping_calls_get_threads_and_run_side_by_side() -> None:
    # GIVEN 64 calls that each wait 0.4 s (a simulated compute) and room for 64 threads
    pool = DeliveryPool(64, min_workers=4)
    finished: list[float] = []
    lock = threading.Lock()

    def sleep() -> None:
        time.sleep(0.4)
        with lock:
            finished.append(time.monotonic())

    started = time.monotonic()
    try:
        for _ in range(64):
            pool.submit(sleep)
        wait_for(lambda: len(finished) == 64)
    finally:
        pool.shutdown()
    # THEN the pool grew (4 threads would need 16 rounds, 6.4 s) and they slept together
    assert pool.peak_threads >= 32
    assert max(finished) - started < 2.0


def test_threads_never_exceed_the_limit() -> None:
    pool = DeliveryPool(6, min_workers=2)
    running = finished = most = 0
    lock = threading.Lock()

    def sleep() -> None:
        nonlocal running, finished, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
            finished += 1

    try:
        for _ in range(60):
            pool.submit(sleep)
        wait_for(lambda: finished == 60)
    finally:
        pool.shutdown()
    assert pool.peak_threads == 6 and most == 6


def test_busy_process_keeps_its_threads() -> None:
    # GIVEN a process that reads as busy (CPU time advancing with the wall clock), as when
    # the queued calls are computing under the GIL
    pool = DeliveryPool(64, min_workers=2, cpu_clock=time.perf_counter)
    release = threading.Event()
    try:
        for _ in range(40):
            pool.submit(release.wait)
        time.sleep(0.3)  # sixty monitor intervals
        # THEN no thread was added for the waiting calls
        assert pool.threads == 2
    finally:
        release.set()
        pool.shutdown()


def test_shutdown_drops_queued_calls_and_refuses_new_ones() -> None:
    pool = DeliveryPool(1, min_workers=1)
    gate = threading.Event()
    ran: list[int] = []
    pool.submit(gate.wait)
    for n in range(5):
        pool.submit(ran.append, n)
    pool.shutdown()
    gate.set()
    time.sleep(0.1)
    assert ran == []
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(ran.append, 9)


def test_a_failing_call_is_logged_while_the_pool_runs_but_not_once_it_is_shut_down(
        caplog: pytest.LogCaptureFixture) -> None:
    # A call still running when the emulator stops finds moto's backends reset under it: its
    # failure then says nothing about the request, and a traceback at every teardown hides
    # the ones that do.
    pool = DeliveryPool(1, min_workers=1)
    started, gate = threading.Event(), threading.Event()

    def fail_after_gate(tag: str) -> None:
        started.set()
        gate.wait()
        raise RuntimeError(tag)

    try:
        with caplog.at_level("ERROR", logger="fanflow.embedded"):
            gate.set()
            pool.submit(fail_after_gate, "while running")
            wait_for(lambda: any("fail_after_gate failed" in r.getMessage() for r in caplog.records))
            started.clear()
            gate.clear()
            pool.submit(fail_after_gate, "after shutdown")
            wait_for(started.is_set)  # the worker runs the call, held at the gate
            pool.shutdown()
            gate.set()
            for worker in list(pool._threads):  # the call has failed and the worker has ended
                worker.join(10)
        logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert [str(e) for e in logged] == ["while running"]
    finally:
        pool.shutdown()


def test_limit_must_allow_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DeliveryPool(0)


def test_eager_pool_gives_every_waiting_call_a_thread_even_when_busy() -> None:
    # GIVEN a pool told that calls sleep (a simulated compute time), in a process that reads
    # as busy: the elastic rule alone would add no thread
    pool = DeliveryPool(64, min_workers=2, cpu_clock=time.perf_counter, eager=lambda: True)
    finished: list[None] = []
    lock = threading.Lock()

    def sleep() -> None:
        time.sleep(0.3)
        with lock:
            finished.append(None)

    started = time.monotonic()
    try:
        for _ in range(30):
            pool.submit(sleep)
        # THEN each call got a thread at once, and they all slept together
        assert 28 <= pool.threads <= 32
        wait_for(lambda: len(finished) == 30)
    finally:
        pool.shutdown()
    assert time.monotonic() - started < 1.5


def test_threads_beyond_the_minimum_end_once_idle() -> None:
    # GIVEN a pool that grew to a thread per sleeping call (an endpoint's big request)
    pool = DeliveryPool(40, min_workers=4, eager=lambda: True, idle_seconds=0.3, name="idle-test")
    finished: list[int] = []
    lock = threading.Lock()

    def sleep() -> None:
        time.sleep(0.2)
        with lock:
            finished.append(1)

    try:
        for _ in range(40):
            pool.submit(sleep)
        wait_for(lambda: len(finished) == 40)
        assert pool.peak_threads == 40
        # WHEN it has had nothing to do for a while  THEN only its minimum of threads is left
        wait_for(lambda: pool.threads == 4, timeout=5)
        wait_for(lambda: sum(1 for t in threading.enumerate() if t.name.startswith("idle-test-")
                             and not t.name.endswith("monitor")) == 4, timeout=5)  # the threads really ended
        # AND it grows again for the next request
        for _ in range(20):
            pool.submit(sleep)
        wait_for(lambda: len(finished) == 60)
        assert pool.peak_threads == 40
    finally:
        pool.shutdown()
