"""freeze_startup_objects and refreeze: what is alive at start-up is left out of later full
collections, and what a hot reload replaced is still freed."""

from __future__ import annotations

import gc
import weakref

import pytest

from stream import heap
from stream.heap import freeze_startup_objects, refreeze, refreezing


def test_objects_alive_at_startup_are_left_out_of_later_full_collections() -> None:
    gc.unfreeze()
    try:
        startup = [[i] for i in range(1000)]
        frozen = freeze_startup_objects()
        assert frozen >= len(startup)
        # Not compared with the freeze count for equality: other threads of the test process
        # free frozen objects at any time, which lowers it.
        # A full collection walks gc.get_objects(); frozen objects are no longer among them.
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(o) in tracked for o in startup)
        later = [0]
        assert any(o is later for o in gc.get_objects())
    finally:
        gc.unfreeze()


class _Cyclic:
    """Holds itself, as model objects do through bound methods and back-references: only a
    collection for cycles frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_frozen_object_in_a_cycle_outlives_its_last_reference_until_refrozen() -> None:
    gc.unfreeze()
    try:
        replaced = _Cyclic()
        gone = weakref.ref(replaced)
        freeze_startup_objects()
        del replaced
        gc.collect()
        # This is what a hot reload left behind before refreezing: memory never returned.
        assert gone() is not None
        refreeze()
        assert gone() is None
    finally:
        gc.unfreeze()


def test_a_reload_that_swapped_models_refreezes_and_one_that_found_nothing_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Counted by call, not by the freeze count: other threads of the test process free frozen
    # objects at any time, which lowers the count without any refreeze.
    refrozen: list[int] = []

    def counted() -> int:
        refrozen.append(1)
        return refreeze()

    monkeypatch.setattr(heap, "refreeze", counted)
    gc.unfreeze()
    try:
        current = {"model": _Cyclic()}
        gone = weakref.ref(current["model"])
        swaps = iter([[], ["default/classifier"]])

        def check_for_update() -> list[str]:
            swapped = next(swaps)
            if swapped:
                current["model"] = _Cyclic()
            return swapped

        reload = refreezing(check_for_update)
        freeze_startup_objects()
        assert reload() == []
        assert refrozen == []
        assert reload() == ["default/classifier"]
        assert refrozen == [1]
        assert gone() is None
    finally:
        gc.unfreeze()
