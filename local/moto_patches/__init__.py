"""Every adaptation fanflow makes to moto, one module per concern. moto is pinned
(PINNED_MOTO_VERSION, and pyproject.toml) because each adaptation reaches into its internals;
`install()` is the only thing that patches, and `uninstall()` puts every original back.

The adaptations keep the numbers they were given (docs and comments cite "adaptation 23"):

    delivery.py              1, 17, 20, 23  EventBridge targets, SQS targets, event source mappings, PutEvents
    lambda_invocations.py    2, 18          Lambda in-process; Event invocations queued
    executions.py            3, 14, 16, 19, 26  names, histories, Wait until, Express, SDK parameters
    cloudformation.py        4              EventBus Ref, state machines in the executing backend
    asl_engine.py            5, 8, 15       the ASL engine's caches and threads
    dynamodb.py              6, 11, 21, 25  thread safety, transactions, items, queries
    dynamodb_expressions.py  9              update and condition expressions
    direct_calls.py          7, 10, 12, 24  the way from boto3 to moto: lookups, dispatch, before-call, endpoints
    json_copies.py           13             JSON values copied as JSON
    sqs.py                   22             SQS's message path
    limits.py                27             where AWS's limits act: states entered, API calls
    patching.py              -              the version pin and the patcher they share

Each module's docstring says what it adapts, why, and which moto code it replaces; its tests
are tests/unit/test_patches_<module>.py (the install/uninstall tests: test_patches_install.py).

Adding an adaptation:
- It takes the next number (27, 28, ...); numbers are never reused or renumbered.
- It goes in the module of its concern; a new module only for a new concern (then a row above,
  and a test module of its own).
- It is a function `name(patch: Patch, ...)` that changes moto only through `patch`, so that
  `uninstall()` restores it; `_install_all` below calls it (the order matters where two
  adaptations replace the same attribute: the later wraps the earlier).
- Its paragraph, "N. what moto (version) lacks or costs, and what is done", goes in the
  module's docstring, which also names the moto code it replaces.
- Its tests, under "# -- N. ..." in the concern's test module, come in a pair:
  `test_unpatched_*` pins what moto does without it, and fails when a moto upgrade changes
  that (the adaptation may have become unnecessary, or may now fight moto); `test_patched_*`
  checks, with the patches installed, the behaviour the embedded runtime relies on.

Checking them all against a newer moto: `python scripts/check_moto_adaptations.py 5.2.6`
installs the project with that moto in a temporary venv, runs the adaptations' tests there
with the version check off (FANFLOW_MOTO_VERSION_CHECK=off), and prints, per concern, which
tests still hold and which fail. Then review each failing adaptation, and raise
PINNED_MOTO_VERSION with pyproject.toml's pin.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction

from . import (
    asl_engine,
    cloudformation,
    delivery,
    direct_calls,
    dynamodb,
    dynamodb_expressions,
    executions,
    json_copies,
    lambda_invocations,
    limits,
    sqs,
)
from .asl_engine import _jsonpath as _jsonpath  # the tests check the engine uses this cache
from .asl_engine import executions_inline
from .delivery import Deliver, send_to_queue, target_input
from .direct_calls import DIRECT_CALL_SERVICES
from .dynamodb import DYNAMODB_ITEM_OPERATIONS
from .json_copies import JSON_COPYING_MODULES, json_deepcopy
from .lambda_invocations import Invoke
from .patching import _MISSING as _MISSING  # the tests check uninstall against it
from .patching import PINNED_MOTO_VERSION, MotoVersionError, check_version, patcher, restore

__all__ = [
    "DIRECT_CALL_SERVICES",
    "DYNAMODB_ITEM_OPERATIONS",
    "JSON_COPYING_MODULES",
    "PINNED_MOTO_VERSION",
    "EngineHooks",
    "MotoVersionError",
    "check_version",
    "executions_inline",
    "install",
    "installed",
    "json_deepcopy",
    "send_to_queue",
    "target_input",
    "uninstall",
]


@dataclass
class _Installed:
    originals: list[tuple[Any, str, Any]]


_lock = threading.Lock()
_installed: _Installed | None = None


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
      the item to cancel with TransactionConflict, or None (fault injection, adaptation 21;
      and a transaction overlapping another on an item, under AWS's limits).
    - `on_state_entered(standard)`, `before_api_call(service, operation, params, context)`,
      `after_api_call(service, operation, context)`: where AWS's limits act (adaptation 27).
    """

    invoke_async: Callable[[LambdaFunction, Any], None] | None = None
    on_event_source_mapping: Callable[[Any], None] | None = None
    on_execution: Callable[[str, str], None] | None = None
    on_dynamodb_write: Callable[[str, dict[str, Any]], None] | None = None
    transaction_fault: Callable[[list[tuple[str, dict[str, Any]]]], int | None] | None = None
    on_state_entered: limits.StateEntered | None = None
    before_api_call: limits.BeforeCall | None = None
    after_api_call: limits.AfterCall | None = None


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
                executions.drop_old_histories(patcher(originals), kept_histories)
        except BaseException:
            restore(originals)
            raise
        _installed = _Installed(originals)


def _install_all(originals: list[tuple[Any, str, Any]], invoke: Invoke, deliver: Deliver,
                 on_put_events: Callable[[list[dict[str, Any]]], None] | None, hooks: EngineHooks) -> None:
    # The order matters where two adaptations replace one attribute: the later wraps the earlier
    # (PutEvents: 23, then its observer; start_execution: 3, then 19's observer).
    patch = patcher(originals)
    delivery.route_rule_targets(patch, deliver)
    delivery.one_message_per_event(patch)
    delivery.observe_put_events(patch, on_put_events)
    lambda_invocations.invoke_in_process(patch, invoke)
    executions.name_executions(patch)
    cloudformation.cloudformation_resources(patch)
    asl_engine.cache_engine_parses(patch)
    asl_engine.run_states_inline(patch)
    asl_engine.index_execution_names(patch)
    dynamodb.serialise_dynamodb(patch, hooks.on_dynamodb_write, hooks.transaction_fault)
    dynamodb_expressions.cache_dynamodb_expressions(patch)
    direct_calls.fast_backend_lookup(patch)
    direct_calls.fast_dispatch(patch)
    dynamodb.untracked_dynamodb_items(patch)
    direct_calls.answer_in_process(patch)
    json_copies.copy_as_json(patch)
    asl_engine.inline_executions(patch)
    executions.wait_until_timestamp(patch)
    lambda_invocations.async_event_invocations(patch, hooks.invoke_async)
    executions.express_workflows(patch, hooks.on_execution)
    delivery.polled_event_sources(patch, hooks.on_event_source_mapping)
    sqs.fast_sqs(patch)
    direct_calls.kept_endpoints(patch)
    dynamodb.query_by_hash_key(patch)
    executions.sdk_parameter_names(patch)
    limits.limits_on_states(patch, hooks.on_state_entered)
    limits.limits_on_api_calls(patch, hooks.before_api_call, hooks.after_api_call)


def uninstall() -> None:
    global _installed
    with _lock:
        if _installed is None:
            return
        restore(_installed.originals)
        _installed = None
        direct_calls.stop_direct_calls()
        limits.stop_limits_on_api_calls()


def installed() -> bool:
    return _installed is not None
