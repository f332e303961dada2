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
8. Speed and memory: the ASL engine runs every execution, and every Task state of it, in a
   thread of its own, only to wait for it with the state's timeout; and it keeps every
   thread it ever started in a global list. Without a TimeoutSeconds (fanflow's states
   set none) the state runs in the calling thread; finished threads are dropped from the
   list. Starting an execution looked for a same-named one by scanning every execution of
   the state machine (O(n) per start, O(n^2) per request); the names are indexed.
   Reading a JSONPath deep-copies what it found, also when that is a string or a number.
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
10. Speed: an in-process call goes through botocore and moto's HTTP emulation. Three of
   its costs are dropped: the SigV4 signature (moto never checks it; requests still carry
   an Authorization header naming the access key, from which moto takes the account),
   the scan of every service's URL patterns for each request (the route is cached by
   URL), and moto listing the handler class's methods by introspection, and turning the
   action's name into its method's letter by letter, on each call.
   DynamoDB responses made only of JSON values (every item operation's) are written with
   json.dumps instead of moto's serializer, which walks the API model for every attribute
   of every item (a Summary's query of 1,000 results took about a second). Each response's
   request id (52 characters) is one draw from moto's random, not 52.
11. Memory: moto keeps every model instance it ever creates in a class-level list, for its
   server's dashboard. DynamoDB items are copied on every update, transaction snapshot and
   query, so eight items per case stayed in memory for good. Items are not tracked. Speed: a
   projection of top-level attributes picks them from the item instead of converting the whole
   item to Python values and back.
12. Speed: even with 10., a DynamoDB or EventBridge call built, signed and sent an HTTP
   request that moto rebuilt as a WSGI request, and parsed again: four fifths of a PutItem's
   cost. botocore's `before-call` event answers these calls in-process: moto's own handler
   class runs the operation on the same backend, and botocore's own parser reads its
   response, so the caller gets the same result or error (modeled members included).
   botocore still validates and serialises the parameters. Not done here: retries (moto
   returns no throttling), and sessions made before `install` other than boto3's default.
13. Speed: the ASL engine and EventBridge copy JSON values with copy.deepcopy at every state
   input, result, path and history entry, and once per rule for each event; a fifth of the
   engine's CPU. Those modules copy JSON values with a direct recursive copy; anything that
   is not plain JSON still goes to copy.deepcopy.
14. Memory (only when `install(kept_histories=N)`): every finished execution keeps its
   evaluation environment, history included, for good: two thirds of what a case costs.
   Past the N most recent succeeded executions of a state machine, older ones drop it and
   keep their status, input and output; GetExecutionHistory on one of them fails with
   ExecutionHistoryDropped, naming the limit. Failed, timed-out and aborted executions
   keep their history.
15. Memory and speed: moto runs every execution in a thread of its own. Rule deliveries
   start an Increment execution per case faster than one core runs them, and at 10,000
   cases about 5,000 execution threads were alive at once (300 MB of stacks, and a GIL
   shared 5,000 ways). An execution started inside `executions_inline()` (the runtime's
   deliveries) runs in the starting thread, before StartExecution returns.
16. A Wait state with a Timestamp or TimestampPath ends up to a second early: moto turns the
   time left into whole seconds, rounded down, and compares the UTC timestamp with the local
   time. As on AWS, the Wait now ends at the timestamp, in UTC; its milliseconds are still
   ignored, as AWS ignores them (moto already truncates them).
17. EventBridge rules whose target is an SQS queue are delivered by the runtime too
   (`deliver`), asynchronously: moto sent the message inside PutEvents, with the event's
   `time` rewritten in place. `send_to_queue` sends what EventBridge sends: one message
   whose body is the event, or the target's rendered input.
18. Lambda `Event` invocations (Invoke with InvocationType Event; Step Functions' lambda:invoke
   with it) run before moto answers. With `EngineHooks.invoke_async`, they are queued to the
   runtime and answered 202 at once, as Lambda does; the runtime retries and dead-letters them.
19. Express workflows: moto's CloudFormation drops `StateMachineType`, its models call every
   state machine STANDARD, and StartSyncExecution is not implemented (nor is its host,
   `sync-states`, routed). The type is kept, and StartSyncExecution runs the Express
   execution to its end in the caller's thread and answers as the API reference says.
20. SQS event source mappings: moto invokes the function inside SendMessage, one message at a
   time. With `EngineHooks.on_event_source_mapping`, the mapping is handed to the runtime's
   poller (local/event_sources.py), which reads the queue in batches as Lambda does.
21. Observation and fault injection (`EngineHooks`): every execution started and every item
   write is reported (counter-row writes and fan-in executions per request), and a
   transaction may be cancelled with TransactionConflict on an item (`--conflict-rate`).
22. Speed: moto's SQS walks every message of a queue several times per message received (to
   read one attribute), rebuilds the message list to delete one message, reads the clock
   through naive datetimes per message, and draws each receipt handle's 185 letters one call
   at a time. The attribute is read directly, messages live in an ordered map indexed by
   receipt handle, the clock is `time.time()`, and a handle is one draw of 185 letters.
23. Speed: PutEvents builds an event message for every rule of the bus (a dozen on fanflow's),
   decoding the entry's Detail and reading the clock for each, and each rule flattens its own
   message (a JSON round trip) to match it. The message is built once per entry, as EventBridge
   has one event (one id, one time) for all its rules; each rule is matched against it, and a
   rule's native (moto-delivered) targets get their own copy, as they got one before.
24. Speed (botocore): for every DynamoDB and EventBridge call, botocore resolves the endpoint
   from the service's rule set: each of its parameters looked up through four kinds of context
   and a check of its builtin against every builtin's name, then the provider's cached answer
   rebuilt with new headers. The parameters are resolved as botocore resolves them, from a plan
   made once per operation (its builtins still customised by the `before-endpoint-resolution`
   handlers at every call), and the endpoint is kept per resolver and parameters.
25. Speed: moto's DynamoDB Query of a table (not an index) reads every item of the table, sorted
   (`all_items`), for each page, and keeps those of the queried hash key: O(table) per page, and
   a Summary pages through a request's results in a table that holds every request's. The query
   reads the items of its hash key only (the same items, in the same order); the rest of moto's
   query (sorting by range key, conditions, pages, limits, filters, projections) is unchanged.
26. An AWS SDK service integration (`arn:aws:states:::aws-sdk:SERVICE:action`) takes its
   parameters in PascalCase (docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html),
   and Step Functions maps them to the API's own member names. moto passes them to boto3 as
   written, which works only where the API's members are PascalCase already (CloudWatch's
   PutMetricData); Step Functions' StopExecution (`executionArn`) fails with a KeyError. The
   parameters are mapped to the operation's input members (moto's own `_to_boto_request`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import logging
import math
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import moto
from jsonpath_ng.ext import parse as jsonpath_parse
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventBus, Rule
from moto.utilities.arns import parse_arn

PINNED_MOTO_VERSION = "5.2.5"
LOG = logging.getLogger("fanflow.embedded")

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


@dataclass(frozen=True)
class EngineHooks:
    """What the runtime does for the engine beyond `invoke` and `deliver`; each is optional.

    - `invoke_async(fn, event)`: an `Event` invocation (adaptation 18), to run later, with
      Lambda's retries and destinations. Without it, Event invocations run at once.
    - `on_event_source_mapping(esm)`: an SQS event source mapping was created; the runtime
      polls its queue (adaptation 20). Without it, moto's own inline delivery stays.
    - `on_execution(state_machine_arn, input)`: observes every execution started.
    - `on_dynamodb_write(table_name, key)`: observes every item write (each item of a
      transaction, committed or cancelled, and each conditional write that failed).
    - `transaction_fault(items)`: given a transaction's (table name, key) pairs, the index of
      the item to cancel with TransactionConflict, or None (fault injection, adaptation 21).
    """

    invoke_async: Callable[[LambdaFunction, Any], None] | None = None
    on_event_source_mapping: Callable[[Any], None] | None = None
    on_execution: Callable[[str, str], None] | None = None
    on_dynamodb_write: Callable[[str, dict[str, Any]], None] | None = None
    transaction_fault: Callable[[list[tuple[str, dict[str, Any]]]], int | None] | None = None


def install(*, invoke: Invoke, deliver: Deliver,
            on_put_events: Callable[[list[dict[str, Any]]], None] | None = None,
            kept_histories: int | None = None, hooks: EngineHooks | None = None) -> None:
    """Install every patch. `invoke(fn, event)` runs a Lambda invocation and returns
    (payload, errored, logs) as moto expects; `deliver(target, event)` hands a rule target
    its matching event, to be delivered asynchronously. `on_put_events(entries)`, if given,
    observes every PutEvents call (the benchmark counts them). `kept_histories`, if given,
    is how many succeeded executions per state machine keep their history (adaptation 14);
    None keeps every history. `hooks`: see EngineHooks."""
    if kept_histories is not None and kept_histories < 0:
        raise ValueError(f"kept_histories must be 0 or more, or None for all; got {kept_histories}")
    global _installed
    check_version()
    with _lock:
        if _installed is not None:
            raise RuntimeError("moto patches are already installed; uninstall them first")
        originals: list[tuple[Any, str, Any]] = []
        try:
            _install_all(originals, invoke, deliver, on_put_events, hooks or EngineHooks())
            if kept_histories is not None:
                _drop_old_histories(_patcher(originals), kept_histories)
        except BaseException:
            _restore(originals)
            raise
        _installed = _Installed(originals)


def _patcher(originals: list[tuple[Any, str, Any]]) -> Callable[[Any, str, Any], None]:
    def patch(owner: Any, name: str, value: Any) -> None:
        originals.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    return patch


def _install_all(originals: list[tuple[Any, str, Any]], invoke: Invoke, deliver: Deliver,
                 on_put_events: Callable[[list[dict[str, Any]]], None] | None, hooks: EngineHooks) -> None:
    patch = _patcher(originals)

    original_send = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if self.state == "DISABLED" or not _matches(self.event_pattern, original_event):
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in RUNTIME_TARGET_SERVICES]
        for target in ours:
            deliver(target, json_deepcopy(original_event))
        native = [t for t in self.targets if t not in ours]
        if native:
            clone = copy.copy(self)
            clone.targets = native
            # its own copy: one message serves every rule of the bus (adaptation 23)
            original_send(clone, json_deepcopy(original_event), transform_input)  # type: ignore[arg-type]

    patch(Rule, "send_to_targets", send_to_targets)
    _one_message_per_event(patch)
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
    _run_states_inline(patch)
    _index_execution_names(patch)
    _serialise_dynamodb(patch, hooks.on_dynamodb_write, hooks.transaction_fault)
    _cache_dynamodb_expressions(patch)
    _fast_backend_lookup(patch)
    _fast_dispatch(patch)
    _untracked_dynamodb_items(patch)
    _direct_calls(patch)
    _json_copies(patch)
    _inline_executions(patch)
    _wait_until_timestamp(patch)
    _async_event_invocations(patch, hooks.invoke_async)
    _express_workflows(patch, hooks.on_execution)
    _polled_event_sources(patch, hooks.on_event_source_mapping)
    _fast_sqs(patch)
    _kept_endpoints(patch)
    _query_by_hash_key(patch)
    _sdk_parameter_names(patch)


_MISSING = object()
_flattened = threading.local()


def _matches(pattern: Any, event: dict[str, Any]) -> bool:
    """EventPattern.matches_event, flattening the event once for all the rules of its bus (moto
    flattens it again, after a JSON round trip, for every rule)."""
    if not pattern.get_pattern():
        return True
    cached = getattr(_flattened, "event", None)
    if cached is None or cached[0] is not event:
        cached = (event, pattern._flatten_dict(json.loads(json.dumps(event))))
        _flattened.event = cached
    return bool(pattern._does_event_match(cached[1], pattern.get_pattern()))


def _one_message_per_event(patch: Callable[[Any, str, Any], None]) -> None:
    """EventsBackend.put_events with the event message built once per entry instead of once per
    rule of its bus (adaptation 23). Entries moto refuses, or whose Detail is not a JSON object,
    go to moto's own put_events, one at a time, as before."""
    import moto.events.models as events_models

    original = events_models.EventsBackend.put_events

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(events) > 10:
            return original(self, events)  # moto's ValidationException
        entries: list[dict[str, Any]] = []
        for event in events:
            if not (event.get("Source") and event.get("DetailType") and event.get("Detail")):
                entries.extend(original(self, [event]))  # its error entry; nothing is sent
                continue
            try:
                detail = json.loads(event["Detail"])
            except ValueError:
                entries.extend(original(self, [event]))  # MalformedDetail
                continue
            if not isinstance(detail, dict):
                entries.extend(original(self, [event]))  # moto warns, then sends it to every rule
                continue
            # moto's own steps, in its order: the id, then the bus (which may raise)
            event_id = str(events_models.random.uuid4())
            entries.append({"EventId": event_id})
            event_bus = self.describe_event_bus(self._normalize_event_bus_arn(event.get("EventBusName")))
            message = json_deepcopy(events_models._BASE_EVENT_MESSAGE)
            message["id"] = event_id
            message["detail-type"] = event["DetailType"]
            message["source"] = event["Source"]
            message["account"] = self.account_id
            message["time"] = event.get("Time", events_models.unix_time())
            message["region"] = self.region_name
            message["resources"] = event.get("Resources", [])
            message["detail"] = detail
            message["ingestion-time"] = events_models.unix_time()
            for rule in list(event_bus.rules.values()):
                rule.send_to_targets(message)
        return entries

    if not hasattr(events_models, "_BASE_EVENT_MESSAGE") or not hasattr(events_models, "unix_time"):
        raise MotoVersionError("moto.events.models no longer builds messages as adaptation 23 expects")
    patch(events_models.EventsBackend, "put_events", put_events)


# Rule targets the runtime delivers (adaptations 1 and 17); moto delivers the rest itself.
RUNTIME_TARGET_SERVICES = ("lambda", "states", "sqs")


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


def _run_states_inline(patch: Callable[[Any, str, Any], None]) -> None:
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.utils import TMP_THREADS

    threshold = [256]

    def prune_finished_threads() -> None:
        # Amortised: scan again only once the list has doubled since the last scan.
        if len(TMP_THREADS) > threshold[0]:
            TMP_THREADS[:] = [thread for thread in TMP_THREADS if thread.is_alive()]
            threshold[0] = max(256, 2 * len(TMP_THREADS))

    original_program_eval = Program.eval

    def program_eval(self: Any, env: Any) -> None:
        prune_finished_threads()
        if self.timeout_seconds is not None:
            original_program_eval(self, env)
            return
        env.next_state_name = self.start_at.start_at_name
        EvalComponent.eval(self, env)

    original_with_timeout = ExecutionState._evaluate_with_timeout

    def evaluate_with_timeout(self: Any, env: Any) -> None:
        self.timeout.eval(env=env)
        timeout_seconds = env.stack.pop()
        if timeout_seconds < TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS:
            original_with_timeout(self, env)  # a real timeout needs the thread to wait on
            return
        frame = env.open_frame()
        frame.states.reset(input_value=env.states._states_data["input"])  # reset() copies it
        frame.stack = json_deepcopy(env.stack)
        try:
            self._eval_execution(frame)
            execution_output = frame.stack[-1]
        finally:
            frame.set_ended()
            env.close_frame(frame)
        env.stack.append(execution_output)
        # The rest is ExecutionState._evaluate_with_timeout's own, unchanged.
        if not self._is_language_query_jsonpath():
            env.states.set_result(execution_output)
        if self.assign_decl:
            self.assign_decl.eval(env=env)
        if self.result_selector:
            self.result_selector.eval(env=env)
        if self.result_path:
            self.result_path.eval(env)
        else:
            env.states.reset(input_value=env.stack.pop())

    patch(Program, "eval", program_eval)
    patch(ExecutionState, "_evaluate_with_timeout", evaluate_with_timeout)

    import moto.stepfunctions.parser.asl.eval.states as states_module

    def extract(query: str | None, data: Any) -> Any:
        result = data if query is None else states_module.extract_json(query, data)
        if result is None or isinstance(result, (str, int, float, bool)):
            return result  # immutable: the copy moto makes would be the same object
        return json_deepcopy(result)

    patch(states_module.States, "_extract", staticmethod(extract))


def _index_execution_names(patch: Callable[[Any, str, Any], None]) -> None:
    from moto.stepfunctions.exceptions import ExecutionAlreadyExists
    from moto.stepfunctions.models import StateMachine

    # Kept beside the state machine, not on it: start_execution deep-copies the state machine.
    indexes: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, Any]]] = weakref.WeakKeyDictionary()
    lock = threading.Lock()

    def handle_name_input_idempotency(self: Any, name: str, execution_input: str) -> Any:
        executions = self.executions
        with lock:
            indexed, index = indexes.get(self, (0, {}))
            if indexed > len(executions):  # the list was replaced: index afresh
                indexed, index = 0, {}
            for execution in executions[indexed:]:
                index.setdefault(execution.name, execution)
            indexes[self] = (len(executions), index)
            execution = index.get(name)
        if execution is None:
            return None
        if execution_input == execution.execution_input and execution.status == "RUNNING":
            return execution
        raise ExecutionAlreadyExists("Execution Already Exists: '" + execution.execution_arn + "'")

    patch(StateMachine, "_handle_name_input_idempotency", handle_name_input_idempotency)


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


def _cache_dynamodb_expressions(patch: Callable[[Any, str, Any], None]) -> None:
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


def _fast_update_validation(patch: Callable[[Any, str, Any], None], traverser: Any,
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


def _fast_backend_lookup(patch: Callable[[Any, str, Any], None]) -> None:
    from moto.core.base_backend import BackendDict

    original = BackendDict.__getitem__

    def getitem(self: Any, account_id: str) -> Any:
        try:
            return dict.__getitem__(self, account_id)
        except KeyError:
            return original(self, account_id)

    patch(BackendDict, "__getitem__", getitem)


def _fast_dispatch(patch: Callable[[Any, str, Any], None]) -> None:
    import botocore.auth
    import moto.core.responses as moto_responses
    from moto.core import botocore_stubber
    from moto.core.exceptions import HTTPException

    def add_auth(self: Any, request: Any) -> None:
        if type(self) is not botocore.auth.SigV4Auth or self.credentials is None:
            original_add_auth(self, request)  # S3, other signers, and the missing-credentials error
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{stamp[:8]}/{self._region_name}/"
            f"{self._service_name}/aws4_request, SignedHeaders=host;x-amz-date, Signature=embedded"
        )

    original_add_auth = botocore.auth.SigV4Auth.add_auth
    patch(botocore.auth.SigV4Auth, "add_auth", add_auth)
    patch(moto_responses, "method_names_from_class",
          functools.lru_cache(maxsize=None)(moto_responses.method_names_from_class))
    # the action's method name, from its API name (a pure function of the name, walked letter by
    # letter at every request)
    patch(moto_responses, "camelcase_to_underscores",
          functools.lru_cache(maxsize=4096)(moto_responses.camelcase_to_underscores))

    from moto.moto_api import recorder

    original_process = botocore_stubber.BotocoreStubber.process_request
    routes: dict[str, Any] = {}

    def process_request(self: Any, request: Any) -> Any:
        parsed_url, _ = botocore_stubber.get_equivalent_url_in_aws_domain(request.url)
        clean_url = f"{parsed_url.scheme}://{parsed_url.netloc}{parsed_url.path}"
        if parsed_url.netloc.startswith("sync-states."):  # StartSyncExecution's host (adaptation 19)
            clean_url = clean_url.replace("://sync-states.", "://states.", 1)
        route = routes.get(clean_url)
        if route is None:
            route = _route(clean_url)
            if route is None:
                return original_process(self, request)
            if len(routes) >= 4096:
                routes.clear()
            routes[clean_url] = route
        normalized = botocore_stubber.normalize_request(request)
        try:
            recorder._record_request(normalized)
            return route(normalized, normalized.raw_url, normalized.headers)
        except HTTPException as exc:
            return exc.code, exc.get_headers(), exc.get_body()

    patch(botocore_stubber.BotocoreStubber, "process_request", process_request)

    from moto.core.serialize import JSONSerializer

    original_serialize_result = JSONSerializer._serialize_result

    def serialize_result(self: Any, resp: Any, result: Any) -> Any:
        if isinstance(result, dict) and self.operation_model.service_model.service_name == "dynamodb":
            try:
                plain = _json_values(result)
            except _NotJson:
                pass
            else:
                return self._serialized_result_to_response(resp, result, self.operation_model.output_shape, plain)
        return original_serialize_result(self, resp, result)

    patch(JSONSerializer, "_serialize_result", serialize_result)

    import moto.utilities.aws_headers as aws_headers
    from moto.moto_api._internal import mock_random

    def request_id(headerdict: dict[str, Any] | None = None) -> str:
        # 52 letters and digits, as moto's, from moto's (seedable) random: one draw of 39
        # bytes instead of 52 random.choice calls
        value = base64.b64encode(mock_random.getrandbits(312).to_bytes(39, "big"), b"xy").decode()
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = value
        return value

    patch(aws_headers, "gen_amzn_requestid_long", request_id)
    patch(moto_responses, "gen_amzn_requestid_long", request_id)


def _untracked_dynamodb_items(patch: Callable[[Any, str, Any], None]) -> None:
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


def _item_size_kept(patch: Callable[[Any, str, Any], None]) -> None:
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


class _NotJson(Exception):
    """A value that is not plain JSON: the caller falls back to moto's own handling."""


def _json_values(value: Any) -> Any:
    """`value` as moto's JSON serializer writes it when it holds only JSON values (absent
    members, None, left out); raises _NotJson for anything the serializer must convert."""
    if isinstance(value, dict):
        return {key: _json_values(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_json_values(item) for item in value]
    if isinstance(value, (str, bool, int, float)):
        return value
    raise _NotJson


def _route(clean_url: str) -> Any:
    """The handler moto's BotocoreStubber.process_request would pick for a URL, or None
    where it would do anything else (pass through, refuse, S3's many routes)."""
    import moto.backend_index as backend_index
    import moto.backends as backends
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.base_backend import BackendDict
    from moto.core.config import passthrough_service, passthrough_url, service_whitelisted

    if passthrough_url(clean_url):
        return None
    for service, pattern in backend_index.backend_url_patterns:
        if not pattern.match(clean_url):
            continue
        if service.startswith("s3") or passthrough_service(service) or not service_whitelisted(service):
            return None
        backend_dict = backends.get_backend(service)  # type: ignore[call-overload]
        if isinstance(backend_dict, BackendDict):
            regions = backend_dict[DEFAULT_ACCOUNT_ID]
            backend = regions["us-east-1"] if "us-east-1" in regions else regions["aws"]
        else:
            backend = backend_dict["global"]
        for url, method in backend.urls.items():
            if re.compile(url).match(clean_url):
                return method
        return None
    return None


DYNAMODB_ITEM_OPERATIONS = (
    "put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items",
    "transact_get_items", "batch_write_item", "batch_get_item", "execute_statement", "execute_transaction",
)


def _serialise_dynamodb(patch: Callable[[Any, str, Any], None],
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


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_SCALAR_DYNAMO_TYPES = frozenset({"S", "N", "B", "BOOL", "NULL"})


def _copy_json(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in _JSON_SCALARS:
        return value
    raise _NotJson


def json_deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """copy.deepcopy for the JSON values (plain dicts, lists, strings, numbers, booleans,
    None) the engines pass around, several times faster; anything else, or anything
    holding something else, is copied by copy.deepcopy. Unlike copy.deepcopy, one list
    reachable twice becomes two lists: JSON has no shared references to keep."""
    if memo is None:
        if type(value) in _JSON_SCALARS:
            return value
        try:
            return _copy_json(value)
        except (_NotJson, RecursionError):
            pass
    return copy.deepcopy(value, memo)


# The modules whose `copy.deepcopy` copies JSON values on the per-case path: the ASL
# engine's states, paths, frames and history, and EventBridge's per-rule event copy.
JSON_COPYING_MODULES = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.eval.environment",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service",
    "moto.events.models",
)


def _json_copies(patch: Callable[[Any, str, Any], None]) -> None:
    import importlib
    import types

    shim = types.SimpleNamespace(deepcopy=json_deepcopy, copy=copy.copy)
    for name in JSON_COPYING_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "copy", None) is not copy:
            raise MotoVersionError(f"{name} no longer copies with the copy module; review adaptation 13")
        patch(module, "copy", shim)


def _drop_old_histories(patch: Callable[[Any, str, Any], None], kept: int) -> None:
    """A finished execution keeps its whole evaluation environment (history, frames, state
    data): two thirds of the memory a case costs. Per state machine, only the `kept` most
    recent succeeded executions keep it; older ones keep their status, input and output
    (DescribeExecution, ListExecutions), and GetExecutionHistory names the limit. Failed,
    timed-out and aborted executions keep their history."""
    import collections

    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution

    class HistoryDropped(AWSError):
        TYPE = "ExecutionHistoryDropped"
        STATUS = 400

    succeeded: dict[str, collections.deque[Any]] = collections.defaultdict(collections.deque)
    lock = threading.Lock()
    original_terminated = BaseExecutionWorkerCommunication.terminated

    def terminated(self: Any) -> None:
        original_terminated(self)
        execution = self.execution
        if execution.exec_status != ExecutionStatus.SUCCEEDED:
            return
        with lock:
            recent = succeeded[execution.state_machine_arn]
            recent.append(execution)
            while len(recent) > kept:
                oldest = recent.popleft()
                if oldest.exec_worker is not None:
                    oldest.exec_worker.env = None
                oldest._fanflow_history_dropped = True

    original_history = Execution.to_history_output

    def to_history_output(self: Any) -> Any:
        if getattr(self, "_fanflow_history_dropped", False):
            raise HistoryDropped(
                f"The embedded engine keeps the history of the last {kept} succeeded executions of each "
                f"state machine; {self.exec_arn} is older. Its status, input and output remain "
                "(DescribeExecution).")
        return original_history(self)

    patch(BaseExecutionWorkerCommunication, "terminated", terminated)
    patch(Execution, "to_history_output", to_history_output)


_inline = threading.local()


@contextlib.contextmanager
def executions_inline() -> Iterator[None]:
    """Executions started by this thread inside the block run to their end before
    StartExecution returns, in this thread (adaptation 15)."""
    previous = getattr(_inline, "active", False)
    _inline.active = True
    try:
        yield
    finally:
        _inline.active = previous


def _inline_executions(patch: Callable[[Any, str, Any], None]) -> None:
    """moto starts a thread for every execution. The embedded runtime's rule deliveries
    start an Increment execution per case faster than one core runs them: at 10,000 cases
    about 5,000 execution threads were alive at once, each with its stack (300 MB). A
    delivery inside `executions_inline()` runs the execution in its own thread instead, so
    executions run as many at a time as there are delivery threads."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original_start = ExecutionWorker.start

    def start(self: Any) -> None:
        if not getattr(_inline, "active", False):
            original_start(self)
            return
        _inline.active = False  # what this execution starts in turn runs in threads of its own
        try:
            self._execution_logic()
        except Exception:  # as in moto's thread: the execution's own failure, not the caller's
            LOG.exception("execution %s failed in the engine", getattr(self.env, "aws_execution_details", ""))
        finally:
            _inline.active = True

    patch(ExecutionWorker, "start", start)


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _async_event_invocations(patch: Callable[[Any, str, Any], None],
                             invoke_async: Callable[[LambdaFunction, Any], None] | None) -> None:
    """moto runs an `Event` invocation (Invoke with InvocationType Event, and InvokeAsync)
    before it answers. On AWS, Lambda queues the event and answers 202 at once; the function
    runs later, is retried on error, and its failure goes to its on-failure destination
    (Lambda developer guide, "Invoking a Lambda function asynchronously"). The runtime's
    `invoke_async` does that part (adaptation 18)."""
    if invoke_async is None:
        return
    original = LambdaFunction.invoke

    def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
        if _header(request_headers, "x-amz-invocation-type") != "Event":
            return original(self, body, request_headers, response_headers)
        event = json.loads(body) if body else {}
        invoke_async(self, event)
        return b""  # moto answers 202 with no payload, as Lambda does for Event

    patch(LambdaFunction, "invoke", invoke)


def _express_workflows(patch: Callable[[Any, str, Any], None],
                       on_execution: Callable[[str, str], None] | None) -> None:
    """Express workflows (adaptation 19). moto's CloudFormation drops a state machine's
    `StateMachineType` and its models record every state machine as STANDARD; and moto does
    not implement StartSyncExecution. Here the type is kept, and StartSyncExecution runs an
    Express execution to its end in the caller's thread and answers as the API reference
    describes (StartSyncExecution: executionArn ...:express:..., status SUCCEEDED, FAILED or
    TIMED_OUT, output, error, cause, billingDetails). Its host is `sync-states.REGION...`,
    which moto's URL table does not know: it is routed as `states`."""
    from moto.core.exceptions import AWSError
    from moto.core.responses import ActionResult
    from moto.stepfunctions.models import StateMachine, StateMachineInstance
    from moto.stepfunctions.parser.backend.execution import SyncExecution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    class StateMachineTypeNotSupported(AWSError):
        TYPE = "StateMachineTypeNotSupported"
        STATUS = 400

    original_init = StateMachineInstance.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.sm_type = self.type  # moto sets "STANDARD" whatever the type

    patch(StateMachineInstance, "__init__", init)
    original_from_cfn = StateMachine.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: Any, *args: Any,
                                        **kwargs: Any) -> Any:
        state_machine = original_from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs)
        kind = cloudformation_json.get("Properties", {}).get("StateMachineType")
        if kind:
            state_machine.type = state_machine.sm_type = kind
        return state_machine

    patch(StateMachine, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))

    def start_sync_execution(self: Any, state_machine_arn: str, name: str | None = None,
                             execution_input: str | None = None, trace_header: str | None = None) -> Any:
        state_machine = self.describe_state_machine(state_machine_arn)
        if state_machine.type != "EXPRESS":
            raise StateMachineTypeNotSupported("This operation is not supported by this type of state machine")
        input_data = execution_input or "{}"
        json.loads(input_data)
        clone = copy.deepcopy(state_machine, {id(state_machine.executions): [],
                                              id(state_machine.backend): state_machine.backend})
        name = name or str(uuid.uuid4())
        arn = (f"arn:{self.partition}:states:{self.region_name}:{self.account_id}:express:"
               f"{state_machine.name}:{name}:{uuid.uuid4()}")
        import datetime

        execution = SyncExecution(
            name=name, sm_type=clone.sm_type, role_arn=clone.roleArn, exec_arn=arn, account_id=self.account_id,
            region_name=self.region_name, state_machine=clone,
            start_date=datetime.datetime.now(tz=datetime.UTC), cloud_watch_logging_session=None,
            input_data=input_data, trace_header=trace_header, activity_store={})
        if on_execution is not None:
            on_execution(state_machine_arn, input_data)
        execution.start()  # SyncExecutionWorker runs the program in this thread
        return execution

    patch(StepFunctionsParserBackend, "start_sync_execution", start_sync_execution)

    def respond(self: Any) -> Any:
        execution = self.stepfunction_backend.start_sync_execution(
            self._get_param("stateMachineArn"), self._get_param("name"), self._get_param("input", if_none="{}"),
            self._get_param("traceHeader"))
        output = dict(execution.to_start_sync_execution_output())
        output["status"] = str(getattr(output["status"], "value", output["status"]))
        elapsed = (output["stopDate"] - output["startDate"]).total_seconds() if output.get("stopDate") else 0
        # Express bills per 100 ms and per 64 MB of memory (Step Functions pricing)
        output["billingDetails"] = {"billedMemoryUsedInMB": 64,
                                    "billedDurationInMilliseconds": max(100, math.ceil(elapsed * 10) * 100)}
        return ActionResult(output)

    patch(StepFunctionResponse, "start_sync_execution", respond)
    if on_execution is not None:
        original_start = StepFunctionsParserBackend.start_execution

        def start_execution(self: Any, state_machine_arn: str, name: str | None = None,
                            execution_input: str | None = None, *args: Any, **kwargs: Any) -> Any:
            on_execution(state_machine_arn, execution_input or "{}")
            return original_start(self, state_machine_arn, name, execution_input, *args, **kwargs)  # type: ignore[arg-type]

        patch(StepFunctionsParserBackend, "start_execution", start_execution)


def _polled_event_sources(patch: Callable[[Any, str, Any], None], on_mapping: Callable[[Any], None] | None) -> None:
    """moto delivers an SQS event source mapping's messages inside SendMessage: one message,
    one synchronous invocation, in the sender's thread, with no batching window, no partial
    batch response and no concurrency limit. Lambda polls the queue instead, in batches
    (Lambda developer guide, "Using Lambda with Amazon SQS"). A mapping for a queue is
    handed to the runtime's poller (`on_mapping`), and moto's inline delivery is left off
    (adaptation 20)."""
    if on_mapping is None:
        return
    from moto.awslambda.models import LambdaBackend
    from moto.sqs.models import sqs_backends

    original = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        mapping = original(self, spec)
        arn = parse_arn(mapping.event_source_arn)
        if arn.service == "sqs":
            for queue in sqs_backends[arn.account][arn.region].queues.values():
                if queue.queue_arn == mapping.event_source_arn:
                    queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
            on_mapping(mapping)
        return mapping

    patch(LambdaBackend, "create_event_source_mapping", create_event_source_mapping)


class _Messages:
    """A queue's messages in arrival order, with O(1) removal (moto keeps a list and rebuilds
    it to delete one message). Iteration walks a snapshot: senders append while pollers read."""

    def __init__(self, messages: Iterable[Any] = ()) -> None:
        self._items: dict[int, Any] = {id(message): message for message in messages}

    def append(self, message: Any) -> None:
        self._items[id(message)] = message

    def remove(self, message: Any) -> None:
        del self._items[id(message)]

    def __contains__(self, message: Any) -> bool:
        return id(message) in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)


_receipts: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def _fast_sqs(patch: Callable[[Any, str, Any], None]) -> None:
    """Speed on the message path (adaptation 22). moto's SQS computes every queue attribute,
    three of them by walking every message, to read one attribute on each message received
    (the retention period); deletes a message by rebuilding the message list after scanning
    every receipt handle of every message; and reads the clock through naive datetimes for
    each message's visibility. A 1,000-message backlog cost seconds per batch. Here the
    retention period is read directly, a receipt handle finds its message through an index,
    the queue's messages live in an ordered map, and the clock is `time.time()`."""
    import moto.sqs.models as sqs_models
    from moto.sqs.exceptions import ReceiptHandleIsInvalid

    patch(sqs_models, "unix_time", lambda dt=None: time.time() if dt is None else _unix_time(dt))
    patch(sqs_models, "unix_time_millis", lambda dt=None: (time.time() if dt is None else _unix_time(dt)) * 1000.0)

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    patch(sqs_models.SQSBackend, "is_message_valid_based_on_retention_period",
          is_message_valid_based_on_retention_period)

    original_init = sqs_models.Queue.__init__

    def queue_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._messages = _Messages(self._messages)

    patch(sqs_models.Queue, "__init__", queue_init)
    original_received = sqs_models.Message.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_received(self, visibility_timeout)
        _receipts[self.receipt_handle] = self

    patch(sqs_models.Message, "mark_received", mark_received)

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleted before: gracefully, as moto does
        if not isinstance(self._messages, _Messages):  # replaced by a purge
            self._messages = _Messages(self._messages)
        message = _receipts.get(receipt_handle)
        if message is None or message not in self._messages:
            raise ReceiptHandleIsInvalid()
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        self._messages.remove(message)

    patch(sqs_models.Queue, "delete_message", delete_message)

    import string

    from moto.moto_api._internal import mock_random

    def generate_receipt_handle() -> str:
        # moto's: 185 lowercase letters from its (seedable) random, in one call
        return "".join(mock_random.choices(string.ascii_lowercase, k=185))

    patch(sqs_models, "generate_receipt_handle", generate_receipt_handle)


def _kept_endpoints(patch: Callable[[Any, str, Any], None]) -> None:
    """Adaptation 24: EndpointRulesetResolver.construct_endpoint for the direct-call services,
    its provider parameters resolved from a plan per operation and its endpoint kept per
    parameters. A miss (or parameters that are not hashable) resolves as botocore does."""
    import jmespath
    from botocore.exceptions import UnknownEndpointResolutionBuiltInName
    from botocore.regions import EndpointResolverBuiltins, EndpointRulesetResolver

    original = EndpointRulesetResolver.construct_endpoint
    builtin_names = frozenset(member.value for member in EndpointResolverBuiltins)

    def plan_of(self: Any, operation_model: Any) -> list[tuple[str, Any, list[tuple[str, Any]], Any]]:
        """Per parameter, as _get_provider_params resolves it: (name, static value, the context
        lookups to try in order, builtin name)."""
        static = self._get_static_context_params(operation_model)
        dynamic = self._get_dynamic_context_params(operation_model)
        operation_context = operation_model.operation_context_parameters
        client_context = self._get_client_context_params()
        plan = []
        for name, definition in self._param_definitions.items():
            lookups: list[tuple[str, Any]] = []
            if name in dynamic:
                lookups.append(("member", dynamic[name]))
            if name in operation_context:
                lookups.append(("path", operation_context[name]["path"]))
            if name in client_context:
                lookups.append(("client", client_context[name]))
            plan.append((name, static.get(name), lookups, definition.builtin))
        return plan

    def construct_endpoint(self: Any, operation_model: Any, call_args: Any, request_context: Any) -> Any:
        if self._service_model.service_name not in DIRECT_CALL_SERVICES:
            return original(self, operation_model, call_args, request_context)
        if call_args is None:
            call_args = {}
        if request_context is None:
            request_context = {}
        plans = self.__dict__.setdefault("_fanflow_plans", {})
        plan = plans.get(operation_model.name)
        if plan is None or plan[0] is not operation_model:
            plan = plans[operation_model.name] = (operation_model, plan_of(self, operation_model))
        builtins = self._get_customized_builtins(operation_model, call_args, request_context)
        params = []
        for name, static, lookups, builtin in plan[1]:
            value = static
            if value is None:
                for kind, where in lookups:
                    if kind == "member":
                        value = call_args.get(where)
                    elif kind == "path":
                        value = jmespath.search(where, call_args)
                    else:
                        value = self._client_context.get(where)
                    if value is not None:
                        break
            if value is None and builtin is not None:
                if builtin not in builtin_names:
                    raise UnknownEndpointResolutionBuiltInName(name=builtin)
                value = builtins.get(builtin)
                if callable(value):
                    value = value()
            if value is not None:
                params.append((name, value))
                self._register_endpoint_feature_ids(name, value)
        key = tuple(params)
        kept = self.__dict__.setdefault("_fanflow_endpoints", {})
        try:
            endpoint = kept.get(key)
        except TypeError:  # a list value (ResourceArnList): not kept
            return original(self, operation_model, call_args, request_context)
        if endpoint is None:
            endpoint = original(self, operation_model, call_args, request_context)
            if len(kept) >= 1024:
                kept.clear()
            kept[key] = endpoint
        # a new headers dict per call, as botocore makes one
        return endpoint._replace(headers=dict(endpoint.headers))

    patch(EndpointRulesetResolver, "construct_endpoint", construct_endpoint)


def _sdk_parameter_names(patch: Callable[[Any, str, Any], None]) -> None:
    """Adaptation 26."""
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    models: dict[str, Any] = {}

    def _normalise_parameters(self: Any, parameters: dict[str, Any], boto_service_name: str | None = None,
                              service_action_name: str | None = None) -> None:
        service = self._get_boto_service_name(boto_service_name)
        action = service_action_name or self.resource.api_action
        model = models.get(service)
        if model is None:
            model = models[service] = botocore.session.get_session().get_service_model(service)
        operation = model.operation_model(action[:1].upper() + action[1:])
        if operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    patch(StateTaskServiceAwsSdk, "_normalise_parameters", _normalise_parameters)


def _query_by_hash_key(patch: Callable[[Any, str, Any], None]) -> None:
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


def _unix_time(dt: Any) -> float:
    from moto.core.utils import unix_time

    return float(unix_time(dt))


def send_to_queue(queue_arn: str, body: str) -> str:
    """What EventBridge does for an SQS rule target: one message whose body is the event (or
    the target's input), sent with the queue's own delay (EventBridge user guide, "Amazon SQS
    queues as targets"). The message goes straight to the queue: moto's SendMessage walks
    every message of the queue for its attributes, twice per message. Returns its id."""
    from moto.sqs.models import Message, sqs_backends

    arn = parse_arn(queue_arn)
    queue: Any = sqs_backends[arn.account][arn.region].get_queue(arn.resource_id)
    if len(body.encode()) > int(queue.maximum_message_size):
        raise ValueError(f"a message of {len(body.encode())} bytes exceeds the queue's maximum "
                         f"({queue.maximum_message_size})")
    message = Message(str(uuid.uuid4()), body)
    message.mark_sent(delay_seconds=int(queue.delay_seconds or 0))
    queue.add_message(message)
    return str(message.id)


# Services whose in-process calls skip the HTTP emulation (adaptation 12): JSON protocol,
# the per-case hot path, and handlers that read nothing of the request but its headers
# and body.
DIRECT_CALL_SERVICES = ("dynamodb", "events")
DIRECT_CALL_HANDLER_ID = "fanflow-direct-call"


def _wait_until_timestamp(patch: Callable[[Any, str, Any], None]) -> None:
    """Adaptation 16: replaces WaitFunction._eval_body for Timestamp (and TimestampPath,
    its subclass), whose `_get_wait_seconds` returns int(seconds left) from a local clock."""
    import datetime

    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp

    def eval_body(self: Any, env: Any) -> None:
        self.string.eval(env=env)
        text = env.stack.pop()
        moment = self._from_timestamp_string(timestamp=text)  # naive UTC, milliseconds dropped
        if moment is None:
            raise FailureEventException(self._create_failure_event(env, text))
        until = moment.replace(tzinfo=datetime.UTC).timestamp()
        # The event pulses when the execution's state changes (a stop): then it ends early.
        while env.is_running() and (left := until - time.time()) > 0:
            env.program_state_event.wait(left)

    patch(Timestamp, "_eval_body", eval_body)


def _direct_call_handlers() -> dict[str, Any]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler

    return {"dynamodb": DynamoHandler, "events": EventsHandler}


def _direct_calls(patch: Callable[[Any, str, Any], None]) -> None:
    """botocore's `before-call` event lets a handler answer a call before it is sent; the
    answer is moto's, from the same handler class and backend its HTTP path would reach."""
    from urllib.parse import urlparse

    import boto3
    import botocore.handlers
    from botocore.awsrequest import AWSResponse
    from botocore.parsers import create_parser
    from moto import settings
    from moto.core.botocore_stubber import MockRawResponse
    from moto.core.models import botocore_stubber
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model
    from moto.iam.models import mark_account_as_visited
    from moto.moto_api import recorder
    from moto.utilities.utils import get_partition
    from werkzeug.datastructures import Headers, MultiDict
    from werkzeug.http import http_date

    handlers = _direct_call_handlers()
    for handler_class in handlers.values():  # loaded now, not by many threads at once later
        get_service_model(handler_class().boto3_service_name)
    response_parsers: dict[str, Any] = {}

    def prepare(handler: Any, *, url: str, region: str, headers: Any, body: bytes, access_key: str,
                operation: str) -> None:
        """What moto's BaseResponse.setup_class sets for a JSON-protocol POST, without
        building a WSGI request to read it back from."""
        parsed_url = urlparse(url)
        handler.is_werkzeug_request = False
        handler.normalized_request = None
        handler.parsed_url = parsed_url
        handler.raw_body = body
        handler.body = body.decode("utf-8")
        handler.form_data = {}
        handler.querystring = {}
        handler.data = handler.querystring
        handler.uri = url
        handler.path = handler.raw_path = parsed_url.path
        handler.method = "POST"
        handler.region = region
        handler.partition = get_partition(region)
        handler.uri_match = {}
        handler.headers = headers
        handler.response_headers = {"server": "amazon.com", "date": http_date()}
        if handler.automated_parameter_parsing:
            operation_model = get_service_model(handler.boto3_service_name).operation_model(operation)
            parser = PROTOCOL_PARSERS["json"](operation_model, map_type=handler.PROTOCOL_PARSER_MAP_TYPE)
            handler.params = parser.parse({"method": "POST", "values": MultiDict(), "headers": headers, "body": body,
                                           "url_path": handler.path, "url_params": {}})
        handler.access_key = access_key
        handler.current_account = handler.get_current_account()
        mark_account_as_visited(account_id=handler.current_account, access_key=access_key,
                                service=handler.service_name, region=region)

    region_pattern = re.compile(r"^https?://[^./]+\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?:/|$)")

    def answer(model: Any, params: dict[str, Any], request_signer: Any = None, **_: Any) -> Any:
        service = model.service_model.service_name
        handler_class = handlers.get(service)
        credentials = getattr(request_signer, "_credentials", None)
        url = params.get("url", "")
        match = region_pattern.match(url)
        if (handler_class is None or _direct is None or not botocore_stubber.enabled or credentials is None
                or match is None or recorder._user_enabled or not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT)
                or not isinstance(params.get("body"), bytes)):
            return None  # the HTTP emulation answers
        handler = handler_class()
        prepare(handler, url=url, region=match.group(1), headers=Headers(params["headers"]), body=params["body"],
                access_key=credentials.access_key, operation=model.name)
        status, headers, body = handler.call_action()
        raw = body.encode("utf-8") if isinstance(body, str) else body
        http = AWSResponse(url, int(status), {k: str(v) for k, v in headers.items()}, MockRawResponse(raw))
        protocol = model.service_model.resolved_protocol
        parser = response_parsers.get(protocol) or response_parsers.setdefault(protocol, create_parser(protocol))
        response = {"headers": http.headers, "status_code": http.status_code, "body": raw,
                    "context": {"operation_name": model.name}}
        parsed = parser.parse(response, model.output_shape)
        if http.status_code >= 300:
            _add_modeled_error_fields(response, parsed, model, parser)
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        return http, parsed

    patch(botocore.handlers, "BUILTIN_HANDLERS",
          [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", answer)])
    # Sessions made before now (boto3's default one, used by the handlers) learn it too.
    if boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.register("before-call", answer, unique_id=DIRECT_CALL_HANDLER_ID)
    global _direct
    _direct = answer


_direct: Any = None


def _stop_direct_calls() -> None:
    global _direct
    import boto3

    if _direct is not None and boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.unregister("before-call", _direct, unique_id=DIRECT_CALL_HANDLER_ID)
    _direct = None


def _add_modeled_error_fields(response: dict[str, Any], parsed: dict[str, Any], model: Any, parser: Any) -> None:
    """botocore.endpoint.Endpoint._add_modeled_error_fields: an error's modeled members."""
    code = parsed.get("Error", {}).get("Code")
    if code is None:
        return
    shape = model.service_model.shape_for_error_code(code)
    if shape is None:
        return
    parsed.update(parser.parse(response, shape))


def uninstall() -> None:
    global _installed
    with _lock:
        if _installed is None:
            return
        _restore(_installed.originals)
        _installed = None
        _stop_direct_calls()


def _restore(originals: list[tuple[Any, str, Any]]) -> None:
    for owner, name, value in reversed(originals):
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)


def installed() -> bool:
    return _installed is not None
