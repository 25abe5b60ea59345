"""`textroute train distill`: a student with fewer encoder layers learns a classifier's logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas import TaskKind
from schemas.artifact import read_manifest
from training.tiny import TOPICS, topic_texts, write_topics_csv


def quick_hp(**overrides: Any) -> Any:
    from training.trainer import Hyperparameters

    settings: dict[str, Any] = {
        "learning_rate": 3e-3,
        "epochs": 6,
        "batch_size": 16,
        "warmup_ratio": 0.0,
        "early_stopping_patience": None,
    }
    return Hyperparameters(**{**settings, **overrides})


def distil(teacher: Path, root: Path, **overrides: Any) -> Path:
    """Distil `teacher` into a 1-layer student on 240 generated rows; its artifact dir."""
    from training.pipelines.distill import DistillConfig, distill

    root.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "teacher": teacher,
        "data": str(write_topics_csv(root / "train.csv", 240, seed=4)),
        "eval_data": str(write_topics_csv(root / "test.csv", 40, seed=5)),
        "layers": 1,
        "output": root / "student",
        "work_dir": root / "run",
        "lexical": False,
        "hp": quick_hp(),
    }
    distill(DistillConfig(**{**settings, **overrides}))
    return root / "student"


def agreement_and_kl(teacher: Any, student: Any, tokenizer: Any, texts: list[str]) -> Any:
    """Share of `texts` on which the two models pick the same class, and the mean
    KL(teacher || student) of their distributions."""
    from training.evaluation import predict_proba

    p = predict_proba(teacher, tokenizer, texts, max_length=64)
    q = predict_proba(student, tokenizer, texts, max_length=64)
    kl = float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)))
    return float(np.mean(p.argmax(axis=1) == q.argmax(axis=1))), kl


@pytest.fixture(scope="module")
def student(tiny_classifier_trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny 2-layer topic classifier distilled into 1 layer."""
    return distil(tiny_classifier_trained, tmp_path_factory.mktemp("distil"))


def test_layers_kept_are_evenly_spaced_from_the_bottom_like_distilbert() -> None:
    from training.tasks.distillation import kept_layers

    assert kept_layers(6, 3) == [0, 2, 4]
    assert kept_layers(6, 2) == [0, 3]
    assert kept_layers(12, 6) == [0, 2, 4, 6, 8, 10]
    assert kept_layers(2, 1) == [0]


@pytest.mark.parametrize("layers", [0, 6, 7])
def test_a_student_must_keep_at_least_one_and_fewer_than_all_layers(layers: int) -> None:
    from training.errors import ConfigError
    from training.tasks.distillation import kept_layers

    with pytest.raises(ConfigError, match="keeps between 1 and 5"):
        kept_layers(6, layers)


def test_distillation_loss_vanishes_when_the_student_matches_the_teacher_up_to_a_shift() -> None:
    import torch

    from training.tasks.distillation import distillation_loss

    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    same = distillation_loss(teacher + 7.0, teacher, temperature=2.0)
    other = distillation_loss(teacher.flip(-1), teacher, temperature=2.0)
    assert abs(float(same)) < 1e-6
    assert float(other) > 0.1


def test_student_has_the_kept_layers_and_the_teachers_labels_tokenizer_and_settings(
    student: Path, tiny_classifier_trained: Path
) -> None:
    parent = tiny_classifier_trained
    teacher = read_manifest(parent)
    manifest = read_manifest(student)  # every checksum holds after the lineage was written
    config = json.loads((student / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert (
        json.loads((tiny_classifier_trained / "config.json").read_text())["num_hidden_layers"] == 2
    )
    assert manifest.task is TaskKind.CLASSIFICATION
    assert manifest.labels == teacher.labels == TOPICS != sorted(TOPICS)
    assert [config["id2label"][str(i)] for i in range(len(TOPICS))] == TOPICS
    assert (manifest.pooling, manifest.max_length) == (teacher.pooling, teacher.max_length)
    assert manifest.base_model == teacher.base_model  # not the teacher directory
    assert manifest.name == "tiny-topics-l1"
    # The same tokenizer (its saved truncation state aside): vocabulary and text processing.
    ours, theirs = (json.loads((d / "tokenizer.json").read_text()) for d in (student, parent))
    for part in ("model", "normalizer", "pre_tokenizer", "post_processor", "added_tokens"):
        assert ours[part] == theirs[part]
    lineage = manifest.lineage
    assert lineage is not None and lineage.kind == "distilled"
    assert lineage.kept_layers == [0]
    assert (lineage.parent_name, lineage.parent_version) == (teacher.name, teacher.version)
    assert {"validation", "test"} <= set(manifest.metrics)
    assert manifest.metrics["test"]["rows"] == 40


def test_student_loads_through_load_predictor_and_predicts_the_teachers_labels(
    student: Path,
) -> None:
    from inference import InferenceSettings, load_predictor

    settings = InferenceSettings.model_validate({"backend": "torch", "threads": 1})
    predictor = load_predictor(student, settings)
    texts = ["stock market profit bank shares", "team win season coach match"]
    labels = [c.label for c in predictor.classify(texts)]  # type: ignore[union-attr]
    assert labels == ["Business", "Sports"]


def test_train_lexical_on_a_student_says_its_expert_comes_with_distill(student: Path) -> None:
    from training.cli import lexical_command
    from training.errors import ConfigError

    with pytest.raises(ConfigError, match="distilled student"):
        lexical_command(student)


def test_the_distillation_loss_moves_logits_to_the_teachers_distribution_not_the_gold_label() -> (
    None
):
    import torch

    from training.tasks.classification import ClassificationTask
    from training.tasks.distillation import DistillationTask

    task = DistillationTask(ClassificationTask(TOPICS), [0], temperature=2.0, alpha=0.0)
    teacher = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 0.0, 2.0, 0.5]])
    gold = torch.tensor([[3.0], [0.0]])  # contrary to the teacher on both rows
    student = torch.zeros(2, 4, requires_grad=True)
    optimizer = torch.optim.SGD([student], lr=1.0)
    for _ in range(300):
        loss = task.loss({"logits": student}, torch.cat([gold, teacher], dim=1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    np.testing.assert_allclose(
        torch.softmax(student, -1).detach().numpy(), torch.softmax(teacher, -1).numpy(), atol=1e-3
    )


def test_distilled_student_agrees_with_the_teacher_far_more_than_an_untrained_student(
    student: Path, tiny_classifier_trained: Path
) -> None:
    import torch

    from training.artifact import load_artifact
    from training.tasks.classification import ClassificationTask
    from training.tasks.distillation import DistillationTask

    teacher, tokenizer, manifest = load_artifact(tiny_classifier_trained)
    distilled, _, _ = load_artifact(student)
    # The same kept layer under a head that has learnt nothing.
    task = DistillationTask(ClassificationTask(manifest.labels), [0], temperature=2, alpha=0.5)
    untrained = task.build_model(str(tiny_classifier_trained)).eval()
    torch.manual_seed(0)
    untrained.classifier.reset_parameters()
    texts, _ = topic_texts(240, seed=4)  # the training rows
    learnt, learnt_kl = agreement_and_kl(teacher, distilled, tokenizer, texts)
    blank, blank_kl = agreement_and_kl(teacher, untrained, tokenizer, texts)
    assert learnt >= 0.95 > 0.6 > blank
    assert learnt_kl < blank_kl / 10


def test_the_kl_term_holds_the_student_to_the_teacher_against_contrary_gold_labels(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    import csv

    from training.artifact import load_artifact

    # Every gold label moved to the next topic: the rows say one class, the teacher another.
    texts, labels = topic_texts(240, seed=4)
    rotated = tmp_path / "rotated.csv"
    with rotated.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for text, label in zip(texts, labels, strict=True):
            writer.writerow([text, TOPICS[(TOPICS.index(label) + 1) % len(TOPICS)]])
    teacher, tokenizer, _ = load_artifact(tiny_classifier_trained)
    found = {}
    for alpha in (0.0, 20.0):  # the KL alone; the gold labels' cross-entropy dominating
        out = distil(tiny_classifier_trained, tmp_path / str(alpha), data=str(rotated), alpha=alpha)
        student, _, _ = load_artifact(out)
        found[alpha] = agreement_and_kl(teacher, student, tokenizer, texts)
    assert found[0.0][0] >= 0.95
    assert found[20.0][0] < 0.5  # the same run without the pull learns the rotated labels
    assert found[0.0][1] < found[20.0][1]


def test_a_mean_pooled_teacher_gives_a_mean_pooled_student_that_exports(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    from inference import InferenceSettings, load_predictor
    from tests.training.conftest import topic_config
    from training.export import export_artifact
    from training.pipelines.classification import train_classifier

    train_classifier(topic_config(tmp_path, tiny_base_model, pooling="mean", baseline=False))
    teacher = read_manifest(tmp_path / "artifact")
    # The teacher's training config gives the columns (title, description) and label column.
    out = distil(
        tmp_path / "artifact",
        tmp_path / "distil",
        data=str(tmp_path / "train.csv"),
        eval_data=str(tmp_path / "test.csv"),
        lexical=True,
    )
    manifest = read_manifest(out)
    assert manifest.pooling == teacher.pooling == "mean"
    assert manifest.text_columns == teacher.text_columns == ["title", "description"]
    assert manifest.labels == teacher.labels
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    assert manifest.metrics["validation"]["accuracy"] > 0.9
    assert export_artifact(out).passed
    settings = InferenceSettings.model_validate({"backend": "onnx", "precision": "fp32"})
    predictor = load_predictor(out, settings)
    labels = [c.label for c in predictor.classify(["stock market profit bank shares"])]  # type: ignore[union-attr]
    assert labels == ["Business"]


def test_classify_and_tag_distillation_loss_reads_classes_at_cls_and_tags_where_labelled() -> None:
    import torch

    from training.tasks.distillation import classify_and_tag_distillation_loss

    n_tags = 3  # columns 0-2 tags, 3-4 classes
    teacher = torch.randn(2, 4, 5)
    gold = torch.tensor([[4, -100, -100, -100], [-100, 0, 2, -100]])  # a text, a sentence
    same = classify_and_tag_distillation_loss(teacher, teacher, gold, n_tags, temperature=2.0)
    assert abs(float(same)) < 1e-6
    # Unread places change nothing: tag columns of a text, class columns of a sentence, and
    # a sentence's unlabelled positions.
    student = teacher.clone()
    student[0, :, :n_tags] += 5.0 * torch.randn(4, n_tags)
    student[1, :, n_tags:] += 5.0
    student[1, 3] = torch.randn(5)
    unread = classify_and_tag_distillation_loss(student, teacher, gold, n_tags, temperature=2.0)
    assert abs(float(unread)) < 1e-6
    student[0, 0, n_tags] += 3.0  # the text's class
    student[1, 1, 0] += 3.0  # a labelled tag
    assert (
        float(classify_and_tag_distillation_loss(student, teacher, gold, n_tags, temperature=2.0))
        > 0.1
    )


def test_a_classify_and_tag_teacher_gives_a_one_pass_student_of_both_heads(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    from inference import InferenceSettings, MultiTaskPredictor, load_predictor
    from training.artifact import load_artifact
    from training.evaluation import predict_proba
    from training.export import export_artifact
    from training.tasks.multitask import ClassifyAndTagTask

    teacher = read_manifest(tiny_multitask_trained)
    saved = json.loads((tiny_multitask_trained / "training_config.json").read_text())
    out = distil(
        tiny_multitask_trained,
        tmp_path,
        data=saved["classify_data"],
        eval_data=saved["classify_eval_data"],
        hp=quick_hp(learning_rate=5e-3, epochs=4),
    )
    manifest = read_manifest(out)
    assert manifest.task is TaskKind.CLASSIFY_AND_TAG
    assert (manifest.labels, manifest.class_labels) == (teacher.labels, teacher.class_labels)
    assert manifest.max_length == teacher.max_length
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    assert manifest.lineage is not None and manifest.lineage.kept_layers == [0]
    test = manifest.metrics["test"]
    assert test["classification"]["rows"] == 40 and test["ner"]["sentences"] > 0
    # The training config names the held-out data `textroute export` gates each head on.
    assert manifest.training["ner_eval_data"] == saved["ner_eval_data"]

    # The student's class at [CLS] agrees with the teacher's on the training texts.
    texts, _ = topic_texts(160, seed=0)
    task = ClassifyAndTagTask(teacher.tag_labels, teacher.class_labels or [])
    picks = []
    for artifact in (tiny_multitask_trained, out):
        model, tokenizer, _ = load_artifact(artifact)
        classes, _ = task.heads(model)
        probs = predict_proba(classes, tokenizer, texts, max_length=teacher.max_length)
        picks.append(probs.argmax(axis=1))
    assert np.mean(picks[0] == picks[1]) >= 0.9

    assert export_artifact(out).passed
    predictor = load_predictor(out, InferenceSettings.model_validate({"precision": "fp32"}))
    assert isinstance(predictor, MultiTaskPredictor)
    (result,) = predictor.classify_and_tag(["john smith visited paris for google"])
    assert isinstance(result, tuple)
    assert result[0].label in TOPICS


def run_distill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "distill", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("missing", ["--layers", "1"], "manifest"),
        (
            "ner",
            ["--layers", "1"],
            "token-classification model; train distill supports classification, "
            "pair-classification, classify-and-tag teachers",
        ),
        ("classifier", ["--layers", "2"], "keeps between 1 and 1 of the teacher's 2 layers"),
        ("classifier", ["--layers", "0"], "keeps between 1 and 1 of the teacher's 2 layers"),
        ("unknown-label", ["--layers", "1"], "'Weather'"),
    ],
)
def test_bad_distill_input_is_a_one_line_error_with_exit_2(
    case: str,
    args: list[str],
    message: str,
    tiny_classifier_trained: Path,
    tiny_ner_trained: Path,
    tmp_path: Path,
) -> None:
    data = write_topics_csv(tmp_path / "train.csv", 24, seed=1)
    teacher = {"missing": tmp_path / "nowhere", "ner": tiny_ner_trained}.get(
        case, tiny_classifier_trained
    )
    if case == "unknown-label":
        data.write_text(data.read_text() + "rain and wind today,Weather\n")
    result = run_distill(str(teacher), str(data), "--output", str(tmp_path / "out"), *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()
