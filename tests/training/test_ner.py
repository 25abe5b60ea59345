"""NER end to end on a tiny BERT: train, evaluate with seqeval, save, reload, extract spans."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from schemas import TaskKind
from training.artifact import load_artifact
from training.formats.tagged import TaggedSentences
from training.pipelines.token_classification import NerConfig, train_ner
from training.tasks.token_classification import TokenClassificationTask, extract_entities
from training.trainer import Hyperparameters

PEOPLE = [["john"], ["mary"], ["john", "smith"], ["mary", "smith"]]
PLACES = [["paris"], ["london"], ["berlin"]]
ORGS = [["google"], ["apple"], ["reuters"]]
TEMPLATES = [
    ["PER", "visited", "LOC", "."],
    ["PER", "works", "for", "ORG", "in", "LOC", "."],
    ["ORG", "said", "the", "deal", "is", "on", "."],
    ["the", "team", "from", "LOC", "did", "win", "."],
    ["PER", "lives", "in", "LOC", "with", "PER", "."],
]


def make_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Generated sentences whose entity words give away their type: learnable in a few steps."""
    rng = random.Random(seed)
    pools = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}
    sentences = []
    for i in range(n):
        sentence: list[tuple[str, str]] = []
        for slot in TEMPLATES[i % len(TEMPLATES)]:
            if slot in pools:
                words = rng.choice(pools[slot])
                sentence += [(w, ("B-" if j == 0 else "I-") + slot) for j, w in enumerate(words)]
            else:
                sentence.append((slot, "O"))
        sentences.append(sentence)
    return sentences


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        lines += [f"{word} NN O {tag}" for word, tag in sentence] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ner_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    root = tmp_path_factory.mktemp("ner")
    write_conll(root / "train.txt", make_sentences(160, seed=0))
    write_conll(root / "valid.txt", make_sentences(40, seed=1))
    write_conll(root / "test.txt", make_sentences(40, seed=2))
    cfg = NerConfig(
        data=str(root),
        base_model=str(tiny_base_model),
        output=root / "artifact",
        work_dir=root / "run",
        hp=Hyperparameters.model_validate(
            {
                "learning_rate": 5e-3,
                "epochs": 5,
                "batch_size": 16,
                "max_length": 32,
                "early_stopping_patience": None,
            }
        ),
    )
    train_ner(cfg)
    return root / "artifact"


def test_ner_artifact_records_task_iob2_labels_and_no_text_columns(ner_artifact: Path) -> None:
    manifest = json.loads((ner_artifact / "manifest.json").read_text())
    assert manifest["task"] == TaskKind.TOKEN_CLASSIFICATION.value
    assert manifest["labels"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert manifest["text_columns"] == []
    assert manifest["eval_data"]["source"].endswith("test.txt")


def test_ner_learns_generated_entities_and_reports_seqeval_per_type(ner_artifact: Path) -> None:
    manifest = json.loads((ner_artifact / "manifest.json").read_text())
    test = manifest["metrics"]["test"]
    assert test["f1"] > 0.9, test
    assert set(test["per_type"]) == {"LOC", "ORG", "PER"}
    confusion = test["confusion"]["PER"]
    assert confusion["gold"] == test["per_type"]["PER"]["support"]
    parts = confusion["correct"] + sum(confusion["wrong_type"].values()) + confusion["boundary"]
    assert parts + confusion["boundary_and_type"] + confusion["missed"] == confusion["gold"]


def test_ner_evaluation_writes_confusion_plot_and_misclassified_sentences(
    ner_artifact: Path,
) -> None:
    files = {p.name for p in (ner_artifact / "eval").iterdir()}
    assert {"metrics.json", "confusion_matrix.png", "misclassified.csv"} <= files
    header = (ner_artifact / "eval" / "misclassified.csv").read_text().splitlines()[0]
    assert header == "row,sentence,gold_entities,predicted_entities,errors"


def test_reloaded_ner_model_returns_spans_over_the_original_text(ner_artifact: Path) -> None:
    model, tokenizer, manifest = load_artifact(ner_artifact)
    text = "  Mary Smith visited   London ."
    [entities] = extract_entities(model, tokenizer, [text], max_length=manifest.max_length)
    assert [(e.type, e.text, e.start, e.end) for e in entities] == [
        ("PER", "Mary Smith", 2, 12),
        ("LOC", "London", 23, 29),
    ]
    assert all(text[e.start : e.end] == e.text and 0 < e.score <= 1 for e in entities)


def test_text_longer_than_a_window_still_gets_entities_from_every_part(ner_artifact: Path) -> None:
    model, tokenizer, _ = load_artifact(ner_artifact)
    text = " ".join(["John visited Paris ."] * 12)
    [entities] = extract_entities(model, tokenizer, [text], max_length=16, stride=4)
    assert [e.text for e in entities] == ["John", "Paris"] * 12
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_long_sentence_is_split_into_windows_and_every_word_predicted(
    ner_artifact: Path,
) -> None:
    model, tokenizer, manifest = load_artifact(ner_artifact)
    task = TokenClassificationTask(manifest.labels, stride=4)
    words = ["mary", "lives", "in", "paris", "."] * 10
    gold = [5, 0, 0, 1, 0] * 10
    data = TaggedSentences(tokens=[words], tags=[gold], label_names=manifest.labels)
    encoded = task.encode(tokenizer, data, max_length=16)
    assert len(encoded) > 1, "a 50-word sentence must not fit one 16-token window"
    [predicted] = task.predict_words(model, tokenizer, [words], max_length=16)
    assert len(predicted.tags) == len(words)
    assert predicted.tags == gold
    metrics = task.evaluate(model, tokenizer, data, max_length=16, out_dir=None)
    assert metrics["f1"] == pytest.approx(1.0)
    assert metrics["words_without_subwords"] == 0


def test_label_all_subwords_encodes_continuations_as_i_tags(tiny_base_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    labels = ["O", "B-PER", "I-PER"]
    data = TaggedSentences(tokens=[["smithing", "said"]], tags=[[1, 0]], label_names=labels)
    first_only = TokenClassificationTask(labels).encode(tokenizer, data, 16)[0]["labels"]
    every = TokenClassificationTask(labels, label_all_subwords=True).encode(tokenizer, data, 16)[0][
        "labels"
    ]
    assert first_only == [-100, 1, -100, 0, -100]
    assert every == [-100, 1, 2, 0, -100]


def test_context_reading_tags_only_the_sentence_words(ner_artifact: Path) -> None:
    model, tokenizer, manifest = load_artifact(ner_artifact)
    task = TokenClassificationTask(manifest.labels, context_tokens=12)
    sentences = [["mary", "visited", "paris", "."], ["john", "works", "for", "google", "."]]
    data = TaggedSentences(
        tokens=sentences,
        tags=[[5, 0, 1, 0], [5, 0, 0, 3, 0]],
        label_names=manifest.labels,
        documents=[0, 0],
    )
    predicted = task.predict_words(model, tokenizer, sentences, max_length=32, documents=[0, 0])
    assert [len(p.tags) for p in predicted] == [4, 5]
    assert [p.tags for p in predicted] == data.tags
    assert task.evaluate(model, tokenizer, data, max_length=32, out_dir=None)["f1"] == 1.0


def test_word_probabilities_decode_to_the_tags_predict_words_gives(ner_artifact: Path) -> None:
    model, tokenizer, manifest = load_artifact(ner_artifact)
    task = TokenClassificationTask(manifest.labels)
    sentences = [[w for w, _ in s] for s in make_sentences(10, seed=5)]
    probs = task.predict_word_probs(model, tokenizer, sentences, max_length=32)
    assert [p.shape for p in probs] == [(len(s), len(manifest.labels)) for s in sentences]
    predicted = task.predict_words(model, tokenizer, sentences, max_length=32)
    assert [p.tags for p in task.decode(probs)] == [p.tags for p in predicted]


def test_evaluate_reports_each_tagger_and_the_mean_probability_ensemble(
    ner_artifact: Path, tmp_path: Path
) -> None:
    from training.evaluate_ner import ENSEMBLE, evaluate_taggers

    test_file = ner_artifact.parent / "test.txt"
    results = evaluate_taggers(
        [ner_artifact, ner_artifact], data=str(test_file), split=None, output=tmp_path / "ev"
    )
    member = results["artifact"]
    # Scored like the training run's own test report.
    expected = json.loads((ner_artifact / "metrics.json").read_text())["test"]["f1"]
    assert member["f1"] == pytest.approx(expected)
    assert results[ENSEMBLE]["f1"] == pytest.approx(member["f1"])  # two identical members
    assert {"artifact", "artifact-2", ENSEMBLE} <= set(results)
    assert (tmp_path / "ev" / ENSEMBLE / "misclassified.csv").is_file()
    assert member["decoding"] == "viterbi"  # the stream's decoding is the default
    argmax = evaluate_taggers(
        [ner_artifact], data=str(test_file), split=None, output=tmp_path / "v", viterbi=False
    )
    assert argmax["artifact"]["decoding"] == "argmax"
    assert argmax["artifact"]["f1"] > 0.5


def test_evaluate_command_routes_a_tagger_to_seqeval_columns(
    ner_artifact: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(ner_artifact),
            "--data",
            str(ner_artifact.parent),
            "--viterbi",
            "-o",
            str(tmp_path / "ev"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert set(summary["artifact"]) == {"precision", "recall", "f1"}
