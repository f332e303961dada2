"""fanflow/worker.py against moto: a worker computes a queued case and reports it like the
Compute function (results row, completion event, message deleted), keeps the message
invisible while it works, leaves it to be redelivered when it dies mid-case, and releases
what it holds when it is stopped."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fanflow.cli import main
from fanflow.worker import Heartbeat, QueueWorker, Signals, WorkerPool, WorkerSettings, serve
from lambda_fns import constants as c
from lambda_fns.support import plain_item
from tests.tables import create_results_table, results_key

REGION = "us-east-1"
BUS = "fanflow-bus"
RESULTS = "fanflow-results"


class Killed(BaseException):
    """The worker process dying: nothing after it runs, not even an `except Exception`."""


@dataclass
class Aws:
    sqs: Any
    dynamodb: Any
    events: Any
    queue_url: str
    tap_url: str

    def settings(self, **overrides: Any) -> WorkerSettings:
        options: dict[str, Any] = dict(queue_url=self.queue_url, results_table=RESULTS, bus_name=BUS,
                                       compute_seconds=lambda: 0.0, wait_seconds=1, visibility_timeout=30)
        options.update(overrides)
        return WorkerSettings(**options)

    def worker(self, **overrides: Any) -> QueueWorker:
        work = overrides.pop("work", None)
        extra = {"work": work} if work else {}
        return QueueWorker(self.settings(**overrides), sqs=self.sqs, dynamodb=self.dynamodb, events=self.events,
                           **extra)

    def enqueue(self, request_id: str, case: dict[str, Any], *, deadline: float | None = None,
                registered: bool = True) -> None:
        """What Emit does for a case of the queue target: its pending results row, then its event,
        which EventBridge puts on the queue whole."""
        if registered:
            self.dynamodb.put_item(TableName=RESULTS, Item={
                **results_key(request_id, case["caseId"]),
                c.ATTR_STATE: {"S": c.CASE_PENDING}, c.ATTR_EXPIRES_AT: {"N": str(int(time.time()) + 7 * 86_400)}})
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps({
            "version": "0", "id": "e-1", "source": c.PREPROCESS_SOURCE, "detail-type": c.CASE_DETAIL_TYPE,
            "detail": {"requestId": request_id, "request": case,
                       c.DETAIL_DEADLINE: time.time() + 3600 if deadline is None else deadline},
        }))

    def queue_counts(self) -> tuple[int, int]:
        """(visible, in flight) messages."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def completions(self) -> list[dict[str, Any]]:
        out = []
        for message in self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", []):
            out.append(json.loads(message["Body"]))
        return out

    def row(self, request_id: str, case_id: str) -> dict[str, Any] | None:
        item = self.dynamodb.get_item(TableName=RESULTS, Key={**results_key(request_id, case_id)}).get("Item")
        return plain_item(item) if item else None


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        create_results_table(dynamodb, RESULTS)
        events.create_event_bus(Name=BUS)
        tap_url = sqs.create_queue(QueueName="completions")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="tap", EventBusName=BUS, EventPattern=json.dumps({"source": [c.COMPUTE_SOURCE]}))
        events.put_targets(Rule="tap", EventBusName=BUS, Targets=[{"Id": "tap", "Arn": tap_arn}])
        queue_url = sqs.create_queue(QueueName="cases")["QueueUrl"]
        yield Aws(sqs, dynamodb, events, queue_url, tap_url)


def test_a_queued_case_is_computed_reported_and_deleted(aws: Aws) -> None:
    # GIVEN a fan-out event for case 4 in the queue
    aws.enqueue("req-w", {"caseId": "4", c.ATTR_COMPUTE_TYPE: c.COMPUTE_TYPE_QUEUE})
    worker = aws.worker()
    # WHEN a worker polls once
    assert worker.poll_once() == 1
    # THEN the results row says SUCCEEDED, computed by the queue target, with a duration and expiry
    row = aws.row("req-w", "4")
    assert row is not None
    assert row[c.ATTR_STATE] == c.CASE_SUCCEEDED and row[c.ATTR_COMPUTED_BY] == c.COMPUTE_TYPE_QUEUE
    assert c.ATTR_DURATION_MS in row and row[c.ATTR_EXPIRES_AT] > time.time() + 6 * 86_400
    # AND the completion event has the Compute function's contract
    [event] = aws.completions()
    assert (event["source"], event["detail-type"]) == (c.COMPUTE_SOURCE, c.COMPLETION_DETAIL_TYPE)
    assert event["detail"] == {"requestId": "req-w", "request": {"caseId": "4", "computeType": "queue"},
                               "state": c.CASE_SUCCEEDED, "error": "", c.DETAIL_SHARDS: 1}
    # AND the message is gone: neither visible nor in flight
    assert aws.queue_counts() == (0, 0)
    assert (worker.stats.completed, worker.stats.failed_cases) == (1, 0)


def test_a_failing_computation_is_reported_as_a_failed_case(aws: Aws) -> None:
    # GIVEN a case whose computation raises
    aws.enqueue("req-w", {"caseId": "5"})

    def broken(request: dict[str, Any], seconds: float) -> None:
        raise ValueError("input out of range")

    # WHEN a worker computes it
    aws.worker(work=broken).poll_once()
    # THEN the row and the completion carry the failure and its error, and the message is deleted
    row = aws.row("req-w", "5")
    assert row is not None and row[c.ATTR_STATE] == c.CASE_FAILED
    assert row[c.ATTR_ERROR] == "ValueError: input out of range"
    [event] = aws.completions()
    assert event["detail"]["state"] == c.CASE_FAILED
    assert event["detail"]["error"] == "ValueError: input out of range"
    assert aws.queue_counts() == (0, 0)


def test_the_heartbeat_keeps_a_long_case_from_other_workers(aws: Aws) -> None:
    # GIVEN a case that takes 2.5 s and a visibility timeout of 1 s (heartbeat every third of it)
    aws.enqueue("req-w", {"caseId": "6", "computeSeconds": 2.5})
    busy = aws.worker(visibility_timeout=1)
    thread = threading.Thread(target=busy.poll_once)
    thread.start()
    # WHEN another worker polls while the first one works, well past the visibility timeout
    time.sleep(0.3)
    other = aws.worker(visibility_timeout=1)
    received = [other.poll_once() for _ in range(2)]  # two 1-second long polls
    thread.join()
    # THEN it received nothing: the first worker's heartbeat extended the visibility
    assert received == [0, 0]
    assert busy.stats.completed == 1 and other.stats.received == 0
    assert aws.queue_counts() == (0, 0)


def test_a_worker_that_dies_mid_case_leaves_it_to_be_redelivered(aws: Aws) -> None:
    # GIVEN a worker that dies while it computes case 7 (a 1-second visibility timeout)
    aws.enqueue("req-w", {"caseId": "7"})

    def die(request: dict[str, Any], seconds: float) -> None:
        raise Killed()

    with pytest.raises(Killed):
        aws.worker(work=die, visibility_timeout=1).poll_once()
    # THEN nothing was recorded or reported and the message is still in the queue, in flight
    row = aws.row("req-w", "7")
    assert row is not None and row[c.ATTR_STATE] == c.CASE_PENDING and aws.completions() == []
    assert aws.queue_counts() == (0, 1)
    # AND WHEN the visibility timeout passes  THEN another worker receives it (a second time) and completes it
    time.sleep(1.2)
    survivor = aws.worker(visibility_timeout=1)
    assert survivor.poll_once() == 1
    row = aws.row("req-w", "7")
    assert row is not None and row[c.ATTR_STATE] == c.CASE_SUCCEEDED
    assert [event["detail"]["request"]["caseId"] for event in aws.completions()] == ["7"]
    assert aws.queue_counts() == (0, 0)


def test_a_message_received_after_stop_is_released_unprocessed(aws: Aws) -> None:
    # GIVEN a stopped worker that still receives a message (its long poll was under way)
    aws.enqueue("req-w", {"caseId": "8"})
    worker = aws.worker()
    worker.stop()
    # WHEN it handles what it received
    worker.poll_once()
    # THEN the case is not computed, and the message is visible again at once for another worker
    assert aws.row("req-w", "8")[c.ATTR_STATE] == c.CASE_PENDING  # type: ignore[index]
    assert aws.queue_counts() == (1, 0)
    assert (worker.stats.released, worker.stats.completed) == (1, 0)


def test_release_gives_the_case_in_hand_back_and_leaves_its_report_to_the_next_worker(aws: Aws) -> None:
    # GIVEN a worker in the middle of a case
    aws.enqueue("req-w", {"caseId": "9"})
    started, finish = threading.Event(), threading.Event()

    def slow(request: dict[str, Any], seconds: float) -> None:
        started.set()
        finish.wait(10)

    worker = aws.worker(work=slow)
    thread = threading.Thread(target=worker.poll_once)
    thread.start()
    assert started.wait(10)
    # WHEN it is released (a second SIGTERM)
    worker.release()
    # THEN the message is visible again while the computation still runs
    assert aws.queue_counts() == (1, 0)
    # AND when the computation ends, its result is recorded but not reported ...
    finish.set()
    thread.join()
    assert aws.row("req-w", "9")[c.ATTR_STATE] == c.CASE_SUCCEEDED  # type: ignore[index]
    assert aws.completions() == []
    assert worker.stats.completed == 0 and worker.stopping
    # ... by it: the next worker reports that stored result, without computing the case again
    again: list[str] = []
    assert aws.worker(work=lambda request, seconds: again.append(request["caseId"])).poll_once() == 1
    assert again == []
    assert [event["detail"]["state"] for event in aws.completions()] == [c.CASE_SUCCEEDED]


def test_a_case_past_its_deadline_or_not_in_its_request_is_deleted_unreported(aws: Aws) -> None:
    # GIVEN a case whose request's deadline passed while it waited, and one no request registered
    aws.enqueue("req-w", {"caseId": "10"}, deadline=time.time() - 1)
    aws.enqueue("req-w", {"caseId": "11"}, registered=False)
    computed: list[str] = []
    worker = aws.worker(work=lambda request, seconds: computed.append(request["caseId"]))
    # WHEN a worker receives them
    assert worker.poll_once() + worker.poll_once() == 2
    # THEN neither is computed or reported, both messages are deleted, and no row is created
    assert computed == [] and aws.completions() == [] and aws.queue_counts() == (0, 0)
    assert aws.row("req-w", "10")[c.ATTR_STATE] == c.CASE_EXPIRED  # type: ignore[index]
    assert aws.row("req-w", "11") is None
    assert (worker.stats.skipped, worker.stats.completed) == (2, 0)


def test_the_heartbeat_never_asks_sqs_for_more_than_its_12_hours() -> None:
    # GIVEN a heartbeat on a message received 11 h 59 min 30 s ago (SQS's limit: 12 h from the receive)
    calls: list[int] = []
    sqs = type("Sqs", (), {"change_message_visibility": lambda self, **kw: calls.append(kw["VisibilityTimeout"])})()
    now = [0.0]
    beat = Heartbeat(sqs, "q", "r", visibility_timeout=60, interval=0.01, clock=lambda: now[0])
    now[0] = c.SQS_MAX_VISIBILITY_SECONDS - 30
    # THEN the next extension is cut to what is left, and at the limit it stops asking
    assert beat.next_timeout() == 30
    now[0] = c.SQS_MAX_VISIBILITY_SECONDS
    with beat:
        deadline = time.monotonic() + 5
        while not beat.at_limit and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beat.at_limit and calls == []
    assert c.SQS_MAX_VISIBILITY_SECONDS == 12 * 3600


def test_a_message_that_is_not_a_fan_out_event_is_left_for_the_dead_letter_queue(aws: Aws) -> None:
    # GIVEN a message that is not an EventBridge fan-out event
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody="not json")
    worker = aws.worker(visibility_timeout=5)
    # WHEN a worker receives it  THEN it neither deletes nor releases it
    assert worker.poll_once() == 1
    assert aws.queue_counts() == (0, 1)
    assert worker.stats.errors == 1 and worker.stats.completed == 0


def test_a_pool_computes_cases_concurrently_and_stops_cleanly(aws: Aws) -> None:
    # GIVEN 8 cases of 0.5 s each
    for case in range(8):
        aws.enqueue("req-p", {"caseId": str(case)})
    pool = WorkerPool(aws.settings(compute_seconds=lambda: 0.5), {"sqs": aws.sqs, "dynamodb": aws.dynamodb,
                                                                  "events": aws.events}.__getitem__, count=4)
    # WHEN 4 workers run until the queue is empty
    started = time.monotonic()
    pool.start()
    while pool.stats()["completed"] < 8 and time.monotonic() - started < 20:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    pool.stop(timeout=10)
    # THEN every case was completed once, in about a quarter of the sequential time, and the threads ended
    assert pool.stats()["completed"] == 8
    assert elapsed < 8 * 0.5
    assert not pool.alive()
    assert all(aws.row("req-p", str(case)) is not None for case in range(8))


def test_serve_stops_after_max_cases(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN three queued cases and the worker command's loop, told to stop after two
    for case in range(3):
        aws.enqueue("req-s", {"caseId": str(case)})
    clients = {"sqs": aws.sqs, "dynamodb": aws.dynamodb, "events": aws.events}
    target = type("Deployment", (), {"name": "test", "client": staticmethod(clients.__getitem__)})()
    # WHEN it serves with one thread  THEN it returns 0 after two cases, leaving the third queued
    assert serve(aws.settings(), target, threads=1, max_cases=2, install_signals=False) == 0
    assert "stopped; 2 case(s) completed (0 failed), 0 released" in capsys.readouterr().err
    assert aws.queue_counts() == (1, 0)


def test_signals_stop_then_release() -> None:
    # GIVEN the worker command's signal handler over a pool
    calls: list[str] = []

    class Pool:
        def stop(self, timeout: float | None = None) -> None:
            calls.append("stop")

        def release(self) -> None:
            calls.append("release")

    handler = Signals(Pool())  # type: ignore[arg-type]
    # WHEN SIGTERM arrives  THEN polling stops and the cases in hand may finish
    handler(signal.SIGTERM)
    assert calls == ["stop"] and not handler.released
    # AND WHEN a second signal arrives  THEN the cases in hand are released
    handler(signal.SIGINT)
    assert calls == ["stop", "release"] and handler.released


def test_settings_come_from_the_stack_outputs() -> None:
    outputs = {c.OUTPUT_WORK_QUEUE_URL: "https://queue", c.OUTPUT_RESULTS_TABLE: "results", c.OUTPUT_BUS_NAME: "bus"}
    settings = WorkerSettings.from_outputs(outputs, compute_seconds=lambda: 1.0)
    assert (settings.queue_url, settings.results_table, settings.bus_name) == ("https://queue", "results", "bus")
    assert settings.heartbeat_seconds == c.WORK_QUEUE_VISIBILITY_TIMEOUT_SECONDS / 3
    # AND another queue target's queue is named by its output
    other = WorkerSettings.from_outputs({**outputs, "GpuQueueUrl": "https://gpu"}, compute_seconds=lambda: 1.0,
                                        queue_output="GpuQueueUrl", compute_type=c.COMPUTE_TYPE_LAMBDA_LARGE)
    assert (other.queue_url, other.reporting().computed_by) == ("https://gpu", c.COMPUTE_TYPE_LAMBDA_LARGE)
    # AND a missing output (an older stack, a misspelt name) is named, with the fix
    with pytest.raises(Exception, match=f"no output {c.OUTPUT_WORK_QUEUE_URL}.*deploy"):
        WorkerSettings.from_outputs({c.OUTPUT_RESULTS_TABLE: "r", c.OUTPUT_BUS_NAME: "b"}, compute_seconds=float)


def test_worker_on_the_embedded_target_needs_an_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no `fanflow up` endpoint (the suite's state file is empty)
    # WHEN `fanflow worker` starts on the embedded target  THEN it says what to do instead
    assert main(["worker", "--target", "embedded"]) == 1
    err = capsys.readouterr().err
    assert "fanflow up" in err and "fanflow run" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--threads", "0"], "argument --threads: must be a whole number from 1 to 1000, got 0"),
    (["--wait-seconds", "21"], "argument --wait-seconds: must be a whole number from 1 to 20, got 21"),
    (["--visibility-timeout", "0"], "argument --visibility-timeout: must be a whole number from 1 to 43200, got 0"),
    (["--compute-seconds", "nan"],
     f"argument --compute-seconds: must be a number from 0 to {c.MAX_DEADLINE_SECONDS}, got nan"),
])
def test_worker_options_out_of_range_are_refused(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                 message: str) -> None:
    assert main(["worker", *argv]) == 2
    assert message in capsys.readouterr().err
