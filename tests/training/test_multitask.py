"""Classify-and-tag training: label encoding, the task-balanced loss, the pipeline end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from schemas import FileRole, TaskKind
from schemas.artifact import read_manifest
from schemas.errors import ChecksumMismatch
from tests.fixtures_artifacts import TOPICS, ner_sentences, topic_texts
from tests.fixtures_multitask import write_multitask_data
from training.artifact import load_artifact
from training.data import LabelledTexts
from training.errors import ConfigError
from training.formats.tagged import TaggedSentences
from training.tasks import ClassifyAndTagTask, TextsAndSentences
from training.trainer import Hyperparameters, fine_tune

TAGS = ["O", "B-PER", "I-PER"]
CLASSES = ["Sports", "Business"]


def _task() -> ClassifyAndTagTask:
    return ClassifyAndTagTask(TAGS, CLASSES)


def _tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def _data(n_texts: int = 2, n_sentences: int = 2) -> TextsAndSentences:
    texts = LabelledTexts(
        texts=["team win the cup", "stock market profit"][:n_texts],
        labels=[0, 1][:n_texts],
        label_names=CLASSES,
    )
    sentences = TaggedSentences(
        tokens=[["john", "smith", "said"], ["mary", "visited"]][:n_sentences],
        tags=[[1, 2, 0], [1, 0]][:n_sentences],
        label_names=TAGS,
    )
    return TextsAndSentences(texts if n_texts else None, sentences if n_sentences else None)


def test_a_text_is_labelled_only_at_cls_with_its_class_id_after_the_tags(
    tiny_base_model: Path,
) -> None:
    encoded = _task().encode(_tokenizer(tiny_base_model), _data(n_sentences=0), 16)

    rows = [encoded[i] for i in range(len(encoded))]
    assert [r["labels"][0] for r in rows] == [len(TAGS) + 0, len(TAGS) + 1]
    for row in rows:
        assert len(row["labels"]) == len(row["input_ids"]) > 2
        assert set(row["labels"][1:]) == {-100}


def test_a_sentence_never_labels_cls_and_keeps_its_first_subword_tags(
    tiny_base_model: Path,
) -> None:
    encoded = _task().encode(_tokenizer(tiny_base_model), _data(n_texts=0), 16)

    assert [encoded[i]["labels"] for i in range(len(encoded))] == [
        [-100, 1, 2, 0, -100],
        [-100, 1, 0, -100],
    ]


def test_texts_and_sentences_are_encoded_into_one_dataset(tiny_base_model: Path) -> None:
    encoded = _task().encode(_tokenizer(tiny_base_model), _data(), 16)

    first_labels = [encoded[i]["labels"][0] for i in range(len(encoded))]
    assert sorted(first_labels) == [-100, -100, 3, 4]
    assert set(encoded.column_names) >= {"input_ids", "attention_mask", "labels"}


def _batch(n_words: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One text labelled with class 0 and one sentence with `n_words` words tagged O, over
    logits with known per-task losses: the class logits give ln 2, the tag logits ln 3."""
    n = len(TAGS)
    length = n_words + 2
    logits = torch.zeros(2, length, n + len(CLASSES))
    # Huge logits in the other task's columns must not count: each softmax is over its own.
    logits[0, 0, :n] = 50.0
    logits[1, :, n:] = 50.0
    labels = torch.full((2, length), -100)
    labels[0, 0] = n + 0
    labels[1, 1 : n_words + 1] = 0
    return {"logits": logits}, labels


@pytest.mark.parametrize("n_words", [1, 14, 40])
def test_the_loss_weighs_both_tasks_equally_whatever_their_labelled_positions(
    n_words: int,
) -> None:
    outputs, labels = _batch(n_words)

    loss = _task().loss(outputs, labels)

    assert float(loss) == pytest.approx((math.log(2) + math.log(3)) / 2, rel=1e-6)


def test_the_loss_of_a_batch_of_one_task_is_that_task_s_mean() -> None:
    outputs, labels = _batch(5)
    only_sentences = labels[1:]
    loss = _task().loss({"logits": outputs["logits"][1:]}, only_sentences)
    assert float(loss) == pytest.approx(math.log(3), rel=1e-6)


def test_the_loss_of_nothing_labelled_is_zero_with_a_gradient_path() -> None:
    logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = _task().loss({"logits": logits}, torch.full((1, 4), -100))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None


def test_validation_metrics_score_each_task_on_its_own_columns() -> None:
    from transformers import EvalPrediction

    n = len(TAGS)
    logits = torch.zeros(2, 4, n + len(CLASSES)).numpy()
    logits[0, 0, n + 1] = 5.0  # the text: predicted Business (gold Sports)
    logits[1, 1, 1], logits[1, 2, 2], logits[1, 3, 0] = 5.0, 5.0, 5.0  # B-PER I-PER O: right
    logits[1, :, n:] = 9.0  # class columns of the sentence: must be ignored
    labels = torch.tensor([[n + 0, -100, -100, -100], [-100, 1, 2, 0]]).numpy()

    metrics = _task().compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))

    assert metrics["class_accuracy"] == 0.0
    assert metrics["entity_f1"] == 1.0
    assert metrics["score"] == 0.5


def test_class_names_that_are_also_tags_are_refused() -> None:
    with pytest.raises(ConfigError, match="also NER tags"):
        ClassifyAndTagTask(TAGS, ["O", "Sports"])


class _CountingTask(ClassifyAndTagTask):
    def __init__(self) -> None:
        super().__init__(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"], TOPICS)
        self.loss_calls = 0

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        self.loss_calls += 1
        return super().loss(outputs, labels, num_items_in_batch)


def test_fine_tune_trains_with_the_task_s_own_loss(tiny_base_model: Path, tmp_path: Path) -> None:
    task = _CountingTask()
    texts, labels = topic_texts(16, seed=0)
    words, tags = ner_sentences(16, seed=0)
    data = TextsAndSentences(
        LabelledTexts(texts, [TOPICS.index(lab) for lab in labels], TOPICS),
        TaggedSentences(
            words, [[task.tag_names.index(t) for t in s] for s in tags], task.tag_names
        ),
    )
    hp = Hyperparameters.model_validate({"batch_size": 8, "max_steps": 2, "max_length": 32})

    result = fine_tune(
        task,
        data,
        data,
        base_model=str(tiny_base_model),
        work_dir=tmp_path,
        hp=hp,
        tensorboard=False,
    )

    assert task.loss_calls >= 2, "each training step (and evaluation) goes through task.loss"
    assert 0.0 <= result.best_metrics["score"] <= 1.0


def test_artifact_records_the_task_its_labels_and_which_are_classes(
    tiny_multitask_trained: Path,
) -> None:
    manifest = read_manifest(tiny_multitask_trained, verify=True)
    assert manifest.task is TaskKind.CLASSIFY_AND_TAG
    assert manifest.class_labels == TOPICS
    assert manifest.tag_labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert manifest.labels == manifest.tag_labels + TOPICS
    assert manifest.text_columns == ["text"]
    assert manifest.train_data is not None and " + " in manifest.train_data.source


def test_artifact_reloads_as_one_token_classifier_over_tags_and_classes(
    tiny_multitask_trained: Path,
) -> None:
    model, tokenizer, manifest = load_artifact(tiny_multitask_trained)
    assert type(model).__name__ == "BertForTokenClassification"
    assert model.config.num_labels == len(manifest.labels) == 11
    assert tokenizer.is_fast


def test_both_tasks_are_learned_and_reported_on_validation_and_test(
    tiny_multitask_trained: Path,
) -> None:
    metrics = read_manifest(tiny_multitask_trained).metrics
    for split in ("validation", "test"):
        m = metrics[split]
        assert m["classification"]["accuracy"] > 0.9, (split, m["classification"])
        assert m["ner"]["f1"] > 0.9, (split, m["ner"])
        assert set(m["ner"]["per_type"]) == {"LOC", "ORG", "PER"}
        assert m["score"] == pytest.approx((m["classification"]["accuracy"] + m["ner"]["f1"]) / 2)


def test_both_reports_are_written_and_checksummed_in_the_manifest(
    tiny_multitask_trained: Path,
) -> None:
    manifest = read_manifest(tiny_multitask_trained)
    reports = {f.path for f in manifest.files if f.role is FileRole.REPORT}
    for head in ("classification", "ner"):
        assert {
            f"eval/{head}/metrics.json",
            f"eval/{head}/confusion_matrix.png",
            f"eval/{head}/misclassified.csv",
        } <= reports
    ner = json.loads((tiny_multitask_trained / "eval/ner/metrics.json").read_text())
    assert ner["f1"] == manifest.metrics["test"]["ner"]["f1"]


def test_a_changed_report_fails_checksum_verification(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_multitask_trained, copy)
    (copy / "eval/ner/misclassified.csv").write_text("edited\n", encoding="utf-8")
    with pytest.raises(ChecksumMismatch, match=r"eval/ner/misclassified\.csv"):
        read_manifest(copy, verify=True)


def test_the_conll_test_file_is_recorded_for_the_export_gates(
    tiny_multitask_trained: Path,
) -> None:
    training = read_manifest(tiny_multitask_trained).training
    assert training["ner_eval_data"].endswith("conll/test.txt")
    assert training["classify_eval_data"].endswith("topics_test.csv")


def test_train_multitask_command_writes_a_classify_and_tag_artifact(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    train, _, conll = write_multitask_data(tmp_path / "data", rows=48)
    out = tmp_path / "model"
    args = ["train", "multitask", "--classify-data", str(train), "--ner-data", str(conll)]
    args += ["--label-names", ",".join(TOPICS), "--output", str(out)]
    args += ["--base-model", str(tiny_base_model), "--work-dir", str(tmp_path / "run")]
    # No --threads: torch's thread count is process-wide and would change later tests' models.
    args += ["--max-steps", "2", "--batch-size", "8", "--max-length", "32"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.task is TaskKind.CLASSIFY_AND_TAG and manifest.class_labels == TOPICS
    assert manifest.training["hp"]["max_steps"] == 2
    assert set(manifest.metrics["test"]) == {"ner", "score"}, "no held-out texts were given"


def test_evaluate_scores_the_class_half_and_ensembles_it_with_itself(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    from training.evaluate_classifiers import evaluate_models

    topics_test = tiny_multitask_trained.parent / "data" / "topics_test.csv"
    art = tiny_multitask_trained
    results = evaluate_models(
        [art, art],
        data=str(topics_test),
        text_columns=None,
        label_column="label",
        split=None,
        output=tmp_path / "ev",
    )
    member = results["artifact"]
    # The same figure as the training run's own test report of the class half.
    expected = read_manifest(art).metrics["test"]["classification"]["accuracy"]
    assert member["accuracy"] == pytest.approx(expected)
    assert set(member["per_class"]) == set(TOPICS)
    assert results["ensemble-soft"]["accuracy"] == pytest.approx(member["accuracy"])


def test_evaluate_refuses_a_tagger_with_what_to_use_instead(tmp_path: Path) -> None:
    from tests.fixtures_artifacts import build_tiny_ner
    from training.evaluate_classifiers import evaluate_models

    ner = build_tiny_ner(tmp_path / "ner", steps=1)
    with pytest.raises(ConfigError, match="token-classification model"):
        evaluate_models(
            [ner],
            data="x.csv",
            text_columns=None,
            label_column="label",
            split=None,
            output=tmp_path / "ev",
        )


def test_evaluate_scores_the_tag_half_on_conll_sentences(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    conll = tiny_multitask_trained.parent / "data" / "conll"
    result = CliRunner().invoke(
        app, ["evaluate", str(tiny_multitask_trained), "--data", str(conll), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = read_manifest(tiny_multitask_trained).metrics["test"]["ner"]["f1"]
    assert summary["artifact"]["f1"] == pytest.approx(expected)


def test_evaluate_scores_the_tag_half_on_jsonl_sentences_too(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app
    from training.formats.tagged import find_conll_splits, load_tagged

    conll = find_conll_splits(tiny_multitask_trained.parent / "data" / "conll")["test"]
    sentences = load_tagged(conll)
    jsonl = tmp_path / "test.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"tokens": sentences.tokens[i], "tags": sentences.tag_names(i)}) + "\n"
            for i in range(len(sentences))
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["evaluate", str(tiny_multitask_trained), "--data", str(jsonl), "-o", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    # Scored as a tagger (entity F1), not read as labelled texts (which have no `text` column).
    assert set(json.loads((tmp_path / "summary.json").read_text())["artifact"]) >= {"f1"}
