"""The fan-in buffer's consumer: a Lambda event source mapping hands it a batch of
completion messages; it starts one synchronous Express execution of the Increment workflow
for the batch and reports the messages that were not counted as batch item failures, so
that the queue delivers only those again (and, after their receives, dead-letters them).
A message that is not a completion is reported at once: it ends in the dead-letter queue,
where the alarm shows it, instead of being counted wrongly."""

from __future__ import annotations

import json
import logging
from typing import Any

from . import constants as c
from .counting import MalformedCompletion, parse_completion
from .support import client, require_env, sync_states_client
from .telemetry import Telemetry, log

_ENV = require_env([c.ENV_INCREMENT_ARN])
_SFN = sync_states_client()
_SQS = client("sqs")
_TELEMETRY = Telemetry("fan-in")
_LOG = _TELEMETRY.logger
# A message that failed waits this long (doubling with each receive, at most the cap)
# before the queue offers it again, instead of the queue's whole visibility timeout.
RETRY_DELAY_SECONDS, RETRY_DELAY_CAP_SECONDS = 2, 300


def queue_url(arn: str) -> str:
    """The queue URL of an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)."""
    _, partition, _, region, account, name = arn.split(":", 5)
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def _retry_later(records: list[dict[str, Any]]) -> None:
    for record in records:
        receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
        delay = min(RETRY_DELAY_CAP_SECONDS, RETRY_DELAY_SECONDS * 2 ** (receives - 1))
        try:
            _SQS.change_message_visibility(QueueUrl=queue_url(record["eventSourceARN"]),
                                           ReceiptHandle=record["receiptHandle"], VisibilityTimeout=delay)
        except Exception as exc:  # the queue's visibility timeout then applies: later, not lost
            log(_LOG, logging.WARNING, "could not shorten the retry delay", error=str(exc))


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    completions, failed = [], []
    for record in records:
        try:
            completions.append(parse_completion(record["messageId"], record["body"]).to_input())
        except MalformedCompletion as exc:
            log(_LOG, logging.ERROR, "not a completion; left to the dead-letter queue",
                messageId=record["messageId"], error=str(exc))
            failed.append(record["messageId"])
    if completions:
        execution = _SFN.start_sync_execution(stateMachineArn=_ENV[c.ENV_INCREMENT_ARN],
                                              input=json.dumps({"completions": completions}))
        if execution["status"] == "SUCCEEDED":
            failed.extend(json.loads(execution["output"])["failed"])
        else:
            log(_LOG, logging.ERROR, "Increment did not succeed; the batch is delivered again",
                status=execution["status"], error=execution.get("error"), cause=str(execution.get("cause"))[:500])
            failed.extend(x["messageId"] for x in completions)
    failures = list(dict.fromkeys(failed))
    if failures:
        _retry_later([record for record in records if record["messageId"] in set(failures)])
    log(_LOG, logging.INFO, "batch done", messages=len(records), failed=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
