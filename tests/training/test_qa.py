"""Extractive QA end to end on a tiny BERT, SQuAD loading and its bad input, `textroute answer`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from schemas import TaskKind
from training.artifact import load_artifact
from training.errors import DataError
from training.formats.squad import load_squad, split_by_article
from training.pipelines.question_answering import QAConfig, train_qa
from training.tasks.question_answering import answer_question
from training.trainer import Hyperparameters

PEOPLE = ["john", "mary", "smith"]
PLACES = ["paris", "london", "berlin"]
ORGS = ["google", "apple", "reuters"]


def make_squad(articles: int, per_article: int, seed: int) -> dict[str, Any]:
    """Generated SQuAD v1.1 data: 'who visited X ?' is answered by the visitor's name."""
    rng = random.Random(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(per_article):
            person, place, org = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(ORGS)
            context = f"the team from {org} said {person} visited {place} ."
            qas = [
                {
                    "id": f"{a}-{p}-who",
                    "question": f"who visited {place} ?",
                    "answers": [{"text": person, "answer_start": context.index(f" {person} ") + 1}],
                },
                {
                    "id": f"{a}-{p}-where",
                    "question": f"where did {person} visited ?",
                    "answers": [{"text": place, "answer_start": context.rindex(place)}],
                },
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def one_question(context: str, question: str, text: str, start: int) -> dict[str, Any]:
    return {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "q1",
                                "question": question,
                                "answers": [{"text": text, "answer_start": start}],
                            }
                        ],
                    }
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def qa_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    root = tmp_path_factory.mktemp("qa")
    cfg = QAConfig(
        data=write_json(root / "squad.json", make_squad(articles=12, per_article=12, seed=0)),
        holdout_articles=2,
        validation_articles=2,
        base_model=str(tiny_base_model),
        output=root / "artifact",
        work_dir=root / "run",
        hp=Hyperparameters.model_validate(
            {
                "learning_rate": 3e-3,
                "epochs": 8,
                "batch_size": 16,
                "max_length": 48,
                "early_stopping_patience": None,
            }
        ),
    )
    train_qa(cfg)
    return root / "artifact"


def test_qa_artifact_is_a_question_answering_model_scored_on_held_out_articles(
    qa_artifact: Path,
) -> None:
    manifest = json.loads((qa_artifact / "manifest.json").read_text())
    assert manifest["task"] == TaskKind.QUESTION_ANSWERING.value
    assert manifest["eval_data"]["split"] == "test: 2 articles (seed 42)"
    test = manifest["metrics"]["test"]
    assert test["total"] == 48  # 2 articles x 12 paragraphs x 2 questions
    assert 0 <= test["exact_match"] <= test["f1"] <= 100
    files = {p.name for p in (qa_artifact / "eval").iterdir()}
    assert {"metrics.json", "predictions.json", "misclassified.csv"} <= files


def test_qa_model_learns_the_generated_questions(qa_artifact: Path) -> None:
    test = json.loads((qa_artifact / "manifest.json").read_text())["metrics"]["test"]
    assert test["f1"] > 60, test


def test_reloaded_qa_model_answers_with_a_span_of_the_context(qa_artifact: Path) -> None:
    model, tokenizer, manifest = load_artifact(qa_artifact)
    context = "the team from apple said mary visited berlin ."
    answer = answer_question(
        model, tokenizer, "who visited berlin ?", context, max_length=manifest.max_length
    )
    assert answer.text and context[answer.start : answer.end] == answer.text
    assert 0 < answer.score <= 1


def test_empty_question_or_context_is_refused_with_a_clear_error(qa_artifact: Path) -> None:
    model, tokenizer, _ = load_artifact(qa_artifact)
    with pytest.raises(DataError, match="question is empty"):
        answer_question(model, tokenizer, "  ", "some context")
    with pytest.raises(DataError, match="context is empty"):
        answer_question(model, tokenizer, "who?", "")


def test_answer_command_prints_the_answer_as_json(qa_artifact: Path) -> None:
    from typer.testing import CliRunner

    from stream.cli import app

    context = "the team from google said john visited london ."
    result = CliRunner().invoke(
        app,
        ["answer", str(qa_artifact), "--question", "who visited london ?", "--context", context],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert context[out["start"] : out["end"]] == out["answer"]


def test_squad_answer_not_at_its_answer_start_is_an_error_naming_the_question(
    tmp_path: Path,
) -> None:
    path = write_json(tmp_path / "s.json", one_question("john visited paris", "who?", "john", 3))
    with pytest.raises(DataError, match=r"question q1 .*answer not at answer_start: 'john'"):
        load_squad(path)


def test_skipped_squad_questions_leave_the_good_ones_and_record_why(tmp_path: Path) -> None:
    data = make_squad(articles=1, per_article=3, seed=0)
    paragraphs = data["data"][0]["paragraphs"]
    paragraphs[0]["qas"][0]["question"] = " "
    paragraphs[0]["qas"][1]["answers"][0]["answer_start"] += 1
    paragraphs[1]["context"] = ""
    loaded = load_squad(write_json(tmp_path / "s.json", data), on_error="skip")
    assert [e.id for e in loaded.examples] == ["0-2-who", "0-2-where"]
    assert loaded.skip_summary() == {
        "empty question": 1,
        "answer not at answer_start": 1,
        "empty context": 2,
    }


def test_unanswerable_v2_question_loads_with_no_answers(tmp_path: Path) -> None:
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "john visited paris .",
                        "qas": [
                            {
                                "id": "x",
                                "question": "who visited london ?",
                                "answers": [],
                                "is_impossible": True,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    loaded = load_squad(write_json(tmp_path / "v2.json", data))
    assert loaded.examples[0].is_impossible and loaded.has_impossible


def test_v1_question_without_answers_is_an_error(tmp_path: Path) -> None:
    data = one_question("john visited paris", "who?", "john", 0)
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"] = []
    with pytest.raises(DataError, match="no answer"):
        load_squad(write_json(tmp_path / "s.json", data))


def test_split_by_article_keeps_every_article_on_one_side(tmp_path: Path) -> None:
    loaded = load_squad(write_json(tmp_path / "s.json", make_squad(10, 2, seed=1)))
    train, held = split_by_article(loaded, held_out=3, seed=5)
    assert len(held.titles) == 3 and len(train.titles) == 7
    assert not set(train.titles) & set(held.titles)
    assert len(train) + len(held) == len(loaded)


def test_real_squad_dev_splits_into_38_and_10_articles(shared_data: Path) -> None:
    loaded = load_squad(shared_data / "squad" / "dev-v1.1.json")
    assert len(loaded) == 10570 and len(loaded.titles) == 48
    train, held = split_by_article(loaded, held_out=10, seed=42)
    assert (len(train.titles), len(held.titles)) == (38, 10)
