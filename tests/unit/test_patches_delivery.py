"""Adaptations 1, 17, 20 and 23 (local/moto_patches/delivery.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_patches
from tests.patch_helpers import (
    ACCOUNT,
    LAMBDA_ARN,
    REGION,
    Recorder,
    create_function,
    make_queue,
    put_event,
    put_rule,
    queue_bodies,
    with_patches,
)

STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:target-sm"


# -- 1. EventBridge rule targets: Lambda functions and state machines ----------------------
@pytest.mark.parametrize("target_arn", [LAMBDA_ARN, STATE_MACHINE_ARN], ids=["lambda", "state-machine"])
def test_unpatched_rule_with_lambda_or_state_machine_target_raises(
        unpatched: None, session: boto3.session.Session, target_arn: str) -> None:
    # GIVEN moto without the patches and a rule whose target is a Lambda function / state machine
    put_rule(session, [{"Id": "t", "Arn": target_arn}])
    # WHEN a matching event is put  THEN moto 5.2.5 has no delivery for that target type
    with pytest.raises(NotImplementedError, match="Expr not defined"):
        put_event(session)


def test_unpatched_disabled_rule_still_delivers(unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches and a DISABLED rule with an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "q", "Arn": queue_arn}], state="DISABLED")
    # WHEN a matching event is put
    put_event(session)
    # THEN moto 5.2.5 ignores the rule's state and delivers it anyway
    assert [body["detail"] for body in queue_bodies(session, url)] == [{"requestId": "req-1", "n": 3}]


def test_patched_rule_delivers_lambda_state_machine_and_sqs_targets(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a rule with a Lambda target (InputPath), a state machine target (whole event)
    # and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [
        {"Id": "fn", "Arn": LAMBDA_ARN, "InputPath": "$.detail"},
        {"Id": "sm", "Arn": STATE_MACHINE_ARN},
        {"Id": "q", "Arn": queue_arn},
    ])
    # WHEN a matching event is put
    put_event(session)
    # THEN every target goes to `deliver`, with its rendered input
    by_target = {target["Id"]: (payload, event) for target, payload, event in recorder.deliveries}
    assert set(by_target) == {"fn", "sm", "q"}
    assert by_target["fn"][0] == {"requestId": "req-1", "n": 3}
    whole, event = by_target["sm"]
    assert whole["detail"] == {"requestId": "req-1", "n": 3}
    assert whole["source"] == "fanflow.test" and whole["detail-type"] == "Test"
    assert "ingestion-time" not in whole
    assert time.strptime(whole["time"], "%Y-%m-%dT%H:%M:%SZ")
    # AND `deliver` also gets the event itself
    assert event["detail"] == {"requestId": "req-1", "n": 3} and event["id"] == whole["id"]
    # AND the SQS target's message (sent by the recorder, as by the runtime) is the whole event
    assert by_target["q"][0] == whole
    assert [body["detail"] for body in queue_bodies(session, url)] == [{"requestId": "req-1", "n": 3}]
    # AND nothing was invoked synchronously
    assert recorder.invocations == []


def test_patched_disabled_rule_delivers_nothing(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN a DISABLED rule with a Lambda target and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "fn", "Arn": LAMBDA_ARN}, {"Id": "q", "Arn": queue_arn}], state="DISABLED")
    # WHEN a matching event is put
    put_event(session)
    # THEN no target receives it
    assert recorder.deliveries == []
    assert queue_bodies(session, url) == []


def test_patched_non_matching_event_delivers_nothing(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN an enabled rule with a Lambda target and an SQS target
    url, queue_arn = make_queue(session)
    put_rule(session, [{"Id": "fn", "Arn": LAMBDA_ARN}, {"Id": "q", "Arn": queue_arn}])
    # WHEN an event the pattern does not match is put
    put_event(session, source="someone.else")
    # THEN no target receives it
    assert recorder.deliveries == []
    assert queue_bodies(session, url) == []


# -- 23. One event message per PutEvents entry ------------------------------------------------
def events_to_log_groups() -> list[Any]:
    """A bus of four rules whose targets are CloudWatch log groups (delivered by moto, patched or
    not), and PutEvents calls that match some, none, or are refused: each call's entries (event ids
    as a mark), and what each log group received (per event: its rule's message, with its id and
    times as marks)."""
    out: list[Any] = []
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        logs = boto3.client("logs", region_name=REGION)
        patterns = {"by-source": {"source": ["fanflow.a"]}, "by-number": {"detail": {"n": [{"numeric": [">", 2]}]}},
                    "by-both": {"source": ["fanflow.a"], "detail-type": ["T"]}, "never": {"source": ["nobody"]}}
        for name, pattern in patterns.items():
            logs.create_log_group(logGroupName=name)
            events.put_rule(Name=name, EventPattern=json.dumps(pattern))
            events.put_targets(Rule=name, Targets=[{
                "Id": "log", "Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"}])
        calls = [
            [{"Source": "fanflow.a", "DetailType": "T", "Detail": json.dumps({"n": 3, "m": {"k": [1, 2]}})}],
            [{"Source": "fanflow.b", "DetailType": "T", "Detail": json.dumps({"n": 1})},
             {"Source": "fanflow.a", "DetailType": "U", "Detail": json.dumps({"n": 5}), "Resources": ["r"]}],
            [{"Source": "", "DetailType": "T", "Detail": "{}"},
             {"Source": "fanflow.a", "DetailType": "", "Detail": "{}"},
             {"Source": "fanflow.a", "DetailType": "T", "Detail": "{not json"},
             {"Source": "fanflow.c", "DetailType": "T", "Detail": json.dumps({"n": 9})}],
        ]
        for entries in calls:
            response = events.put_events(Entries=entries)
            out.append([{k: ("<id>" if k == "EventId" else v) for k, v in entry.items()}
                        for entry in response["Entries"]])
            out.append(response["FailedEntryCount"])
        with pytest.raises(ClientError) as too_many:
            events.put_events(Entries=[{"Source": "s", "DetailType": "T", "Detail": "{}"}] * 11)
        out.append(too_many.value.response["Error"]["Code"])
        for name in patterns:
            messages = [json.loads(e["message"]) for e in
                        logs.filter_log_events(logGroupName=name)["events"]]
            for message in messages:
                assert isinstance(message.pop("id"), str) and isinstance(message.pop("time"), str)
                message.pop("ingestion-time", None)
            out.append((name, sorted(messages, key=json.dumps)))
    return out


def test_patched_put_events_delivers_as_moto(aws_env: None) -> None:
    # GIVEN what moto delivers, rule by rule, for PutEvents calls that match some rules, none, or fail
    assert not moto_patches.installed()
    unpatched_answers = events_to_log_groups()
    # WHEN the same calls run with the patches (one message per entry for all the rules)
    patched_answers = with_patches(events_to_log_groups)
    # THEN the entries, the errors and every rule's messages are the same
    assert patched_answers == unpatched_answers
    assert ("by-source", []) not in patched_answers and ("never", []) in patched_answers


# -- 1 (continued). What a target is handed ---------------------------------------------------
def _event() -> dict[str, Any]:
    return {
        "version": "0", "id": "e-1", "detail-type": "Test", "source": "fanflow.test",
        "account": ACCOUNT, "time": 0, "region": REGION, "resources": [],
        "detail": {"requestId": "req-1", "n": 3}, "ingestion-time": 1.5,
    }


def test_target_input_constant_input() -> None:
    # GIVEN a target with a constant Input  WHEN rendered  THEN the constant, parsed
    assert moto_patches.target_input({"Arn": LAMBDA_ARN, "Input": '{"fixed": [1, 2]}'}, _event()) == {"fixed": [1, 2]}


def test_target_input_input_path() -> None:
    # GIVEN a target with InputPath $.detail  WHEN rendered  THEN the event's detail
    target = {"Arn": LAMBDA_ARN, "InputPath": "$.detail"}
    assert moto_patches.target_input(target, _event()) == {"requestId": "req-1", "n": 3}
    # AND a path that matches nothing renders None
    assert moto_patches.target_input({"Arn": LAMBDA_ARN, "InputPath": "$.detail.missing"}, _event()) is None


def test_target_input_input_transformer() -> None:
    # GIVEN a target with an InputTransformer
    target = {"Arn": STATE_MACHINE_ARN, "InputTransformer": {
        "InputPathsMap": {"rid": "$.detail.requestId", "n": "$.detail.n"},
        "InputTemplate": '{"requestId": "<rid>", "count": <n>, "kind": "fixed"}',
    }}
    # WHEN rendered  THEN the template, filled from the paths
    assert moto_patches.target_input(target, _event()) == {"requestId": "req-1", "count": 3, "kind": "fixed"}


def test_target_input_whole_event() -> None:
    # GIVEN a target without input settings
    event = _event()
    # WHEN rendered
    whole = moto_patches.target_input({"Arn": LAMBDA_ARN}, event)
    # THEN the whole event, with "time" in ISO 8601 and without moto's "ingestion-time"
    expected = {k: v for k, v in _event().items() if k != "ingestion-time"}
    expected["time"] = "1970-01-01T00:00:00Z"
    assert whole == expected
    # AND the event itself is untouched
    assert event == _event()


# -- 20. SQS event source mappings are polled ---------------------------------------------------
def test_unpatched_an_sqs_event_source_invokes_inside_send_message(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN an event source mapping on a queue, and moto's own delivery (no hook)
    create_function(session)
    url, arn = make_queue(session)
    session.client("lambda").create_event_source_mapping(EventSourceArn=arn, FunctionName="fn", BatchSize=10)
    # WHEN a message is sent  THEN the function ran with it before SendMessage returned, alone
    session.client("sqs").send_message(QueueUrl=url, MessageBody="one")
    assert len(recorder.invocations) == 1
    assert [record["body"] for record in recorder.invocations[0][1]["Records"]] == ["one"]


def test_patched_an_sqs_event_source_is_handed_to_the_poller(hooked: Any) -> None:
    aws, rec, seen, _ = hooked
    create_function(aws)
    url, arn = make_queue(aws)
    mapping = aws.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="fn", BatchSize=50, MaximumBatchingWindowInSeconds=1)
    [handed] = seen["mappings"]
    assert handed.uuid == mapping["UUID"] and handed.event_source_arn == arn
    aws.client("sqs").send_message(QueueUrl=url, MessageBody="one")
    assert rec.invocations == []  # the poller reads the queue; SendMessage only queues


# -- 17. SQS rule targets ---------------------------------------------------------------------
def test_send_to_queue_sends_the_body_as_eventbridge_does(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # EventBridge user guide, "Amazon SQS queues as targets" (the event, or the target's input,
    # is the message body); a message over the queue's maximum size is refused.
    sqs = session.client("sqs")
    url, arn = make_queue(session)
    message_id = moto_patches.send_to_queue(arn, '{"detail": {"n": 1}}')
    [message] = sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert message["MessageId"] == message_id and json.loads(message["Body"]) == {"detail": {"n": 1}}
    assert int(message["Attributes"]["SentTimestamp"]) <= time.time() * 1000
    small = sqs.create_queue(QueueName="small", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    small_arn = sqs.get_queue_attributes(QueueUrl=small, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    with pytest.raises(ValueError, match="exceeds the queue's maximum"):
        moto_patches.send_to_queue(small_arn, "x" * 2000)
