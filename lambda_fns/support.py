"""Plumbing shared by the handlers: configuration read once at cold start, boto3 clients
created once per container, and checked PutEvents in batches of ten. (Logs, metrics and
traces are in telemetry.py.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import boto3

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
