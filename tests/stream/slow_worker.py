"""A routing worker whose classifier takes TEXTROUTE_TEST_SLOW_S longer per call and writes
`start N` / `end N` lines to TEXTROUTE_TEST_SLOW_MARKS around each, so a test can stop it while
a batch is certainly in inference: `python -m tests.stream.slow_worker`."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stream.config import WorkerSettings
from stream.models import inference_loader
from stream.worker import run_worker


class SlowClassifier:
    """A predictor that sleeps before each classify call and is otherwise the wrapped one."""

    def __init__(self, inner: Any, delay_s: float, marks: Path | None) -> None:
        self._inner = inner
        self._delay_s = delay_s
        self._marks = marks
        self._calls = 0

    def classify(self, texts: Sequence[object]) -> Any:
        self._calls += 1
        self._mark(f"start {self._calls} {len(texts)}")
        time.sleep(self._delay_s)
        result = self._inner.classify(texts)
        self._mark(f"end {self._calls}")
        return result

    def _mark(self, line: str) -> None:
        if self._marks is not None:
            with self._marks.open("a", encoding="utf-8") as out:
                out.write(line + "\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main() -> None:
    delay_s = float(os.environ.get("TEXTROUTE_TEST_SLOW_S", "1.0"))
    marks = os.environ.get("TEXTROUTE_TEST_SLOW_MARKS")
    settings = WorkerSettings()
    load = inference_loader()
    classifier_dir = settings.model_dirs()[0].resolve()

    def loader(artifact_dir: Path) -> Any:
        predictor = load(artifact_dir)
        if artifact_dir.resolve() == classifier_dir:
            return SlowClassifier(predictor, delay_s, Path(marks) if marks else None)
        return predictor

    run_worker(settings, loader=loader)


if __name__ == "__main__":
    main()
