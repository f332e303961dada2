"""Adaptations 6, 11, 21 and 25 (local/moto_patches/dynamodb.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

import inspect
import json
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item

from local import moto_patches
from tests.patch_helpers import ACCOUNT, REGION, Recorder, get, make_table, with_patches

# -- 6. DynamoDB: item operations serialised, transactions checked before they write ----------
# moto's own functions, taken before any test installs the patches.
assert not moto_patches.installed()
ORIGINAL_DYNAMODB_OPERATIONS = {name: getattr(DynamoDBBackend, name) for name in moto_patches.DYNAMODB_ITEM_OPERATIONS}


def add_one(pk: str, table: str = "t") -> dict[str, Any]:
    """An Update op: counter `n` of item `pk` += 1."""
    return {"Update": {"TableName": table, "Key": {"pk": {"S": pk}}, "UpdateExpression": "ADD n :one",
                       "ExpressionAttributeValues": {":one": {"N": "1"}}}}


def put_new(pk: str, table: str = "t") -> dict[str, Any]:
    """A Put op, on condition that item `pk` does not exist yet."""
    return {"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "mark": {"BOOL": True}},
                    "ConditionExpression": "attribute_not_exists(pk)"}}


def n_equals(pk: str, n: int, op: str = "ConditionCheck", **extra: Any) -> dict[str, Any]:
    """An op (ConditionCheck by default) on condition that item `pk` has n == `n`."""
    return {op: {"TableName": "t", "Key": {"pk": {"S": pk}}, "ConditionExpression": "n = :n",
                 "ExpressionAttributeValues": {":n": {"N": str(n)}}, **extra}}


@dataclass
class ConcurrentWriter:
    thread: threading.Thread | None = None
    waited: bool | None = None  # still writing 0.5 s after it started


def write_from_another_thread_during_item_copy(monkeypatch: pytest.MonkeyPatch,
                                               backend: DynamoDBBackend) -> ConcurrentWriter:
    """The next deep copy of a DynamoDB item starts a put_item on another thread and waits up
    to 0.5 s for it: a concurrent writer landing exactly then."""
    original = Item.__deepcopy__
    writer = ConcurrentWriter()

    def deepcopy_with_concurrent_write(self: Item, memo: dict[int, Any]) -> Item:
        if writer.thread is None:
            writer.thread = threading.Thread(target=backend.put_item, args=("t", {"pk": {"S": "concurrent"}}),
                                             daemon=True)
            writer.thread.start()
            writer.thread.join(timeout=0.5)
            writer.waited = writer.thread.is_alive()
        return original(self, memo)

    monkeypatch.setattr(Item, "__deepcopy__", deepcopy_with_concurrent_write)
    return writer


def test_unpatched_dynamodb_transaction_breaks_when_another_thread_writes(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN moto without the patches, a table with an item, and a writer on another thread that
    # puts an item while the transaction copies the table
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    writer = write_from_another_thread_during_item_copy(monkeypatch, backend)
    # WHEN a transaction runs  THEN the writer is not held back, and the transaction fails
    with pytest.raises(RuntimeError, match="dictionary changed size during iteration"):
        backend.transact_write_items([add_one("counter")])
    assert writer.waited is False


def test_patched_dynamodb_item_operations_are_wrapped(recorder: Recorder) -> None:
    # GIVEN the patches  THEN every item operation is a wrapper of moto's own (or of the
    # replacement TransactWriteItems), under the same name
    for name in moto_patches.DYNAMODB_ITEM_OPERATIONS:
        wrapper = DynamoDBBackend.__dict__[name]
        assert wrapper is not ORIGINAL_DYNAMODB_OPERATIONS[name], name
        if name == "transact_write_items":  # the replacement, with the engine's hooks bound
            assert wrapper.__wrapped__.__name__ == name
            assert wrapper.__wrapped__ is not ORIGINAL_DYNAMODB_OPERATIONS[name]
            continue
        assert wrapper.__wrapped__ is ORIGINAL_DYNAMODB_OPERATIONS[name], name
        assert wrapper.__name__ == ORIGINAL_DYNAMODB_OPERATIONS[name].__name__, name


def test_patched_dynamodb_write_from_another_thread_waits_for_the_transaction(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a table with an item, and a writer on another thread that puts an item while the
    # transaction copies an item
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    writer = write_from_another_thread_during_item_copy(monkeypatch, backend)
    # WHEN a transaction runs
    backend.transact_write_items([add_one("counter")])
    # THEN the writer was held back until the transaction had finished
    assert writer.waited is True
    assert writer.thread is not None
    writer.thread.join(timeout=5)
    assert not writer.thread.is_alive()
    # AND both writes landed
    assert get(ddb, "counter") == {"pk": {"S": "counter"}, "n": {"N": "1"}}
    assert get(ddb, "concurrent") == {"pk": {"S": "concurrent"}}


def test_patched_concurrent_transactions_apply_exactly_once(recorder: Recorder,
                                                            session: boto3.session.Session) -> None:
    # GIVEN a table, and 8 threads with a client each
    threads, iterations = 8, 25
    ddb = session.client("dynamodb")
    make_table(ddb)
    clients = [session.client("dynamodb") for _ in range(threads)]
    start = threading.Barrier(threads, timeout=30)
    failures: list[Exception] = []

    def work(thread: int) -> None:
        start.wait()
        for i in range(iterations):
            try:
                clients[thread].transact_write_items(
                    TransactItems=[add_one("counter"), put_new(f"mark-{thread}-{i}")])
            except Exception as exc:
                failures.append(exc)

    # WHEN each thread runs 25 transactions at once: counter += 1 and a new mark item
    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(worker.is_alive() for worker in workers)
    # THEN every transaction succeeded, and each applied all of its writes exactly once
    assert failures == []
    assert get(ddb, "counter") == {"pk": {"S": "counter"}, "n": {"N": str(threads * iterations)}}
    items = [item for page in ddb.get_paginator("scan").paginate(TableName="t") for item in page["Items"]]
    marks = {item["pk"]["S"] for item in items if "mark" in item}
    assert marks == {f"mark-{t}-{i}" for t in range(threads) for i in range(iterations)}


def test_unpatched_transact_write_items_copies_every_table_it_touches(
        unpatched: None, session: boto3.session.Session) -> None:
    # GIVEN moto without the patches: its TransactWriteItems deep-copies each table it touches
    source = inspect.getsource(DynamoDBBackend.transact_write_items)
    assert "copy.deepcopy(" in source and "self.tables[table_name]" in source
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    backend = dynamodb_backends[ACCOUNT][REGION]
    table = backend.tables["t"]
    # WHEN a transaction is cancelled
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[n_equals("a", 2)])
    # THEN the table was replaced by that copy, with the same items
    assert backend.tables["t"] is not table
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_patched_cancelled_transaction_leaves_the_table_in_place(
        recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN the patches, and a table with an item
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    table = dynamodb_backends[ACCOUNT][REGION].tables["t"]
    # WHEN a transaction is cancelled
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[n_equals("a", 2)])
    # THEN the table was not replaced by a copy (writes of other threads to it are kept)
    assert dynamodb_backends[ACCOUNT][REGION].tables["t"] is table


def test_patched_transaction_cost_does_not_grow_with_table_size(recorder: Recorder,
                                                                session: boto3.session.Session) -> None:
    # GIVEN a table with 10 items and one with 3000
    ddb = session.client("dynamodb")
    backend = dynamodb_backends[ACCOUNT][REGION]
    for table, size in (("small", 10), ("big", 3000)):
        make_table(ddb, table)
        for i in range(size):
            backend.put_item(table, {"pk": {"S": f"item-{i}"}, "payload": {"S": "x" * 50}})

    def median_cost(table: str) -> float:
        for i in range(5):  # warm-up
            ddb.transact_write_items(TransactItems=[add_one("counter", table), put_new(f"warm-{i}", table)])
        costs = []
        for i in range(50):
            started = time.perf_counter()
            ddb.transact_write_items(TransactItems=[add_one("counter", table), put_new(f"mark-{i}", table)])
            costs.append(time.perf_counter() - started)
        return statistics.median(costs)

    # WHEN 50 transactions run on each
    small, big = median_cost("small"), median_cost("big")
    # THEN one costs about the same on both (moto's own: ~30 times more on the big one)
    assert big / small < 3, f"small {small * 1000:.2f} ms, big {big * 1000:.2f} ms"
    assert get(ddb, "counter", "big") == {"pk": {"S": "counter"}, "n": {"N": "55"}}


# The semantics of TransactWriteItems, run against moto's own implementation (pinning it) and
# against the replacement, which must behave the same.
@pytest.fixture(params=["moto", "patched"])
def transact_impl(request: pytest.FixtureRequest) -> str:
    request.getfixturevalue("recorder" if request.param == "patched" else "unpatched")
    return str(request.param)


@pytest.fixture
def ddb(transact_impl: str, session: boto3.session.Session) -> Any:
    """A table "t" with items a (n=1) and b (n=1)."""
    client = session.client("dynamodb")
    make_table(client)
    for pk in ("a", "b"):
        client.put_item(TableName="t", Item={"pk": {"S": pk}, "n": {"N": "1"}})
    return client


def test_transaction_applies_every_write_when_all_conditions_pass(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a transaction's conditions all pass
    ddb.transact_write_items(TransactItems=[
        {"Update": {**add_one("a")["Update"], "ConditionExpression": "n = :one"}},
        put_new("c"),
        n_equals("b", 1),
    ])
    # THEN all of its writes are applied
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert get(ddb, "c") == {"pk": {"S": "c"}, "mark": {"BOOL": True}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}


def test_transaction_with_a_failed_condition_is_cancelled_whole(ddb: Any) -> None:
    # GIVEN items a and b  WHEN the condition of the second op fails
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[
            add_one("a"), n_equals("b", 2, op="Update", UpdateExpression="SET x = :n"), put_new("c")])
    # THEN the cancellation reasons say which, in order
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", "None"]
    assert "Item" not in reasons[1]
    # AND no write was applied
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    assert get(ddb, "c") is None


def test_transaction_with_two_ops_on_one_item_is_invalid(ddb: Any) -> None:
    # GIVEN item a  WHEN a transaction has two ops on it
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[add_one("a"), n_equals("a", 1)])
    # THEN it is a ValidationException, and nothing was written
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in invalid.value.response["Error"]["Message"]
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


def test_transaction_with_more_than_100_items_is_invalid(ddb: Any) -> None:
    # GIVEN a transaction of 101 puts  WHEN it is written
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[put_new(f"p-{i}") for i in range(101)])
    # THEN it is a ValidationException, and nothing was written
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 100" in invalid.value.response["Error"]["Message"]
    assert get(ddb, "p-0") is None


def test_transaction_condition_check_gates_the_writes(ddb: Any) -> None:
    # GIVEN items a and b
    # WHEN a ConditionCheck on b passes  THEN the transaction's write is applied, and b is untouched
    ddb.transact_write_items(TransactItems=[n_equals("b", 1), add_one("a")])
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    # WHEN a ConditionCheck on b fails  THEN the transaction is cancelled, and nothing is written
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[n_equals("b", 5), add_one("a")])
    assert [r["Code"] for r in cancelled.value.response["CancellationReasons"]] == ["ConditionalCheckFailed", "None"]
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "2"}}


def test_transaction_put_and_delete(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a transaction puts c over nothing, replaces b, and deletes a
    ddb.transact_write_items(TransactItems=[
        put_new("c"),
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "replaced": {"S": "yes"}}}},
        {"Delete": {"TableName": "t", "Key": {"pk": {"S": "a"}}, "ConditionExpression": "attribute_exists(pk)"}},
    ])
    # THEN all three are applied
    assert get(ddb, "c") == {"pk": {"S": "c"}, "mark": {"BOOL": True}}
    assert get(ddb, "b") == {"pk": {"S": "b"}, "replaced": {"S": "yes"}}
    assert get(ddb, "a") is None


def test_transaction_failing_write_rolls_back_the_others(ddb: Any) -> None:
    # GIVEN items a and b, and an item s whose n is a string
    ddb.put_item(TableName="t", Item={"pk": {"S": "s"}, "n": {"S": "text"}})
    # WHEN a transaction's conditions pass but its last write fails (ADD to a string)
    with pytest.raises(ClientError) as invalid:
        ddb.transact_write_items(TransactItems=[add_one("a"), put_new("c"), add_one("s")])
    # THEN it is a ValidationException, and the writes before it were undone
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert get(ddb, "c") is None
    assert get(ddb, "s") == {"pk": {"S": "s"}, "n": {"S": "text"}}


def test_transaction_returns_the_old_item_of_a_failed_condition(ddb: Any) -> None:
    # GIVEN items a and b  WHEN a condition on b fails, asking for ALL_OLD
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as cancelled:
        ddb.transact_write_items(TransactItems=[
            add_one("a"), n_equals("b", 2, ReturnValuesOnConditionCheckFailure="ALL_OLD")])
    # THEN b's cancellation reason carries b as it was
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1].get("Item") == {"pk": {"S": "b"}, "n": {"N": "1"}}
    assert get(ddb, "a") == {"pk": {"S": "a"}, "n": {"N": "1"}}


# -- 25. A query reads its hash key only ------------------------------------------------------
def query_pages() -> list[Any]:
    """Every page of queries and scans over tables whose keys are strings or numbers (hash and
    range, hash only, a global index), several hash keys each, in a fresh moto."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        for name, hash_type, range_type in (("sn", "S", "N"), ("ns", "N", "S"), ("s", "S", None), ("n", "N", None)):
            schema = [{"AttributeName": "h", "KeyType": "HASH"}]
            attributes = [{"AttributeName": "h", "AttributeType": hash_type},
                          {"AttributeName": "g", "AttributeType": "S"}]
            if range_type:
                schema.append({"AttributeName": "r", "KeyType": "RANGE"})
                attributes.append({"AttributeName": "r", "AttributeType": range_type})
            index = {"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                     "Projection": {"ProjectionType": "ALL"}}
            ddb.create_table(TableName=name, KeySchema=schema, AttributeDefinitions=attributes,
                             BillingMode="PAY_PER_REQUEST", GlobalSecondaryIndexes=[index])
            hashes = ["10", "9", "1", "2"] if hash_type == "N" else ["b", "a", "c", "a1"]
            for n in range(40):
                item = {"h": {hash_type: hashes[n % 4]}, "g": {"S": f"g{n % 3}"}, "v": {"N": str(n)},
                        "pad": {"S": "x" * n}}
                if range_type:
                    item["r"] = {range_type: str(n * 7 % 23) if range_type == "N" else f"k{n * 7 % 23}"}
                ddb.put_item(TableName=name, Item=item)
            gone = {"r": {range_type: "7" if range_type == "N" else "k7"}} if range_type else {}
            ddb.delete_item(TableName=name, Key={"h": {hash_type: hashes[1]}, **gone})
            queries: list[dict[str, Any]] = []
            for h in [*hashes, "404" if hash_type == "N" else "none"]:
                base = {"TableName": name, "KeyConditionExpression": "h = :h",
                        "ExpressionAttributeValues": {":h": {hash_type: h}}}
                queries += [base, {**base, "Limit": 3}, {**base, "Limit": 2, "ScanIndexForward": False},
                            {**base, "Limit": 4, "FilterExpression": "v > :v",
                             "ExpressionAttributeValues": {":h": {hash_type: h}, ":v": {"N": "12"}}},
                            {**base, "ProjectionExpression": "h, v", "Limit": 5}, {**base, "Select": "COUNT"}]
                if range_type == "N":
                    between = {":h": {hash_type: h}, ":a": {"N": "3"}, ":b": {"N": "15"}}
                    queries.append({**base, "KeyConditionExpression": "h = :h AND r BETWEEN :a AND :b", "Limit": 2,
                                    "ExpressionAttributeValues": between})
                if range_type == "S":
                    queries.append({**base, "KeyConditionExpression": "h = :h AND begins_with(r, :p)",
                                    "ExpressionAttributeValues": {":h": {hash_type: h}, ":p": {"S": "k1"}}})
            queries.append({"TableName": name, "IndexName": "by-g", "KeyConditionExpression": "g = :g",
                            "ExpressionAttributeValues": {":g": {"S": "g1"}}, "Limit": 4})
            for query in queries:
                pages, start = [], None
                while True:
                    page = ddb.query(**query, **({"ExclusiveStartKey": start} if start else {}))
                    page.pop("ResponseMetadata", None)
                    pages.append(page)
                    start = page.get("LastEvaluatedKey")
                    if not start:
                        break
                out.append((name, json.dumps(query, sort_keys=True), pages))
            scanned = ddb.scan(TableName=name, Limit=7)
            scanned.pop("ResponseMetadata", None)
            out.append((name, "scan", scanned))
    return out


def test_patched_queries_read_only_their_hash_key_and_answer_as_moto(aws_env: None) -> None:
    # GIVEN every page moto gives queries and scans over tables with string and number keys
    assert not moto_patches.installed()
    unpatched_pages = query_pages()
    # WHEN the same calls run with the patches (a query reads the items of its hash key only)
    patched_pages = with_patches(query_pages)
    # THEN every page is the same: items, order, counts and LastEvaluatedKey
    assert patched_pages == unpatched_pages
    assert sum(len(pages) > 1 for _, _, pages in patched_pages if isinstance(pages, list)) > 20


# -- 11. DynamoDB items are not tracked -------------------------------------------------------
def items_tracked_by_updates(session: boto3.session.Session) -> int:
    """How many DynamoDB items moto's instance tracker gained over 20 updates of one item."""
    ddb = session.client("dynamodb")
    make_table(ddb)
    before = len(Item.instances_tracked)
    for _ in range(20):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})
    assert get(ddb, "x") == {"pk": {"S": "x"}, "n": {"N": "20"}}
    return len(Item.instances_tracked) - before


def test_unpatched_every_item_copy_is_kept(unpatched: None, session: boto3.session.Session) -> None:
    assert items_tracked_by_updates(session) >= 20


def test_patched_item_copies_are_not_kept(recorder: Recorder, session: boto3.session.Session) -> None:
    assert items_tracked_by_updates(session) == 0
    # AND items are still what moto makes: copies are equal, independent items
    import copy as copying

    original = Item(hash_key=None, range_key=None, attrs={"pk": {"S": "y"}, "n": {"N": "1"}})
    clone = copying.deepcopy(original)
    assert isinstance(clone, Item) and clone == original and clone.attrs is not original.attrs


def test_patched_projection_of_top_level_attributes_equals_moto_s(recorder: Recorder,
                                                                  session: boto3.session.Session) -> None:
    # GIVEN an item of every kind of attribute
    ddb = session.client("dynamodb")
    make_table(ddb)
    item = {"pk": {"S": "x"}, "s": {"S": "text"}, "n": {"N": "1.50"}, "m": {"M": {"a": {"N": "1"}, "b": {"S": "y"}}},
            "l": {"L": [{"S": "a"}, {"N": "2"}]}, "ss": {"SS": ["p", "q"]}, "t": {"BOOL": True}}
    ddb.put_item(TableName="t", Item=item)
    # WHEN top-level attributes are projected  THEN the answer is moto's own, attribute for attribute
    picked = ddb.get_item(TableName="t", Key={"pk": {"S": "x"}}, ProjectionExpression="s, n, m, l, ss, t, absent")
    assert picked["Item"] == {k: v for k, v in item.items() if k != "pk"}
    # AND a nested path still goes moto's way
    nested = ddb.get_item(TableName="t", Key={"pk": {"S": "x"}}, ProjectionExpression="m.b, l[1]")
    assert nested["Item"] == {"m": {"M": {"b": {"S": "y"}}}, "l": {"L": [{"N": "2"}]}}


def test_patched_item_size_limit_holds_as_moto_s(recorder: Recorder, session: boto3.session.Session) -> None:
    # GIVEN an item of 300 KB in 30 attributes (the size is kept, not recounted at each attribute)
    ddb = session.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "x"}, **{f"a{i}": {"S": "v" * 10_000} for i in range(30)}})
    # WHEN updates bring it near, then over, DynamoDB's 400 KB (moto: 405,000 bytes)
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET b = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 90_000}})
    with pytest.raises(ClientError, match="Item size to update has exceeded the maximum allowed size"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET c = :v",
                        ExpressionAttributeValues={":v": {"S": "v" * 20_000}})
    # THEN the item is as it was before the refused update
    assert set(get(ddb, "x")) == {"pk", "b", *(f"a{i}" for i in range(30))}
    # AND replacing an attribute counts the old value's size out
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET b = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 5}})
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET c = :v",
                    ExpressionAttributeValues={":v": {"S": "v" * 20_000}})


# -- 21. DynamoDB writes observed; transactions cancelled on demand -----------------------------
def test_patched_writes_are_observed_and_a_fault_cancels_with_transaction_conflict(hooked: Any) -> None:
    # DynamoDB developer guide, "Amazon DynamoDB Transactions: How it works": a transaction that
    # conflicts with another on an item is cancelled; CancellationReasons holds, per item,
    # "TransactionConflict" for that item and "None" for the others.
    aws, _, seen, conflict = hooked
    ddb = aws.client("dynamodb")
    make_table(ddb)
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "n": {"N": "0"}})
    items = [{"Update": {"TableName": "t", "Key": {"pk": {"S": key}}, "UpdateExpression": "ADD n :one",
                         "ExpressionAttributeValues": {":one": {"N": "1"}}}} for key in ("a", "b")]
    conflict["index"] = 1
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=items)
    reasons = [reason["Code"] for reason in caught.value.response["CancellationReasons"]]
    assert reasons == ["None", "TransactionConflict"]
    assert ddb.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "0"}
    conflict["index"] = None
    ddb.transact_write_items(TransactItems=items)
    # AND every write was seen: the put, both items of both transactions (cancelled or not)
    assert [key["pk"]["S"] for _, key in seen["writes"]] == ["a", "a", "b", "a", "b"]
