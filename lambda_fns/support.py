"""Plumbing shared by the handlers: configuration read once at cold start, boto3 clients
created once per container, and checked PutEvents in batches of ten. (Logs, metrics and
traces are in telemetry.py.)"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import constants as c


class ConfigurationError(RuntimeError):
    """A required environment variable is missing: the function was deployed wrongly."""


def require_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    missing = [name for name in names if not env.get(name)]
    if missing:
        raise ConfigurationError(f"missing environment variable(s): {', '.join(missing)}")
    return {name: env[name] for name in names}


def client(service: str, **config: Any) -> Any:
    """A boto3 client honouring AWS_ENDPOINT_URL, as the Lambda runtime and LocalStack set it.
    `config` goes to botocore's Config."""
    if not config:
        return boto3.client(service)
    from botocore.config import Config

    return boto3.client(service, config=Config(**config))


def sync_states_client() -> Any:
    """A Step Functions client for StartSyncExecution. On AWS the call goes to the
    `sync-states` host (the operation's host prefix); behind an endpoint override
    (LocalStack) the prefix would name a host that is not there, so it is left off."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return client("stepfunctions", inject_host_prefix=False)
    return client("stepfunctions")


class PutEventsFailed(RuntimeError):
    """Entries that EventBridge still refused after every retry."""


@dataclass
class PutOutcome:
    """What became of entries put with `put_events_tracked`."""

    calls: int = 0
    not_accepted: list[int] = field(default_factory=list)  # indexes into the entries, in order
    errors: set[str] = field(default_factory=set)  # error codes (refused entries) or exception names (calls)
    stopped_at: int | None = None  # the first entry not tried, when `keep_going` stopped the calls


def put_events_tracked(
    events_client: Any,
    entries: Sequence[dict[str, Any]],
    *,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    keep_going: Callable[[], bool] | None = None,
) -> PutOutcome:
    """Put entries in calls of at most 10, retrying only the refused entries, `attempts` times
    per call with a short backoff. Never raises for a refusal or a failed call: the outcome names
    the entries not accepted, so that a caller can resume from them (a call that raised may have
    been accepted after all; resending it is a duplicate, which the consumers absorb).
    `keep_going`, asked before each call (the first too: whatever the caller did before, such as
    registering a chunk's rows, may have taken long), stops the calls when it says no: the
    outcome's `stopped_at` is then the first entry not tried."""
    outcome = PutOutcome()
    for start in range(0, len(entries), c.PUT_EVENTS_MAX_ENTRIES):
        if keep_going is not None and not keep_going():
            outcome.stopped_at = start
            break
        pending = list(range(start, min(start + c.PUT_EVENTS_MAX_ENTRIES, len(entries))))
        for attempt in range(attempts):
            outcome.calls += 1
            try:
                response = events_client.put_events(Entries=[entries[i] for i in pending])
            except (ClientError, BotoCoreError) as exc:
                code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
                outcome.errors.add(code)
            else:
                if not response.get("FailedEntryCount"):
                    pending = []
                    break
                refused = [(i, result) for i, result in zip(pending, response["Entries"], strict=True)
                           if result.get("ErrorCode")]
                outcome.errors.update(result["ErrorCode"] for _, result in refused)
                pending = [i for i, _ in refused]
            if attempt < attempts - 1:
                sleep(min(0.1 * 2**attempt, 2.0))
        outcome.not_accepted.extend(pending)
    return outcome


def put_events(
    events_client: Any,
    entries: Sequence[dict[str, Any]],
    *,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Put entries in calls of at most 10, retrying only the failed entries.

    Returns the number of PutEvents calls made. Raises PutEventsFailed when entries are
    still refused after `attempts` tries: a dropped event would leave a request stuck.
    """
    calls = 0
    for start in range(0, len(entries), c.PUT_EVENTS_MAX_ENTRIES):
        pending = list(entries[start : start + c.PUT_EVENTS_MAX_ENTRIES])
        for attempt in range(attempts):
            response = events_client.put_events(Entries=pending)
            calls += 1
            if not response.get("FailedEntryCount"):
                break
            failed = [
                (entry, result)
                for entry, result in zip(pending, response["Entries"], strict=True)
                if result.get("ErrorCode")
            ]
            pending = [entry for entry, _ in failed]
            if attempt == attempts - 1:
                codes = sorted({result["ErrorCode"] for _, result in failed})
                raise PutEventsFailed(
                    f"{len(pending)} event(s) refused after {attempts} attempts: {', '.join(codes)}"
                )
            sleep(min(0.1 * 2**attempt, 2.0))
    return calls


def full_jitter(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]
    (aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter)."""
    return rand() * min(cap, base * 2**attempt)


class UnprocessedItems(RuntimeError):
    """BatchWriteItem left items unprocessed after every retry."""


def batch_write(dynamodb: Any, table: str, requests: Sequence[dict[str, Any]], *, attempts: int = 8,
                sleep: Callable[[float], None] = time.sleep) -> int:
    """Write requests (PutRequest / DeleteRequest) in calls of at most 25, resending the items
    DynamoDB leaves unprocessed (throttling) with exponential backoff and jitter. Returns the calls made."""
    calls = 0
    for start in range(0, len(requests), c.BATCH_WRITE_MAX_ITEMS):
        pending = list(requests[start : start + c.BATCH_WRITE_MAX_ITEMS])
        for attempt in range(attempts):
            calls += 1
            pending = list(dynamodb.batch_write_item(RequestItems={table: pending})
                           .get("UnprocessedItems", {}).get(table, []))
            if not pending:
                break
            if attempt == attempts - 1:
                raise UnprocessedItems(f"{len(pending)} item(s) of {table} unprocessed after {attempts} attempts")
            sleep(full_jitter(attempt, base=0.05, cap=2.0))
    return calls


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (typed JSON) as plain JSON: numbers become int or float."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {key: _plain(deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return value
