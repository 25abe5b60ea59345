"""`textroute demo` end to end with ready models: broker, worker, messages, tables, clean stop."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from stream.demo import DemoSettings, run_demo
from stream.errors import StreamConfigError


@pytest.mark.integration
def test_demo_routes_every_message_shows_the_tables_and_stops_everything(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_classifier_artifact, models / "classifier")
    shutil.copytree(tiny_ner_artifact, models / "ner")
    out = io.StringIO()
    settings = DemoSettings(
        messages=24, malformed_ratio=0.25, models_dir=models, work_dir=tmp_path / "runs"
    )

    code = run_demo(settings, Console(file=out, width=200))

    text = out.getvalue()
    assert code == 0, text
    assert "classifier: using" in text and "ner: using" in text
    assert "Routed events" in text and "Dead letters" in text
    assert re.search(r"│ missing\s+│\s+0 │", text), "every message routed or dead-lettered"
    assert re.search(r"│ dead letter: \w+", text), "the malformed ones are shown"
    assert "worker stopped (exit 0)" in text and "broker stopped" in text


def test_demo_without_models_or_data_says_what_to_provide(tmp_path: Path) -> None:
    settings = DemoSettings(models_dir=tmp_path / "none", data_dir=tmp_path / "no-data")
    with pytest.raises(StreamConfigError, match="TEXTROUTE_DEMO_DATA_DIR"):
        run_demo(settings, Console(file=io.StringIO()))
