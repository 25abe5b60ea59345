"""Session fixtures: tiny trained classifier and NER artifacts, exported to ONNX fp32 + int8.

`tiny_classifier_artifact` and `tiny_ner_artifact` are shared by the whole session: copy them
(shutil.copytree) before changing any file. The `*_trained` fixtures are the same models before
export, for tests of the export itself.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_tiny_base_model

# Four topics whose keywords are all in the tiny vocabulary (tests/conftest.py::TINY_VOCAB).
TOPIC_WORDS = {
    "World": ["war", "president", "minister", "election", "police", "government", "troops"],
    "Sports": ["game", "team", "win", "season", "coach", "player", "match", "league", "cup"],
    "Business": ["market", "stock", "shares", "profit", "bank", "price", "oil", "sales"],
    "Sci/Tech": ["software", "internet", "computer", "space", "nasa", "science", "chip", "web"],
}
TOPICS = list(TOPIC_WORDS)
FILLER = ["the", "a", "of", "to", "in", "and", "is", "on", "for", "with", "at", "by", "from"]

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
PEOPLE = [["john", "smith"], ["mary"], ["mary", "smith"], ["john"]]
PLACES = [["paris"], ["london"], ["berlin"]]
ORGS = [["google"], ["apple"], ["reuters"]]
VERBS = ["visited", "works", "lives", "said"]


def topic_texts(n: int, *, seed: int) -> tuple[list[str], list[str]]:
    """`n` short texts with their topic: three to five topic words among filler words."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        words = rng.sample(TOPIC_WORDS[topic], rng.randint(3, 5))
        words += rng.sample(FILLER, rng.randint(1, 4))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topic)
    return texts, labels


def ner_sentences(n: int, *, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`n` sentences like 'john smith visited paris for google' with their IOB2 tags."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words: list[str] = []
        sent_tags: list[str] = []
        parts = [
            ([], "O"),
            (rng.choice(PEOPLE), "PER"),
            ([rng.choice(VERBS)], "O"),
            (rng.choice(PLACES), "LOC"),
            ([], "O"),
            (rng.choice(ORGS), "ORG"),
            ([], "O"),
        ]
        # Filler words before, between and after the entities.
        for slot, (lo, hi) in zip((0, 4, 6), ((0, 2), (1, 2), (0, 2)), strict=True):
            parts[slot] = (rng.sample(FILLER, rng.randint(lo, hi)), "O")
        for span, kind in parts:
            words.extend(span)
            if kind == "O":
                sent_tags.extend(["O"] * len(span))
            else:
                sent_tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1))
        sentences.append(words)
        tags.append(sent_tags)
    return sentences, tags


def _train(model: Any, batches: list[dict[str, Any]], steps: int) -> None:
    import torch

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def build_tiny_classifier(out: Path, *, steps: int = 60) -> Path:
    """Train a tiny BERT topic classifier for a few seconds and save it as an artifact."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from schemas import DataRef, ModelManifest, TaskKind
    from training.artifact import save_artifact

    base = build_tiny_base_model(out.parent / f"{out.name}-base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(TOPICS),
        id2label=dict(enumerate(TOPICS)),
        label2id={t: i for i, t in enumerate(TOPICS)},
    )
    texts, labels = topic_texts(256, seed=1)
    batches = []
    for i in range(0, len(texts), 32):
        enc = tokenizer(texts[i : i + 32], padding=True, return_tensors="pt")
        import torch

        enc["labels"] = torch.tensor([TOPICS.index(lab) for lab in labels[i : i + 32]])
        batches.append(dict(enc))
    _train(model, batches, steps)
    manifest = ModelManifest(
        name="tiny-topics",
        version="20250101T000000Z",
        task=TaskKind.CLASSIFICATION,
        labels=TOPICS,
        base_model=str(base),
        max_length=64,
        text_columns=["text"],
        train_data=DataRef(source="generated:topic_texts(seed=1)", rows=len(texts)),
    )
    save_artifact(out, model, tokenizer, manifest)
    shutil.rmtree(base)
    return out


def build_tiny_ner(out: Path, *, steps: int = 60) -> Path:
    """Train a tiny BERT PER/LOC/ORG tagger for a few seconds and save it as an artifact."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from schemas import DataRef, ModelManifest, TaskKind
    from training.artifact import save_artifact

    base = build_tiny_base_model(out.parent / f"{out.name}-base", seed=1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(NER_LABELS),
        id2label=dict(enumerate(NER_LABELS)),
        label2id={t: i for i, t in enumerate(NER_LABELS)},
    )
    sentences, tags = ner_sentences(256, seed=1)
    batches = []
    for i in range(0, len(sentences), 32):
        enc = tokenizer(
            sentences[i : i + 32], is_split_into_words=True, padding=True, return_tensors="pt"
        )
        label_rows = []
        for j, sent_tags in enumerate(tags[i : i + 32]):
            previous = None
            row = []
            for w in enc.word_ids(j):
                # Only a word's first sub-token is trained, as the training package does.
                row.append(-100 if w is None or w == previous else NER_LABELS.index(sent_tags[w]))
                previous = w
            label_rows.append(row)
        enc["labels"] = torch.tensor(label_rows)
        batches.append(dict(enc))
    _train(model, batches, steps)
    manifest = ModelManifest(
        name="tiny-ner",
        version="20250101T000000Z",
        task=TaskKind.TOKEN_CLASSIFICATION,
        labels=NER_LABELS,
        base_model=str(base),
        max_length=64,
        text_columns=["tokens"],
        train_data=DataRef(source="generated:ner_sentences(seed=1)", rows=len(sentences)),
    )
    save_artifact(out, model, tokenizer, manifest)
    shutil.rmtree(base)
    return out


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
