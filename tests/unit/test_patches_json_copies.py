"""Adaptations 13 (local/moto_patches/json_copies.py), pinned against moto 5.2.5:
`test_unpatched_*` pins what moto does without them, and fails if an upgrade changes it (the
adaptation may have become unnecessary, or may now fight moto); `test_patched_*` checks the
behaviour the embedded runtime relies on."""

from __future__ import annotations

from typing import Any

from local import moto_patches
from tests.patch_helpers import Recorder


# -- 13. JSON values are copied as JSON -------------------------------------------------------
def test_json_deepcopy_copies_json_values_like_deepcopy() -> None:
    import copy as copying

    value = {"a": [1, 2.5, {"b": None, "c": True}], "d": "text", "e": {"f": []}}
    clone = moto_patches.json_deepcopy(value)
    assert clone == copying.deepcopy(value) == value
    assert clone is not value and clone["a"] is not value["a"] and clone["a"][2] is not value["a"][2]
    clone["a"][2]["b"] = "changed"
    assert value["a"][2]["b"] is None
    assert moto_patches.json_deepcopy("s") == "s" and moto_patches.json_deepcopy(None) is None


def test_json_deepcopy_leaves_anything_else_to_deepcopy() -> None:
    import collections
    import decimal

    shared = [1]
    for value in ({"n": decimal.Decimal("1.5")}, collections.OrderedDict(a=[1]), {"t": (shared, shared)},
                  [object()]):
        clone = moto_patches.json_deepcopy(value)
        assert type(clone) is type(value) and clone is not value
    # a structure with a non-JSON part is copied whole by deepcopy, shared references kept
    clone = moto_patches.json_deepcopy({"t": (shared, shared)})
    assert clone["t"][0] is clone["t"][1] and clone["t"][0] is not shared
    # and a memo (deepcopy calling back) goes to deepcopy too
    memo: dict[int, Any] = {}
    assert moto_patches.json_deepcopy([shared, shared], memo)[0] is memo[id(shared)]


def test_unpatched_engines_copy_with_the_copy_module(unpatched: None) -> None:
    import copy as copying
    import importlib

    for name in moto_patches.JSON_COPYING_MODULES:
        assert importlib.import_module(name).copy is copying, name


def test_patched_engines_copy_json_values_as_json(recorder: Recorder) -> None:
    import importlib

    for name in moto_patches.JSON_COPYING_MODULES:
        module = importlib.import_module(name)
        assert module.copy.deepcopy is moto_patches.json_deepcopy, name
    from moto.stepfunctions.parser.asl.eval import states

    data = {"detail": {"request": {"caseId": "7"}}}
    assert states.copy.deepcopy(data) == data and states.copy.deepcopy(data)["detail"] is not data["detail"]
