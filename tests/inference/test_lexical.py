"""The lexical expert: scikit-learn parity, its file, fusion, and serving beside the encoder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from inference import ArtifactUnusableError, InferenceSettings, Predictor, load_predictor
from inference.lexical import LexicalExpert, fuse
from schemas import Classification, FileRole
from schemas.artifact import read_manifest
from tests.fixtures_artifacts import TOPICS, topic_texts

HELD_OUT = ["the oil market and bank shares fell", "nasa space chip", "zzz qqq", ""]


def _fitted(n_classes: int = 4) -> tuple[TfidfVectorizer, LogisticRegression]:
    texts, names = topic_texts(160, seed=3)
    # Label indexes, as the model's: the expert's columns follow them.
    labels = [TOPICS.index(name) for name in names]
    keep = [i for i, label in enumerate(labels) if label < n_classes]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([texts[i] for i in keep])
    classifier = LogisticRegression(C=10, max_iter=1000).fit(features, [labels[i] for i in keep])
    return vectorizer, classifier


@pytest.mark.parametrize("n_classes", [4, 2], ids=["four-classes", "two-classes"])
def test_expert_gives_the_log_probabilities_of_scikit_learn(n_classes: int) -> None:
    vectorizer, classifier = _fitted(n_classes)
    expert = LexicalExpert.from_sklearn(vectorizer, classifier)
    expected = classifier.predict_log_proba(vectorizer.transform(HELD_OUT))
    assert expert.num_classes == n_classes
    np.testing.assert_allclose(expert.log_proba(HELD_OUT), expected, atol=1e-9)


def test_text_without_a_known_ngram_gets_the_prior_of_the_intercepts() -> None:
    expert = LexicalExpert.from_sklearn(*_fitted())
    intercept = expert.intercept - expert.intercept.max()
    prior = intercept - np.log(np.exp(intercept).sum())
    np.testing.assert_allclose(expert.log_proba(["zzz qqq"])[0], prior, atol=1e-12)


def test_saved_expert_loads_back_without_pickle_and_scores_the_same(tmp_path: Path) -> None:
    expert = LexicalExpert.from_sklearn(*_fitted())
    path = expert.save(tmp_path / "lexical.npz")
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert {"vocabulary", "idf", "coef", "intercept", "config"} <= set(data.files)
    loaded = LexicalExpert.load(path)
    assert loaded.vocabulary == expert.vocabulary
    # Stored as float32: the log-probabilities agree to float32 precision.
    np.testing.assert_allclose(loaded.log_proba(HELD_OUT), expert.log_proba(HELD_OUT), atol=1e-5)


# Case, accents, digits, punctuation, a one-letter word, repeats, no known word at all.
ODD_TEXTS = [
    "Oil OIL oil: prices rose 3.5% in Zürich, São Paulo and NEW YORK",
    "a I x -- don't stop, e-mail re: RE: fwd",
    "bank bank bank shares shares",
    "日本 の 銀行 株価",
    "",
    "zzz qqq",
]


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (1, 3), (2, 2)])
@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("sublinear_tf", [True, False])
def test_expert_scores_are_the_linear_layer_over_scikit_learns_tfidf_features(
    ngram_range: tuple[int, int], lowercase: bool, sublinear_tf: bool
) -> None:
    texts, _ = topic_texts(120, seed=5)
    vectorizer = TfidfVectorizer(
        ngram_range=ngram_range, lowercase=lowercase, sublinear_tf=sublinear_tf
    )
    vectorizer.fit(texts + ODD_TEXTS[:4])
    rng = np.random.default_rng(0)
    coef = rng.normal(size=(3, len(vectorizer.vocabulary_)))
    intercept = rng.normal(size=3)
    expert = LexicalExpert.from_tfidf(vectorizer, coef, intercept)
    held = ODD_TEXTS + texts[:20]
    expected = vectorizer.transform(held) @ coef.T + intercept
    np.testing.assert_allclose(expert.scores(held), expected, atol=1e-9)


def test_serving_an_expert_does_not_load_scikit_learn(tmp_path: Path) -> None:
    path = LexicalExpert.from_sklearn(*_fitted()).save(tmp_path / "lexical.npz")
    code = (
        "import sys; from inference.lexical import LexicalExpert; "
        f"LexicalExpert.load({str(path)!r}).log_proba(['oil prices rose']); "
        "print(sorted({'sklearn', 'scipy'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    # scikit-learn and SciPy hold about 150 MB resident in every worker and API process.
    assert done.stdout.strip() == "[]"


def test_classifier_fit_on_label_names_is_refused_since_columns_would_not_line_up() -> None:
    texts, names = topic_texts(40, seed=4)
    vectorizer = TfidfVectorizer()
    classifier = LogisticRegression().fit(vectorizer.fit_transform(texts), names)
    with pytest.raises(ValueError, match="label indexes"):
        LexicalExpert.from_sklearn(vectorizer, classifier)


def test_unreadable_expert_file_is_an_artifact_error_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "lexical.npz"
    path.write_bytes(b"not an npz file")
    with pytest.raises(ArtifactUnusableError, match="textroute train lexical"):
        LexicalExpert.load(path)


def test_fusion_with_weight_zero_is_the_encoder_and_always_sums_to_one() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    log_lexical = np.log(np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]))
    np.testing.assert_allclose(fuse(probs, log_lexical, 0.0), probs, atol=1e-12)
    fused = fuse(probs, log_lexical, 1.0)
    np.testing.assert_allclose(fused.sum(axis=1), 1.0)
    # A product of experts: 0.7 * 0.1 against 0.2 * 0.8, so the lexical vote wins row 0.
    assert fused[0].argmax() == 1


def _with_expert(art: Path, tmp_path: Path, weight: float) -> Path:
    """A copy of the artifact with a lexical expert fused at `weight`."""
    from training.lexical import LexicalFit, attach_lexical

    root = tmp_path / "with-lexical"
    shutil.copytree(art, root)
    fit = LexicalFit(LexicalExpert.from_sklearn(*_fitted()), weight, 10.0, {0.0: 0.5, weight: 0.9})
    attach_lexical(root, fit, read_manifest(root))
    return root


def test_predictor_serves_the_encoder_fused_with_the_artifacts_expert(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    root = _with_expert(tiny_classifier_artifact, tmp_path, 0.8)
    manifest = read_manifest(root)
    assert manifest.lexical is not None and manifest.lexical.weight == 0.8
    assert manifest.file_for(FileRole.LEXICAL) is not None
    settings = InferenceSettings(backend="onnx", top_k=4)
    served = load_predictor(root, settings)
    alone = Predictor(
        manifest.model_copy(update={"lexical": None}),
        served.backend,
        served._encoder,
        settings,
    )
    texts = ["the team win the game", "stock market bank", "zzz"]
    expert = LexicalExpert.load(root / manifest.lexical.file)
    for text, got, base in zip(texts, served.classify(texts), alone.classify(texts), strict=True):
        assert isinstance(got, Classification) and isinstance(base, Classification)
        encoder = np.array([{s.label: s.score for s in base.top_k}[name] for name in TOPICS])
        expected = fuse(encoder, expert.log_proba([text]), 0.8)[0]
        scores = {s.label: s.score for s in got.top_k}
        np.testing.assert_allclose([scores[name] for name in TOPICS], expected, atol=1e-5)


def test_bad_items_keep_their_errors_beside_fused_results(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    predictor = load_predictor(_with_expert(tiny_classifier_artifact, tmp_path, 0.5))
    results = predictor.classify(["the team win the game", "", 42, "stock market bank"])
    assert [type(r).__name__ for r in results] == [
        "Classification",
        "ItemError",
        "ItemError",
        "Classification",
    ]


def test_expert_with_other_classes_than_the_model_is_refused_at_load(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    from training.lexical import LexicalFit, attach_lexical

    root = tmp_path / "mismatch"
    shutil.copytree(tiny_classifier_artifact, root)
    fit = LexicalFit(LexicalExpert.from_sklearn(*_fitted(2)), 0.5, 10.0, {0.0: 0.5, 0.5: 0.9})
    attach_lexical(root, fit, read_manifest(root))
    with pytest.raises(ArtifactUnusableError, match="2 classes, the model 4"):
        load_predictor(root)


def test_classify_and_tag_fuses_the_classes_and_leaves_the_entities_alone(
    tiny_multitask_artifact: Path, tmp_path: Path
) -> None:
    from inference import MultiTaskPredictor

    root = _with_expert(tiny_multitask_artifact, tmp_path, 0.6)
    manifest = read_manifest(root)
    assert manifest.class_labels == TOPICS
    settings = InferenceSettings(backend="onnx", top_k=4)
    served = load_predictor(root, settings)
    alone = load_predictor(tiny_multitask_artifact, settings)
    assert isinstance(served, MultiTaskPredictor) and isinstance(alone, MultiTaskPredictor)
    texts = ["john smith visited paris for google", "stock market bank profit"]
    expert = LexicalExpert.load(root / "lexical.npz")
    for text, got, base in zip(
        texts, served.classify_and_tag(texts), alone.classify_and_tag(texts), strict=True
    ):
        assert isinstance(got, tuple) and isinstance(base, tuple)
        assert got[1] == base[1]  # the tags are the encoder's
        encoder = np.array([{s.label: s.score for s in base[0].top_k}[name] for name in TOPICS])
        expected = fuse(encoder, expert.log_proba([text]), 0.6)[0]
        scores = {s.label: s.score for s in got[0].top_k}
        np.testing.assert_allclose([scores[name] for name in TOPICS], expected, atol=1e-5)
