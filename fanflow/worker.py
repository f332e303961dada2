"""`fanflow worker`: computes the cases of the queue compute target, anywhere a process can
run (a container, an instance, a laptop) and for as long as a case takes. It long-polls the
queue the stack outputs name, runs each case as the Compute function does (lambda_fns.casework),
keeps the message invisible to other workers while it works (a heartbeat extends the
visibility timeout), records the result, puts the completion event and deletes the message.

SIGTERM or SIGINT stops polling and lets the case in hand finish; a second signal releases
it at once for another worker. A worker that dies mid-case leaves its message in the queue:
another worker receives it when the visibility timeout expires, and Increment counts the
case once whichever worker reports it. SQS keeps a message invisible for at most 12 hours
after it is received, heartbeat or not: a case still running then is handed to another worker
(which reports the first result stored, lambda_fns.casework.settle_case)."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from lambda_fns import casework
from lambda_fns import constants as c

from .deployments import Deployment
from .errors import DeploymentError

LOG = logging.getLogger("fanflow.worker")


@dataclass(frozen=True)
class WorkerSettings:
    queue_url: str
    results_table: str
    bus_name: str
    compute_seconds: Callable[[], float]  # read for each case: it may be reconfigured while running
    compute_type: str = c.COMPUTE_TYPE_QUEUE
    wait_seconds: int = c.WORKER_WAIT_SECONDS
    visibility_timeout: int = c.WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str], *, compute_seconds: Callable[[], float],
                     queue_output: str = c.OUTPUT_WORK_QUEUE_URL, **options: Any) -> WorkerSettings:
        """Settings for the deployed stack whose outputs are given; `queue_output` names the
        output holding the queue's URL (another queue target's, say)."""
        missing = [name for name in (queue_output, c.OUTPUT_RESULTS_TABLE, c.OUTPUT_BUS_NAME) if name not in outputs]
        if missing:
            raise DeploymentError(f"the deployed stack has no output {', '.join(missing)}: deploy this version of "
                              "fanflow first (fanflow deploy), or name the queue's output with --queue-output")
        return cls(queue_url=outputs[queue_output], results_table=outputs[c.OUTPUT_RESULTS_TABLE],
                   bus_name=outputs[c.OUTPUT_BUS_NAME], compute_seconds=compute_seconds, **options)

    @property
    def heartbeat_seconds(self) -> float:
        return max(0.2, self.visibility_timeout / 3)

    def reporting(self) -> casework.Reporting:
        return casework.Reporting(results_table=self.results_table, bus_name=self.bus_name,
                                  computed_by=self.compute_type)


@dataclass
class WorkerStats:
    received: int = 0
    completed: int = 0  # computed, reported and deleted
    failed_cases: int = 0  # of those, cases whose computation raised
    skipped: int = 0  # not computed: after their deadline, not in their request, or counted already
    released: int = 0  # handed back to the queue unprocessed (shutdown)
    errors: int = 0  # left in the queue after an error: redelivered after the visibility timeout
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


# A simulated case never sleeps past SQS's limit, so that it reports before SQS hands it on.
WORKER_MAX_CASE_SECONDS = c.SQS_MAX_VISIBILITY_SECONDS - 300


class Heartbeat:
    """Keeps one message invisible while its case is computed: every third of the visibility
    timeout, it sets the timeout again, never past SQS's maximum of 12 hours after the receive
    (a longer request is refused: docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/
    API_ChangeMessageVisibility.html). Stopped when the case is reported, or dies with the process
    (then the message reappears for another worker)."""

    def __init__(self, sqs: Any, queue_url: str, receipt_handle: str, *, visibility_timeout: int,
                 interval: float, clock: Callable[[], float] = time.monotonic,
                 limit_seconds: int = c.SQS_MAX_VISIBILITY_SECONDS) -> None:
        self._sqs, self._queue_url, self._receipt = sqs, queue_url, receipt_handle
        self._visibility, self._interval = visibility_timeout, interval
        self._clock, self._received = clock, clock()
        self._limit = limit_seconds
        self._stop = threading.Event()
        self.beats = 0
        self.at_limit = False
        self._thread = threading.Thread(target=self._run, name="fanflow-worker-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def next_timeout(self) -> int:
        """The visibility timeout to set now: the usual one, cut to what is left of SQS's limit."""
        return max(0, min(self._visibility, int(self._limit - (self._clock() - self._received))))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            timeout = self.next_timeout()
            if timeout <= 0:
                self.at_limit = True
                LOG.warning("case in hand for SQS's %d-hour limit: its message goes to another worker",
                            self._limit // 3600)
                return
            try:
                self._sqs.change_message_visibility(QueueUrl=self._queue_url, ReceiptHandle=self._receipt,
                                                    VisibilityTimeout=timeout)
                self.beats += 1
            except Exception as exc:  # the next beat may succeed; if none does, the case is redelivered
                LOG.warning("heartbeat failed: %s", exc)


class CaseBudget:
    """How many more cases a pool may complete (`fanflow worker --max-cases`)."""

    def __init__(self, cases: int) -> None:
        self._left = cases
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._left += 1


class QueueWorker:
    """One polling loop: receive a message, compute its case, report it, delete it."""

    def __init__(self, settings: WorkerSettings, *, sqs: Any, dynamodb: Any, events: Any,
                 work: casework.Work = casework.work, name: str = "worker", budget: CaseBudget | None = None) -> None:
        self.settings = settings
        self.sqs, self.dynamodb, self.events = sqs, dynamodb, events
        self.work = work
        self.name = name
        self.budget = budget
        self.stats = WorkerStats()
        self._reporting = settings.reporting()
        self._stopping = threading.Event()  # stop polling; finish the case in hand
        self._in_hand: tuple[str, Heartbeat] | None = None  # the message being worked on
        self._in_hand_lock = threading.Lock()

    # -- control, from any thread ---------------------------------------------------------
    def stop(self) -> None:
        """Stop polling after the case in hand (a message received meanwhile is released)."""
        self._stopping.set()

    def release(self) -> None:
        """Stop now: the case in hand goes back to the queue for another worker. Its result, if the
        computation still ends, is recorded but not reported: the next worker reports it."""
        self._stopping.set()
        with self._in_hand_lock:
            in_hand, self._in_hand = self._in_hand, None
        if in_hand is not None:
            receipt, heartbeat = in_hand
            heartbeat.stop()
            self._release(receipt)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping.is_set():
            if self.budget is not None and not self.budget.take():
                self.stop()  # the pool has completed its cases
                break
            completed = self.stats.completed
            try:
                self.poll_once()
            except Exception:  # a transient receive failure must not end the worker
                LOG.exception("%s: polling failed; retrying", self.name)
                self._stopping.wait(1.0)
            if self.budget is not None and self.stats.completed == completed:
                self.budget.give_back()

    def poll_once(self) -> int:
        """One long poll; handles what it received. Returns the number of messages received."""
        response = self.sqs.receive_message(
            QueueUrl=self.settings.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=self.settings.wait_seconds,
            VisibilityTimeout=self.settings.visibility_timeout, MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        self.stats.add(received=len(messages))
        for message in messages:
            self.handle(message)
        return len(messages)

    def handle(self, message: dict[str, Any]) -> None:
        receipt = message["ReceiptHandle"]
        if self._stopping.is_set():  # received while shutting down: another worker takes it
            self._release(receipt)
            return
        try:
            detail = json.loads(message["Body"])["detail"]
            request_id, case_id = detail["requestId"], detail["request"][c.ATTR_CASE_ID]
        except (ValueError, KeyError, TypeError) as exc:
            # Not a fan-out event: left in the queue, it ends in the dead-letter queue.
            LOG.error("%s: message %s is not a fan-out event (%s); leaving it for the dead-letter queue",
                      self.name, message.get("MessageId"), exc)
            self.stats.add(errors=1)
            return
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "1")
        LOG.info("%s: case %s/%s (receive %s)", self.name, request_id, case_id, receives)
        heartbeat = Heartbeat(self.sqs, self.settings.queue_url, receipt,
                              visibility_timeout=self.settings.visibility_timeout,
                              interval=self.settings.heartbeat_seconds)
        with self._in_hand_lock:
            self._in_hand = (receipt, heartbeat)
        try:
            with heartbeat:
                settled = casework.settle_case(self.dynamodb, detail, self._reporting,
                                               seconds=self.settings.compute_seconds(), work=self.work,
                                               max_seconds=WORKER_MAX_CASE_SECONDS)
        except Exception:
            # Nothing recorded (or the row could not be read): the message reappears and the case
            # is settled again.
            LOG.exception("%s: could not settle case %s/%s; it will be redelivered", self.name, request_id, case_id)
            self.stats.add(errors=1)
            return
        with self._in_hand_lock:
            released, self._in_hand = self._in_hand is None, None
        if released:  # given back by release(): another worker reports it (its stored result, if any)
            return
        try:
            if settled.state is not None:
                casework.put_completion(self.events, detail, settled.state, settled.error, self._reporting)
            self.sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=receipt)
        except Exception:
            # Not reported, or reported but not deleted: either way the message reappears and
            # its stored result is reported again; Increment counts it once.
            LOG.exception("%s: could not report case %s/%s; it will be redelivered", self.name, request_id, case_id)
            self.stats.add(errors=1)
            return
        if settled.skipped:
            LOG.info("%s: case %s/%s not computed (%s)", self.name, request_id, case_id, settled.skipped)
            self.stats.add(skipped=1)
            return
        self.stats.add(completed=1, failed_cases=int(settled.state == c.CASE_FAILED))

    def _release(self, receipt: str) -> None:
        try:
            self.sqs.change_message_visibility(QueueUrl=self.settings.queue_url, ReceiptHandle=receipt,
                                               VisibilityTimeout=0)
            self.stats.add(released=1)
        except Exception as exc:  # it reappears after its visibility timeout anyway
            LOG.warning("%s: could not release a message: %s", self.name, exc)


class WorkerPool:
    """N workers, each in a thread, sharing the target's clients."""

    def __init__(self, settings: WorkerSettings, client: Callable[[str], Any], *, count: int,
                 work: casework.Work = casework.work, max_cases: int | None = None) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        sqs, dynamodb, events = client("sqs"), client("dynamodb"), client("events")
        budget = None if max_cases is None else CaseBudget(max_cases)
        self.workers = [QueueWorker(settings, sqs=sqs, dynamodb=dynamodb, events=events, work=work,
                                    name=f"worker-{i + 1}", budget=budget) for i in range(count)]
        self._threads = [threading.Thread(target=worker.run, name=f"fanflow-{worker.name}", daemon=True)
                         for worker in self.workers]

    def start(self) -> WorkerPool:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and wait for the cases in hand (at most `timeout` seconds)."""
        for worker in self.workers:
            worker.stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def release(self) -> None:
        for worker in self.workers:
            worker.release()

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def stats(self) -> dict[str, int]:
        names = ("received", "completed", "failed_cases", "skipped", "released", "errors")
        return {name: sum(getattr(worker.stats, name) for worker in self.workers) for name in names}


# How long embedded workers long-poll: short, so that stopping the emulator does not wait.
EMBEDDED_WAIT_SECONDS = 1
EMBEDDED_WORKERS = 4


@contextlib.contextmanager
def embedded_workers(emulator: Any, *, count: int = EMBEDDED_WORKERS, **options: Any) -> Iterator[WorkerPool]:
    """Workers for the queue target of an in-process EmbeddedEmulator, as threads using its
    clients; the simulated work per case follows `emulator.compute_seconds`."""
    options.setdefault("wait_seconds", EMBEDDED_WAIT_SECONDS)
    settings = WorkerSettings.from_outputs(
        emulator.outputs, compute_seconds=lambda: float(emulator.compute_seconds or 0.0), **options)
    pool = WorkerPool(settings, emulator.client, count=count).start()
    try:
        yield pool
    finally:
        pool.stop(timeout=settings.wait_seconds + 30)


# -- the command ------------------------------------------------------------------------------


def serve(settings: WorkerSettings, target: Deployment, *, threads: int, max_cases: int | None = None,
          install_signals: bool = True) -> int:
    """Run a worker pool until a signal (or `max_cases`); 0 after a clean stop, 130 when the
    cases in hand were released by a second signal."""
    pool = WorkerPool(settings, target.client, count=threads, max_cases=max_cases)
    signals = Signals(pool)
    with signals.installed() if install_signals else contextlib.nullcontext():
        pool.start()
        print(f"fanflow worker: {threads} thread(s) polling {settings.queue_url} on {target.name}; "
              "Ctrl-C (or SIGTERM) to stop", file=sys.stderr)
        while pool.alive() and not signals.released:  # released cases' threads are abandoned
            time.sleep(0.2)
    stats = pool.stats()
    print(f"fanflow worker: stopped; {stats['completed']} case(s) completed ({stats['failed_cases']} failed), "
          f"{stats['released']} released", file=sys.stderr)
    return 130 if signals.released else 0


class Signals:
    """SIGTERM/SIGINT: the first stops polling and lets the cases in hand finish; the second
    releases them."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.received = 0
        self.released = False

    def __call__(self, signum: int, frame: FrameType | None = None) -> None:
        self.received += 1
        if self.received == 1:
            print(f"fanflow worker: {signal.Signals(signum).name}: finishing the cases in hand "
                  "(again to release them now)", file=sys.stderr)
            self.pool.stop(timeout=0)
        else:
            self.released = True
            self.pool.release()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {signum: signal.signal(signum, self) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
