"""The threads that deliver EventBridge targets asynchronously in the embedded target.

A delivery runs a Lambda invocation or starts a state machine. On AWS up to the Lambda
concurrency limit (1,000 by default) run at once, and the embedded target keeps that:
cases that each sleep 0.5 s of simulated compute all sleep at the same time. But the
emulator is one Python process: while deliveries compute, one runs at a time under the
GIL, and every further thread only adds switching and a stack. concurrent.futures'
pool starts a thread whenever none is idle, so a 10,000-case request ran about 900
threads that did nothing but wait for the GIL.

This pool starts threads only when they can help: when work is queued and the process
is not busy (its workers are blocked: sleeping, waiting for a concurrency slot, or on
I/O). A monitor samples the process's CPU time every few milliseconds to tell. And it
lets them go when the work is done: a thread beyond the first few that has had nothing to
do for a few seconds ends, so an idle `fanflow up` endpoint does not keep the thousand
threads (and their stacks) of its last big request.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("fanflow.embedded")

# Below this share of one core, the workers are mostly waiting: queued work gets threads.
BUSY_SHARE = 0.75
# A thread beyond `min_workers` idle for this long ends.
IDLE_SECONDS = 5.0


class DeliveryPool:
    """Runs submitted calls on up to `max_workers` threads, starting with `min_workers` and
    adding more while calls are queued and the process has CPU to spare. While `eager()`
    is true (the runtime: a simulated compute time is set, so deliveries sleep), every
    call that finds no idle thread gets a new one at once, up to `max_workers`, as
    concurrent.futures does: a sleeping case must not wait for the CPU to be free."""

    def __init__(self, max_workers: int, *, min_workers: int = 8, name: str = "fanflow-delivery",
                 interval: float = 0.005, busy_share: float = BUSY_SHARE,
                 cpu_clock: Callable[[], float] = time.process_time,
                 eager: Callable[[], bool] = lambda: False, idle_seconds: float = IDLE_SECONDS) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self.min_workers = max(1, min(min_workers, max_workers))
        self._name = name
        self._interval = interval
        self._busy_share = busy_share
        self._cpu_clock = cpu_clock
        self._eager = eager
        self._idle_seconds = idle_seconds
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._queued = 0
        self._numbers = itertools.count()
        self._stopped = threading.Event()
        self.peak_threads = 0
        for _ in range(self.min_workers):
            self._start_worker()
        self._monitor = threading.Thread(target=self._watch, name=f"{name}-monitor", daemon=True)
        self._monitor.start()

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._stopped.is_set():
            raise RuntimeError("the delivery pool is shut down")
        with self._lock:
            self._queued += 1
            if self._eager() and self._queued > self._idle and len(self._threads) < self.max_workers:
                self._start_worker()
        self._queue.put((fn, args))

    def shutdown(self) -> None:
        """Stop taking work; queued calls are dropped, running ones finish on their own."""
        self._stopped.set()
        with self._lock:
            threads = len(self._threads)
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        for _ in range(threads):
            self._queue.put(None)

    # -- internals -------------------------------------------------------------------------
    def _start_worker(self) -> None:  # called with room for one more thread
        thread = threading.Thread(target=self._work, name=f"{self._name}-{next(self._numbers)}", daemon=True)
        self._threads.append(thread)
        self.peak_threads = max(self.peak_threads, len(self._threads))
        thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                item = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    if len(self._threads) > self.min_workers:  # not needed now: end, freeing its stack
                        self._threads.remove(threading.current_thread())
                        return
                continue
            with self._lock:
                self._idle -= 1
                if item is not None:
                    self._queued -= 1
            if item is None:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # a delivery reports its own failures; this is a last resort
                if not self._stopped.is_set():  # once stopped, moto's backends are gone under it
                    LOG.exception("delivery %s failed", getattr(fn, "__name__", fn))

    def _watch(self) -> None:
        """Every interval: if calls are waiting and the process used less than `busy_share`
        of a core over this interval and the one before, double the threads (at most one per
        waiting call). Two quiet intervals, not one: a moment of file I/O (a cold start
        reading its code) is not a thousand sleeping workers."""
        cpu, wall = self._cpu_clock(), time.perf_counter()
        quiet = 0
        while not self._stopped.wait(self._interval):
            now_cpu, now_wall = self._cpu_clock(), time.perf_counter()
            share = (now_cpu - cpu) / max(now_wall - wall, 1e-9)
            cpu, wall = now_cpu, now_wall
            with self._lock:
                waiting = self._queued - self._idle
                quiet = quiet + 1 if waiting > 0 and share < self._busy_share else 0
                if quiet < 2:
                    continue
                running = len(self._threads)
                for _ in range(min(waiting, self.max_workers - running, running)):
                    self._start_worker()
