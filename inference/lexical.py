"""A classifier's lexical expert: TF-IDF word n-grams through a linear layer, fused in log space."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import ArtifactUnusableError
from schemas import ModelManifest, TaskKind

#: The arrays of the expert's file, beside a JSON `config` (n-gram range, lowercasing, tf).
_ARRAYS = ("vocabulary", "idf", "coef", "intercept")
#: scikit-learn's default token_pattern, which every expert is fitted with.
_TOKENS = re.compile(r"(?u)\b\w\w+\b")


class LexicalExpert:
    """Log-probabilities of the classes from word n-grams: the features of scikit-learn's
    TfidfVectorizer (counts, optional 1 + log tf, times idf, L2-normalised) through a
    multinomial logistic regression.

    It is stored as plain arrays (no pickle, so loading an artifact runs no code and survives
    scikit-learn upgrades) and served without scikit-learn: the vectorizer's analysis (lowercase,
    its default token pattern, word n-grams) and the sparse product are a few lines here, and a
    serving process does not hold scikit-learn and SciPy (about 150 MB resident).
    """

    def __init__(
        self,
        vocabulary: Sequence[str],
        idf: Any,
        coef: Any,
        intercept: Any,
        *,
        ngram_range: tuple[int, int] = (1, 2),
        lowercase: bool = True,
        sublinear_tf: bool = True,
    ) -> None:
        self.vocabulary = list(vocabulary)
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.lowercase = lowercase
        self.sublinear_tf = sublinear_tf
        n = len(self.vocabulary)
        if self.idf.shape != (n,) or self.coef.ndim != 2 or self.coef.shape[1] != n:
            raise ValueError(
                f"lexical expert arrays disagree: {n} terms, idf {self.idf.shape}, "
                f"coef {self.coef.shape}"
            )
        if self.intercept.shape != (self.coef.shape[0],):
            raise ValueError(f"intercept {self.intercept.shape} for {self.coef.shape[0]} classes")
        self._index = {term: i for i, term in enumerate(self.vocabulary)}
        # (vocabulary, classes), contiguous: the rows of a text's n-grams are gathered at once.
        self._weights_by_term = np.ascontiguousarray(self.coef.T)

    @property
    def num_classes(self) -> int:
        return int(self.coef.shape[0])

    @classmethod
    def from_sklearn(cls, vectorizer: Any, classifier: Any) -> LexicalExpert:
        """The expert of a fitted TfidfVectorizer (L2 norm, idf on) and LogisticRegression."""
        classes = list(classifier.classes_)
        if classes != list(range(len(classes))):
            # Columns must line up with the model's labels, which are indexes 0..n-1.
            raise ValueError(f"fit the classifier on label indexes 0..n-1, not {classes}")
        coef, intercept = classifier.coef_, classifier.intercept_
        if coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: logit of class 1
            coef, intercept = (
                np.vstack([-coef / 2, coef / 2]),
                np.hstack([-intercept / 2, intercept / 2]),
            )
        return cls.from_tfidf(vectorizer, coef, intercept)

    @classmethod
    def from_tfidf(cls, vectorizer: Any, coef: Any, intercept: Any) -> LexicalExpert:
        """The expert of a fitted TfidfVectorizer (L2 norm, idf on) and a linear layer over its
        features: (classes, vocabulary) weights and (classes,) biases in the vectorizer's
        column order (a multi-label model's one-vs-rest regressions, one row a label)."""
        if vectorizer.norm != "l2" or not vectorizer.use_idf:
            raise ValueError("the lexical expert reads L2-normalised TF-IDF features only")
        terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
        return cls(
            terms,
            vectorizer.idf_,
            coef,
            intercept,
            ngram_range=vectorizer.ngram_range,
            lowercase=vectorizer.lowercase,
            sublinear_tf=vectorizer.sublinear_tf,
        )

    def terms(self, text: str) -> list[str]:
        """The text's n-grams as the fitted TfidfVectorizer saw them (unknown ones too)."""
        tokens = _TOKENS.findall(text.lower() if self.lowercase else text)
        low, high = self.ngram_range
        grams = list(tokens) if low == 1 else []
        for n in range(max(low, 2), min(high, len(tokens)) + 1):
            grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        return grams

    def features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The TF-IDF rows of `texts` in CSR form, (indptr, columns, values): each row's known
        n-grams, (1 + log) counts times idf, scaled to unit L2 norm."""
        index = self._index
        columns: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            seen: dict[int, int] = {}
            for term in self.terms(text):
                column = index.get(term)
                if column is not None:
                    seen[column] = seen.get(column, 0) + 1
            columns.extend(seen)
            counts.extend(seen.values())
            indptr.append(len(columns))
        cols = np.asarray(columns, dtype=np.int64)
        values = np.asarray(counts, dtype=np.float64)
        if self.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        values *= self.idf[cols]
        starts = np.asarray(indptr, dtype=np.int64)
        lengths = np.diff(starts)
        norms = np.zeros(len(lengths))
        filled = lengths > 0
        if values.size:
            norms[filled] = np.sqrt(np.add.reduceat(values * values, starts[:-1][filled]))
        values /= np.repeat(np.where(filled, norms, 1.0), lengths)
        return starts, cols, values

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, classes) linear scores: a multi-label expert's log-odds of each label."""
        starts, cols, values = self.features(texts)
        lengths = np.diff(starts)
        out = np.tile(self.intercept, (len(lengths), 1))
        filled = lengths > 0
        if values.size:
            terms = self._weights_by_term[cols] * values[:, None]
            out[filled] += np.add.reduceat(terms, starts[:-1][filled], axis=0)
        return out

    def log_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, classes) log-probabilities; a text with no known n-gram gets the prior."""
        scores = self.scores(texts)
        shifted = scores - scores.max(axis=1, keepdims=True)
        out: np.ndarray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return out

    def save(self, path: Path | str) -> Path:
        """Write the expert as one compressed .npz of plain arrays (the vocabulary as UTF-8)."""
        target = Path(path)
        config = {
            "ngram_range": list(self.ngram_range),
            "lowercase": self.lowercase,
            "sublinear_tf": self.sublinear_tf,
        }
        # Terms never hold a newline (the token pattern is words), so one joined buffer keeps
        # the file small where a fixed-width string array would pad every term to the longest.
        vocabulary = np.frombuffer("\n".join(self.vocabulary).encode("utf-8"), dtype=np.uint8)
        with target.open("wb") as fh:
            np.savez_compressed(
                fh,
                config=np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8),
                vocabulary=vocabulary,
                idf=self.idf.astype(np.float32),
                coef=self.coef.astype(np.float32),
                intercept=self.intercept.astype(np.float32),
            )
        return target

    @classmethod
    def load(cls, path: Path | str) -> LexicalExpert:
        """Read a saved expert; an unreadable or inconsistent file is an ArtifactUnusableError."""
        source = Path(path)
        try:
            with np.load(source, allow_pickle=False) as data:
                arrays = {name: data[name] for name in ("config", *_ARRAYS)}
            config = json.loads(arrays["config"].tobytes().decode("utf-8"))
            terms = arrays["vocabulary"].tobytes().decode("utf-8").split("\n")
            return cls(
                terms,
                arrays["idf"],
                arrays["coef"],
                arrays["intercept"],
                ngram_range=tuple(config["ngram_range"]),
                lowercase=bool(config["lowercase"]),
                sublinear_tf=bool(config["sublinear_tf"]),
            )
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise ArtifactUnusableError(
                f"lexical expert {source} cannot be read ({exc}); re-attach it with "
                "`textroute train lexical` or remove `lexical` from the manifest"
            ) from exc


@dataclass(frozen=True)
class WeightedExpert:
    """An artifact's expert with its fusion weight: what serving applies to the encoder."""

    expert: LexicalExpert
    weight: float
    #: Independent labels (a multi-label model): the labels' log-odds are fused one by one.
    multi_label: bool = False

    def fuse(self, probs: Any, texts: Sequence[str]) -> np.ndarray:
        """The encoder's (texts, classes) probabilities fused with the expert's on `texts`."""
        if self.multi_label:
            return fuse_log_odds(probs, self.expert.scores(texts), self.weight)
        return fuse(probs, self.expert.log_proba(texts), self.weight)


def load_lexical(root: Path, manifest: ModelManifest) -> WeightedExpert | None:
    """The artifact's lexical expert and weight, or None when it has none (checksums already
    verified); an expert whose classes are not the model's is an ArtifactUnusableError."""
    if manifest.lexical is None:
        return None
    expert = LexicalExpert.load(root / manifest.lexical.file)
    classes = len(manifest.class_labels or manifest.labels)  # a classify-and-tag: its classes
    if expert.num_classes != classes:
        raise ArtifactUnusableError(
            f"artifact {root}: the lexical expert has {expert.num_classes} classes, the model "
            f"{classes}; re-attach it with `textroute train lexical {root}`"
        )
    multi_label = manifest.task is TaskKind.MULTI_LABEL
    return WeightedExpert(expert, manifest.lexical.weight, multi_label=multi_label)


def fuse(probs: Any, log_lexical: Any, weight: float) -> np.ndarray:
    """The product of experts: softmax(log probs + weight * lexical log-probabilities)."""
    scores = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None))
    scores = scores + weight * np.asarray(log_lexical, dtype=np.float64)
    scores -= scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores)
    out: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return out


def fuse_log_odds(probs: Any, scores: Any, weight: float) -> np.ndarray:
    """Independent labels' product of experts: sigmoid(logit p + weight * the expert's
    log-odds), label by label (a multi-label model's per-label sigmoids)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    z = np.log(p) - np.log1p(-p) + weight * np.asarray(scores, dtype=np.float64)
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -z))
    return out
