"""What lies in the stack's dead-letter queues, and the way back for it (`fanflow dead-letters`).

Two queues hold work a request is waiting for:
- the rule targets' dead-letter queue: events EventBridge could not deliver after its retries (24 h,
  185 attempts); the message body is the event. Replaying puts the event back on the bus, where its
  rule delivers it again.
- the completion buffer's dead-letter queue: completions the fan-in could not count after their
  receives; the message body is the completion event. Replaying sends it back to the buffer.
A replayed message is deleted from its dead-letter queue only once it is back. Counting stays
exactly once whatever is replayed, however often: a case counted before is not counted again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lambda_fns import constants as c

QUEUES = {"rule-targets": c.OUTPUT_RULE_DLQ_URL, "completions": c.OUTPUT_COMPLETION_DLQ_URL}


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # a QUEUES name
    message_id: str
    receipt_handle: str
    body: str
    sent_at: float  # epoch seconds the message reached the dead-letter queue's source, or the queue
    receives: int

    def event(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def describe(self) -> dict[str, Any]:
        event = self.event() or {}
        detail = _object(event.get("detail"))
        # a completion's case, or the case of the event a Lambda failure record carries
        case_detail = detail if "requestId" in detail else _object(_object(detail.get("requestPayload")).get("detail"))
        return {"queue": self.queue, "messageId": self.message_id, "source": event.get("source"),
                "detailType": event.get("detail-type"), "requestId": case_detail.get("requestId"),
                "caseId": _object(case_detail.get("request")).get(c.ATTR_CASE_ID),
                "sentAt": self.sent_at, "receives": self.receives}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def peek(sqs: Any, queue: str, url: str, *, limit: int) -> list[DeadLetter]:
    """Up to `limit` messages of a dead-letter queue, left in it (received with a visibility
    timeout of 0, so they stay visible for the next reader)."""
    found: dict[str, DeadLetter] = {}
    empty_polls = 0
    while len(found) < limit and empty_polls < 2:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(found)),
                                       VisibilityTimeout=0, AttributeNames=["All"]).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in found]
        empty_polls = 0 if new else empty_polls + 1
        for message in new:
            attributes = message.get("Attributes", {})
            found[message["MessageId"]] = DeadLetter(
                queue=queue, message_id=message["MessageId"], receipt_handle=message["ReceiptHandle"],
                body=message["Body"], sent_at=int(attributes.get("SentTimestamp", "0")) / 1000,
                receives=int(attributes.get("ApproximateReceiveCount", "0")))
    return list(found.values())[:limit]


def replay(target: Any, letter: DeadLetter) -> str:
    """Send one dead letter back where it came from; delete it once it is back. Returns what was
    done, for the report."""
    outputs = target.outputs
    if letter.queue == "completions":
        target.client("sqs").send_message(QueueUrl=outputs[c.OUTPUT_COMPLETION_QUEUE_URL], MessageBody=letter.body)
        done = "sent back to the completion queue"
    else:
        event = letter.event()
        if event is None or not {"source", "detail-type", "detail"} <= set(event):
            return "left in the queue: not an EventBridge event"
        response = target.client("events").put_events(Entries=[{
            "Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]),
            "Resources": event.get("resources") or [], "EventBusName": outputs[c.OUTPUT_BUS_NAME]}])
        if response.get("FailedEntryCount"):
            code = response["Entries"][0].get("ErrorCode", "refused")
            return f"left in the queue: EventBridge refused it ({code})"
        done = "put back on the bus"
    target.client("sqs").delete_message(QueueUrl=outputs[QUEUES[letter.queue]], ReceiptHandle=letter.receipt_handle)
    return done


