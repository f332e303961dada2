"""What the embedded target makes up on AWS's behalf, against the shapes AWS documents
(tests/documented.py names the pages): the record a failed asynchronous invocation sends to an
EventBridge destination, and the event a rule target receives (a Lambda function, a state
machine's execution input, an SQS message body). A shape agreed with the stack, not with AWS,
would hide exactly the defects AWS finds."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from lambda_fns import constants as c
from lambda_fns.counting import parse_completion
from local.moto_patches.delivery import target_input
from local.runtime import EmbeddedEmulator
from tests import documented


def keys_at_each_level(value: Any, path: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, item in value.items():
        found.add(f"{path}{key}")
        if key not in ("requestPayload", "detail") or path:  # the payloads are the caller's
            found |= keys_at_each_level(item, f"{path}{key}.")
    return found


@pytest.fixture
def sent(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """PutEvents entries the emulator makes, captured instead of sent."""
    monkeypatch.setenv("FANFLOW_CACHE_DIR", str(tmp_path))
    entries: list[dict[str, Any]] = []
    emulator = EmbeddedEmulator()
    fake = SimpleNamespace(put_events=lambda Entries: entries.extend(Entries))
    monkeypatch.setattr(emulator, "client", lambda service: fake)
    fn = SimpleNamespace(function_arn=documented.FUNCTION_ARN, function_name="Fanflow-Compute")
    case_event = documented.eventbridge_event(c.PREPROCESS_SOURCE, c.CASE_DETAIL_TYPE,
                                              {"requestId": "req-1", "request": {"caseId": "7"}})
    emulator._send_failure_record(fn, case_event, {"errorMessage": "boom", "errorType": "RuntimeError"}, 3,
                                  "arn:aws:events:us-east-1:123456789012:event-bus/fanflow")
    return entries


def test_the_failure_record_is_the_documented_one(sent: list[dict[str, Any]]) -> None:
    [entry] = sent
    expected = documented.failure_record({"errorMessage": "boom", "errorType": "RuntimeError"})
    # THEN the entry is Lambda's: its source, detail-type, and the function named with $LATEST
    assert (entry["Source"], entry["DetailType"]) == (expected["source"], expected["detail-type"])
    assert entry["Resources"] == expected["resources"] == [f"{documented.FUNCTION_ARN}:$LATEST"]
    # AND its detail has the documented members, at every level
    detail = json.loads(entry["Detail"])
    assert keys_at_each_level(detail) == keys_at_each_level(expected["detail"])
    assert detail["requestContext"]["functionArn"] == f"{documented.FUNCTION_ARN}:$LATEST"
    assert detail["requestContext"]["condition"] == "RetriesExhausted"
    assert detail["responseContext"] == expected["detail"]["responseContext"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", detail["timestamp"])
    # AND the fan-in reads it as the failed case it stands for
    event = {**expected, "detail": detail}
    completion = parse_completion("m", json.dumps(event))
    assert (completion.request_id, completion.case_id, completion.state, completion.error) == (
        "req-1", "7", c.CASE_FAILED, "RuntimeError: boom")


def test_a_rule_target_receives_the_documented_event() -> None:
    # GIVEN an event as moto's EventBridge holds it (time as a number, an ingestion time)
    held = {**documented.eventbridge_event("fanflow.test", "Test", {"n": 1}), "time": 1796198628.0,
            "ingestion-time": 1796198628.5}
    # WHEN it is rendered for a target without input settings (a function's event, an
    # execution's input, an SQS message's body)
    delivered = target_input({"Id": "t", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}, held)
    # THEN it has the documented members only, and its time in ISO 8601, UTC, whole seconds
    assert set(delivered) == documented.EVENT_KEYS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", delivered["time"])
    assert delivered["detail"] == {"n": 1}
