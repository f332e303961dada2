"""The embedded emulator freezes what its deployment left alive, so that garbage collections
during requests walk only what requests make, and considers full collections less often;
stopping it unfreezes that heap and restores the collector's thresholds."""

from __future__ import annotations

import gc

from local.runtime import EmbeddedEmulator


def test_the_deployed_heap_is_frozen_until_the_emulator_stops() -> None:
    # GIVEN an emulator whose stack is deployed (the freeze is start's last step)
    thresholds = gc.get_threshold()
    emulator = EmbeddedEmulator()
    emulator._freeze_deployed_heap()
    # THEN a full collection is considered ten times less often
    assert gc.get_threshold() == (thresholds[0], thresholds[1], 100)
    # THEN what was alive is frozen, once
    frozen = gc.get_freeze_count()
    assert frozen > 0
    emulator._freeze_deployed_heap()
    assert gc.get_freeze_count() <= frozen  # not frozen again (frozen objects may be freed meanwhile)
    # WHEN it stops (stop thaws it first)  THEN the heap is collectable again
    emulator._thaw_heap()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
