"""What every adaptation shares: the moto version they were written for, the check that refuses
another one, and the patcher that records each replaced attribute so that `uninstall` puts the
original back."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import moto

PINNED_MOTO_VERSION = "5.2.5"
# Set to "off" by scripts/check_moto_adaptations.py, which runs the adaptations' tests against
# another moto to see which still hold; nothing else should set it.
VERSION_CHECK_VARIABLE = "FANFLOW_MOTO_VERSION_CHECK"
LOG = logging.getLogger("fanflow.embedded")

# patch(owner, name, value): sets owner.name to value, recording what it was
Patch = Callable[[Any, str, Any], None]


class MotoVersionError(RuntimeError):
    pass


def check_version() -> None:
    if os.environ.get(VERSION_CHECK_VARIABLE, "").lower() == "off":
        return
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise MotoVersionError(
            f"fanflow's embedded runtime adapts moto {PINNED_MOTO_VERSION}, found {moto.__version__}; "
            f"install the pinned version: pip install 'moto[all]=={PINNED_MOTO_VERSION}'"
        )


_MISSING = object()


def patcher(originals: list[tuple[Any, str, Any]]) -> Patch:
    def patch(owner: Any, name: str, value: Any) -> None:
        originals.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    return patch


def restore(originals: list[tuple[Any, str, Any]]) -> None:
    for owner, name, value in reversed(originals):
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
