"""`textroute train classify --init-from ARTIFACT`: retraining a deployed classifier on reviewed
rows plus a replay sample of its training data, the manifest's lineage naming the parent."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.artifact import read_manifest
from training.errors import ConfigError
from training.tiny import TOPICS, topic_texts, write_topics_csv

#: The columns of the reviewers' corrections export; training reads `text` and `label` only.
REVIEW_COLUMNS = [
    "message_id",
    "pipeline",
    "kind",
    "text",
    "label",
    "model_label",
    "model_version",
    "reviewer",
    "reviewed_at",
]


def write_review_export(path: Path, texts: list[str], labels: list[str]) -> Path:
    """Corrections as the review loop exports them: text and label among metadata columns."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REVIEW_COLUMNS)
        writer.writeheader()
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            writer.writerow(
                {
                    "message_id": f"m-{i}",
                    "pipeline": "news",
                    "kind": "article",
                    "text": text,
                    "label": label,
                    "model_label": TOPICS[i % len(TOPICS)],
                    "model_version": "20250101T000000Z",
                    "reviewer": "ana",
                    "reviewed_at": "2025-01-02T10:00:00Z",
                }
            )
    return path


def quick_hp(**overrides: Any) -> Any:
    from training.trainer import Hyperparameters

    settings: dict[str, Any] = {
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_steps": 2,
        "warmup_ratio": 0.0,
        "early_stopping_patience": None,
    }
    return Hyperparameters(**{**settings, **overrides})


def probabilities(artifact: Path, texts: list[str]) -> np.ndarray:
    from training.artifact import load_artifact
    from training.evaluation import predict_proba

    model, tokenizer, _ = load_artifact(artifact)
    return np.asarray(predict_proba(model, tokenizer, texts, max_length=64))


def test_a_model_continued_at_a_tiny_learning_rate_predicts_like_its_parent(
    tiny_classifier_trained: Path, tiny_base_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from training.evaluation import predict_proba
    from training.pipelines.classification import ClassifyConfig, train_classifier
    from training.tasks.classification import ClassificationTask

    parent = read_manifest(tiny_classifier_trained)
    new = write_review_export(tmp_path / "reviewed.csv", *topic_texts(24, seed=5))
    replay = write_topics_csv(tmp_path / "replay.csv", 80, seed=9)
    cfg = ClassifyConfig(
        data=str(new),
        init_from=tiny_classifier_trained,
        replay=str(replay),
        output=tmp_path / "child",
        work_dir=tmp_path / "run",
        baseline=False,
        lexical=False,
        hp=quick_hp(learning_rate=1e-8, max_steps=1),
    )
    child = train_classifier(cfg)

    # A normal artifact with a fresh version, the parent's labels in the parent's order (not
    # the sorted order the data alone would give), base model, name, pooling and max_length.
    assert child.version != parent.version
    assert child.labels == parent.labels == TOPICS != sorted(TOPICS)
    assert (child.name, child.base_model) == (parent.name, parent.base_model)
    assert (child.pooling, child.max_length) == (parent.pooling, parent.max_length)
    saved = json.loads((tmp_path / "child" / "training_config.json").read_text())
    assert saved["base_model"] == parent.base_model  # not the directory the weights came from
    read_manifest(tmp_path / "child")  # every checksum holds after the lineage was written

    probes, _ = topic_texts(16, seed=11)
    before = probabilities(tiny_classifier_trained, probes)
    after = probabilities(tmp_path / "child", probes)
    # The probes tell the test apart: the parent is sure of them, and a head built anew over
    # the same tiny encoder is not (so a run that ignored --init-from could not pass).
    fresh = ClassificationTask(parent.labels).build_model(str(tiny_base_model)).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier_trained)
    anew = np.asarray(predict_proba(fresh, tokenizer, probes, max_length=64))
    assert before.max(axis=1).mean() > 0.6
    assert np.abs(anew - before).max() > 0.2
    np.testing.assert_allclose(after, before, atol=1e-4)
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


@pytest.fixture(scope="module")
def pipeline_parent(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    """A parent trained by `train classify` on a local CSV (its training config names it), with
    a pooling, max_length and name other than the command's defaults."""
    from training.pipelines.classification import ClassifyConfig, train_classifier

    root = tmp_path_factory.mktemp("parent")
    original = write_topics_csv(root / "original.csv", 120, seed=1)
    train_classifier(
        ClassifyConfig(
            data=str(original),
            base_model=str(tiny_base_model),
            name="topics",
            pooling="cls",
            output=root / "artifact",
            work_dir=root / "run",
            baseline=False,
            lexical=False,
            hp=quick_hp(max_length=48),
        )
    )
    return root / "artifact"


def cli_train(*args: str) -> Any:
    from typer.testing import CliRunner

    from stream.cli import app

    return CliRunner().invoke(
        app,
        [
            "train",
            "classify",
            *args,
            "--no-baseline",
            "--no-lexical",
            "--max-steps",
            "2",
            "--batch-size",
            "8",
        ],
    )


def test_lineage_names_the_parent_and_the_rows_and_replay_rows_come_from_its_data(
    pipeline_parent: Path, tmp_path: Path
) -> None:
    from training.pipelines.classification import ClassifyConfig, load_training_rows

    texts, labels = topic_texts(10, seed=5)
    new = write_review_export(tmp_path / "reviewed.csv", texts, labels)
    out = tmp_path / "child"
    # No --replay: the parent's own training data (its training config) is replayed.
    result = cli_train(str(new), "--init-from", str(pipeline_parent), "-o", str(out),
                       "--work-dir", str(tmp_path / "run"))  # fmt: skip
    assert result.exit_code == 0, result.output

    parent = read_manifest(pipeline_parent)
    child = read_manifest(out)
    lineage = child.lineage
    assert lineage is not None
    assert (lineage.parent_name, lineage.parent_version) == ("topics", parent.version)
    manifest_bytes = (pipeline_parent / "manifest.json").read_bytes()
    assert lineage.parent_manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert (lineage.new_rows, lineage.replay_rows) == (10, 40)  # 4 x the new rows by default
    original = pipeline_parent.parent / "original.csv"
    new_ref, replay_ref = lineage.data
    assert (new_ref.source, new_ref.rows) == (str(new), 10)
    assert new_ref.sha256 == hashlib.sha256(new.read_bytes()).hexdigest()
    assert (replay_ref.source, replay_ref.rows) == (str(original), 120)
    assert replay_ref.sha256 == hashlib.sha256(original.read_bytes()).hexdigest()
    # Options left at their defaults follow the parent.
    assert (child.name, child.pooling, child.max_length) == ("topics", "cls", 48)
    assert child.train_data is not None and child.train_data.rows == 45  # 50 less a 10% carve

    # The rows trained on, as the saved config reloads them: the new rows, then 40 of the
    # original rows (none of them a new row's text), the same ones on every reload.
    saved = ClassifyConfig.model_validate(json.loads((out / "training_config.json").read_text()))
    rows = load_training_rows(saved)
    assert rows.rows.texts[:10] == texts
    with original.open(encoding="utf-8") as fh:
        source = {(r["text"], r["label"]) for r in csv.DictReader(fh)}
    names = rows.rows.label_names
    replayed = {
        (t, names[y]) for t, y in zip(rows.rows.texts[10:], rows.rows.labels[10:], strict=True)
    }
    assert len(rows.rows.texts[10:]) == 40 and replayed <= source
    assert not set(rows.rows.texts[10:]) & set(texts)
    assert load_training_rows(saved).rows.texts == rows.rows.texts

    # Another seed draws another sample; --replay-rows caps; 0 turns replay off.
    reseeded = saved.model_copy(update={"hp": saved.hp.model_copy(update={"seed": 7})})
    assert load_training_rows(reseeded).rows.texts[10:] != rows.rows.texts[10:]
    capped = saved.model_copy(update={"replay_rows": 500})
    assert load_training_rows(capped).replay_rows == 120 - len(set(texts) & {t for t, _ in source})
    off = load_training_rows(saved.model_copy(update={"replay_rows": 0}))
    assert (off.new_rows, off.replay_rows, len(off.rows)) == (10, 0, 10)


def test_without_replay_data_it_asks_for_replay_unless_replay_is_off(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    from training.pipelines.classification import ClassifyConfig, load_training_rows

    # The tiny parent was trained on generated rows, not a file: nothing to replay by default.
    new = write_review_export(tmp_path / "reviewed.csv", *topic_texts(8, seed=5))
    cfg = ClassifyConfig(data=str(new), init_from=tiny_classifier_trained)
    with pytest.raises(ConfigError, match="pass --replay DATA"):
        load_training_rows(cfg)
    rows = load_training_rows(cfg.model_copy(update={"replay_rows": 0}))
    assert (rows.new_rows, rows.replay_rows) == (8, 0)
    with pytest.raises(ConfigError, match="go with --init-from"):
        ClassifyConfig(data=str(new), replay=str(new))
    # The test data is never a source of training rows.
    leak = ClassifyConfig(
        data=str(new), init_from=tiny_classifier_trained, replay=str(new), eval_data=str(new)
    )
    with pytest.raises(ConfigError, match="must never be trained on"):
        load_training_rows(leak)


def test_labels_the_parent_does_not_know_are_refused_naming_them(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    from training.pipelines.classification import ClassifyConfig, train_classifier

    texts, labels = topic_texts(8, seed=5)
    labels[1], labels[4] = "Weather", "Gossip"
    new = write_review_export(tmp_path / "reviewed.csv", texts, labels)
    cfg = ClassifyConfig(
        data=str(new), init_from=tiny_classifier_trained, replay_rows=0, output=tmp_path / "out"
    )
    with pytest.raises(ConfigError, match=r"label\(s\) 'Gossip', 'Weather' not among"):
        train_classifier(cfg)
    assert not (tmp_path / "out").exists()

    # On the command line: one line, exit 2, no traceback.
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "classify", str(new), "--init-from",
         str(tiny_classifier_trained), "--replay-rows", "0", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ConfigError" in result.stderr and "'Gossip', 'Weather'" in result.stderr
    assert "Traceback" not in result.stderr


def test_metadata_columns_of_the_review_export_are_ignored(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    from training.pipelines.classification import ClassifyConfig, load_training_rows

    texts, labels = topic_texts(8, seed=5)
    new = write_review_export(tmp_path / "reviewed.csv", texts, labels)
    rows = load_training_rows(
        ClassifyConfig(data=str(new), init_from=tiny_classifier_trained, replay_rows=0)
    )
    # Only `text` and `label` are read: model_label (a valid label too) is not the label, and
    # no metadata value reaches the texts.
    assert rows.rows.texts == texts
    assert [TOPICS[y] for y in rows.rows.labels] == labels
    assert rows.new.columns == ["text", "label"]


def test_a_trained_manifest_gives_the_stream_a_training_label_share_summing_to_one(
    pipeline_parent: Path,
) -> None:
    """The drift gauge (stream.metrics.training_label_share) reads the figures `train
    classify` really writes: one share per label the run saw, summing to one."""
    from stream.metrics import training_label_share

    manifest = read_manifest(pipeline_parent, verify=False)
    shares = training_label_share(manifest)
    assert set(shares) <= set(manifest.labels) and len(shares) >= 2
    assert sum(shares.values()) == pytest.approx(1.0)
