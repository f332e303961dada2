"""The adaptations the batched fan-in needs (local/moto_patches.py, 17 to 22), pinned against
moto 5.2.5 as the others are: `test_unpatched_*` pins what moto does without them,
`test_patched_*` what the embedded runtime relies on. Each AWS behaviour an adaptation makes
up cites the page that documents it."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import Queue

from local import moto_patches
from tests.unit.test_moto_patches import (  # noqa: F401 (fixtures)
    ACCOUNT,
    REGION,
    ROLE_ARN,
    Recorder,
    aws_env,
    create_function,
    create_stack,
    make_queue,
    make_table,
    recorder,
    session,
    unpatched,
)


def express_template(definition: dict[str, Any]) -> dict[str, Any]:
    return {"Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {
        "StateMachineName": "batch", "StateMachineType": "EXPRESS", "RoleArn": ROLE_ARN,
        "DefinitionString": json.dumps(definition)}}}


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"counted": 2}, "End": True}}}
FAIL = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "it broke"}}}


@pytest.fixture
def hooked(aws_env: None) -> Any:  # noqa: F811
    """Patches installed with every engine hook recording what it is handed."""
    from moto import mock_aws

    seen: dict[str, list[Any]] = {"async": [], "mappings": [], "executions": [], "writes": []}
    conflict: dict[str, int | None] = {"index": None}
    rec = Recorder()
    hooks = moto_patches.EngineHooks(
        invoke_async=lambda fn, event: seen["async"].append((fn.function_name, event)),
        on_event_source_mapping=seen["mappings"].append,
        on_execution=lambda arn, data: seen["executions"].append((arn, json.loads(data))),
        on_dynamodb_write=lambda table, key: seen["writes"].append((table, key)),
        transaction_fault=lambda items: conflict["index"],
    )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver, hooks=hooks)
        try:
            yield boto3.session.Session(region_name=REGION), rec, seen, conflict
        finally:
            moto_patches.uninstall()


# -- 18. Event invocations are asynchronous -------------------------------------------------
def test_patched_without_the_hook_an_event_invocation_runs_before_the_answer(
        recorder: Recorder, session: boto3.session.Session) -> None:  # noqa: F811
    # GIVEN moto's own behaviour (no invoke_async hook)  WHEN a function is invoked with type Event
    create_function(session)
    response = session.client("lambda").invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"a": 1}')
    # THEN it has already run when the 202 comes back
    assert response["StatusCode"] == 202
    assert [event for _, event in recorder.invocations] == [{"a": 1}]


def test_patched_an_event_invocation_is_queued_and_answered_at_once(hooked: Any) -> None:
    # Lambda developer guide, "Invoking a Lambda function asynchronously": Lambda places the
    # event in a queue and returns a success response (202) without waiting for the function.
    aws, rec, seen, _ = hooked
    create_function(aws)
    response = aws.client("lambda").invoke(FunctionName="fn", InvocationType="Event", Payload=b'{"a": 1}')
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert rec.invocations == []  # not run here
    assert seen["async"] == [("fn", {"a": 1})]  # handed to the runtime, which runs it later
    # AND a RequestResponse invocation still runs at once
    aws.client("lambda").invoke(FunctionName="fn", Payload=b'{"b": 2}')
    assert [event for _, event in rec.invocations] == [{"b": 2}]


# -- 19. Express workflows and StartSyncExecution ----------------------------------------------
def test_unpatched_express_is_lost_by_cloudformation_and_sync_start_is_missing(
        unpatched: None, session: boto3.session.Session) -> None:  # noqa: F811
    import moto.stepfunctions.models as sfn_models

    # GIVEN moto without the patches  WHEN a stack creates an Express state machine THEN it is STANDARD
    outputs = create_stack(session, express_template(PASS), {"Arn": {"Value": {"Ref": "Machine"}}})
    assert sfn_models.stepfunctions_backends[ACCOUNT][REGION].describe_state_machine(outputs["Arn"]).type == "STANDARD"
    # AND StartSyncExecution is not implemented, even for an Express machine made through the API
    sfn = session.client("stepfunctions")
    arn = sfn.create_state_machine(name="e", definition=json.dumps(PASS), roleArn=ROLE_ARN,
                                   type="EXPRESS")["stateMachineArn"]
    with pytest.raises(ClientError, match="Not yet implemented"):
        sfn.start_sync_execution(stateMachineArn=arn, input="{}")


def test_patched_a_sync_express_execution_answers_with_its_result(hooked: Any) -> None:
    # Step Functions API reference, StartSyncExecution: the response holds executionArn,
    # stateMachineArn, name, startDate, stopDate, status (SUCCEEDED | FAILED | TIMED_OUT),
    # input, output (when it succeeded), error and cause (when it failed), billingDetails.
    aws, _, seen, _ = hooked
    outputs = create_stack(aws, {**express_template(PASS)}, {"Arn": {"Value": {"Ref": "Machine"}}})
    sfn = aws.client("stepfunctions")
    assert sfn.describe_state_machine(stateMachineArn=outputs["Arn"])["type"] == "EXPRESS"
    response = sfn.start_sync_execution(stateMachineArn=outputs["Arn"], name="b-1", input='{"completions": []}')
    assert response["status"] == "SUCCEEDED"
    assert json.loads(response["output"]) == {"counted": 2}
    assert response["executionArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:express:batch:b-1:")
    assert response["stateMachineArn"] == outputs["Arn"] and response["name"] == "b-1"
    assert response["stopDate"] >= response["startDate"]
    assert response["billingDetails"]["billedDurationInMilliseconds"] >= 100
    assert seen["executions"] == [(outputs["Arn"], {"completions": []})]


def test_patched_a_failed_sync_execution_says_why(hooked: Any) -> None:
    aws, _, _, _ = hooked
    outputs = create_stack(aws, express_template(FAIL), {"Arn": {"Value": {"Ref": "Machine"}}})
    response = aws.client("stepfunctions").start_sync_execution(stateMachineArn=outputs["Arn"], input="{}")
    assert (response["status"], response["error"], response["cause"]) == ("FAILED", "Boom", "it broke")
    assert "output" not in response


def test_patched_a_standard_workflow_cannot_be_started_synchronously(hooked: Any) -> None:
    aws, _, _, _ = hooked
    sfn = aws.client("stepfunctions")
    arn = sfn.create_state_machine(name="std", definition=json.dumps(PASS), roleArn=ROLE_ARN)["stateMachineArn"]
    with pytest.raises(ClientError) as caught:
        sfn.start_sync_execution(stateMachineArn=arn, input="{}")
    assert caught.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"


# -- 20. SQS event source mappings are polled ---------------------------------------------------
def test_unpatched_an_sqs_event_source_invokes_inside_send_message(
        recorder: Recorder, session: boto3.session.Session) -> None:  # noqa: F811
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


# -- 21. DynamoDB writes observed; transactions cancelled on demand -----------------------------
def test_patched_writes_are_observed_and_a_fault_cancels_with_transaction_conflict(hooked: Any) -> None:
    # DynamoDB developer guide, "Amazon DynamoDB Transactions: How it works": a transaction that
    # conflicts with another on an item is cancelled; CancellationReasons holds, per item,
    # "TransactionConflict" for that item and "None" for the others.
    aws, _, seen, conflict = hooked
    ddb = aws.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "0"}})
    items = [{"Update": {"TableName": "t", "Key": {"pk": {"S": key}}, "UpdateExpression": "ADD n :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}} for key in ("a", "b")]
    conflict["index"] = 1
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=items)
    reasons = [reason["Code"] for reason in caught.value.response["CancellationReasons"]]
    assert reasons == ["None", "TransactionConflict"]
    assert ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "0"}
    conflict["index"] = None
    ddb.transact_write_items(TransactItems=items)
    # AND every write was seen: the put, both items of both transactions (cancelled or not)
    assert [key["pk"]["S"] for _, key in seen["writes"]] == ["a", "a", "b", "a", "b"]


# -- 22. SQS's message path ------------------------------------------------------------------------
def count_message_walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts how often a queue's visible messages are listed (each walks every message)."""
    walks = [0]
    original = Queue.messages.fget  # type: ignore[attr-defined]

    def counted(self: Any) -> Any:
        walks[0] += 1
        return original(self)

    monkeypatch.setattr(Queue, "messages", property(counted))
    return walks


def test_unpatched_receiving_walks_every_message_for_each_message_received(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sqs = session.client("sqs")
    url, _ = make_queue(session)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    walks = count_message_walks(monkeypatch)
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 10
    assert walks[0] >= 10  # the retention check reads every attribute, counts included, per message


def test_patched_receiving_walks_the_messages_once(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    sqs = session.client("sqs")
    url, _ = make_queue(session)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    walks = count_message_walks(monkeypatch)
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 10
    assert walks[0] == 1


def test_patched_sqs_keeps_its_semantics(recorder: Recorder, session: boto3.session.Session) -> None:  # noqa: F811
    # Amazon SQS developer guide: a received message stays invisible for the visibility timeout;
    # DeleteMessage with a receipt handle that was never issued fails (ReceiptHandleIsInvalid),
    # deleting twice succeeds; after maxReceiveCount receives the message moves to the
    # dead-letter queue; a message older than the retention period is not delivered.
    sqs = session.client("sqs")
    dlq_url, dlq_arn = make_queue(session, "dead")
    url = sqs.create_queue(QueueName="work", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="keep")
    sqs.send_message(QueueUrl=url, MessageBody="delete me")
    received = {m["Body"]: m for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # both invisible
    handle = received["delete me"]["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)  # twice: no error
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="never-issued")
    time.sleep(1.1)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["keep"]  # 2nd receive
    time.sleep(1.1)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None  # moved on the 3rd
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq_url)["Messages"]] == ["keep"]
    short = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=short, MessageBody="old")
    queue: Any = moto_patches_queue("short")
    for message in queue._messages:
        message.sent_timestamp -= 61_000  # sent 61 s ago
    assert sqs.receive_message(QueueUrl=short).get("Messages") is None


def moto_patches_queue(name: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT][REGION].get_queue(name)


def test_send_to_queue_sends_the_body_as_eventbridge_does(
        recorder: Recorder, session: boto3.session.Session) -> None:  # noqa: F811
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
