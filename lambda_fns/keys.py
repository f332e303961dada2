"""Where a request's records live: the keys of its counter row and of its results rows, its
S3 objects (named by the requestId: MAX_REQUEST_ID_BYTES keeps every key within S3's 1,024
bytes), and the write-sharding rule that spreads its results rows over partitions.

Why shards: every results row of a request shared one partition key, and one partition takes
at most 1,000 writes a second (AWS_LIMITS.md, DynamoDB). A case costs about four write units
in its row: its pending registration (1), its result (1) and its counted mark, written in a
transaction (2). A request's cases arrive as fast as its fan-out emits them: at most
FANOUT_MAX_CONCURRENCY chunks at once, each about EMIT_PUT_EVENTS_PER_SECOND calls of ten
cases a second (400 cases/s per chunk). Keeping each partition at half its limit (500 writes/s,
125 cases/s) takes 400 / 125 = 3.2, so four, shards per chunk emitted at once:

    shards = min(cases, SHARDS_PER_CHUNK x min(chunks, fan-out concurrency))

1 for a 1-case request, 4 up to 1,000 cases, 40 from 10,000 cases at the default
concurrency. The count is fixed at Prepare, kept on the counter row, and travels in every
fan-out event and completion (detail `shards`), so every writer finds a case's row from the
event alone; readers (Summary, the client) read the request shard by shard.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import constants as c

# Write units a case costs in its results row (pending 1, result 1, counted mark 2) and the
# partition's writes per second a request aims to use at most (half of 1,000).
WRITES_PER_CASE = 4
PARTITION_WRITES_TARGET = 500
SHARDS_PER_CHUNK = math.ceil(c.EMIT_PUT_EVENTS_PER_SECOND * c.PUT_EVENTS_MAX_ENTRIES * WRITES_PER_CASE
                             / PARTITION_WRITES_TARGET)


def chunk_count(cases: int, chunk_cases: int = c.FANOUT_CHUNK_CASES) -> int:
    return max(1, math.ceil(cases / chunk_cases))


def shard_count(cases: int, *, chunk_cases: int = c.FANOUT_CHUNK_CASES,
                fan_out_concurrency: int = c.FANOUT_MAX_CONCURRENCY) -> int:
    """The shard rule (module docstring)."""
    chunks_at_once = min(chunk_count(cases, chunk_cases), max(1, fan_out_concurrency))
    return max(1, min(cases, SHARDS_PER_CHUNK * chunks_at_once))


def shard_of(case_id: str, shards: int) -> int:
    """The case's shard: CRC-32 of its caseId, modulo the request's shards (stable everywhere)."""
    return zlib.crc32(case_id.encode("utf-8")) % max(1, shards)


def partition(request_id: str, shard: int) -> str:
    """A results partition key: the requestId, '#', the shard number. The last '#' separates
    them, so a requestId may hold '#' too."""
    return f"{request_id}#{shard}"


def results_key(request_id: str, case_id: str, shards: int) -> dict[str, Any]:
    return {c.ATTR_REQUEST_SHARD: {"S": partition(request_id, shard_of(case_id, shards))},
            c.ATTR_CASE_ID: {"S": case_id}}


def counter_key(request_id: str) -> dict[str, Any]:
    return {c.ATTR_REQUEST_ID: {"S": request_id}}


def attempt_of(detail: Any) -> int | None:
    """The request's attempt an event's detail names (constants.DETAIL_ATTEMPT): 1 when it names
    none (attempt 1's events may come from compute targets that echo no more than the seed's);
    None when it names one that is not a whole number of 1 or more (2.0 is 2: a workflow's
    JSONPath may pass a number on as a float)."""
    value = detail.get(c.DETAIL_ATTEMPT) if isinstance(detail, dict) else None
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1 or value != int(value):
        return None
    return int(value)


def shards_of(detail: Any) -> int | None:
    """The shard count an event's detail carries; None when it has none, or not a positive whole number."""
    value = detail.get(c.DETAIL_SHARDS) if isinstance(detail, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        shards = int(value)
    except ValueError:
        return None
    return shards if shards >= 1 and float(value) == shards else None


def chunk_prefix(request_id: str, token: str) -> str:
    """Where Prepare writes a request's chunks; a token per Prepare run, so that a rejected
    re-submission never overwrites the chunks of the request in flight."""
    return f"{c.CHUNKS_PREFIX}{request_id}/{token}/"


def chunk_key(prefix: str, chunk: int) -> str:
    return f"{prefix}{chunk:06d}.json"


def request_key(request_id: str, token: str) -> str:
    """Where the client stores a request too large to travel inline."""
    return f"{c.REQUESTS_PREFIX}{request_id}/{token}.json"


def manifest_key(request_id: str, token: str) -> str:
    return f"{c.MANIFESTS_PREFIX}{request_id}/{token}.json"


def summary_key(request_id: str, attempt: int = 1) -> str:
    """Where an attempt's summary is stored: one document per attempt (each is written once)."""
    suffix = f".attempt-{attempt}" if attempt > 1 else ""
    return f"{c.SUMMARIES_PREFIX}{request_id}{suffix}.json"


def redrive_opening(row: Mapping[str, Any]) -> bool:
    """Whether a redrive has taken the counter row's attempt but not reopened the request yet:
    the row is still closed with an earlier attempt's summary (a closed attempt has its own key)."""
    attempt = int(row.get(c.ATTR_ATTEMPT) or 1)
    return (attempt > 1 and row.get(c.ATTR_STATUS) in c.FINAL_STATUSES
            and row.get(c.ATTR_SUMMARY_KEY) != summary_key(str(row[c.ATTR_REQUEST_ID]), attempt))


def redrive_chunk_prefix(request_id: str, attempt: int, token: str) -> str:
    """Where a redrive writes the chunks of the cases it re-emits."""
    return f"{c.CHUNKS_PREFIX}{request_id}/attempt-{attempt}-{token}/"


def results_prefix(request_id: str, token: str) -> str:
    """Where a Summary run writes the per-case results parts: its own prefix (a short token of
    the run), so that a competing run's parts never mix with the parts its summary names."""
    return f"{c.SUMMARIES_PREFIX}{request_id}/{token[:12]}/"


def results_items(dynamodb: Any, table: str, request_id: str, shards: int, *,
                  attributes: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Every results row of a request, as DynamoDB returns it, shard by shard (each in caseId
    order), read consistently a page at a time: a million rows never sit in memory at once.
    `attributes`: a projection (all attributes when empty)."""
    names = {f"#a{i}": name for i, name in enumerate(attributes)}
    for shard in range(shards):
        kwargs: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {**names, "#p": c.ATTR_REQUEST_SHARD},
            "ExpressionAttributeValues": {":p": {"S": partition(request_id, shard)}},
            "ConsistentRead": True,
        }
        if names:
            kwargs["ProjectionExpression"] = ", ".join(names)
        while True:
            page = dynamodb.query(**kwargs)
            yield from page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
