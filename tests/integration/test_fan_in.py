"""The batched fan-in end to end on the embedded target: how many counter-row writes and
fan-in executions a request costs, what becomes of a message that is not a completion, and
the batching options of `fanflow run`."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from fanflow import dead_letters
from fanflow.cli import main
from fanflow.client import FanflowClient
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.faults import FaultPlan
from local.runtime import EmbeddedEmulator
from tests import documented


def test_a_thousand_cases_cost_a_batch_of_writes_not_a_write_per_case() -> None:
    # GIVEN the embedded target with its defaults (batches of up to 99, a 1 s window)
    cases = 1000
    budget = math.ceil(cases / 50) + 5
    with EmbeddedEmulator() as emulator:
        client = FanflowClient(emulator.client, emulator.outputs)
        # WHEN a 1,000-case request runs
        client.start(parse_request(sample_request(cases, "thousand")))
        row = client.wait("thousand", timeout=300)
        engine = emulator.fan_in_stats("thousand")
        runs = emulator.summary_invocations("thousand")
    # THEN every case was counted once, and Summary ran once
    assert (row[c.ATTR_COUNTER], row[c.ATTR_SUCCEEDED], row[c.ATTR_STATUS]) == (cases, cases, c.STATUS_SUCCEEDED)
    assert runs == 1
    # AND the counter row took at most ceil(N/50) + 5 writes, as it records them and as the engine saw
    # them (open, one transaction per batch, claim, close), in at most as many fan-in executions
    assert row[c.ATTR_COUNTER_WRITES] <= budget
    assert engine["counterWrites"] <= budget
    assert engine["fanInExecutions"] <= budget
    assert row[c.ATTR_FAN_IN_BATCHES] >= math.ceil(cases / c.FAN_IN_BATCH_SIZE)
    assert row[c.ATTR_COUNTER_WRITES] == 1 + row[c.ATTR_FAN_IN_BATCHES] + row[c.ATTR_CONFLICT_RETRIES] + 2


def test_a_message_that_is_not_a_completion_ends_in_the_dead_letter_queue() -> None:
    # GIVEN the embedded target whose consumer offers a failed message again at once
    def no_retry_delay(fn: Any, module: Any) -> None:
        if hasattr(module, "RETRY_DELAY_SECONDS"):
            module.RETRY_DELAY_SECONDS = 0

    with EmbeddedEmulator() as emulator:
        emulator.runner.cold_start_hooks.append(no_retry_delay)
        sqs = emulator.client("sqs")
        client = FanflowClient(emulator.client, emulator.outputs)
        # WHEN something that is not a completion lands in the buffer, beside a request's completions
        sqs.send_message(QueueUrl=emulator.outputs[c.OUTPUT_COMPLETION_QUEUE_URL],
                         MessageBody=json.dumps({"source": "someone.else", "detail": {}}))
        client.start(parse_request(sample_request(20, "beside")))
        row = client.wait("beside", timeout=120)
        # THEN the request is counted as if it were not there
        assert (row[c.ATTR_COUNTER], row[c.ATTR_STATUS]) == (20, c.STATUS_SUCCEEDED)
        # AND after its receives, the message waits in the dead-letter queue, where the alarm sees it
        dlq = emulator.outputs[c.OUTPUT_COMPLETION_DLQ_URL]
        deadline = time.monotonic() + 60
        messages: list[dict[str, Any]] = []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=dlq, AttributeNames=["All"]).get("Messages", [])
            time.sleep(0.2)
    assert [json.loads(m["Body"])["source"] for m in messages] == ["someone.else"]
    assert int(messages[0]["Attributes"]["ApproximateReceiveCount"]) >= c.FAN_IN_MAX_RECEIVES


def test_run_takes_the_batching_options_and_reports_the_fan_in(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN batches of at most 10, sent as soon as they fill or nothing more comes
    assert main(["run", "--cases", "40", "--request-id", "small-batches", "--fan-in-batch-size", "10",
                 "--fan-in-window", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # THEN the request took at least 4 counting transactions, reported from the counter row and the engine
    fan_in = out["fanIn"]
    assert fan_in["batches"] >= 4
    assert fan_in["counterWrites"] == out["counterRow"][c.ATTR_COUNTER_WRITES]
    assert fan_in["engine"]["fanInExecutions"] >= 4 and fan_in["engine"]["counterWrites"] >= fan_in["batches"]


@pytest.mark.parametrize(("options", "message"), [
    (["--fan-in-batch-size", "50", "--fan-in-window", "0"], "--fan-in-batch-size 50 needs a --fan-in-window"),
    (["--fan-in-batch-size", "0"], "--fan-in-batch-size: must be a whole number from 1 to 10000"),
    (["--fan-in-window", "301"], "--fan-in-window: must be a whole number from 0 to 300"),
    (["--conflict-rate", "2"], "--conflict-rate: must be a number from 0 to 1"),
])
def test_batching_and_conflict_options_out_of_range_are_refused(
        capsys: pytest.CaptureFixture[str], options: list[str], message: str) -> None:
    assert main(["run", "--cases", "3", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def completion_body(request_id: str, case_id: str) -> str:
    return documented.as_body(documented.completion_event(
        {"requestId": request_id, "request": {"caseId": case_id}, "state": c.CASE_SUCCEEDED, "error": ""}))


class LoseCaseOne(FaultPlan):
    """Loses the first completion of case 1, nothing else."""

    def drop(self, request_id: str, case_id: str, attempt: int = 1) -> bool:
        if case_id != "1" or self.dropped:
            return False
        self.dropped.add((request_id, case_id))
        return True


@pytest.mark.parametrize("queue", ["completions", "rule-targets"])
def test_dead_letters_are_listed_and_replayed_back_into_the_count(queue: str) -> None:
    request_id = f"dlq-{queue}"
    with EmbeddedEmulator(faults=LoseCaseOne(drop_rate=0.5)) as emulator:
        # GIVEN a 3-case request whose completion of case 1 was lost, and a dead letter standing
        # for it (a completion the fan-in could not count, or an event EventBridge could not deliver)
        client = FanflowClient(emulator.client, emulator.outputs)
        client.start(parse_request({**sample_request(3, request_id), "deadlineSeconds": 120}))
        deadline = time.monotonic() + 60
        while ((progress := client.progress(request_id)) is None or progress.completed < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        sqs, url = emulator.client("sqs"), emulator.outputs[dead_letters.QUEUES[queue]]
        sqs.send_message(QueueUrl=url, MessageBody=completion_body(request_id, "1"))
        # WHEN the dead letters are read THEN it is there, named by its request and case
        [letter] = dead_letters.peek(sqs, queue, url, limit=10)
        assert (letter.describe()["requestId"], letter.describe()["caseId"]) == (request_id, "1")
        # AND WHEN it is replayed THEN it goes back, leaves the dead-letter queue, and completes the request
        assert dead_letters.replay(emulator, letter) in ("sent back to the completion queue", "put back on the bus")
        row = client.wait(request_id, timeout=60)
        assert (row[c.ATTR_COUNTER], row[c.ATTR_STATUS]) == (3, c.STATUS_SUCCEEDED)
        assert dead_letters.peek(sqs, queue, url, limit=10) == []
