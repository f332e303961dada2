"""moto's DynamoDB expressions, parsed and validated once: update and condition expressions
cached by their text, validation walks that look their tables up once, and flat updates whose
validated tree is kept.

Replaces, in moto 5.2.5 (moto.dynamodb.parsing unless said): expressions.UpdateExpressionParser.make,
ast_nodes.Node.find_clauses, moto.dynamodb.comparisons.ConditionExpressionParser.parse,
ast_nodes.DepthFirstTraverser.nodes_to_be_processed, .process and .traverse, the `deepcopy`
that validators uses, validators.UpdateExpressionValidator.__init__ and .validate (9).
Tests: tests/unit/test_patches_dynamodb_expressions.py.

9. Speed: moto's DynamoDB parses each update and condition expression twice per call (once
   to validate the request, once to apply it). Parsed update expressions are cached by
   their text (moto copies the tree before resolving it), and so are the clauses moto looks
   up in such a tree at every call (its names and values); parsed conditions by their
   text and the names and values whose placeholders occur in it (a condition beside an update
   whose other values change at every call is parsed once). Validating an update walks its
   tree once per check (ten checks), and each step of each walk rebuilt the check's table of
   node types; the table is built once per check, and the walk looks it up once. Three checks read only the expression,
   its attribute names and the table's key names (two of them rescan the tree at every
   clause): an expression that passed them passes them again without a walk. The parse
   tree each update validates is copied node by node instead of by copy.deepcopy. An
   expression that only sets top-level attributes to values and adds values to top-level
   attributes reads nothing of the item while validated, and its values only fill the tree's value
   leaves: the validated tree is kept, and validating it again with the same names is a copy with
   the new values in its leaves (a counting transaction updates 99 rows with one such
   expression; every computed case records its result with one).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from typing import Any

from .json_copies import _JSON_SCALARS, _NotJson
from .patching import Patch


def cache_dynamodb_expressions(patch: Patch) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    make = UpdateExpressionParser.make.__func__
    cached_make = functools.lru_cache(maxsize=1024)(lambda expression: make(UpdateExpressionParser, expression))

    def make_update_expression(cls: Any, expression: str) -> Any:
        if cls is not UpdateExpressionParser:
            return make(cls, expression)
        tree = cached_make(expression)
        if id(tree) not in shared_trees:
            if len(shared_trees) >= 2048:
                shared_trees.clear()
                clauses.clear()
            shared_trees[id(tree)] = tree
        return tree

    # The clauses of a shared (cached) tree, by clause types: moto's UpdateItem and
    # TransactWriteItems look for its attribute names and values at every call, walking it.
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    shared_trees: dict[int, Any] = {}
    clauses: dict[tuple[int, tuple[type, ...]], list[Any]] = {}
    original_find_clauses = Node.find_clauses

    def find_clauses(self: Any, clause_types: Any) -> Any:
        if shared_trees.get(id(self)) is not self:
            return original_find_clauses(self, clause_types)
        key = (id(self), tuple(clause_types))
        found = clauses.get(key)
        if found is None:
            found = clauses[key] = original_find_clauses(self, clause_types)
        return list(found)

    patch(Node, "find_clauses", find_clauses)

    original_parse = ConditionExpressionParser.parse
    conditions: dict[tuple[Any, ...], tuple[Any, list[str], list[str]]] = {}

    def parse_condition(self: Any) -> Any:
        # The parser reads a name or a value only for a placeholder written in the expression: the
        # entries whose placeholder does not occur in its text change nothing (record_result's
        # condition names one value of six, and the other five change with every call).
        text = self.condition_expression or ""
        key = (self.condition_expression, _mentioned(self.expression_attribute_names, text),
               _mentioned(self.expression_attribute_values, text))
        parsed = conditions.get(key)
        if parsed is None:
            op = original_parse(self)
            parsed = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            if len(conditions) >= 4096:
                conditions.clear()
            conditions[key] = parsed
        self.expr_attr_names_found = list(parsed[1])
        self.expr_attr_values_found = list(parsed[2])
        return parsed[0]

    patch(UpdateExpressionParser, "make", classmethod(make_update_expression))
    patch(ConditionExpressionParser, "parse", parse_condition)

    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    def processing_map(self: Any) -> dict[type, Callable[[Any], Any]]:
        table = self.__dict__.get("_fanflow_processing_map")
        if table is None:
            table = self.__dict__["_fanflow_processing_map"] = self._processing_map()
            self.__dict__["_fanflow_node_types"] = tuple(table)
        return table

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        processing_map(self)
        return self.__dict__["_fanflow_node_types"]

    def process(self: Any, node: Any) -> Any:
        for node_type, processor in processing_map(self).items():
            if isinstance(node, node_type):
                return processor(node)
        return None

    patch(DepthFirstTraverser, "nodes_to_be_processed", nodes_to_be_processed)
    patch(DepthFirstTraverser, "process", process)
    _fast_update_validation(patch, DepthFirstTraverser, processing_map)


def _typed_value(kind: type, slot: int, parent: Any, values: list[Any]) -> Any:
    return kind(values[slot])


def _leaf(clone: Callable[[Any], Any], value: Any, parent: Any, values: list[Any]) -> Any:
    return clone(value)


def _mentioned(placeholders: dict[str, Any] | None, text: str) -> str:
    """The entries of `placeholders` (names or values) whose key occurs in `text`, as sorted JSON:
    every entry a condition's parser can read, and none it cannot."""
    if not placeholders:
        return json.dumps(placeholders)
    return json.dumps({key: value for key, value in placeholders.items() if key in text}, sort_keys=True)


def _fast_update_validation(patch: Patch, traverser: Any,
                            processing_map: Callable[[Any], dict[type, Callable[[Any], Any]]]) -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    def traverse(self: Any, root: Any) -> Any:
        table = processing_map(self)
        node_types = self.nodes_to_be_processed()
        overridden = type(self).pre_processing_of_child is not traverser.pre_processing_of_child
        before_child = self.pre_processing_of_child if overridden else None

        # DepthFirstTraverser.traverse_node_recursively, with the table looked up once
        def visit(node: Any, child_id: int) -> Any:
            if not isinstance(node, Node):
                return node
            parent = node.parent
            children = node.children
            if children is not None:
                for index, child in enumerate(children):
                    if before_child is not None:
                        before_child(node, index)
                    visit(child, index)
            if isinstance(node, node_types):
                for node_type, processor in table.items():
                    if isinstance(node, node_type):
                        node = processor(node)
                        break
                else:
                    node = None
                node.parent = parent
                if parent:
                    parent.children[child_id] = node
            return node

        return visit(root, -1)

    patch(traverser, "traverse", traverse)

    def clone_tree(node: Any, parent: Any) -> Any:
        """What copy.deepcopy makes of a parse tree whose nodes hold only child nodes,
        their parent, and strings or numbers; raises _NotJson for anything else."""
        new = object.__new__(type(node))
        attrs = dict(node.__dict__)
        for name, value in attrs.items():
            if name == "parent":
                attrs[name] = parent
            elif name == "children":
                if value is not None:
                    attrs[name] = [clone_tree(child, new) if isinstance(child, Node) else _immutable(child)
                                   for child in value]
            elif type(value) not in _JSON_SCALARS:
                raise _NotJson
        new.__dict__.update(attrs)
        return new

    def clone(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if memo is None and isinstance(value, Node) and value.parent is None:
            try:
                return clone_tree(value, None)
            except _NotJson:
                pass
        return copy.deepcopy(value, memo)

    patch(validators, "deepcopy", clone)

    # The first three checks read only the expression, the attribute names and the table's
    # key names; two of them scan the whole tree at every clause. An expression that passed
    # them once passes them again.
    expression_only = (validators.ActionCountValidator, validators.OverlappingPathsValidator,
                       validators.UpdateHashRangeKeyValidator)
    passed: dict[tuple[Any, ...], Any] = {}
    original_init = validators.UpdateExpressionValidator.__init__

    def init(self: Any, expression: Any, expression_attribute_names: Any = None,
             expression_attribute_values: Any = None, item: Any = None, table: Any = None) -> None:
        self._fanflow_expression = expression
        if table is not None and _is_flat_update(expression):
            hit = templates.get(template_key(expression, expression_attribute_names, table))
            if hit is not None and hit[0] is expression:
                # Validator.__init__ without the processors and the copy of the tree: the kept
                # tree is copied instead (validate)
                self.expression_attribute_names = expression_attribute_names
                self.expression_attribute_values = expression_attribute_values
                self.item, self.table = item, table
                return
        original_init(self, expression, expression_attribute_names, expression_attribute_values, item, table)

    def template_key(expression: Any, names: Any, table: Any) -> tuple[Any, ...]:
        return (id(expression), json.dumps(names, sort_keys=True), tuple(table.table_key_attrs))

    # An expression that only sets top-level attributes to values and adds values to top-level
    # attributes (`SET #a = :v, #b = :w ADD #n :one`) reads nothing of the item while it is
    # validated, and its values only fill the value leaves: once validated, the tree is kept, and a
    # later validation with the same names is that tree with the new values in its leaves. The
    # executor then applies it to the item as before.
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing.ast_nodes import DDBTypedValue, ExpressionAttributeValue  # type: ignore[attr-defined]

    templates: dict[tuple[Any, ...], tuple[Any, Any, list[str], Callable[[Any, list[Any]], Any] | None]] = {}

    def validate(self: Any) -> Any:
        expression = self._fanflow_expression
        key = template_key(expression, self.expression_attribute_names, self.table)
        flat = _is_flat_update(expression)
        values = self.expression_attribute_values or {}
        if flat:
            hit = templates.get(key)
            if hit is not None and hit[0] is expression and all(name in values for name in hit[2]):
                if hit[3] is not None:
                    return hit[3](None, [values[name] for name in hit[2]])
                tree = clone_validated(hit[1], None)
                for leaf, name in zip(_nodes_of(tree, DDBTypedValue), hit[2], strict=True):
                    leaf.children[0] = DynamoType(values[name])
                return tree
        if not hasattr(self, "processors"):  # init skipped them for the kept tree, which cannot serve
            original_init(self, expression, self.expression_attribute_names, self.expression_attribute_values,
                          self.item, self.table)
        known = passed.get(key) is expression
        node = self.node_to_validate
        for processor in self.processors:
            if not (known and isinstance(processor, expression_only)):
                node = processor.traverse(node)
        if not known:
            if len(passed) >= 4096:
                passed.clear()
            passed[key] = expression
        if flat:
            placeholders = [leaf.get_value_name() for leaf in _nodes_of(expression, ExpressionAttributeValue)]
            if len(placeholders) == len(_nodes_of(node, DDBTypedValue)):
                if len(templates) >= 4096:
                    templates.clear()
                kept = clone_validated(node, None)
                templates[key] = (expression, kept, placeholders, template_builder(kept, len(placeholders)))
        return node

    def template_builder(template: Any, slots: int) -> Callable[[Any, list[Any]], Any] | None:
        """A function that makes what clone_validated makes of `template`, with the value leaves
        (depth first, left to right, as _nodes_of finds them) filled from a list of values: the
        walk over the template's attributes is done once, here. None for a tree it cannot serve."""
        counter = [0]

        def plan(node: Any) -> Callable[[Any, list[Any]], Any]:
            kind = type(node)
            shared = {k: v for k, v in node.__dict__.items()
                      if k not in ("parent", "children") and type(v) in _JSON_SCALARS}
            copied = {k: v for k, v in node.__dict__.items()
                      if k not in ("parent", "children") and type(v) not in _JSON_SCALARS}
            has_parent = "parent" in node.__dict__
            has_children = "children" in node.__dict__
            children = node.__dict__.get("children")
            makers: list[Callable[[Any, list[Any]], Any]] | None = None
            if children is not None:
                makers = []
                for index, child in enumerate(children):
                    if index == 0 and isinstance(node, DDBTypedValue):
                        if isinstance(child, Node):
                            raise _NotJson
                        slot = counter[0]
                        counter[0] += 1
                        makers.append(functools.partial(_typed_value, DynamoType, slot))
                    elif isinstance(child, Node):
                        makers.append(plan(child))
                    else:
                        makers.append(functools.partial(_leaf, clone_leaf, child))

            def make(parent: Any, values: list[Any]) -> Any:
                new = object.__new__(kind)
                attrs = new.__dict__
                attrs.update(shared)
                for name, value in copied.items():
                    attrs[name] = clone_leaf(value)
                if has_parent:
                    attrs["parent"] = parent
                if has_children:
                    attrs["children"] = None if makers is None else [maker(new, values) for maker in makers]
                return new

            return make

        try:
            make = plan(template)
        except (_NotJson, RecursionError):
            return None
        return make if counter[0] == slots else None

    def clone_leaf(value: Any) -> Any:
        if type(value) in _JSON_SCALARS:
            return value
        if type(value) is DynamoType and value.type in _SCALAR_DYNAMO_TYPES:
            return copy.copy(value)  # its value is a string or a bool: nothing to share
        return copy.deepcopy(value)  # the executor may store it in the item: its own copy

    def clone_validated(node: Any, parent: Any) -> Any:
        """A validated tree, node by node, each value its own (see clone_leaf)."""
        new = object.__new__(type(node))
        attrs = dict(node.__dict__)
        for name, value in attrs.items():
            if name == "parent":
                attrs[name] = parent
            elif name == "children" and value is not None:
                attrs[name] = [clone_validated(child, new) if isinstance(child, Node) else clone_leaf(child)
                               for child in value]
            else:
                attrs[name] = clone_leaf(value)
        new.__dict__.update(attrs)
        return new

    patch(validators.UpdateExpressionValidator, "__init__", init)
    patch(validators.UpdateExpressionValidator, "validate", validate)


# The node types of an update expression made only of top-level SET-to-value and ADD actions.
_FLAT_UPDATE_NODES = frozenset({
    "UpdateExpression", "UpdateExpressionSetClause", "UpdateExpressionSetActions", "UpdateExpressionSetAction",
    "UpdateExpressionAddClause", "UpdateExpressionAddActions", "UpdateExpressionAddAction", "UpdateExpressionPath",
    "UpdateExpressionValue", "ExpressionAttribute", "ExpressionAttributeName", "ExpressionAttributeValue",
})


@functools.lru_cache(maxsize=1024)
def _flat_update_shape(expression: Any) -> bool:
    stack = [expression]
    while stack:
        node = stack.pop()
        name = type(node).__name__
        if name not in _FLAT_UPDATE_NODES:
            return False
        children = [child for child in (getattr(node, "children", None) or []) if hasattr(child, "children")]
        if name == "UpdateExpressionPath" and len(node.children) != 1:
            return False  # a nested path (a.b, a[0]) reads the item
        stack.extend(children)
    return True


def _nodes_of(tree: Any, kind: type) -> list[Any]:
    """The nodes of a parse tree of one kind, depth first, left to right."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            found.append(node)
        children = getattr(node, "children", None) or []
        stack.extend(reversed([child for child in children if hasattr(child, "children")]))
    return found


def _is_flat_update(expression: Any) -> bool:
    try:
        return _flat_update_shape(expression)
    except TypeError:  # not hashable: never seen as flat
        return False


def _immutable(value: Any) -> Any:
    if type(value) not in _JSON_SCALARS:
        raise _NotJson
    return value


_SCALAR_DYNAMO_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL"})
