"""Serving a multi-label artifact: a sigmoid per label, every label at or above its threshold,
thresholds validated at load, torch and ONNX alike (real tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inference import InferenceSettings, Predictor, load_predictor
from schemas import Classification
from schemas.artifact import read_manifest, write_manifest
from schemas.errors import ArtifactError
from training.tiny import TOPICS, build_tiny_multilabel, multilabel_texts

SPORTS_AND_BUSINESS = "the team win the game with market shares and bank profit"


@pytest.fixture(scope="module")
def multilabel_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_multilabel(tmp_path_factory.mktemp("ml") / "tiny-multilabel")


@pytest.fixture(scope="module")
def multilabel_exported(multilabel_trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import EvalSample, export_artifact

    out = tmp_path_factory.mktemp("ml-onnx") / "tiny-multilabel"
    shutil.copytree(multilabel_trained, out)
    texts, sets = multilabel_texts(96, seed=5)
    sample = EvalSample(
        source="generated",
        texts=texts,
        label_sets=[[TOPICS.index(t) for t in s] for s in sets],
    )
    export_artifact(out, eval_data=sample)
    return out


def _load(root: Path, **settings: object) -> Predictor:
    predictor = load_predictor(root, InferenceSettings.model_validate(settings))
    assert isinstance(predictor, Predictor)
    return predictor


def _one(predictor: Predictor, text: str) -> Classification:
    (result,) = predictor.classify([text])
    assert isinstance(result, Classification)
    return result


def test_multilabel_classify_returns_every_label_at_or_above_its_threshold_best_first(
    multilabel_trained: Path,
) -> None:
    predictor = _load(multilabel_trained, backend="torch", precision="fp32", top_k=10)
    result = _one(predictor, SPORTS_AND_BUSINESS)
    thresholds = dict(zip(TOPICS, predictor.manifest.thresholds or [], strict=True))
    assert result.labels is not None
    assert {s.label for s in result.labels} == {"Sports", "Business"}
    # Exactly the labels of the full score list that reach their threshold, in score order.
    assert result.labels == [s for s in result.top_k if s.score >= thresholds[s.label]]
    assert [s.score for s in result.labels] == sorted(
        (s.score for s in result.labels), reverse=True
    )
    assert (result.label, result.score) == (result.top_k[0].label, result.top_k[0].score)


def test_multilabel_scores_are_independent_sigmoids_of_the_model_logits(
    multilabel_trained: Path,
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    predictor = _load(multilabel_trained, backend="torch", precision="fp32", top_k=10)
    result = _one(predictor, SPORTS_AND_BUSINESS)
    model = AutoModelForSequenceClassification.from_pretrained(multilabel_trained).eval()
    tokenizer = AutoTokenizer.from_pretrained(multilabel_trained)
    with torch.no_grad():
        logits = model(**tokenizer([SPORTS_AND_BUSINESS], return_tensors="pt")).logits[0]
    expected = dict(zip(TOPICS, torch.sigmoid(logits).tolist(), strict=True))
    assert {s.label: s.score for s in result.top_k} == pytest.approx(expected, abs=1e-5)
    # Two labels near 1 at once: not a softmax, whose scores would sum to 1.
    assert sum(s.score for s in result.top_k) > 1.5


def test_multilabel_thresholds_are_read_per_label(multilabel_trained: Path, tmp_path: Path) -> None:
    root = tmp_path / "model"
    shutil.copytree(multilabel_trained, root)
    manifest = read_manifest(root)
    # World is far from this text, but a threshold of 0.01 lets it in; Business at 0.99 leaves.
    strict = {"World": 0.01, "Sports": 0.5, "Business": 0.99, "Sci/Tech": 0.5}
    write_manifest(manifest.model_copy(update={"thresholds": [strict[t] for t in TOPICS]}), root)
    result = _one(_load(root, backend="torch", precision="fp32", top_k=10), SPORTS_AND_BUSINESS)
    scores = {s.label: s.score for s in result.top_k}
    assert result.labels is not None
    assert {s.label for s in result.labels} == {t for t in TOPICS if scores[t] >= strict[t]}
    assert "Sports" in {s.label for s in result.labels}
    assert scores["Business"] < 0.99 and "Business" not in {s.label for s in result.labels}


@pytest.mark.parametrize(
    "thresholds",
    [[0.5, 0.5, 0.5], [0.5, 0.5, 1.0, 0.5], None],
    ids=["one-missing", "out-of-range", "none"],
)
def test_loading_a_multilabel_artifact_with_bad_thresholds_is_an_artifact_error(
    multilabel_trained: Path, tmp_path: Path, thresholds: list[float] | None
) -> None:
    root = tmp_path / "model"
    shutil.copytree(multilabel_trained, root)
    raw = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    raw["thresholds"] = thresholds
    (root / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ArtifactError, match="threshold"):
        load_predictor(root, InferenceSettings(backend="torch", precision="fp32"))


def test_single_label_classifier_answers_no_label_set(tiny_classifier_trained: Path) -> None:
    result = _one(_load(tiny_classifier_trained, backend="torch", precision="fp32"), "the game")
    assert result.labels is None


def test_multilabel_onnx_int8_serves_the_labels_torch_serves(multilabel_exported: Path) -> None:
    texts, _ = multilabel_texts(24, seed=9)
    onnx = _load(multilabel_exported, backend="onnx", precision="int8", top_k=10)
    torch_ = _load(multilabel_exported, backend="torch", precision="fp32", top_k=10)
    assert onnx.backend_name == "onnx-int8"
    same = 0
    for a, b in zip(onnx.classify(texts), torch_.classify(texts), strict=True):
        assert isinstance(a, Classification) and isinstance(b, Classification)
        assert a.labels is not None and b.labels is not None
        same += {s.label for s in a.labels} == {s.label for s in b.labels}
    assert same >= 22


def test_multilabel_long_text_in_chunks_reads_every_window_not_the_first_only(
    multilabel_trained: Path,
) -> None:
    # Sports fills the first window (64 tokens), business the last ones.
    text = " ".join(["the team win the game"] * 14 + ["stock market bank profit"] * 16)
    settings = {"backend": "torch", "precision": "fp32", "top_k": 10}

    def scores(long_text: str) -> dict[str, float]:
        result = _one(_load(multilabel_trained, long_text=long_text, **settings), text)
        return {s.label: s.score for s in result.top_k}

    first, windows = scores("truncate"), scores("chunks")
    # The mean over the windows: business rises from the first window's score, sports falls,
    # both stay probabilities of their own (not a softmax over the labels).
    assert windows["Business"] > first["Business"] + 0.2
    assert windows["Sports"] < first["Sports"]
    assert all(0.0 < v < 1.0 for v in windows.values())
