"""freeze_startup_objects: what is alive at start-up is left out of later full collections."""

from __future__ import annotations

import gc

from stream.heap import freeze_startup_objects


def test_objects_alive_at_startup_are_left_out_of_later_full_collections() -> None:
    gc.unfreeze()
    try:
        startup = [[i] for i in range(1000)]
        frozen = freeze_startup_objects()
        assert frozen >= len(startup)
        assert gc.get_freeze_count() == frozen
        # A full collection walks gc.get_objects(); frozen objects are no longer among them.
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in startup)
        later = [0]
        assert any(o is later for o in gc.get_objects())
    finally:
        gc.unfreeze()
