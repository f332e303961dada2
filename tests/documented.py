"""Events and messages in the shapes AWS documents them, for tests of what the stack and the
embedded target make of them. Each builder names the page its shape comes from; nothing here is
taken from what the embedded target produces, so a test built on these fails when the emulator
or the stack drifts from AWS."""

from __future__ import annotations

import json
from typing import Any

from lambda_fns import constants as c

ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:Fanflow-Compute"
EVENT_KEYS = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


def eventbridge_event(source: str, detail_type: str, detail: dict[str, Any], *,
                      resources: list[str] | None = None) -> dict[str, Any]:
    """An event as EventBridge delivers it to a target (whole, without an input transformation):
    EventBridge user guide, "Amazon EventBridge events"
    (docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html): version "0", an id,
    detail-type, source, account, time (ISO 8601, UTC, whole seconds), region, resources, detail."""
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": detail_type,
            "source": source, "account": ACCOUNT, "time": "2026-12-01T18:43:48Z", "region": REGION,
            "resources": resources or [], "detail": detail}


def completion_event(detail: dict[str, Any]) -> dict[str, Any]:
    return eventbridge_event(c.COMPUTE_SOURCE, c.COMPLETION_DETAIL_TYPE, detail)


def failure_record(response_payload: dict[str, Any] | None, *, condition: str = "RetriesExhausted",
                   function_arn: str = FUNCTION_ARN, case_id: str = "7") -> dict[str, Any]:
    """The event Lambda puts on an EventBridge on-failure destination: Lambda developer guide,
    "Capturing records of Lambda asynchronous invocations", example invocation record
    (docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). Source "lambda",
    detail-type "Lambda Function Invocation Result - Failure", resources and
    requestContext.functionArn name the function qualified with $LATEST; detail holds the
    requestPayload (the event the function got), responseContext and, when the function returned
    an error, responsePayload (errorMessage, errorType, stackTrace). A record of an event that
    expired before it ran (condition EventAgeExceeded) has no response."""
    detail: dict[str, Any] = {
        "version": "1.0", "timestamp": "2026-12-01T18:43:48.012Z",
        "requestContext": {"requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                           "functionArn": f"{function_arn}:$LATEST", "condition": condition,
                           "approximateInvokeCount": 3},
        "requestPayload": eventbridge_event(c.PREPROCESS_SOURCE, c.CASE_DETAIL_TYPE,
                                            {"requestId": "req-1", "request": {"caseId": case_id}}),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
    }
    if response_payload is not None:
        detail["responsePayload"] = response_payload
    return eventbridge_event(c.LAMBDA_DESTINATION_SOURCE, c.LAMBDA_FAILURE_DETAIL_TYPE, detail,
                             resources=[f"{function_arn}:$LATEST"])


def as_body(event: dict[str, Any]) -> str:
    """An event as the body of the SQS message an SQS rule target receives: the event as JSON
    (EventBridge user guide, "Amazon SQS queues as targets")."""
    return json.dumps(event)
