"""The speed and the threads of moto's ASL engine (moto.stepfunctions.parser): parses, clients
and components cached, states run in the calling thread, execution names indexed, and
executions run in the delivering thread.

Replaces, in moto 5.2.5 (moto.stepfunctions.parser.asl unless said): utils.json_path.parse,
component.common.path.result_path.parse, `boto_client_for` in every engine module that
imported it, parse.asl_parser.AmazonStateLanguageParser.parse (5);
component.program.program.Program.eval,
component.state.exec.execute_state.ExecutionState._evaluate_with_timeout,
eval.states.States._extract, moto.stepfunctions.models.StateMachine._handle_name_input_idempotency,
and it prunes moto.stepfunctions.parser.utils.TMP_THREADS (8);
moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker.start (15).
Tests: tests/unit/test_patches_asl_engine.py.

5. Speed: the ASL engine parses every JSONPath anew, builds a boto3 client per task state,
   and parses the state machine's definition (ANTLR, then its evaluation components) for
   every execution: 26 ms, then 7 ms of CPU for Increment. JSONPaths, clients and parse
   trees are cached; so are the evaluation components, which keep no per-execution state
   (that lives in the execution's Environment), except a Parallel state's branches: a
   definition with a Parallel state gets its components built per execution.
8. Speed and memory: the ASL engine runs every execution, and every Task state of it, in a
   thread of its own, only to wait for it with the state's timeout; and it keeps every
   thread it ever started in a global list. Without a TimeoutSeconds (fanflow's states
   set none) the state runs in the calling thread; finished threads are dropped from the
   list. Starting an execution looked for a same-named one by scanning every execution of
   the state machine (O(n) per start, O(n^2) per request); the names are indexed.
   Reading a JSONPath deep-copies what it found, also when that is a string or a number.
15. Memory and speed: moto runs every execution in a thread of its own. Rule deliveries
   start an Increment execution per case faster than one core runs them, and at 10,000
   cases about 5,000 execution threads were alive at once (300 MB of stacks, and a GIL
   shared 5,000 ways). An execution started inside `executions_inline()` (the runtime's
   deliveries) runs in the starting thread, before StartExecution returns.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from jsonpath_ng.ext import parse as jsonpath_parse

from .json_copies import json_deepcopy
from .patching import LOG, Patch


@functools.lru_cache(maxsize=4096)
def _jsonpath(path: str) -> Any:
    return jsonpath_parse(path)


def cache_engine_parses(patch: Patch) -> None:
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


def _cache_definition_parse_trees(patch: Patch) -> None:
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


def run_states_inline(patch: Patch) -> None:
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


def index_execution_names(patch: Patch) -> None:
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


def inline_executions(patch: Patch) -> None:
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
