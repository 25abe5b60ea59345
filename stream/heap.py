"""Short garbage-collector pauses for the long-running worker and API processes."""

from __future__ import annotations

import gc

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
