"""Adaptations 9 (local/moto_patches/dynamodb_expressions.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local import moto_patches
from tests.patch_helpers import REGION, Recorder, get, make_table, with_patches


# -- 9. DynamoDB expressions parsed once -----------------------------------------------------
def test_unpatched_update_expression_is_parsed_on_each_call(unpatched: None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    assert UpdateExpressionParser.make("SET a = :a") is not UpdateExpressionParser.make("SET a = :a")


def test_patched_expressions_are_cached_but_values_are_not(recorder: Recorder,
                                                           session: boto3.session.Session) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    # GIVEN the patches  THEN one update expression text gives one parsed tree
    assert UpdateExpressionParser.make("SET a = :a") is UpdateExpressionParser.make("SET a = :a")
    ddb = session.client("dynamodb")
    make_table(ddb)
    # WHEN the same update and condition texts run with different values
    for pk, n in (("x", "1"), ("y", "2"), ("x", "3")):
        ddb.update_item(TableName="t", Key={"pk": {"S": pk}}, UpdateExpression="SET n = :n",
                        ExpressionAttributeValues={":n": {"N": n}})
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET m = :n",
                    ConditionExpression="n = :expected",
                    ExpressionAttributeValues={":n": {"N": "9"}, ":expected": {"N": "3"}})
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET m = :n",
                        ConditionExpression="n = :expected",
                        ExpressionAttributeValues={":n": {"N": "10"}, ":expected": {"N": "1"}})
    # THEN each call used its own values
    assert get(ddb, "x") == {"pk": {"S": "x"}, "n": {"N": "3"}, "m": {"N": "9"}}
    assert get(ddb, "y") == {"pk": {"S": "y"}, "n": {"N": "2"}}
    # AND a bad expression, or an unused value, is still refused on every call
    for _ in range(2):
        with pytest.raises(ClientError, match="ValidationException"):
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET = :n",
                            ExpressionAttributeValues={":n": {"N": "1"}})
        with pytest.raises(ClientError, match="unused"):
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET n = :n",
                            ConditionExpression="n = :expected",
                            ExpressionAttributeValues={":n": {"N": "1"}, ":expected": {"N": "3"},
                                                       ":spare": {"N": "0"}})


def conditional_updates() -> list[Any]:
    """Conditional updates whose condition names one value and whose other values change at every
    call (as record_result's do), in a fresh moto: each call's response or error, and the items."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        make_table(ddb)
        for pk in ("a", "b", "c"):
            ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "state": {"S": "PENDING"}})
        calls = [("a", "PENDING", "1"), ("a", "PENDING", "2"), ("b", "PENDING", "3"), ("c", "DONE", "4"),
                 ("b", "PENDING", "5"), ("missing", "PENDING", "6")]
        for pk, expected, at in calls:
            for condition, names in (("#s = :p", {"#s": "state", "#at": "at"}),
                                     ("#s = :p AND attribute_not_exists(#x)", {"#s": "state", "#at": "at", "#x": "x"})):
                try:
                    out.append(ddb.update_item(
                        TableName="t", Key={"pk": {"S": pk}}, UpdateExpression="SET #s = :done, #at = :at",
                        ConditionExpression=condition, ExpressionAttributeNames=names,
                        ExpressionAttributeValues={":done": {"S": "DONE"}, ":at": {"N": at}, ":p": {"S": expected},
                                                   ":pending": {"S": "PENDING"}} if pk == "c" else
                        {":done": {"S": "DONE"}, ":at": {"N": at}, ":p": {"S": expected}},
                        ReturnValues="ALL_NEW"))
                except ClientError as exc:
                    out.append(exc.response["Error"])
                ddb.put_item(TableName="t", Item={"pk": {"S": pk}, "state": {"S": "PENDING"}})
        # a value the condition names but the call leaves out still fails, as moto fails (KeyError)
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "a"}}, UpdateExpression="SET #s = :done",
                            ConditionExpression="#s = :p", ExpressionAttributeNames={"#s": "state"},
                            ExpressionAttributeValues={":done": {"S": "DONE"}})
        except Exception as exc:
            out.append(exc.response["Error"] if isinstance(exc, ClientError) else repr(exc))
        out.append(ddb.scan(TableName="t")["Items"])
    for response in out:
        if isinstance(response, dict):
            response.pop("ResponseMetadata", None)
    return out


def test_patched_conditions_parsed_once_answer_as_moto(aws_env: None) -> None:
    # GIVEN what moto answers to conditional updates whose other values change at every call
    assert not moto_patches.installed()
    unpatched_answers = conditional_updates()
    # WHEN the same calls run with the patches (the condition parsed once, by its own placeholders)
    patched_answers = with_patches(conditional_updates)
    # THEN every answer, error and item is the same
    assert patched_answers == unpatched_answers
    assert any("ConditionalCheckFailed" in str(answer) for answer in patched_answers)


UPDATE_EXPRESSIONS = ("SET #a = :a, b = :b ADD n :one", "SET a.b[1] = if_not_exists(c, :c) REMOVE #d",
                      "ADD s :s DELETE t :t", "SET x = list_append(#l, :l), y = y + :one")


def test_patched_clauses_of_a_shared_tree_are_the_walked_ones(recorder: Recorder) -> None:
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        ExpressionAttributeName,
        ExpressionAttributeValue,
        Node,
    )
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    original = moto_patches._MISSING
    for owner, name, value in moto_patches._installed.originals:  # type: ignore[union-attr]
        if owner is Node and name == "find_clauses":
            original = value
    assert callable(original)
    # GIVEN shared (cached) trees  WHEN their names and values are looked up, twice
    for text in UPDATE_EXPRESSIONS:
        tree = UpdateExpressionParser.make(text)
        for kinds in ([ExpressionAttributeName], [ExpressionAttributeValue],
                      [ExpressionAttributeName, ExpressionAttributeValue]):
            first, second = tree.find_clauses(kinds), tree.find_clauses(kinds)
            # THEN each lookup finds what moto's walk finds, in a list of its own
            assert first == second == original(tree, kinds)
            assert first is not second
    # AND a tree that is not shared is walked as before
    fresh = UpdateExpressionParser.make.__func__(type("Other", (UpdateExpressionParser,), {}), "SET a = :a")
    assert [c.get_value_name() for c in fresh.find_clauses([ExpressionAttributeValue])] == [":a"]


def processing_map_builds(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(validations, processing-map builds) of one update_item with a three-action expression."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    ddb = session.client("dynamodb")
    make_table(ddb)
    builds: list[None] = []
    validations: list[None] = []
    original_map = validators.ExecuteOperations._processing_map
    original_validate = validators.UpdateExpressionValidator.validate

    def counting_map(self: DepthFirstTraverser) -> Any:
        builds.append(None)
        return original_map(self)

    def counting_validate(self: Any) -> Any:
        validations.append(None)
        return original_validate(self)

    monkeypatch.setattr(validators.ExecuteOperations, "_processing_map", counting_map)
    monkeypatch.setattr(validators.UpdateExpressionValidator, "validate", counting_validate)
    # (if_not_exists reads the item: the expression is validated anew at each call)
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}},
                    UpdateExpression="SET a = :a, b = if_not_exists(b, :b) ADD n :one",
                    ExpressionAttributeValues={":a": {"S": "a"}, ":b": {"S": "b"}, ":one": {"N": "1"}})
    assert get(ddb, "x") == {"pk": {"S": "x"}, "a": {"S": "a"}, "b": {"S": "b"}, "n": {"N": "1"}}
    return len(validations), len(builds)


def test_unpatched_validation_rebuilds_its_table_at_every_node(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    validations, builds = processing_map_builds(session, monkeypatch)
    assert builds > 10 * validations


def test_patched_validation_builds_its_table_once_per_check(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    validations, builds = processing_map_builds(session, monkeypatch)
    assert builds == validations


def test_patched_a_flat_update_is_validated_once_per_names(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an expression that only sets top-level attributes to values and adds to one
    from moto.dynamodb.parsing import validators

    ddb = session.client("dynamodb")
    make_table(ddb)
    builds: list[None] = []
    original_map = validators.ExecuteOperations._processing_map

    def counting_map(self: Any) -> Any:
        builds.append(None)
        return original_map(self)

    monkeypatch.setattr(validators.ExecuteOperations, "_processing_map", counting_map)
    for key in ("x", "y", "z"):
        ddb.put_item(TableName="t", Item={"pk": {"S": key}, "n": {"N": "5"}})
    # WHEN three items are updated with it, the same names and values
    for key in ("x", "y", "z"):
        ddb.update_item(TableName="t", Key={"pk": {"S": key}}, UpdateExpression="SET a = :a ADD n :one",
                        ExpressionAttributeValues={":a": {"S": "a"}, ":one": {"N": "1"}})
    # THEN it was validated (walked) once, and each item got its own update
    assert len(builds) == 1
    assert [get(ddb, key) for key in ("x", "y", "z")] == [
        {"pk": {"S": key}, "a": {"S": "a"}, "n": {"N": "6"}} for key in ("x", "y", "z")]
    # AND other values fill the kept tree, and change only their own item
    ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET a = :a ADD n :one",
                    ExpressionAttributeValues={":a": {"S": "b"}, ":one": {"N": "2"}})
    assert len(builds) == 1
    assert get(ddb, "x") == {"pk": {"S": "x"}, "a": {"S": "b"}, "n": {"N": "8"}}
    assert get(ddb, "y")["a"] == {"S": "a"}
    # AND a value missing from a later call is refused as moto refuses it
    with pytest.raises(ClientError, match="An expression attribute value used in expression is not defined"):
        ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression="SET a = :a ADD n :one",
                        ExpressionAttributeValues={":a": {"S": "c"}})


def flat_updates() -> list[Any]:
    """Flat updates (top-level SET to values, ADD) repeated with values of every kind, in a fresh
    moto: each call's ALL_NEW attributes, or its error, and the items at the end."""
    out: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        make_table(ddb)
        expression = "SET #s = :s, #m = :m, l = :l, ss = :ss ADD n :one, tags :tag"
        for round_, pk in enumerate(("x", "y", "x", "z", "y")):
            values = {":s": {"S": f"s{round_}"}, ":one": {"N": str(round_ + 1)}, ":tag": {"SS": [f"t{round_}"]},
                      ":m": {"M": {"k": {"L": [{"N": str(round_)}, {"M": {"d": {"S": "deep"}}}]}}},
                      ":l": {"L": [{"S": "a"}, {"BOOL": round_ % 2 == 0}, {"NULL": True}]},
                      ":ss": {"SS": ["p", f"q{round_}"]}}
            try:
                out.append(ddb.update_item(TableName="t", Key={"pk": {"S": pk}}, UpdateExpression=expression,
                                           ExpressionAttributeNames={"#s": "state", "#m": "map"},
                                           ExpressionAttributeValues=values, ReturnValues="ALL_NEW")["Attributes"])
            except ClientError as exc:
                out.append(exc.response["Error"])
        # the same expression with a value of another type where ADD needs a number: moto's error
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression=expression,
                            ExpressionAttributeNames={"#s": "state", "#m": "map"},
                            ExpressionAttributeValues={":s": {"S": "s"}, ":one": {"S": "one"}, ":tag": {"SS": ["t"]},
                                                       ":m": {"M": {}}, ":l": {"L": []}, ":ss": {"SS": ["p"]}})
        except ClientError as exc:
            out.append(exc.response["Error"])
        out.append(sorted(ddb.scan(TableName="t")["Items"], key=lambda item: item["pk"]["S"]))
    return out


def test_patched_flat_updates_answer_as_moto(aws_env: None) -> None:
    # GIVEN what moto answers to flat updates repeated with values of every kind
    assert not moto_patches.installed()
    unpatched_answers = flat_updates()
    # WHEN the same calls run with the patches (the validated tree kept, rebuilt with each call's values)
    patched_answers = with_patches(flat_updates)
    # THEN every answer, error and item is the same
    assert patched_answers == unpatched_answers
    assert patched_answers[2]["n"] == {"N": "4"}  # x: 1 + 3


# -- 9 (continued). Update validation ---------------------------------------------------------
def update_tour(session: boto3.session.Session) -> list[Any]:
    """Items and errors after a tour of update expressions, in a fresh table."""
    ddb = session.client("dynamodb")
    make_table(ddb)
    out: list[Any] = []
    updates: list[tuple[str, dict[str, Any], dict[str, str] | None]] = [
        ("SET a = :s, m = :m, l = :l, n = :one", {":s": {"S": "a"}, ":m": {"M": {"x": {"N": "1"}}},
                                                  ":l": {"L": [{"S": "p"}]}, ":one": {"N": "1"}}, None),
        ("SET #n = #n + :one, m.x = m.x - :one", {":one": {"N": "1"}}, {"#n": "n"}),
        ("SET l = list_append(l, :more), b = if_not_exists(b, :s)", {":more": {"L": [{"S": "q"}]},
                                                                     ":s": {"S": "b"}}, None),
        ("ADD ss :ss, n :one", {":ss": {"SS": ["u", "v"]}, ":one": {"N": "1"}}, None),
        ("DELETE ss :u REMOVE l[0], b", {":u": {"SS": ["u"]}}, None),
        ("SET #n = #n + :one", {":one": {"N": "1"}}, {"#n": "n"}),  # the same text again
        ("SET a = :s, a = :t", {":s": {"S": "1"}, ":t": {"S": "2"}}, None),  # two updates of one path
        ("SET a = :s, a = :t", {":s": {"S": "1"}, ":t": {"S": "2"}}, None),  # ... refused every time
        ("ADD n :one ADD n :one", {":one": {"N": "1"}}, None),  # two ADD clauses
        ("SET pk = :s", {":s": {"S": "other"}}, None),  # a key attribute
        ("ADD a :one", {":one": {"N": "1"}}, None),  # a number added to a string
        ("SET #missing.deep = :s", {":s": {"S": "x"}}, {"#missing": "nothing"}),
    ]
    for expression, values, names in updates:
        kwargs: dict[str, Any] = {"ExpressionAttributeValues": values}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            ddb.update_item(TableName="t", Key={"pk": {"S": "x"}}, UpdateExpression=expression, **kwargs)
            out.append(get(ddb, "x"))
        except ClientError as error:
            out.append((error.response["Error"]["Code"], error.response["Error"]["Message"]))
    return out


def test_patched_update_expressions_give_the_items_and_errors_moto_gives(aws_env: None) -> None:
    with mock_aws():
        unpatched_tour = update_tour(boto3.session.Session(region_name=REGION))
    rec = Recorder()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        with mock_aws():
            patched_tour = update_tour(boto3.session.Session(region_name=REGION))
    finally:
        moto_patches.uninstall()
    assert patched_tour == unpatched_tour
    assert patched_tour[5]["n"] == {"N": "4"} and patched_tour[4]["l"] == {"L": [{"S": "q"}]}
    assert [entry[0] for entry in patched_tour[6:]] == ["ValidationException"] * 6


def expression_checks(session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch,
                      names: list[str], table: str = "t") -> int:
    """How often ActionCountValidator walks a tree over updates naming `names` in turn."""
    from moto.dynamodb.parsing import validators

    walks: list[None] = []
    original = validators.ActionCountValidator._processing_map

    def counting(self: Any) -> Any:
        walks.append(None)
        return original(self)

    monkeypatch.setattr(validators.ActionCountValidator, "_processing_map", counting)
    ddb = session.client("dynamodb")
    make_table(ddb, table)
    for name in names:
        ddb.update_item(TableName=table, Key={"pk": {"S": "x"}}, UpdateExpression="ADD #c :one",
                        ExpressionAttributeNames={"#c": name}, ExpressionAttributeValues={":one": {"N": "1"}})
    return len(walks)


def test_unpatched_expression_checks_run_on_every_update(
        unpatched: None, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    assert expression_checks(session, monkeypatch, ["a", "a", "a"]) >= 3


def test_patched_expression_checks_run_once_per_expression_and_names(
        recorder: Recorder, session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN one update checked  WHEN the same expression and names come again, on any table
    # with the same key names  THEN the checks do not run again; new names are checked
    assert expression_checks(session, monkeypatch, ["a"]) >= 1
    assert expression_checks(session, monkeypatch, ["a", "a"], table="t2") == 0
    assert expression_checks(session, monkeypatch, ["b"], table="t3") >= 1
    ddb = session.client("dynamodb")
    assert get(ddb, "x", table="t2") == {"pk": {"S": "x"}, "a": {"N": "2"}}


def test_patched_parse_tree_copy_is_the_tree(recorder: Recorder) -> None:
    import copy as copying

    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    def shape(node: Any) -> Any:
        if not isinstance(node, Node):
            return node
        return (type(node).__name__, [shape(child) for child in node.children or []])

    def parents_ok(node: Any) -> bool:
        return all(child.parent is node and parents_ok(child)
                   for child in node.children or [] if isinstance(child, Node))

    tree = UpdateExpressionParser.make("SET a = if_not_exists(a, :z) + :one, l[2].x = :s REMOVE b ADD n :one")
    clone = validators.deepcopy(tree)
    assert shape(clone) == shape(copying.deepcopy(tree)) == shape(tree)
    assert parents_ok(clone) and clone.parent is None and clone.children[0] is not tree.children[0]
