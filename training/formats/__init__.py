"""Readers of task-specific data formats: token-tagged sentences (CoNLL, JSONL, Hub) and SQuAD."""

from training.formats.squad import QAExample, QAExamples, load_squad, split_by_article
from training.formats.tagged import Skipped, TaggedSentences, find_conll_splits, load_tagged

__all__ = [
    "QAExample",
    "QAExamples",
    "Skipped",
    "TaggedSentences",
    "find_conll_splits",
    "load_squad",
    "load_tagged",
    "split_by_article",
]
