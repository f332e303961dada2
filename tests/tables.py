"""fanflow's two DynamoDB tables, as the handler and worker tests create them in moto."""

from __future__ import annotations

from typing import Any

from lambda_fns import constants as c


def create_counter_table(dynamodb: Any, name: str) -> None:
    """The counter table: one row per request, keyed by requestId."""
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": c.ATTR_REQUEST_ID, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": c.ATTR_REQUEST_ID, "AttributeType": "S"}],
    )


def create_results_table(dynamodb: Any, name: str) -> None:
    """The results table: one row per case, keyed by the request's shard and the caseId."""
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": c.ATTR_REQUEST_SHARD, "KeyType": "HASH"},
                   {"AttributeName": c.ATTR_CASE_ID, "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": c.ATTR_REQUEST_SHARD, "AttributeType": "S"},
                              {"AttributeName": c.ATTR_CASE_ID, "AttributeType": "S"}],
    )


def results_key(request_id: str, case_id: str, shards: int = 1) -> dict[str, Any]:
    """A case's results row key (lambda_fns/keys.py): the request's shard of the caseId, and the caseId."""
    from lambda_fns import keys

    return keys.results_key(request_id, case_id, shards)
