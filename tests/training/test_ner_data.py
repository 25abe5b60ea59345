"""Loading tagged sentences: CoNLL files and directories, JSONL rows, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.errors import DataError, DataFileNotFound, UnknownLabel
from training.formats.tagged import find_conll_splits, load_tagged

CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP B-PER
Smith NNP I-NP I-PER
visited VBD B-VP O
Paris NNP B-NP B-LOC
. . O O

Google NNP B-NP B-ORG
said VBD B-VP O

"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_file_skips_docstart_and_splits_on_blank_lines(tmp_path: Path) -> None:
    data = load_tagged(write(tmp_path / "train.txt", CONLL))
    assert data.tokens == [["John", "Smith", "visited", "Paris", "."], ["Google", "said"]]
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert data.tag_names(0) == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert data.ref.rows == 2 and data.ref.sha256 is not None


def test_iob1_tags_are_rewritten_as_iob2_and_counted(tmp_path: Path) -> None:
    data = load_tagged(write(tmp_path / "a.txt", "John I-PER\nSmith I-PER\nin O\nParis I-LOC\n"))
    assert data.tag_names(0) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert data.repaired_tags == 2


def test_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "John B-PER\nSmith\n\nParis B-LOC\n")
    with pytest.raises(DataError, match=r"bad\.txt:2 has 1 column"):
        load_tagged(path)


def test_malformed_sentences_can_be_skipped_and_are_counted_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "John B-PER\nSmith\n\nParis B-LOC\n\nBerlin B_CITY\nx O\n")
    data = load_tagged(path, on_error="skip")
    assert data.tokens == [["Paris"]]
    assert [s.where.rsplit(":", 1)[1] for s in data.skipped] == ["1", "6"]
    assert data.skip_summary() == {"malformed line": 1, "bad tag": 1}


def test_a_tag_that_is_not_bio_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tag 'PERSON'"):
        load_tagged(write(tmp_path / "a.txt", "John PERSON\n"))


def test_a_tag_outside_the_given_label_set_is_an_unknown_label_error(tmp_path: Path) -> None:
    path = write(tmp_path / "test.txt", "Apple B-ORG\nsaid O\n")
    with pytest.raises(UnknownLabel, match=r"'B-ORG'.*not in the label set"):
        load_tagged(path, label_names=["O", "B-PER", "I-PER"])


def test_jsonl_rows_with_string_or_integer_tags(tmp_path: Path) -> None:
    rows = [
        {"tokens": ["Mary", "lives", "in", "Berlin"], "tags": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": ["John"], "tags": [1]},
    ]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_tagged(path, label_names=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert data.tag_names(0) == ["B-PER", "O", "O", "B-LOC"]
    assert data.tag_names(1) == ["B-PER"]


def test_jsonl_row_with_mismatched_token_and_tag_counts_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(DataError, match="row 1: 2 tokens but 1 tags"):
        load_tagged(path)


def test_jsonl_empty_sentence_is_skipped_and_counted(tmp_path: Path) -> None:
    rows = [{"tokens": [], "tags": []}, {"tokens": ["Paris"], "tags": ["B-LOC"]}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_tagged(path)
    assert len(data) == 1 and data.skip_summary() == {"empty sentence": 1}


def test_conll_directory_finds_train_valid_and_test(tmp_path: Path) -> None:
    for name in ("train.txt", "valid.txt", "test.txt"):
        write(tmp_path / name, CONLL)
    splits = find_conll_splits(tmp_path)
    assert {k: p.name for k, p in splits.items()} == {
        "train": "train.txt",
        "validation": "valid.txt",
        "test": "test.txt",
    }
    assert len(load_tagged(tmp_path, split="test")) == 2


def test_directory_without_a_training_file_says_what_it_expects(tmp_path: Path) -> None:
    write(tmp_path / "notes.md", "x")
    with pytest.raises(DataFileNotFound, match=r"expected train\.txt"):
        load_tagged(tmp_path)


def test_real_conll2003_validation_split_loads_in_iob2(shared_data: Path) -> None:
    data = load_tagged(shared_data / "conll2003" / "valid.txt")
    assert len(data) == 3250
    assert data.label_names == [
        "O",
        "B-LOC",
        "I-LOC",
        "B-MISC",
        "I-MISC",
        "B-ORG",
        "I-ORG",
        "B-PER",
        "I-PER",
    ]
    assert data.repaired_tags == 0 and not data.skipped


def test_tagged_sentences_are_told_from_labelled_texts_by_content(tmp_path: Path) -> None:
    from training.formats.tagged import holds_tagged_sentences

    tagged = tmp_path / "tagged.jsonl"
    tagged.write_text('\n{"tokens": ["Paris"], "tags": ["B-LOC"]}\n', encoding="utf-8")
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "Paris", "label": "World"}\n', encoding="utf-8")
    (tmp_path / "conll").mkdir()
    for name in ("train.txt", "test.txt"):
        (tmp_path / "conll" / name).write_text("Paris B-LOC\n", encoding="utf-8")
    conll = tmp_path / "conll" / "test.txt"
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n", encoding="utf-8")
    assert holds_tagged_sentences(str(tagged))
    assert holds_tagged_sentences(str(conll))
    assert holds_tagged_sentences(str(tmp_path / "conll"), "test")  # a CoNLL directory's test file
    assert not holds_tagged_sentences(str(texts))
    assert not holds_tagged_sentences(str(broken))
    assert not holds_tagged_sentences("ag_news")
