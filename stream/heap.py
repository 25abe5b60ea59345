"""Short garbage-collector pauses for the long-running worker and API processes."""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger(__name__)


def freeze_startup_objects() -> int:
    """Collect once, then move every object alive now (modules, models, tokenizers, schemas)
    into the collector's permanent generation; the number of objects frozen.

    Python's full (generation 2) collections scan every tracked object. After the imports and
    the models are in, those are millions of objects that live as long as the process, and a
    full collection took 160-180 ms with the GIL held: every message in flight waited that
    long (bench/RESULTS.md, "Stream end to end"). Frozen objects are never scanned again, so a
    full collection only walks what was allocated since. Call once, when start-up is done.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("heap.frozen", objects=frozen)
    return frozen


def refreeze() -> int:
    """Unfreeze, collect and freeze again; the number of objects frozen. For after a hot reload.

    The models a reload brings in would otherwise be walked by every full collection again
    (the long pauses freeze_startup_objects removed), and of the models it replaced, whatever
    only reference cycles hold would never be freed: frozen objects are not collected. Costs
    one full collection, as at start-up; reloads are rare.
    """
    gc.unfreeze()
    return freeze_startup_objects()


def refreezing(reload: Callable[[], Sequence[str]]) -> Callable[[], list[str]]:
    """`reload` (which returns what it swapped), followed by `refreeze()` when it swapped
    anything: a check that found nothing new costs no collection."""

    def run() -> list[str]:
        swapped = list(reload())
        if swapped:
            refreeze()
        return swapped

    return run
