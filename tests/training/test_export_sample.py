"""Gate data for export: labelled texts in Python, CSV via the manifest's columns, CoNLL, SQuAD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import DataRef, ModelManifest, TaskKind
from training.errors import UnknownLabel
from training.export import EvalSample, load_eval_sample
from training.export.sample import builtin_sample, default_eval_sample, read_conll


def _manifest(task: TaskKind, **kw: object) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": task,
            "labels": ["World", "Sports"],
            "base_model": "x",
            "max_length": 32,
            **kw,
        }
    )


def test_labels_may_be_names_or_indexes() -> None:
    sample = EvalSample.from_labelled(["a", "b", "c"], ["Sports", 0, "1"], ["World", "Sports"])
    assert sample.labels == [1, 0, 1]


def test_an_unknown_label_names_the_row_and_the_label_map() -> None:
    with pytest.raises(UnknownLabel, match=r"row 2 has label 'Weather'.*\['World', 'Sports'\]"):
        EvalSample.from_labelled(["a", "b"], ["World", "Weather"], ["World", "Sports"])


def test_rows_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValidationError, match="labels has 1 rows but there are 2"):
        EvalSample(texts=["a", "b"], labels=[0])
    with pytest.raises(ValidationError, match="2 words but 1 tags"):
        EvalSample(words=[["a", "b"]], tags=[["O"]])
    with pytest.raises(ValidationError, match="empty"):
        EvalSample(texts=[])


def test_subsample_is_seeded_and_keeps_rows_aligned() -> None:
    texts = [str(i) for i in range(100)]
    sample = EvalSample(texts=texts, labels=list(range(100)))
    a, b = sample.subsample(10, seed=1), sample.subsample(10, seed=1)
    assert a.texts == b.texts and len(a) == 10
    assert [int(t) for t in a.texts] == a.labels
    assert sample.subsample(1000) is sample


def test_csv_gate_data_joins_the_manifest_text_columns(tmp_path: Path) -> None:
    path = tmp_path / "eval.csv"
    path.write_text("title,description,label\nA,b c,1\n,d,World\n", encoding="utf-8")
    manifest = _manifest(TaskKind.CLASSIFICATION, text_columns=["title", "description"])
    sample = load_eval_sample(path, manifest)
    assert sample.texts == ["A. b c", "d"]
    assert sample.labels == [1, 0]


def test_pair_gate_data_takes_the_last_text_column_as_the_pair(tmp_path: Path) -> None:
    path = tmp_path / "eval.tsv"
    path.write_text('s1\ts2\tlabel\n"x\ty\t0\n', encoding="utf-8")
    manifest = _manifest(TaskKind.PAIR_CLASSIFICATION, text_columns=["s1", "s2"])
    sample = load_eval_sample(path, manifest)
    assert (sample.texts, sample.pairs, sample.labels) == (['"x'], ["y"], [0])


def test_conll_sentences_split_on_blank_lines_and_skip_docstart(tmp_path: Path) -> None:
    path = tmp_path / "eval.txt"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n",
        encoding="utf-8",
    )
    sample = load_eval_sample(path, _manifest(TaskKind.TOKEN_CLASSIFICATION))
    assert sample.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert sample.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]]


def test_squad_json_gives_question_context_pairs(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    doc = {
        "data": [
            {"paragraphs": [{"context": "C1", "qas": [{"question": "Q1"}, {"question": "Q2"}]}]}
        ]
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    sample = load_eval_sample(path, _manifest(TaskKind.QUESTION_ANSWERING))
    assert (sample.texts, sample.pairs) == (["Q1", "Q2"], ["C1", "C1"])


def test_default_data_is_the_manifest_eval_data_when_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "test.csv"
    path.write_text("text,label\nhello,Sports\n", encoding="utf-8")
    here = _manifest(TaskKind.CLASSIFICATION, eval_data=DataRef(source=str(path), split="test"))
    assert default_eval_sample(here).labels == [1]
    gone = _manifest(TaskKind.CLASSIFICATION, eval_data=DataRef(source=str(tmp_path / "no.csv")))
    assert default_eval_sample(gone).source == "built-in"


def test_gate_data_reads_the_label_column_the_model_was_trained_with(tmp_path: Path) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text("text,queue\nhello,Sports\nbye,World\n", encoding="utf-8")
    manifest = _manifest(
        TaskKind.CLASSIFICATION,
        eval_data=DataRef(source=str(path), split="test"),
        training={"label_column": "queue"},
    )
    assert default_eval_sample(manifest).labels == [1, 0]
    assert load_eval_sample(path, manifest).labels == [1, 0]


def test_builtin_sample_fits_each_task() -> None:
    assert builtin_sample(TaskKind.CLASSIFICATION).pairs is None
    qa = builtin_sample(TaskKind.QUESTION_ANSWERING)
    assert qa.pairs is not None and qa.texts[0].endswith("?")


def test_real_conll_test_split_reads_every_sentence(shared_data: Path) -> None:
    sample = read_conll(shared_data / "conll2003" / "test.txt")
    assert sample.words is not None and sample.tags is not None
    assert len(sample) > 3000
    assert {t for tags in sample.tags for t in tags} >= {"O", "B-PER", "I-ORG", "B-MISC"}
