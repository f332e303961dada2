"""Prepare: first step of PreProcess. Validates the request, stores its case manifest
(read by Summary to name the cases that never completed), splits the cases into fan-out
batches and plans the close: the deadline (the request's, bounded by the retention, or a
default for its size) and the times at which PreProcess tries to claim the request for its
deadline Summary. A bad request fails here, before the counter row is written."""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from . import constants as c
from .request_model import RequestError, default_deadline_seconds, parse_request
from .support import client, require_env
from .telemetry import Telemetry, log

_ENV = require_env(
    [c.ENV_ARTIFACTS_BUCKET, c.ENV_RETENTION_SECONDS, c.ENV_COMPUTE_CONCURRENCY, c.ENV_BATCH_SIZE]
)
_S3 = client("s3")
_TELEMETRY = Telemetry("prepare")
_LOG = _TELEMETRY.logger

__all__ = ["RequestError", "handler", "plan"]


def manifest_key(request_id: str, token: str) -> str:
    # A token per attempt: a rejected re-submission never overwrites the manifest in flight.
    return f"manifests/{request_id}/{token}.json"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim_slots(deadline: int) -> list[dict[str, str]]:
    """When PreProcess tries to claim the request for its deadline Summary: at the deadline, then
    every CLAIM_RETRY_SECONDS. At a slot, a claim made before `staleBefore` is stale (its Summary
    has run its retries out); `at` is what the claim records, a lower bound of the time then."""
    slots = []
    for attempt in range(c.CLAIM_ATTEMPTS):
        at = deadline + attempt * c.CLAIM_RETRY_SECONDS
        slots.append({"at": str(at), "atIso": iso(at), "staleBefore": str(at - c.STALE_CLAIM_SECONDS)})
    return slots


def plan(
    event: dict[str, Any], *, now: float, batch_size: int, retention_seconds: int, compute_concurrency: int
) -> dict[str, Any]:
    """The PreProcess state after Prepare; numbers are strings, as DynamoDB's N wants. Every
    record of the request expires at its deadline plus the retention (constants.max_deadline_seconds).

    createdAt has milliseconds, as completedAt does, so that a request's wall time is
    exact. The deadline is a whole second, rounded up: the Wait state that closes the
    request waits until a timestamp and ignores its milliseconds (on AWS, and in the
    embedded engine by adaptation 16), so a request is closed at its deadline, never
    before, and gets at least its deadlineSeconds."""
    request = parse_request(event, max_deadline=c.max_deadline_seconds(retention_seconds))
    cases = list(request.cases)
    deadline_seconds = request.deadline_seconds
    if deadline_seconds is None:
        deadline_seconds = min(default_deadline_seconds(len(cases), concurrency=compute_concurrency),
                               c.max_deadline_seconds(retention_seconds))
    created = math.floor(now * 1000) / 1000
    deadline = math.ceil(created + deadline_seconds)
    return {
        "requestId": request.request_id,
        "target": str(request.length),
        "createdAt": f"{created:.3f}",
        "deadline": str(deadline),
        "deadlineIso": iso(deadline),
        "expiresAt": str(deadline + retention_seconds),
        "batches": [cases[i : i + batch_size] for i in range(0, len(cases), batch_size)],
        "claimSlots": claim_slots(deadline),
    }


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = plan(
        event,
        now=time.time(),
        batch_size=int(_ENV[c.ENV_BATCH_SIZE]),
        retention_seconds=int(_ENV[c.ENV_RETENTION_SECONDS]),
        compute_concurrency=int(_ENV[c.ENV_COMPUTE_CONCURRENCY]),
    )
    key = manifest_key(state["requestId"], context.aws_request_id)
    case_ids = [case[c.ATTR_CASE_ID] for batch in state["batches"] for case in batch]
    _S3.put_object(
        Bucket=_ENV[c.ENV_ARTIFACTS_BUCKET],
        Key=key,
        Body=json.dumps({"requestId": state["requestId"], "caseIds": case_ids}).encode(),
        ContentType="application/json",
    )
    state["manifestKey"] = key
    log(_LOG, logging.INFO, "request prepared", cases=len(case_ids), batches=len(state["batches"]))
    return state
