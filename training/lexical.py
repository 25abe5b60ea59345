"""Fit a classifier's lexical expert (TF-IDF + logistic regression); attach it to the artifact."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from inference import LexicalExpert, fuse
from schemas import FileRole, LexicalFusion, ModelManifest, TaskKind
from schemas.artifact import read_manifest, with_files, write_manifest
from training.data import LabelledTexts
from training.errors import ConfigError

log = structlog.get_logger(__name__)

LEXICAL_FILE = "lexical.npz"
#: Inverse regularisation strengths tried by cross-validation on the training rows.
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0)
#: Fusion weights tried on the validation split; 0 is the encoder alone.
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
CV_FOLDS = 5
#: C when no cross-validation is possible (fewer than two classes with two rows).
DEFAULT_C = 10.0


@dataclass
class LexicalFit:
    """A fitted expert, its fusion weight and how the choice was made."""

    expert: LexicalExpert
    weight: float
    c: float
    #: Validation accuracy by weight (0 = the encoder alone).
    validation: dict[float, float]

    @property
    def report(self) -> dict[str, Any]:
        """What the manifest's metrics record of the fit."""
        return {
            "weight": self.weight,
            "c": self.c,
            "features": len(self.expert.vocabulary),
            "validation_accuracy_by_weight": {str(w): a for w, a in self.validation.items()},
            "validation_accuracy_encoder_only": self.validation[0.0],
            "validation_accuracy_fused": self.validation[self.weight],
        }


def lexical_limits(train: LabelledTexts) -> list[str]:
    """What the training rows will cost the expert, one warning each, said before the long
    encoder run: a class with one row is left out of the cross-validation that chooses C, a
    class with none leaves no expert at all (its column could only be made up)."""
    counts = np.bincount(train.labels, minlength=len(train.label_names))
    names = train.label_names
    missing = [repr(names[i]) for i in np.flatnonzero(counts == 0)]
    single = [repr(names[i]) for i in np.flatnonzero(counts == 1)]
    if missing:
        return [
            f"class(es) {', '.join(missing)} have no training row: no lexical expert will be "
            "fitted (--no-lexical skips it)"
        ]
    if single:
        return [
            f"class(es) {', '.join(single)} have one training row: the lexical expert chooses "
            "its regularisation by cross-validation without them"
        ]
    return []


def fit_lexical(
    train: LabelledTexts, val: LabelledTexts, val_probs: Any, *, seed: int
) -> LexicalFit | None:
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + logistic regression on `train`, C by
    cross-validated log-loss on `train` alone, then the fusion weight on `val` (the encoder's
    probabilities `val_probs`) by accuracy, ties going to the smaller weight. Classes with one
    row sit out the cross-validation (fitted in after it); a class with no row means no
    expert (None), as `lexical_limits` warns."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if train.pairs is not None:
        raise ConfigError("a lexical expert reads single texts; sentence pairs are not supported")
    counts = np.bincount(train.labels, minlength=len(train.label_names))
    if counts.min() == 0:
        log.info("lexical.skipped", reason="a class has no training row", counts=counts.tolist())
        return None
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
    features = vectorizer.fit_transform(train.texts)
    labels = np.asarray(train.labels)
    cross_validated = counts[labels] >= 2
    if np.count_nonzero(counts >= 2) < 2:
        # Cross-validation needs two classes of two rows: fall back to the grid's middle.
        c = DEFAULT_C
        classifier = LogisticRegression(C=c, max_iter=2000).fit(features, labels)
    elif cross_validated.all():
        classifier = _cross_validated(features, labels, seed=seed)
        c = float(np.ravel(classifier.C_)[0])
    else:
        chosen = _cross_validated(features[cross_validated], labels[cross_validated], seed=seed)
        c = float(np.ravel(chosen.C_)[0])
        classifier = LogisticRegression(C=c, max_iter=2000).fit(features, labels)
    expert = LexicalExpert.from_sklearn(vectorizer, classifier)
    log_lexical = expert.log_proba(val.texts)
    gold = np.asarray(val.labels)
    accuracy = {
        w: float((fuse(val_probs, log_lexical, w).argmax(axis=1) == gold).mean())
        for w in WEIGHT_GRID
    }
    weight = max(WEIGHT_GRID, key=lambda w: (accuracy[w], -w))
    return LexicalFit(expert, weight, c, accuracy)


def _cross_validated(features: Any, labels: Any, *, seed: int) -> Any:
    """Logistic regression with C chosen from C_GRID by stratified cross-validated log-loss
    (as many folds as the rarest class allows, at most CV_FOLDS)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(CV_FOLDS, np.bincount(labels)[np.unique(labels)].min()))
    with warnings.catch_warnings():
        # scikit-learn 1.9 announces new defaults (l1_ratios, fitted attributes) for 1.10; the
        # options that silence it do not exist in the older releases this project supports.
        warnings.simplefilter("ignore", FutureWarning)
        return LogisticRegressionCV(
            Cs=list(C_GRID),
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            scoring="neg_log_loss",
            max_iter=2000,
        ).fit(features, labels)


def attach_lexical(root: Path, fit: LexicalFit, manifest: ModelManifest) -> ModelManifest:
    """Write the expert into the artifact at `root` and record it in the manifest (checksum
    and all); a weight of 0 (no gain on validation) removes any expert instead."""
    from training.artifact import METRICS_FILE, next_version

    metrics = {**manifest.metrics, "lexical": fit.report}
    # A new version: the stream and the API reload an artifact whose version changed.
    manifest = manifest.model_copy(update={"version": next_version(manifest.version)})
    path = root / LEXICAL_FILE
    if fit.weight == 0.0:
        files = [f for f in manifest.files if f.role is not FileRole.LEXICAL]
        path.unlink(missing_ok=True)
        updated = manifest.model_copy(update={"lexical": None, "files": files, "metrics": metrics})
    else:
        fit.expert.save(path)
        fusion = LexicalFusion(
            file=LEXICAL_FILE, weight=fit.weight, c=fit.c, features=len(fit.expert.vocabulary)
        )
        updated = with_files(
            manifest.model_copy(update={"lexical": fusion, "metrics": metrics}),
            root,
            {path: FileRole.LEXICAL},
        )
    metrics_file = root / METRICS_FILE
    if any(f.path == metrics_file.name for f in updated.files):
        metrics_file.write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")
        updated = with_files(updated, root, {metrics_file: FileRole.METRICS})
    write_manifest(updated, root)
    log.info("lexical.attached", artifact=str(root), weight=fit.weight, c=fit.c)
    return updated


def check_lexical_task(manifest: ModelManifest, root: Path) -> None:
    """Refuse artifacts a lexical expert cannot serve beside: it scores the classes of a single
    text, so a sequence classifier or the class half of a classify-and-tag model."""
    if manifest.task is not TaskKind.CLASSIFICATION and not (
        manifest.task is TaskKind.CLASSIFY_AND_TAG and manifest.class_labels
    ):
        raise ConfigError(
            f"{root} is a {manifest.task.value} model; a lexical expert serves beside a "
            "single-text classifier (or a classify-and-tag model's classes) only"
        )


def add_lexical(
    root: Path,
    train: LabelledTexts,
    val: LabelledTexts,
    test: LabelledTexts | None = None,
    *,
    seed: int = 42,
) -> ModelManifest:
    """Fit the lexical expert of the classifier artifact at `root` on the rows it was trained
    on (`train`, `val` as carved then) and attach it; with `test` (sequence classifiers), the
    artifact's test figures and eval/ reports become the fused model's, the encoder's kept as
    `test_encoder_only`. A classify-and-tag model's classes are read at [CLS], as served."""
    from training._pipeline import EVAL_DIR, report_files
    from training.artifact import load_artifact
    from training.evaluate_classifiers import as_classifier
    from training.evaluation import predict_proba, report_classification

    manifest = read_manifest(root, verify=False)  # load_artifact verifies
    check_lexical_task(manifest, root)
    model, tokenizer, view = as_classifier(root, *load_artifact(root))
    if train.label_names != view.labels:
        raise ConfigError(
            f"{root} has classes {view.labels}, the data {train.label_names}: give the "
            "label names the model was trained with"
        )
    if manifest.task is not TaskKind.CLASSIFICATION:
        test = None  # its test figures hold both tasks; `textroute evaluate` scores the classes

    def probabilities(data: LabelledTexts, what: str) -> Any:
        return predict_proba(
            model, tokenizer, data.texts, max_length=manifest.max_length, progress=what
        )

    fit = fit_lexical(train, val, probabilities(val, "validation"), seed=seed)
    if fit is None:  # lexical_limits said why, before training
        return manifest
    if test is not None and fit.weight > 0:
        probs = probabilities(test, "test")
        fused = fuse(probs, fit.expert.log_proba(test.texts), fit.weight)
        metrics = {**manifest.metrics}
        metrics["test_encoder_only"] = report_classification(
            test.texts, test.labels, probs, manifest.labels, None
        )
        metrics["test"] = report_classification(
            test.texts, test.labels, fused, manifest.labels, root / EVAL_DIR
        )
        updated = manifest.model_copy(update={"metrics": metrics})
        manifest = with_files(updated, root, report_files(root))
    return attach_lexical(root, fit, manifest)


__all__ = [
    "LEXICAL_FILE",
    "LexicalFit",
    "add_lexical",
    "attach_lexical",
    "check_lexical_task",
    "fit_lexical",
    "lexical_limits",
]
