"""Document context for NER: CoNLL documents, the context window, unlabelled context tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from training.formats.tagged import TaggedSentences, load_tagged
from training.tasks._bio import IGNORE_INDEX
from training.tasks._context import subword_counts, with_context
from training.tasks.token_classification import TokenClassificationTask

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_base_model)


def test_conll_loader_numbers_documents_at_each_docstart(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nmary NN O B-PER\n\nparis NN O B-LOC\n\n"
        "-DOCSTART- -X- -X- O\n\njohn NN O B-PER\n",
        encoding="utf-8",
    )
    data = load_tagged(path)
    assert data.tokens == [["mary"], ["paris"], ["john"]]
    assert data.documents == [1, 1, 2]
    assert data.subset([2, 0]).documents == [2, 1]


def test_context_takes_neighbours_of_the_same_document_only(tokenizer: Any) -> None:
    sentences = [["john", "said"], ["mary", "visited", "paris"], ["the", "team"], ["london"]]
    contexts = with_context(tokenizer, sentences, [1, 1, 1, 2], budget=8, max_length=64)
    middle = contexts[1]
    assert middle.words == ["john", "said", "mary", "visited", "paris", "the", "team"]
    assert middle.words[middle.start : middle.start + middle.length] == sentences[1]
    # The last sentence is alone in its document: no context crosses the boundary.
    assert contexts[3].words == ["london"] and contexts[3].start == 0


def test_context_respects_its_subword_budget_and_the_window(tokenizer: Any) -> None:
    sentences = [["john", "said", "that"], ["mary", "visited"], ["the", "team", "won"]]
    counts = subword_counts(tokenizer, sentences)
    budget = counts[0][-1] + counts[0][-2]  # room for exactly the last two words on the left
    [_, middle, _] = with_context(tokenizer, sentences, [0, 0, 0], budget=budget, max_length=64)
    assert middle.words[: middle.start] == ["said", "that"]
    # A window with no room beyond the sentence itself leaves it without context.
    tight = with_context(tokenizer, sentences, [0, 0, 0], budget=50, max_length=2 + sum(counts[1]))
    assert tight[1].words == ["mary", "visited"]


def test_without_documents_or_budget_sentences_stand_alone(tokenizer: Any) -> None:
    sentences = [["mary"], ["paris"]]
    for documents, budget in ((None, 16), ([0, 0], 0)):
        contexts = with_context(tokenizer, sentences, documents, budget=budget, max_length=64)
        assert [c.words for c in contexts] == sentences


def test_context_words_are_unlabelled_in_training_windows(tokenizer: Any) -> None:
    data = TaggedSentences(
        tokens=[["mary", "visited"], ["paris"]],
        tags=[[1, 0], [3]],
        label_names=LABELS,
        documents=[0, 0],
    )
    task = TokenClassificationTask(LABELS, context_tokens=8)
    encoded = task.encode(tokenizer, data, max_length=32)
    first, second = encoded[0]["labels"], encoded[1]["labels"]
    # Sentence 1 reads "paris" on its right; sentence 2 reads "mary visited" on its left.
    assert [x for x in first if x != IGNORE_INDEX] == [1, 0]
    assert [x for x in second if x != IGNORE_INDEX] == [3]
    assert len(second) > 3, "the context words must be in the input"
    alone = TokenClassificationTask(LABELS).encode(tokenizer, data, max_length=32)
    assert len(alone[1]["input_ids"]) < len(encoded[1]["input_ids"])
