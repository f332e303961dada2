"""The embedded emulator freezes what its deployment left alive, so that garbage collections
during requests walk only what requests make, considers full collections less often, and
hands the GIL over less often; stopping it unfreezes that heap and restores both settings."""

from __future__ import annotations

import gc
import sys

from local.runtime import EmbeddedEmulator


def test_the_deployed_heap_is_frozen_until_the_emulator_stops() -> None:
    # GIVEN an emulator whose stack is deployed (the freeze is start's last step)
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    emulator = EmbeddedEmulator()
    emulator._tune_interpreter()
    # THEN a full collection is considered ten times less often, and the GIL handed over less often
    assert gc.get_threshold() == (thresholds[0], thresholds[1], 100)
    assert sys.getswitchinterval() == max(interval, 0.02)
    # THEN what was alive is frozen, once
    frozen = gc.get_freeze_count()
    assert frozen > 0
    emulator._tune_interpreter()
    assert gc.get_freeze_count() == frozen
    # WHEN it stops  THEN the heap is collectable again
    emulator.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
    assert sys.getswitchinterval() == interval
