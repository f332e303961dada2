"""JSON values copied as JSON: `json_deepcopy`, and the engines' modules that copy with it.

Replaces, in moto 5.2.5: the `copy` module as seen by each module of JSON_COPYING_MODULES
(the ASL engine's states, paths, frames and history, and moto.events.models) (13). The other
adaptations copy JSON values with `json_deepcopy` too.
Tests: tests/unit/test_patches_json_copies.py.

13. Speed: the ASL engine and EventBridge copy JSON values with copy.deepcopy at every state
   input, result, path and history entry, and once per rule for each event; a fifth of the
   engine's CPU. Those modules copy JSON values with a direct recursive copy; anything that
   is not plain JSON still goes to copy.deepcopy.
"""

from __future__ import annotations

import copy
from typing import Any

from .patching import MotoVersionError, Patch


class _NotJson(Exception):
    """A value that is not plain JSON: the caller falls back to moto's own handling."""


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


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


def copy_as_json(patch: Patch) -> None:
    import importlib
    import types

    shim = types.SimpleNamespace(deepcopy=json_deepcopy, copy=copy.copy)
    for name in JSON_COPYING_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "copy", None) is not copy:
            raise MotoVersionError(f"{name} no longer copies with the copy module; review adaptation 13")
        patch(module, "copy", shim)
