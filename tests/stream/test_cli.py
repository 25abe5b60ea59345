"""The root `textroute` CLI: quiet by default, everything with --verbose."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from training.tiny import topic_texts


def _evaluate(artifact: Path, data: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSFORMERS_", "HF_"))}
    env.pop("TEXTROUTE_VERBOSE", None)
    command = [sys.executable, "-m", "stream.cli", *flags, "evaluate", str(artifact)]
    return subprocess.run(
        [*command, "--data", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_library_load_reports_and_bars_are_silenced_unless_verbose(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    data = tmp_path / "topics.csv"
    texts, labels = topic_texts(24, seed=5)
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))

    quiet = _evaluate(tiny_classifier_trained, data)
    verbose = _evaluate(tiny_classifier_trained, data, "--verbose")

    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert "Loading weights" in verbose.stderr, "the noise this test guards against is gone"
    assert "Loading weights" not in quiet.stderr
    assert "accuracy" in quiet.stdout, "results are still printed"
