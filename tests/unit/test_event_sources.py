"""Lambda's SQS poller in the embedded target (local/event_sources.py), against moto's SQS:
batches by size and by window, the documented event, partial batch responses, and the
mapping's concurrency. Sources: Lambda developer guide, "Using Lambda with Amazon SQS"
(example event: docs.aws.amazon.com/lambda/latest/dg/with-sqs.html), "Handling errors for an
SQS event source in Lambda" (partial batch responses) and "Parameters for Amazon SQS event
source mappings" (BatchSize, MaximumBatchingWindowInSeconds, ScalingConfig)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from local.event_sources import SqsEventSource
from tests.patch_helpers import REGION, Recorder, create_function, make_queue

RECORD_KEYS = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
               "eventSource", "eventSourceARN", "awsRegion"}
ATTRIBUTE_KEYS = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}


class Function:
    """Stands in for the Lambda runner: records each batch, answers as told."""

    def __init__(self, *, seconds: float = 0.0) -> None:
        self.batches: list[tuple[float, dict[str, Any]]] = []
        self.answer: Any = lambda event: ({}, False)
        self.seconds = seconds
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def invoke(self, fn: Any, event: Any) -> tuple[str, bool, str]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.batches.append((time.monotonic(), event))
        time.sleep(self.seconds)
        response, errored = self.answer(event)
        with self.lock:
            self.running -= 1
        return json.dumps(response), errored, ""

    def bodies(self) -> list[list[str]]:
        return [[record["body"] for record in event["Records"]] for _, event in self.batches]


@pytest.fixture
def queue(recorder: Recorder, session: boto3.session.Session) -> Iterator[tuple[Any, str, str]]:
    create_function(session)
    url, arn = make_queue(session, "completions")
    session.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    yield session.client("sqs"), url, arn


def poll(arn: str, function: Function, *, size: int = 10, window: int = 0, concurrency: int = 1000,
         report_failures: bool = True) -> SqsEventSource:
    mapping = SimpleNamespace(
        event_source_arn=arn, function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:fn", enabled=True,
        batch_size=size, max_batch_window=window, scaling_config={"MaximumConcurrency": concurrency},
        function_response_types=["ReportBatchItemFailures"] if report_failures else None)
    return SqsEventSource(mapping, invoke=function.invoke)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def send(sqs: Any, url: str, bodies: list[str]) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


def visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_full_batches_go_at_once_and_the_rest_when_the_window_ends(queue: tuple[Any, str, str]) -> None:
    # GIVEN 25 messages waiting, batches of 10 and a 1 s window
    sqs, url, arn = queue
    send(sqs, url, [str(i) for i in range(25)])
    function = Function()
    started = time.monotonic()
    source = poll(arn, function, size=10, window=1)
    try:
        wait_for(lambda: sum(len(b) for b in function.bodies()) == 25)
    finally:
        source.stop()
    # THEN two full batches go without waiting, and the last 5 when the window has passed
    sizes = [len(bodies) for bodies in function.bodies()]
    assert sizes == [10, 10, 5]
    full, last = function.batches[1][0] - started, function.batches[2][0] - started
    assert full < 0.9 <= last
    # AND every message was deleted once its batch succeeded
    wait_for(lambda: visible(sqs, url) == 0)


def test_the_event_is_the_documented_one(queue: tuple[Any, str, str]) -> None:
    sqs, url, arn = queue
    send(sqs, url, ['{"n": 1}'])
    function = Function()
    source = poll(arn, function)
    try:
        wait_for(lambda: function.batches)
    finally:
        source.stop()
    [record] = function.batches[0][1]["Records"]
    assert set(record) == RECORD_KEYS
    assert set(record["attributes"]) == ATTRIBUTE_KEYS
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert (record["body"], record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        '{"n": 1}', "aws:sqs", arn, REGION)
    import hashlib

    assert record["md5OfBody"] == hashlib.md5(b'{"n": 1}').hexdigest()  # SQS's own checksum


def test_only_the_messages_named_in_batch_item_failures_come_back(queue: tuple[Any, str, str]) -> None:
    # GIVEN a function that reports message "b" as failed, the first time
    sqs, url, arn = queue
    send(sqs, url, ["a", "b", "c"])
    function = Function()

    def answer(event: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        failed = [r["messageId"] for r in event["Records"]
                  if r["body"] == "b" and r["attributes"]["ApproximateReceiveCount"] == "1"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}, False

    function.answer = answer
    source = poll(arn, function, window=1)
    try:
        wait_for(lambda: len(function.batches) == 2, timeout=15)
    finally:
        source.stop()
    # THEN only "b" was delivered again, after its visibility timeout, with its receive count
    assert sorted(function.bodies()[0]) == ["a", "b", "c"] and function.bodies()[1] == ["b"]
    assert function.batches[1][1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert function.batches[1][0] - function.batches[0][0] >= 1.9
    wait_for(lambda: visible(sqs, url) == 0)


@pytest.mark.parametrize(("answer", "why"), [
    (lambda event: ({"errorMessage": "boom"}, True), "the function failed"),
    (lambda event: ({"batchItemFailures": [{"itemIdentifier": "not-in-the-batch"}]}, False),
     "the response names a message the batch does not have"),
])
def test_a_failed_batch_comes_back_whole(queue: tuple[Any, str, str], answer: Any, why: str) -> None:
    sqs, url, arn = queue
    send(sqs, url, ["a", "b"])
    function = Function()
    function.answer = answer
    source = poll(arn, function, window=1)
    try:
        wait_for(lambda: function.batches)
        time.sleep(0.3)
    finally:
        source.stop()
    assert visible(sqs, url) == 2, why  # nothing deleted: both return after their visibility timeout


def test_no_more_batches_at_once_than_the_mapping_allows(queue: tuple[Any, str, str]) -> None:
    # GIVEN 12 messages, batches of 2, a function that takes 0.3 s, and MaximumConcurrency 3
    sqs, url, arn = queue
    send(sqs, url, [str(i) for i in range(12)])
    function = Function(seconds=0.3)
    source = poll(arn, function, size=2, concurrency=3)
    try:
        wait_for(lambda: sum(len(b) for b in function.bodies()) == 12)
    finally:
        source.stop()
    # THEN at most 3 batches ran at once, and they did run side by side
    assert function.most_at_once == 3
