"""bench/text_length.py on the tiny classifier: every policy, length and batch measured, texts
of exactly the asked length, a table, a JSON report and a PNG."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "text_length.py"


def _bench_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/text_length.py as a module (bench/ is no package); its dataclasses need it in
    sys.modules while it loads."""
    spec = importlib.util.spec_from_file_location("bench_text_length", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_texts_are_cut_to_exactly_the_asked_number_of_tokens(
    tiny_classifier_artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench_module(monkeypatch)
    text, source = bench.corpus(tmp_path / "absent.csv")
    assert source.startswith("generated")
    tokenizer_json = tiny_classifier_artifact / "tokenizer.json"
    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    for tokens in (64, 300):
        texts = bench.exact_length_texts(tokenizer_json, text, tokens, 5)
        assert len(set(texts)) == 5
        assert {len(tok.encode(t, add_special_tokens=False).ids) for t in texts} == {tokens}


def test_every_policy_length_and_batch_is_measured_with_a_table_json_and_plot(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    out, png = tmp_path / "length.json", tmp_path / "length.png"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--model", str(tiny_classifier_artifact),
         "--lengths", "32,256", "--batches", "4,1", "--texts", "8", "--repeat", "1",
         "--threads", "1", "--json", str(out), "--plot", str(png)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "texts/s" in proc.stdout and png.stat().st_size > 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["model"]["max_length"] == 64 and report["model"]["method"] == "classify"
    results = {(r["policy"], r["tokens"], r["batch"]): r for r in report["results"]}
    assert set(results) == {
        (p, n, b) for p in ("truncate", "head_tail", "chunks") for n in (32, 256) for b in (4, 1)
    }
    assert all(r["texts_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] for r in results.values())
    # One backend row a text but for chunks of a text past max_length (64).
    rows = {key: r["rows_per_text"] for key, r in results.items()}
    assert {v for (p, _, _), v in rows.items() if p != "chunks"} == {1.0}
    assert rows[("chunks", 32, 4)] == 1.0 and rows[("chunks", 256, 4)] > 4
    assert results[("truncate", 256, 4)]["vs_truncate"] == 1.0
