"""Session fixtures: tiny trained classifier and NER artifacts, exported to ONNX fp32 + int8.

`tiny_classifier_artifact` and `tiny_ner_artifact` are shared by the whole session: copy them
(shutil.copytree) before changing any file. The `*_trained` fixtures are the same models before
export, for tests of the export itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.tiny import (
    FILLER,
    NER_LABELS,
    ORGS,
    PEOPLE,
    PLACES,
    TOPIC_WORDS,
    TOPICS,
    VERBS,
    build_tiny_classifier,
    build_tiny_ner,
    ner_sentences,
    topic_texts,
)

__all__ = [
    "FILLER",
    "NER_LABELS",
    "ORGS",
    "PEOPLE",
    "PLACES",
    "TOPICS",
    "TOPIC_WORDS",
    "VERBS",
    "build_tiny_classifier",
    "build_tiny_ner",
    "ner_sentences",
    "topic_texts",
]


@pytest.fixture(scope="session")
def tiny_classifier_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny topic classifier artifact (labels World/Sports/Business/Sci/Tech), no ONNX."""
    return build_tiny_classifier(tmp_path_factory.mktemp("artifacts") / "tiny-classifier")


@pytest.fixture(scope="session")
def tiny_ner_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny PER/LOC/ORG tagger artifact (IOB2 labels), no ONNX."""
    return build_tiny_ner(tmp_path_factory.mktemp("artifacts") / "tiny-ner")


@pytest.fixture(scope="session")
def tiny_classifier_artifact(
    tiny_classifier_trained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny classifier exported to model.onnx + model.int8.onnx, gates passed. Read-only."""
    from training.export import EvalSample, export_artifact

    out = tmp_path_factory.mktemp("exported") / "tiny-classifier"
    shutil.copytree(tiny_classifier_trained, out)
    texts, labels = topic_texts(128, seed=2)
    export_artifact(out, eval_data=EvalSample.from_labelled(texts, labels, TOPICS))
    return out


@pytest.fixture(scope="session")
def tiny_ner_artifact(tiny_ner_trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny tagger exported to model.onnx + model.int8.onnx, gates passed. Read-only."""
    from training.export import EvalSample, export_artifact

    out = tmp_path_factory.mktemp("exported") / "tiny-ner"
    shutil.copytree(tiny_ner_trained, out)
    words, tags = ner_sentences(128, seed=2)
    export_artifact(out, eval_data=EvalSample(source="generated", words=words, tags=tags))
    return out
