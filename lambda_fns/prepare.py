"""Prepare: first step of PreProcess. Reads the request (the input itself, in the seed's format,
or the object in S3 that a by-reference input names), validates it, stores its case manifest
(read by Summary to name the cases that were never emitted) and its cases in chunks of
FANOUT_CHUNK_CASES, fixes its results shards (lambda_fns/keys.py), and plans the close: the
deadline (the request's, bounded by the retention, or a default for its size) and the times at
which PreProcess tries to claim the request for its deadline Summary. The state it returns
carries chunk numbers, never cases, so no state nears Step Functions' 256 KB at any size. A bad
request fails here, before the counter row is written."""

from __future__ import annotations

import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from . import constants as c
from . import keys
from .request_model import (
    MAX_TEXT_BYTES,
    FanRequest,
    RequestError,
    claim_slots,
    default_deadline_seconds,
    iso,
    parse_reference_input,
    parse_request,
)
from .support import client, require_env
from .telemetry import Telemetry, log

_ENV = require_env(
    [c.ENV_ARTIFACTS_BUCKET, c.ENV_RETENTION_SECONDS, c.ENV_COMPUTE_CONCURRENCY, c.ENV_CHUNK_CASES,
     c.ENV_FANOUT_CONCURRENCY]
)
_S3 = client("s3", max_pool_connections=16)
_TELEMETRY = Telemetry("prepare")
_LOG = _TELEMETRY.logger
# Chunks written at once (PutObject calls in flight).
WRITERS = 16

__all__ = ["RequestError", "handler", "plan"]


def load_request(event: dict[str, Any], *, s3: Any, max_deadline: int) -> FanRequest:
    """The request an input carries, or the one its reference names; RequestError when the
    reference cannot be read or the request is not valid."""
    if not isinstance(event, dict) or c.INPUT_REQUEST_REF not in event:
        return parse_request(event, max_deadline=max_deadline)
    ref, named = parse_reference_input(event)
    try:
        response = s3.get_object(Bucket=ref.bucket, Key=ref.key)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        hint = (" (the stack reads requests from its artifacts bucket, and from the buckets its deployment "
                "names with -c requestBuckets)") if code in ("AccessDenied", "403") else ""
        raise RequestError(f"cannot read the request at {ref.uri}: {code}{hint}") from None
    size = int(response.get("ContentLength", 0))
    if size > MAX_TEXT_BYTES:
        raise RequestError(f"the request at {ref.uri} is {size} bytes; the limit is {MAX_TEXT_BYTES}")
    request = parse_request(response["Body"].read(), max_deadline=max_deadline)
    if named is not None and named != request.request_id:
        raise RequestError(f"the input names requestId {named!r} but the request at {ref.uri} is "
                           f"{request.request_id!r}")
    return request


def plan(request: FanRequest, *, now: float, chunk_cases: int, fan_out_concurrency: int,
         retention_seconds: int, compute_concurrency: int) -> dict[str, Any]:
    """The PreProcess state after Prepare (without the keys of what Prepare stores); numbers
    are strings, as DynamoDB's N wants. Every record of the request expires at its deadline
    plus the retention (constants.max_deadline_seconds).

    createdAt has milliseconds, as completedAt does, so that a request's wall time is
    exact. The deadline is a whole second, rounded up: the Wait state that closes the
    request waits until a timestamp and ignores its milliseconds (on AWS, and in the
    embedded engine by adaptation 16), so a request is closed at its deadline, never
    before, and gets at least its deadlineSeconds."""
    deadline_seconds = request.deadline_seconds
    if deadline_seconds is None:
        deadline_seconds = min(default_deadline_seconds(request.length, concurrency=compute_concurrency),
                               c.max_deadline_seconds(retention_seconds))
    created = math.floor(now * 1000) / 1000
    deadline = math.ceil(created + deadline_seconds)
    chunks = keys.chunk_count(request.length, chunk_cases)
    return {
        "requestId": request.request_id,
        "target": str(request.length),
        "createdAt": f"{created:.3f}",
        "deadline": str(deadline),
        "deadlineIso": iso(deadline),
        "expiresAt": str(deadline + retention_seconds),
        "chunks": list(range(chunks)),
        "chunkCount": str(chunks),
        "shards": str(keys.shard_count(request.length, chunk_cases=chunk_cases,
                                       fan_out_concurrency=fan_out_concurrency)),
        "claimSlots": claim_slots(deadline),
        "chunkCases": str(chunk_cases),
        "requestAttempt": "1",
        "registered": False,  # Emit registers each chunk's cases (a redrive's are registered already)
    }


def store(s3: Any, bucket: str, request: FanRequest, *, token: str, chunk_cases: int) -> tuple[str, str]:
    """Write the request's manifest (its caseIds, in order) and its cases in chunks (JSON
    arrays, chunk n holding cases n*chunk_cases onwards); return their keys (manifest, chunk prefix)."""
    manifest = keys.manifest_key(request.request_id, token)
    prefix = keys.chunk_prefix(request.request_id, token)
    cases = request.cases
    objects = [(manifest, {"requestId": request.request_id, "caseIds": request.case_ids})]

    def put(item: tuple[str, Any]) -> None:
        key, body = item
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body, separators=(",", ":")).encode(),
                      ContentType="application/json")

    chunks = ((keys.chunk_key(prefix, n), list(cases[start:start + chunk_cases]))
              for n, start in enumerate(range(0, len(cases), chunk_cases)))
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="prepare-put") as pool:
        for _ in pool.map(put, [*objects, *chunks]):
            pass
    return manifest, prefix


@_TELEMETRY.instrument
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    retention_seconds = int(_ENV[c.ENV_RETENTION_SECONDS])
    chunk_cases = int(_ENV[c.ENV_CHUNK_CASES])
    request = load_request(event, s3=_S3, max_deadline=c.max_deadline_seconds(retention_seconds))
    state = plan(
        request,
        now=time.time(),
        chunk_cases=chunk_cases,
        fan_out_concurrency=int(_ENV[c.ENV_FANOUT_CONCURRENCY]),
        retention_seconds=retention_seconds,
        compute_concurrency=int(_ENV[c.ENV_COMPUTE_CONCURRENCY]),
    )
    # A token per attempt: a rejected re-submission never overwrites the objects of the request in flight.
    state["manifestKey"], state["chunkPrefix"] = store(_S3, _ENV[c.ENV_ARTIFACTS_BUCKET], request,
                                                       token=context.aws_request_id, chunk_cases=chunk_cases)
    log(_LOG, logging.INFO, "request prepared", cases=request.length, chunks=len(state["chunks"]),
        shards=int(state["shards"]), byReference=c.INPUT_REQUEST_REF in event)
    return state
