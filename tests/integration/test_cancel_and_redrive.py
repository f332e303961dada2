"""A request's life after it starts, on the embedded target: a partial request redriven to
success, the fault matrix across attempts (late completions of an earlier attempt), and a
cancel during the fan-out of a 10,000-case request. Every count is asserted exactly."""

from __future__ import annotations

import collections
import json
import threading
import time
from typing import Any

import pytest
from moto.events.models import EventsBackend

from fanflow.client import FanflowClient
from fanflow.errors import UsageError
from fanflow.samples import sample_request
from lambda_fns import constants as c
from lambda_fns.request_model import parse_request
from local.faults import FaultPlan
from local.runtime import EmbeddedEmulator


class FanOutLog:
    """The fan-out events EventBridge accepts, with when their PutEvents call began, by
    (requestId, attempt)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        self.cases: dict[tuple[str, int], list[str]] = collections.defaultdict(list)
        self.lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = EventsBackend.put_events

        def put_events(backend: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            began = time.time()
            results = original(backend, events)
            with self.lock:
                for entry, result in zip(events, results, strict=True):
                    if entry.get("Source") == c.PREPROCESS_SOURCE and not result.get("ErrorCode"):
                        detail = json.loads(entry["Detail"])
                        key = (detail["requestId"], int(detail.get(c.DETAIL_ATTEMPT, 1)))
                        self.times[key].append(began)
                        self.cases[key].append(detail["request"]["caseId"])
            return results

        monkeypatch.setattr(EventsBackend, "put_events", put_events)

    def emitted(self, request_id: str, attempt: int = 1) -> int:
        with self.lock:
            return len(self.times[(request_id, attempt)])


@pytest.fixture
def fan_out_log() -> FanOutLog:
    """Installed once the emulator runs (its own adaptations of EventBridge come first)."""
    return FanOutLog()


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def test_a_partial_request_is_redriven_to_success_re_emitting_only_its_failed_cases(
        fan_out_log: FanOutLog, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a 1,000-case request whose computations fail with probability 0.2 on its first attempt
    with EmbeddedEmulator(faults=FaultPlan(failure_rate=0.2, seed=11)) as emulator:
        fan_out_log.install(monkeypatch)
        client = FanflowClient(emulator.client, emulator.outputs)
        client.start(parse_request(sample_request(1000, "redrive-1k")))
        first = client.wait("redrive-1k", timeout=300)
        summary = client.summary(first)
        failed = {failure["caseId"] for failure in summary["failures"]}
        # THEN it ends PARTIAL, every case counted once
        assert (first[c.ATTR_STATUS], first[c.ATTR_COUNTER], summary["failed"]) == (c.STATUS_PARTIAL, 1000, len(failed))
        assert 150 < len(failed) < 250
        # (the injected failures hit the first attempt only, as transient ones would)
        # WHEN it is redriven
        redrive = client.redrive("redrive-1k")
        final = client.wait("redrive-1k", execution_arn=redrive.execution_arn, attempt=redrive.attempt, timeout=300)
        summary = client.summary(final)
        # THEN it succeeds with exactly 1,000 counted, having re-emitted the failed cases and nothing else
        assert (final[c.ATTR_STATUS], final[c.ATTR_ATTEMPT], final[c.ATTR_COUNTER], final[c.ATTR_EXPECTED]) == (
            c.STATUS_SUCCEEDED, 2, 1000, 1000)
        assert (summary["succeeded"], summary["failed"], summary["redriven"]) == (1000, 0, len(failed))
        assert sorted(fan_out_log.cases[("redrive-1k", 2)], key=int) == sorted(failed, key=int), {
            key: len(value) for key, value in fan_out_log.cases.items()}
        assert fan_out_log.emitted("redrive-1k", 1) == 1000
        # AND each case's line says the attempt it ended on; Summary ran once per attempt
        assert {case["caseId"] for case in summary["cases"] if case["attempt"] == 2} == failed
        assert emulator.summary_invocations("redrive-1k") == 2
        # AND a request that succeeded cannot be redriven, nor one past the limit
        with pytest.raises(UsageError, match="succeeded: there is nothing to redrive"):
            client.redrive("redrive-1k")


def test_the_fault_matrix_across_attempts_stays_exact() -> None:
    # GIVEN a request whose first attempt meets duplicates, failures and lost completions (the
    # injected faults hit the first attempt only)
    plan = FaultPlan(duplicate_rate=0.3, failure_rate=0.2, drop_rate=0.1, seed=21)
    with EmbeddedEmulator(faults=plan) as emulator:
        client = FanflowClient(emulator.client, emulator.outputs)
        request = sample_request(100, "matrix")
        request["deadlineSeconds"] = 5
        client.start(parse_request(request))
        first = client.wait("matrix", timeout=120)
        summary = client.summary(first)
        taken = {failure["caseId"] for failure in summary["failures"]} | set(summary["timedOut"])
        assert first[c.ATTR_STATUS] == c.STATUS_TIMED_OUT and summary["timedOutCount"] > 0 and summary["failed"] > 0
        assert summary["succeeded"] + summary["failed"] + summary["timedOutCount"] == 100
        # WHEN it is redriven, and attempt 1's completions of the redriven cases arrive late, as
        # failures, while attempt 2 runs
        redrive = client.redrive("matrix")
        wait_for(lambda: (client.progress("matrix").attempt, client.progress("matrix").status)  # type: ignore[union-attr]
                 == (2, c.STATUS_RUNNING), 30, "attempt 2 opening")
        events = emulator.client("events")
        late = [{"Source": c.COMPUTE_SOURCE, "DetailType": c.COMPLETION_DETAIL_TYPE,
                 "EventBusName": emulator.outputs[c.OUTPUT_BUS_NAME],
                 "Detail": json.dumps({"requestId": "matrix", "request": {"caseId": case_id}, "state": c.CASE_FAILED,
                                       "error": "late from attempt 1", c.DETAIL_SHARDS: int(first[c.ATTR_SHARDS]),
                                       c.DETAIL_ATTEMPT: 1})} for case_id in sorted(taken)]
        for start in range(0, len(late), 10):
            events.put_events(Entries=late[start:start + 10])
        final = client.wait("matrix", execution_arn=redrive.execution_arn, attempt=2, timeout=120)
        summary = client.summary(final)
        # THEN no late completion was counted: every redriven case succeeded in attempt 2, each once
        assert (final[c.ATTR_STATUS], final[c.ATTR_COUNTER], final[c.ATTR_EXPECTED]) == (c.STATUS_SUCCEEDED, 100, 100)
        assert (summary["succeeded"], summary["failed"], summary["redriven"]) == (100, 0, len(taken))
        assert {case["caseId"] for case in summary["cases"] if case["attempt"] == 2} == taken
        assert emulator.summary_invocations("matrix") == 2


def test_a_cancel_during_fan_out_stops_emission_at_once_and_nothing_is_counted_after(
        fan_out_log: FanOutLog, monkeypatch: pytest.MonkeyPatch) -> None:
    with EmbeddedEmulator() as emulator:
        fan_out_log.install(monkeypatch)
        client = FanflowClient(emulator.client, emulator.outputs)
        # GIVEN a 10,000-case request in its fan-out
        client.start(parse_request(sample_request(10_000, "cancel-10k")))
        wait_for(lambda: fan_out_log.emitted("cancel-10k") >= 1500, 120, "1,500 cases emitted")
        # WHEN it is cancelled
        asked = time.time()
        closed = client.cancel("cancel-10k")
        took = time.time() - asked
        counted = closed[c.ATTR_COUNTER]
        time.sleep(3)  # computations already running finish meanwhile
        row = client.counter_row("cancel-10k")
        assert row is not None
        claimed = float(row[c.ATTR_CANCELLED_AT])
        # THEN emission stopped short of the request: every Emit reads the row before each PutEvents
        # call, so once the cancel has returned (its claim written), each chunk in flight (the Map's
        # MaxConcurrency) can begin at most the one call it checked before the claim, of at most 10
        # cases. (How soon after the command, in seconds, depends on the machine's load: the test
        # prints it; it is not asserted here.)
        emitted = fan_out_log.emitted("cancel-10k")
        times = fan_out_log.times[("cancel-10k", 1)]
        after_cancel = sum(1 for began in times if began > asked + took)
        assert after_cancel <= c.FANOUT_MAX_CONCURRENCY * c.PUT_EVENTS_MAX_ENTRIES, (
            f"{after_cancel} cases put by PutEvents calls that began after the cancel returned")
        assert emitted < 10_000
        # AND the request closed CANCELLED, once, and nothing was counted after the cancel
        assert row[c.ATTR_STATUS] == c.STATUS_CANCELLED and row[c.ATTR_COUNTER] == counted
        summary = client.summary(row)
        assert summary["status"] == c.STATUS_CANCELLED
        assert summary["succeeded"] + summary["failed"] == counted
        assert summary["cancelledCount"] == 10_000 - counted and summary["listsCapped"]
        assert emulator.summary_invocations("cancel-10k") == 1
        assert client.execution("cancel-10k")["status"] == "ABORTED"  # type: ignore[index]
        # AND a second cancel is refused with the request's status
        with pytest.raises(UsageError, match=r"has finished \(CANCELLED\)"):
            client.cancel("cancel-10k")
        print(f"cancel: {took:.2f} s; claimed {claimed - asked:+.2f} s after the command; emitted {emitted} of "
              f"10,000, {after_cancel} by calls begun after the cancel returned; last fan-out call began "
              f"{max(times) - asked:+.2f} s after the command; counted {counted}")
