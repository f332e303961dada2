"""The moto version pin, and install()/uninstall() of local/moto_patches: every patch point is
restored, and the patches refuse another moto."""

from __future__ import annotations

import sys
from typing import Any

import moto
import moto.stepfunctions.models as sfn_models
import moto.stepfunctions.parser.asl.utils.json_path as json_path
import pytest
from moto.awslambda.models import LambdaFunction
from moto.events.models import EventBus, Rule
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from local import moto_patches
from tests.patch_helpers import ENGINE_CLIENT_MODULES, Recorder


def test_check_version_accepts_the_pinned_moto() -> None:
    # GIVEN the installed moto  WHEN checked  THEN it is the version the patches were written for
    assert moto.__version__ == moto_patches.PINNED_MOTO_VERSION
    moto_patches.check_version()


def test_check_version_rejects_another_moto(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    # GIVEN a moto that reports another version
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    # WHEN the version is checked, or the patches are installed  THEN both refuse
    with pytest.raises(moto_patches.MotoVersionError, match=r"5\.2\.6"):
        moto_patches.check_version()
    rec = Recorder()
    with pytest.raises(moto_patches.MotoVersionError):
        moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    # AND nothing was patched
    assert not moto_patches.installed()
    assert "send_to_targets" in Rule.__dict__ and Rule.__dict__["send_to_targets"].__module__ == "moto.events.models"


def test_check_version_is_off_only_when_asked(monkeypatch: pytest.MonkeyPatch, unpatched: None) -> None:
    # GIVEN a moto that reports another version, and the check turned off as
    # scripts/check_moto_adaptations.py turns it off
    monkeypatch.setattr(moto, "__version__", "5.2.6")
    monkeypatch.setenv("FANFLOW_MOTO_VERSION_CHECK", "off")
    # WHEN checked  THEN it lets that moto through
    moto_patches.check_version()
    # AND any other value of the variable checks as before
    monkeypatch.setenv("FANFLOW_MOTO_VERSION_CHECK", "on")
    with pytest.raises(moto_patches.MotoVersionError):
        moto_patches.check_version()


def test_install_twice_raises(recorder: Recorder) -> None:
    # GIVEN installed patches  WHEN installed again  THEN it refuses, and the first install stays
    with pytest.raises(RuntimeError, match="already installed"):
        moto_patches.install(invoke=recorder.invoke, deliver=recorder.deliver)
    assert moto_patches.installed()


def _patch_points() -> dict[str, Any]:
    engine = {name: sys.modules[name].__dict__.get("boto_client_for") for name in ENGINE_CLIENT_MODULES
              if name in sys.modules}
    return {
        "Rule.send_to_targets": Rule.__dict__["send_to_targets"],
        "LambdaFunction._invoke_lambda": LambdaFunction.__dict__["_invoke_lambda"],
        "StepFunctionsParserBackend.start_execution": StepFunctionsParserBackend.__dict__["start_execution"],
        "EventBus.physical_resource_id": EventBus.__dict__.get("physical_resource_id", "<absent>"),
        "sfn_models.stepfunctions_backends": sfn_models.stepfunctions_backends,
        "json_path.parse": json_path.parse,
        **{f"{name}.boto_client_for": value for name, value in engine.items()},
    }


def test_uninstall_restores_every_original(unpatched: None) -> None:
    # GIVEN the originals, with every engine module already imported
    import moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_factory  # noqa: F401

    before = _patch_points()
    assert set(ENGINE_CLIENT_MODULES) <= set(sys.modules)
    rec = Recorder()
    # WHEN the patches are installed
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    try:
        during = _patch_points()
        assert moto_patches._installed is not None
        recorded = list(moto_patches._installed.originals)
    finally:
        # AND uninstalled
        moto_patches.uninstall()
    after = _patch_points()
    # THEN every patch point changed while installed, and is the very original object afterwards
    changed = {name for name in before if during[name] is not before[name]}
    assert changed == set(before), f"not patched: {set(before) - changed}"
    restored = {name for name in before if after[name] is before[name]}
    assert restored == set(before), f"not restored: {set(before) - restored}"
    assert "physical_resource_id" not in EventBus.__dict__
    # AND so is every patch point install() recorded, including any added after this test was written
    # (a point patched twice, like DynamoDBBackend.transact_write_items, gets back its first original)
    first_recorded: dict[tuple[int, str], tuple[Any, str, Any]] = {}
    for owner, name, original in recorded:
        first_recorded.setdefault((id(owner), name), (owner, name, original))
    for owner, name, original in first_recorded.values():
        if original is moto_patches._MISSING:
            assert name not in owner.__dict__, f"{owner!r}.{name} left behind"
        else:
            assert owner.__dict__[name] is original, f"{owner!r}.{name} not restored"
    assert not moto_patches.installed()
    # AND a second uninstall is harmless, and the patches can be installed again
    moto_patches.uninstall()
    moto_patches.install(invoke=rec.invoke, deliver=rec.deliver)
    moto_patches.uninstall()
    assert _patch_points() == after
