"""Session fixtures: a tiny classify-and-tag artifact trained by `train_multitask`, then exported.

Generated data only: topic texts (tests/fixtures_artifacts.py) for the classes, sentences with
people, places and organisations for the tags. `tiny_multitask_artifact` is shared by the
session: copy it before changing any file.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import build_tiny_base_model
from tests.fixtures_artifacts import TOPIC_WORDS, TOPICS, ner_sentences, topic_texts


def write_topics_csv(path: Path, n: int, *, seed: int) -> Path:
    """`n` generated topic texts as a CSV with `text` and `label` columns."""
    texts, labels = topic_texts(n, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def tagged_sentences(n: int, *, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`n` generated PER/LOC/ORG sentences, each ending with two topic words tagged O: the
    tagger learns only from these sentences, so topic words must appear in them to be O."""
    rng = random.Random(seed)
    words, tags = ner_sentences(n, seed=seed)
    topic_words = [w for ws in TOPIC_WORDS.values() for w in ws]
    for sentence, sentence_tags in zip(words, tags, strict=True):
        sentence += rng.sample(topic_words, 2)
        sentence_tags += ["O", "O"]
    return words, tags


def write_tagged_conll(path: Path, n: int, *, seed: int) -> Path:
    """`n` generated sentences (`tagged_sentences`) as a CoNLL file (token, POS, chunk, tag)."""
    words, tags = tagged_sentences(n, seed=seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence, sentence_tags in zip(words, tags, strict=True):
        lines += [f"{w} NN O {t}" for w, t in zip(sentence, sentence_tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_multitask_data(root: Path, *, rows: int = 160) -> tuple[Path, Path, Path]:
    """Training texts, held-out texts and a CoNLL directory (train/valid/test) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    conll = root / "conll"
    conll.mkdir(exist_ok=True)
    write_tagged_conll(conll / "train.txt", rows, seed=0)
    write_tagged_conll(conll / "valid.txt", rows // 4, seed=1)
    write_tagged_conll(conll / "test.txt", rows // 4, seed=2)
    train = write_topics_csv(root / "topics.csv", rows, seed=0)
    test = write_topics_csv(root / "topics_test.csv", rows // 4, seed=3)
    return train, test, conll


def build_tiny_multitask(root: Path, *, epochs: float = 8.0) -> Path:
    """Train a tiny BERT for topics and entities with the real pipeline; the artifact dir."""
    from training.multitask import MultiTaskConfig, train_multitask
    from training.trainer import Hyperparameters

    base = build_tiny_base_model(root / "base", seed=2)
    train, test, conll = write_multitask_data(root / "data")
    cfg = MultiTaskConfig(
        classify_data=str(train),
        classify_eval_data=str(test),
        label_names=TOPICS,
        ner_data=str(conll),
        base_model=str(base),
        name="tiny-multitask",
        output=root / "artifact",
        # The encoder alone, so tests compare the predictor with the PyTorch model; the
        # lexical expert's fusion has its own tests (tests/stream/inference/test_lexical.py).
        lexical=False,
        work_dir=root / "run",
        hp=Hyperparameters.model_validate(
            {
                "learning_rate": 5e-3,
                "epochs": epochs,
                "batch_size": 16,
                "max_length": 32,
                "early_stopping_patience": None,
            }
        ),
    )
    train_multitask(cfg)
    return root / "artifact"


@pytest.fixture(scope="session")
def tiny_multitask_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny classify-and-tag artifact (topics + PER/LOC/ORG), not exported."""
    return build_tiny_multitask(tmp_path_factory.mktemp("multitask"))


@pytest.fixture(scope="session")
def tiny_multitask_artifact(
    tiny_multitask_trained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny classify-and-tag artifact exported to ONNX fp32 + int8 with its default gate
    data (the held-out texts and sentences of its training config). Read-only."""
    from training.export import export_artifact

    out = tmp_path_factory.mktemp("exported") / "tiny-multitask"
    shutil.copytree(tiny_multitask_trained, out)
    export_artifact(out)
    return out
