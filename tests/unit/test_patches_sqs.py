"""Adaptations 22 (local/moto_patches/sqs.py), pinned against moto 5.2.5:
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
from moto.sqs.models import Queue

from tests.patch_helpers import ACCOUNT, REGION, Recorder, make_queue


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
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = session.client("sqs")
    url, _ = make_queue(session)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    walks = count_message_walks(monkeypatch)
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 10
    assert walks[0] >= 10  # the retention check reads every attribute, counts included, per message


def test_patched_receiving_walks_the_messages_once(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = session.client("sqs")
    url, _ = make_queue(session)
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    walks = count_message_walks(monkeypatch)
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 10
    assert walks[0] == 1


def test_patched_sqs_keeps_its_semantics(recorder: Recorder, session: boto3.session.Session) -> None:
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
