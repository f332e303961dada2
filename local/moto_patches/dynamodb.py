"""moto's DynamoDB backend: item operations serialised, transactions that check before they
write (observed, and cancelled on demand), items not tracked, and queries that read their hash
key only. Expressions are in dynamodb_expressions.py.

Replaces, in moto 5.2.5: every item operation of moto.dynamodb.models.DynamoDBBackend
(DYNAMODB_ITEM_OPERATIONS) is wrapped, and its transact_write_items replaced (6, 21);
moto.dynamodb.models.dynamo_type.Item.__new__ and Item.project, and
LimitedSizeDict.__setitem__, which keeps an item's size (11); moto.dynamodb.models.table.Table.query
and Table.all_items inside it (25).
Adaptation 21's other half, every execution started reported, is in executions.py.
Tests: tests/unit/test_patches_dynamodb.py.

6. moto's DynamoDB is not thread-safe: concurrent transactions fail with "dictionary
   changed size during iteration" or apply half. Item operations are serialised, as
   DynamoDB serialises the writes to one item.
   moto's TransactWriteItems deep-copies every table it touches, for a rollback, on each
   call: O(table size), and the cost of counting grows with the square of the request.
   Conditions are checked first and only the items written are saved for a rollback.
11. Memory: moto keeps every model instance it ever creates in a class-level list, for its
   server's dashboard. DynamoDB items are copied on every update, transaction snapshot and
   query, so eight items per case stayed in memory for good. Items are not tracked. Speed: a
   projection of top-level attributes picks them from the item instead of converting the whole
   item to Python values and back.
21. Observation and fault injection (`EngineHooks`): every execution started and every item
   write is reported (counter-row writes and fan-in executions per request), and a
   transaction may be cancelled with TransactionConflict on an item (`--conflict-rate`).
25. Speed: moto's DynamoDB Query of a table (not an index) reads every item of the table, sorted
   (`all_items`), for each page, and keeps those of the queried hash key: O(table) per page, and
   a Summary pages through a request's results in a table that holds every request's. The query
   reads the items of its hash key only (the same items, in the same order); the rest of moto's
   query (sorting by range key, conditions, pages, limits, filters, projections) is unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from .json_copies import json_deepcopy
from .patching import Patch


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]], *,
                          on_write: Callable[[str, dict[str, Any]], None] | None = None,
                          fault: Callable[[list[tuple[str, dict[str, Any]]]], int | None] | None = None) -> None:
    """TransactWriteItems with the semantics of moto's own (cancellation reasons, per-op
    validation), but checking every condition before writing and snapshotting only the
    items it writes. `on_write` sees every item of every transaction, committed or not;
    `fault` may cancel a transaction with TransactionConflict on the item it names, as
    DynamoDB does when another transaction holds that item (transaction-apis.html)."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        if op_type == "Put":
            table = self.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        identity = (str(table_name), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        operations.append((op_type, op, key))
        if on_write is not None:
            on_write(str(table_name), key)
        try:
            current = self.get_item(table_name, key)
            if op.get("ConditionExpression") is not None:
                condition = get_filter_expression(
                    op["ConditionExpression"], op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if not condition.expr(current):
                    old = None
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    errors.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
                    continue
            errors.append((None, None, None))
        except Exception as exc:  # moto reports any other failure as a cancellation reason
            errors.append((type(exc).__name__, str(exc), None))
    conflict = fault([(op["TableName"], key) for _, op, key in operations]) if fault is not None else None
    if conflict is not None:
        raise TransactionCanceledException([
            ("TransactionConflict", "Transaction is ongoing for the item", None) if index == conflict
            else (None, None, None) for index in range(len(operations))])
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    # what each written item was, as the attributes a rollback puts back (a copy: the writes
    # change the item in place)
    saved = [(op["TableName"], key, _attributes_of(self.get_item(op["TableName"], key)))
             for op_type, op, key in operations if op_type != "ConditionCheck"]
    try:
        for op_type, op, key in operations:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(op["TableName"], key)
            elif op_type == "Update":
                self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
    except BaseException:
        for table_name, key, before in saved:
            if before is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before)
        raise


def _attributes_of(item: Any) -> dict[str, Any] | None:
    """An item's attributes as DynamoDB JSON, its own copy (what `copy.deepcopy(item).to_json()`
    gives, without copying the item's typed values first); None for no item."""
    if item is None:
        return None
    return json_deepcopy(item.to_json()["Attributes"])  # type: ignore[no-any-return]


def untracked_dynamodb_items(patch: Patch) -> None:
    from moto.dynamodb.models.dynamo_type import Item

    def new_item(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)  # BaseModel.__new__ without appending to instances_tracked

    patch(Item, "__new__", staticmethod(new_item))

    original_project = Item.project

    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        # Top-level attributes are picked from the item as they are; moto turns the whole item into
        # plain Python values and back to pick them. Anything nested goes moto's way.
        if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
            return original_project(self, projection_expressions)
        attrs = {path[0]: self.attrs[path[0]].to_json() for path in projection_expressions if path[0] in self.attrs}
        return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)

    patch(Item, "project", project)
    _item_size_kept(patch)


# Near DynamoDB's item limit (moto's 405,000 bytes) the size is always recounted in full.
_RECOUNT_ABOVE_BYTES = 300_000


def _item_size_kept(patch: Patch) -> None:
    """moto checks an item's 400 KB limit at each attribute set by summing the sizes of all its
    attributes: building an item of n attributes costs n^2 size computations. The size is kept
    with the item's attributes and updated at each set; it is counted in full whenever the
    attributes changed otherwise (their number differs from the count kept) or the item nears
    the limit, so the check fails exactly where moto's does."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def entry(key: Any, value: Any) -> int:
        return int(bytesize(str(key)) + (value.size() if type(value) is DynamoType else bytesize(str(value))))

    def setitem(self: Any, key: str, value: Any) -> None:
        kept = self.__dict__.get("_fanflow_size")
        if kept is None or kept[0] != len(self) or kept[1] > _RECOUNT_ABOVE_BYTES:
            current = sum(entry(k, v) for k, v in self.items())
        else:
            current = kept[1]
        new = entry(key, value)
        if current + new > 405_000:  # moto's limit, measured as moto measures it
            raise ItemSizeTooLarge
        old = entry(key, self[key]) if key in self else 0
        dict.__setitem__(self, key, value)
        self.__dict__["_fanflow_size"] = (len(self), current - old + new)

    patch(LimitedSizeDict, "__setitem__", setitem)


DYNAMODB_ITEM_OPERATIONS = (
    "put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items",
    "transact_get_items", "batch_write_item", "batch_get_item", "execute_statement", "execute_transaction",
)


def serialise_dynamodb(patch: Patch,
                        on_write: Callable[[str, dict[str, Any]], None] | None = None,
                        fault: Callable[[list[tuple[str, dict[str, Any]]]], int | None] | None = None) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        _transaction.active = True
        try:
            _transact_write_items(self, transact_items, on_write=on_write, fault=fault)
        finally:
            _transaction.active = False

    patch(DynamoDBBackend, "transact_write_items", transact_write_items)
    lock = threading.RLock()
    for name in DYNAMODB_ITEM_OPERATIONS:
        original = getattr(DynamoDBBackend, name)
        observed = on_write is not None and name in _SINGLE_ITEM_WRITES

        @functools.wraps(original)
        def serialised(*args: Any, __original: Any = original, __observed: bool = observed, **kwargs: Any) -> Any:
            if __observed and not getattr(_transaction, "active", False):
                _observe_write(on_write, args, kwargs)
            with lock:
                return __original(*args, **kwargs)

        patch(DynamoDBBackend, name, serialised)


# put_item(table_name, item, ...), update_item(table_name, key, ...), delete_item(table_name, key, ...)
_SINGLE_ITEM_WRITES = ("put_item", "update_item", "delete_item")
_transaction = threading.local()


def _observe_write(on_write: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # args[0] is the backend; the table name and the item (or key) follow.
    table = kwargs.get("table_name", args[1] if len(args) > 1 else None)
    item = kwargs.get("item_attrs", kwargs.get("key", args[2] if len(args) > 2 else None))
    if isinstance(table, str) and isinstance(item, dict):
        on_write(table, item)


def query_by_hash_key(patch: Patch) -> None:
    """Adaptation 25. moto's Table.query of the table itself keeps, from `all_items()` (every
    item, sorted by hash and range key), the items whose hash key equals the queried one, then
    sorts them by range key. Inside such a query, in its thread, `all_items()` gives those items
    only: the items under every hash key equal to the queried one, in the table's order. Not
    sorted first: all their hash keys are equal, so both sorts by (hash, range) and by range key
    are stable sorts on the range key, and the query's own sort gives the order moto gives
    (equal range keys keep the table's order either way)."""
    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items
    scope = threading.local()

    def all_items(self: Any) -> list[Any]:
        only = getattr(scope, "only", None)
        if only is None or only[0] is not self:
            return original_all_items(self)
        hash_key = only[1]
        items: list[Any] = []
        for key, bucket in list(self.items.items()):
            if key == hash_key:
                if self.range_key_attr:
                    items.extend(bucket.values())
                else:
                    items.append(bucket)
        return items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name or hash_key is None:
            return original_query(self, hash_key, *args, **kwargs)
        previous = getattr(scope, "only", None)
        scope.only = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            scope.only = previous

    patch(Table, "all_items", all_items)
    patch(Table, "query", query)
