"""Loaders of labelled text: formats, column joining, label maps, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import make_rows, write_rows_csv
from training.data import check_trainable, load_labelled_texts, train_validation_split
from training.errors import (
    ColumnNotFound,
    DataError,
    DataFileNotFound,
    EmptyText,
    TooFewClasses,
    UnknownLabel,
)


def test_csv_joins_text_columns_and_maps_string_labels(topic_csv: Path) -> None:
    data = load_labelled_texts(str(topic_csv), text_columns=["title", "description"])
    assert len(data) == 240
    assert data.label_names == sorted({"Sports", "Business", "World", "Sci/Tech"})
    assert data.texts[0].count(". ") == 1  # title. description
    assert data.ref.sha256 and data.ref.rows == 240


def test_jsonl_with_given_label_names_keeps_their_order(topic_test_jsonl: Path) -> None:
    names = ["World", "Sports", "Business", "Sci/Tech"]
    data = load_labelled_texts(
        str(topic_test_jsonl), text_columns=["description"], label_names=names
    )
    assert data.label_names == names
    assert {data.label_names[i] for i in data.labels} == set(names)


def test_integer_labels_index_label_names(tmp_path: Path) -> None:
    path = tmp_path / "ints.csv"
    path.write_text("label,title,description\n2,,oil price up\n0,,war talks\n", encoding="utf-8")
    data = load_labelled_texts(
        str(path),
        text_columns=["title", "description"],
        label_names=["World", "Sports", "Business"],
    )
    assert data.labels == [2, 0]
    assert data.texts == ["oil price up", "war talks"]  # empty title adds no separator


def test_tsv_reads_unquoted_glue_style_rows(tmp_path: Path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\nit 's a \" charming journey\t1\nbleak\t0\n", encoding="utf-8")
    data = load_labelled_texts(str(path), text_columns=["sentence"])
    assert data.texts[0] == "it 's a \" charming journey"
    assert data.labels == [1, 0]


def test_parquet_is_read(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"text": ["a b", "c d"], "label": ["x", "y"]}).to_parquet(path)
    assert load_labelled_texts(str(path), text_columns=["text"]).labels == [0, 1]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFound, match="does not exist"):
        load_labelled_texts(str(tmp_path / "nope.csv"), text_columns=["text"])


def test_missing_column_names_the_column_and_the_available_ones(topic_csv: Path) -> None:
    with pytest.raises(ColumnNotFound, match=r"'body'.*available: title, description, label"):
        load_labelled_texts(str(topic_csv), text_columns=["body"])


def test_empty_text_names_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("text,label\nfine,a\n  ,b\n", encoding="utf-8")
    with pytest.raises(EmptyText, match=r"1 row.*rows 2"):
        load_labelled_texts(str(path), text_columns=["text"])


def test_label_outside_the_label_map_is_rejected_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("text,label\nfine,World\nodd,Weather\n", encoding="utf-8")
    with pytest.raises(UnknownLabel, match=r"row 2 has label 'Weather'"):
        load_labelled_texts(str(path), text_columns=["text"], label_names=["World", "Sports"])


def test_one_class_dataset_cannot_train(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    with pytest.raises(TooFewClasses, match="one class only"):
        check_trainable(load_labelled_texts(str(path), text_columns=["text"]))


def test_malformed_jsonl_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "a", "label": "x"}) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot parse"):
        load_labelled_texts(str(path), text_columns=["text"])


def test_validation_split_is_stratified_and_disjoint(topic_csv: Path) -> None:
    data = load_labelled_texts(str(topic_csv), text_columns=["title", "description"])
    train, val = train_validation_split(data, fraction=0.25, seed=0)
    assert len(train) + len(val) == len(data)
    assert len(val) == 60
    assert sorted(val.labels.count(i) for i in range(4)) == [15, 15, 15, 15]
    assert "validation" in (val.ref.split or "")


def test_eval_text_columns_join_the_test_text_without_touching_training(tmp_path: Path) -> None:
    from training.pipelines.classification import ClassifyConfig, load_splits

    rows = make_rows(40)
    path = write_rows_csv(tmp_path / "topics.csv", rows)
    cfg = ClassifyConfig(
        data=str(path),
        eval_data=str(path),
        text_columns=["description"],
        eval_text_columns=["title", "description"],
    )
    train, val, test = load_splits(cfg)
    assert test is not None
    assert test.texts == [f"{r['title']}. {r['description']}" for r in rows]
    assert sorted([*train.texts, *val.texts]) == sorted(r["description"] for r in rows)
