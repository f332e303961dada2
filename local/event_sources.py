"""Lambda's SQS poller, for the embedded target: reads an event source mapping's queue in
batches and invokes its function with them, as Lambda does (Lambda developer guide, "Using
Lambda with Amazon SQS" and "Parameters for Amazon SQS event source mappings"):

- a batch is sent when it holds `BatchSize` messages, or when `MaximumBatchingWindowInSeconds`
  has passed since its first message, whichever comes first;
- at most `ScalingConfig.MaximumConcurrency` batches are in flight at once (the function's
  concurrency limit applies as well: each batch is one invocation);
- the event is the documented one: `{"Records": [{"messageId", "receiptHandle", "body",
  "attributes": {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
  "ApproximateFirstReceiveTimestamp"}, "messageAttributes", "md5OfBody", "eventSource":
  "aws:sqs", "eventSourceARN", "awsRegion"}]}`;
- when the function succeeds, its messages are deleted, except those it names in
  `batchItemFailures` when the mapping has `ReportBatchItemFailures` (a response that names
  an unknown message fails the whole batch); when it fails, none is. What is not deleted
  becomes visible again when its visibility timeout ends, and the queue's redrive policy
  moves it to the dead-letter queue after `maxReceiveCount` receives.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.utilities.arns import parse_arn

LOG = logging.getLogger("fanflow.embedded")
IDLE_WAIT_SECONDS = 0.25  # how long an empty poll waits for a message before looking again


class SqsEventSource:
    """Polls one SQS event source mapping until `stop()`."""

    def __init__(self, mapping: Any, *, invoke: Callable[[Any, Any], tuple[str, bool, str]],
                 name: str = "fanflow-sqs-poller", time_scale: float = 1.0) -> None:
        self.mapping = mapping
        self.time_scale = time_scale  # an emulator run slower than AWS (AwsLimits.time_scale) waits longer
        self._invoke = invoke
        arn = parse_arn(mapping.event_source_arn)
        self.queue_arn = mapping.event_source_arn
        self.queue_name = arn.resource_id
        self.region, self.account = arn.region, arn.account
        self._stopped = threading.Event()
        self._in_flight = threading.Semaphore(self.max_concurrency)
        self.batches = 0
        self.messages = 0
        self._thread = threading.Thread(target=self._poll, name=name, daemon=True)
        self._thread.start()

    # The mapping's settings are read at each batch: UpdateEventSourceMapping applies at once.
    @property
    def batch_size(self) -> int:
        return int(self.mapping.batch_size or 10)

    @property
    def window(self) -> float:
        return float(self.mapping.max_batch_window or 0) * self.time_scale

    @property
    def max_concurrency(self) -> int:
        config = self.mapping.scaling_config or {}
        return int(config.get("MaximumConcurrency") or 1000)

    @property
    def reports_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in (self.mapping.function_response_types or [])

    def stop(self) -> None:
        self._stopped.set()

    # -- internals --------------------------------------------------------------------------
    def _backend(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account][self.region]

    def _poll(self) -> None:
        while not self._stopped.is_set():
            if not self.mapping.enabled:
                self._stopped.wait(IDLE_WAIT_SECONDS)
                continue
            self._in_flight.acquire()
            try:
                batch = self._gather()
            except Exception:  # the queue was deleted, the emulator is stopping
                self._in_flight.release()
                if not self._stopped.wait(IDLE_WAIT_SECONDS):
                    LOG.exception("polling %s failed", self.queue_name)
                continue
            if not batch:
                self._in_flight.release()
                continue
            threading.Thread(target=self._deliver, args=(batch,), name="fanflow-sqs-batch", daemon=True).start()

    def _gather(self) -> list[Any]:
        """Messages for one batch: up to the batch size, waiting at most the batching window
        from the first message (and as long as it takes for a first one)."""
        backend = self._backend()
        queue = backend.get_queue(self.queue_name)
        visibility = int(queue.visibility_timeout)
        batch: list[Any] = []
        first_at: float | None = None
        while not self._stopped.is_set() and len(batch) < self.batch_size:
            received = backend.receive_message(self.queue_name, self.batch_size - len(batch), 0, visibility)
            if received:
                batch.extend(received)
                first_at = first_at or time.monotonic()
                continue
            if first_at is None:
                queue.wait_for_messages(IDLE_WAIT_SECONDS)
                continue
            left = first_at + self.window - time.monotonic()
            if left <= 0:
                break
            queue.wait_for_messages(min(left, IDLE_WAIT_SECONDS))
        return batch

    def event(self, messages: list[Any]) -> dict[str, Any]:
        return {"Records": [{
            "messageId": message.id,
            "receiptHandle": message.receipt_handle,
            "body": message.body,
            "attributes": {
                "ApproximateReceiveCount": str(message.approximate_receive_count),
                "SentTimestamp": str(message.sent_timestamp),
                "SenderId": str(message.sender_id),
                "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
            },
            "messageAttributes": {},
            "md5OfBody": message.body_md5,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        } for message in messages]}

    def _deliver(self, batch: list[Any]) -> None:
        try:
            self._deliver_batch(batch)
        except Exception:
            if not self._stopped.is_set():  # once stopped, the function may be gone with moto's backends
                LOG.exception("delivering a batch of %s failed", self.queue_name)
        finally:
            self._in_flight.release()

    def _deliver_batch(self, batch: list[Any]) -> None:
        from moto.awslambda.utils import get_backend

        fn = get_backend(self.account, self.region).get_function(self.mapping.function_arn)
        payload, errored, _ = self._invoke(fn, self.event(batch))
        self.batches += 1
        self.messages += len(batch)
        if errored:
            LOG.warning("%s failed on a batch of %d from %s; its messages return after their visibility timeout",
                        fn.function_name, len(batch), self.queue_name)
            return
        failed = self._failures(payload, batch)
        if failed is None:
            return  # an invalid partial batch response: the whole batch failed
        backend = self._backend()
        for message in batch:
            if message.id not in failed:
                try:
                    backend.delete_message(self.queue_name, message.receipt_handle)
                except Exception as exc:  # deleted meanwhile, or its receipt handle expired
                    LOG.debug("could not delete %s: %s", message.id, exc)

    def _failures(self, payload: str, batch: list[Any]) -> set[str] | None:
        if not self.reports_item_failures:
            return set()
        try:
            response = json.loads(payload) if payload else None
        except ValueError:
            return set()
        if not isinstance(response, dict) or not response.get("batchItemFailures"):
            return set()  # an empty or absent list: the whole batch succeeded
        ids = {message.id for message in batch}
        failed: set[str] = set()
        for item in response["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not isinstance(identifier, str) or identifier not in ids:
                LOG.warning("batchItemFailures names %r, not in the batch: the whole batch failed", identifier)
                return None
            failed.add(identifier)
        return failed
