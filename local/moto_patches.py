"""Every adaptation fanflow makes to moto, in one place. moto is pinned (see
pyproject.toml) because each patch reaches into its internals; each patch has a test in
tests/unit/test_moto_patches.py that fails if an upgrade changes the behaviour it fixes.

What moto 5.2.5 lacks, and what is done here:
1. EventBridge rules whose target is a Lambda function or a state machine raise
   NotImplementedError. Those targets are handed to the runtime's `deliver` callback,
   which delivers them asynchronously, as on AWS, rendering their input with
   `target_input` (Input, InputPath, InputTransformer, or the whole event). moto's own
   InputTransformer inserts string values unquoted, so `{"id": <id>}` is not JSON;
   `target_input` quotes them as EventBridge does. DISABLED rules deliver nothing.
2. Lambda code runs only in Docker. Invocations are handed to the runtime's `invoke`
   callback, which runs the handler from the deployed asset in-process.
3. Executions started without a name get an ARN ending in ':None'. They are named.
4. CloudFormation: `Ref` to an AWS::Events::EventBus resolves to a Python object, and
   state machines land in the backend that does not execute them. Both are fixed.
5. Speed: the ASL engine parses every JSONPath anew, builds a boto3 client per task state,
   and parses the state machine's definition (ANTLR, then its evaluation components) for
   every execution: 26 ms, then 7 ms of CPU for Increment. JSONPaths, clients and parse
   trees are cached; so are the evaluation components, which keep no per-execution state
   (that lives in the execution's Environment), except a Parallel state's branches: a
   definition with a Parallel state gets its components built per execution.
6. moto's DynamoDB is not thread-safe: concurrent transactions fail with "dictionary
   changed size during iteration" or apply half. Item operations are serialised, as
   DynamoDB serialises the writes to one item.
   moto's TransactWriteItems deep-copies every table it touches, for a rollback, on each
   call: O(table size), and the cost of counting grows with the square of the request.
   Conditions are checked first and only the items written are saved for a rollback.
7. Speed: every backend lookup (`lambda_backends[account]`, ...) takes a process-wide lock
   and scans a list of every backend dict. Once an account's backend exists, it is
   returned directly.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moto
from jsonpath_ng.ext import parse as jsonpath_parse
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventBus, Rule
from moto.utilities.arns import parse_arn

PINNED_MOTO_VERSION = "5.2.5"

Invoke = Callable[[LambdaFunction, Any], "tuple[str, bool, str]"]
Deliver = Callable[[dict[str, Any], dict[str, Any]], None]


class MotoVersionError(RuntimeError):
    pass


@dataclass
class _Installed:
    originals: list[tuple[Any, str, Any]]


_lock = threading.Lock()
_installed: _Installed | None = None


def check_version() -> None:
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise MotoVersionError(
            f"fanflow's embedded runtime adapts moto {PINNED_MOTO_VERSION}, found {moto.__version__}; "
            f"install the pinned version: pip install 'moto[all]=={PINNED_MOTO_VERSION}'"
        )


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What EventBridge hands a target for `event`, following the target's input settings."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        found = _jsonpath(target["InputPath"]).find(event)
        return found[0].value if found else None
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        return render_input_template(transformer.get("InputTemplate", "<aws.events.event.json>"),
                                     transformer.get("InputPathsMap", {}), event)
    whole = {key: value for key, value in event.items() if key != "ingestion-time"}
    if isinstance(whole.get("time"), (int, float)):
        whole["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(whole["time"]))
    return whole


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def render_input_template(template: str, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """EventBridge's InputTransformer: a placeholder inside a JSON string is replaced by the
    raw value; anywhere else by the value as JSON (so strings get their quotes). The result
    is JSON when the template renders to JSON, else the text."""
    values: dict[str, Any] = {"aws.events.event": event, "aws.events.event.json": event}
    for name, path in paths.items():
        found = _jsonpath(path).find(event)
        values[name] = found[0].value if found else None
    out: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in values:
            continue
        out.append(template[position:match.start()])
        value = values[name]
        if _inside_json_string(template, match.start()):
            out.append(value if isinstance(value, str) else ("" if value is None else json.dumps(value)))
        else:
            out.append(json.dumps(value))
        position = match.end()
    out.append(template[position:])
    rendered = "".join(out)
    try:
        return json.loads(rendered)
    except ValueError:
        return rendered


def _inside_json_string(text: str, index: int) -> bool:
    inside, escaped = False, False
    for char in text[:index]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


@functools.lru_cache(maxsize=4096)
def _jsonpath(path: str) -> Any:
    return jsonpath_parse(path)


def install(*, invoke: Invoke, deliver: Deliver,
            on_put_events: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
    """Install every patch. `invoke(fn, event)` runs a Lambda invocation and returns
    (payload, errored, logs) as moto expects; `deliver(target, event)` hands a rule target
    its matching event, to be delivered asynchronously. `on_put_events(entries)`, if given,
    observes every PutEvents call (the benchmark counts them)."""
    global _installed
    check_version()
    with _lock:
        if _installed is not None:
            raise RuntimeError("moto patches are already installed; uninstall them first")
        originals: list[tuple[Any, str, Any]] = []
        try:
            _install_all(originals, invoke, deliver, on_put_events)
        except BaseException:
            _restore(originals)
            raise
        _installed = _Installed(originals)


def _install_all(originals: list[tuple[Any, str, Any]], invoke: Invoke, deliver: Deliver,
                 on_put_events: Callable[[list[dict[str, Any]]], None] | None) -> None:
    def patch(owner: Any, name: str, value: Any) -> None:
        originals.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    original_send = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state == "DISABLED" or not self.event_pattern.matches_event(original_event):  # type: ignore[arg-type]
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in ("lambda", "states")]
        for target in ours:
            deliver(target, copy.deepcopy(original_event))
        native = [t for t in self.targets if t not in ours]
        if native:
            clone = copy.copy(self)
            clone.targets = native
            original_send(clone, original_event, transform_input)  # type: ignore[arg-type]

    patch(Rule, "send_to_targets", send_to_targets)
    if on_put_events is not None:
        from moto.events.models import EventsBackend

        original_put_events = EventsBackend.put_events

        def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            on_put_events(events)
            return original_put_events(self, events)

        patch(EventsBackend, "put_events", put_events)
    patch(LambdaFunction, "_invoke_lambda", lambda self, event=None: invoke(self, event))

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any,
                        **kwargs: Any) -> Any:
        return original_start(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    patch(StepFunctionsParserBackend, "start_execution", start_execution)

    if "physical_resource_id" not in EventBus.__dict__:
        patch(EventBus, "physical_resource_id", property(lambda self: self.name))
    import moto.stepfunctions.models as sfn_models

    patch(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
    _install_engine_caches(patch)
    _serialise_dynamodb(patch)
    _fast_backend_lookup(patch)


_MISSING = object()


def _install_engine_caches(patch: Callable[[Any, str, Any], None]) -> None:
    import sys

    import moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory  # noqa: F401
    import moto.stepfunctions.parser.asl.utils.boto_client as boto_client
    import moto.stepfunctions.parser.asl.utils.json_path as json_path

    patch(json_path, "parse", _jsonpath)
    # ResultPath parses with plain jsonpath_ng, building a new parser (yacc tables) each time.
    import jsonpath_ng
    import moto.stepfunctions.parser.asl.component.common.path.result_path as result_path

    patch(result_path, "parse", functools.lru_cache(maxsize=4096)(jsonpath_ng.parse))
    _cache_definition_parse_trees(patch)
    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, bool], Any] = {}
    clients_lock = threading.Lock()

    def cached_client(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, boto_client.botocore_stubber.enabled)
        with clients_lock:
            if key not in clients:
                clients[key] = original(region, service, state_credentials)
            return clients[key]

    # Each engine module imported the function by name; replace it where it was imported.
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "") or ""
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is original:
            patch(module, "boto_client_for", cached_client)


def _cache_definition_parse_trees(patch: Callable[[Any, str, Any], None]) -> None:
    from antlr4 import CommonTokenStream, InputStream
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLLexer import ASLLexer
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser
    from moto.stepfunctions.parser.asl.parse.asl_parser import (
        AmazonStateLanguageParser,
        ASLParserException,
        SyntaxErrorListener,
    )
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    @functools.lru_cache(maxsize=256)
    def parse_tree(definition: str) -> Any:
        listener = SyntaxErrorListener()
        parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
        parser.removeErrorListeners()
        parser.addErrorListener(listener)
        tree = parser.state_machine()
        if listener.errors:
            raise ASLParserException(errors=listener.errors)
        return tree

    @functools.lru_cache(maxsize=256)
    def shared_program(definition: str) -> Any:
        program = Preprocessor().visit(parse_tree(definition))
        _assign_heap_keys(program)
        return program

    def parse(definition: str) -> tuple[Any, Any]:
        tree = parse_tree(definition)
        if _PARALLEL_STATE.search(definition):
            return Preprocessor().visit(tree), tree
        return shared_program(definition), tree

    patch(AmazonStateLanguageParser, "parse", staticmethod(parse))


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems with the semantics of moto's own (cancellation reasons, per-op
    validation), but checking every condition before writing and snapshotting only the
    items it writes."""
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
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    saved = [(op["TableName"], key, copy.deepcopy(self.get_item(op["TableName"], key)))
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
                self.put_item(table_name, before.to_json()["Attributes"])
        raise


_PARALLEL_STATE = re.compile(r'"Type"\s*:\s*"Parallel"')


def _assign_heap_keys(component: Any) -> None:
    """Give every component its heap key now: the key is assigned lazily on first use,
    which would race when concurrent executions share the component."""
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    stack = [component]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, EvalComponent):
            _ = item.heap_key
        if isinstance(item, Component):
            stack.extend(vars(item).values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _fast_backend_lookup(patch: Callable[[Any, str, Any], None]) -> None:
    from moto.core.base_backend import BackendDict

    original = BackendDict.__getitem__

    def getitem(self: Any, account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return original(self, account_id)

    patch(BackendDict, "__getitem__", getitem)


DYNAMODB_ITEM_OPERATIONS = (
    "put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items",
    "transact_get_items", "batch_write_item", "batch_get_item", "execute_statement", "execute_transaction",
)


def _serialise_dynamodb(patch: Callable[[Any, str, Any], None]) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    patch(DynamoDBBackend, "transact_write_items", _transact_write_items)
    lock = threading.RLock()
    for name in DYNAMODB_ITEM_OPERATIONS:
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def serialised(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        patch(DynamoDBBackend, name, serialised)


def uninstall() -> None:
    global _installed
    with _lock:
        if _installed is None:
            return
        _restore(_installed.originals)
        _installed = None


def _restore(originals: list[tuple[Any, str, Any]]) -> None:
    for owner, name, value in reversed(originals):
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)


def installed() -> bool:
    return _installed is not None
