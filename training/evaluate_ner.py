"""Evaluate one or several NER artifacts on tagged sentences, with a probability-mean ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas import ModelManifest, TaskKind
from training._members import load_members, report_key, write_summary
from training.errors import ConfigError
from training.formats.tagged import TaggedSentences, load_tagged
from training.tasks._heads import HeadSlice
from training.tasks.token_classification import (
    DEFAULT_STRIDE,
    FloatArray,
    TokenClassificationTask,
)

ENSEMBLE = "ensemble-mean"
SUMMARY_KEYS = ("precision", "recall", "f1")


def evaluate_taggers(
    models: Sequence[Path],
    *,
    data: str,
    split: str | None,
    output: Path,
    limit: int | None = None,
    batch_size: int = 64,
    viterbi: bool = True,
) -> dict[str, dict[str, Any]]:
    """Report each NER model on `data` (a CoNLL file, or a directory's `split` file) into
    output/NAME, seqeval overall and per type; with several models, also their ensemble: the
    mean of the models' per-word tag probabilities, then decoded: to the best valid BIO
    sequence, as the stream does, or with `viterbi=False` word by word.

    Each model reads the sentences as it was trained to (its own max length, stride and
    document context, from its training config).
    """
    loaded, labels = load_members(
        models,
        _as_tagger,
        what="tags",
        rule="ensembled taggers must share one tag set, in one order",
    )
    sentences = load_tagged(data, split=split, label_names=labels, limit=limit)
    results: dict[str, dict[str, Any]] = {}
    all_probs: list[list[FloatArray]] = []
    decoder = TokenClassificationTask(labels)
    for position, (path, (model, tokenizer, manifest)) in enumerate(
        zip(models, loaded, strict=True)
    ):
        training = manifest.training
        task = TokenClassificationTask(
            labels,
            stride=int(training.get("stride", DEFAULT_STRIDE)),
            context_tokens=int(training.get("context_tokens", 0)),
        )
        probs = task.predict_word_probs(
            model,
            tokenizer,
            sentences.tokens,
            max_length=manifest.max_length,
            batch_size=batch_size,
            progress=f"tagging with {path.name}",
            documents=sentences.documents,
        )
        all_probs.append(probs)
        key = report_key(path, position, results)
        results[key] = _report(decoder, sentences, probs, output / key, viterbi=viterbi)
    if len(models) > 1:
        mean = mean_word_probs(all_probs)
        results[ENSEMBLE] = _report(decoder, sentences, mean, output / ENSEMBLE, viterbi=viterbi)
    write_summary(output, results, SUMMARY_KEYS)
    return results


def mean_word_probs(members: Sequence[Sequence[FloatArray]]) -> list[FloatArray]:
    """The ensemble's word probabilities: per sentence, the mean of the members' (words, tags)
    arrays; `members` holds each member's arrays, sentences in the same order."""
    return [sum(per_model) / len(per_model) for per_model in zip(*members, strict=True)]


def _as_tagger(path: Path, model: Any, tokenizer: Any, manifest: ModelManifest) -> Any:
    """The artifact as a tagger: as it is, or the tag half of a classify-and-tag model (its tag
    columns per token), with a manifest naming just the tags; other tasks are refused."""
    if manifest.task is TaskKind.TOKEN_CLASSIFICATION:
        return model, tokenizer, manifest
    if manifest.task is TaskKind.CLASSIFY_AND_TAG:
        return HeadSlice(model, manifest.tag_labels, 0).eval(), tokenizer, manifest.tag_half()
    raise ConfigError(
        f"{path} is a {manifest.task.value} model, not a tagger: evaluate it on labelled texts"
    )


def _report(
    task: TokenClassificationTask,
    sentences: TaggedSentences,
    probs: Sequence[FloatArray],
    out_dir: Path,
    *,
    viterbi: bool,
) -> dict[str, Any]:
    from training.tasks._ner_eval import report_ner

    predictions = task.decode(probs, viterbi=viterbi)
    gold = [sentences.tag_names(i) for i in range(len(sentences))]
    predicted = [[task.label_names[t] for t in p.tags] for p in predictions]
    metrics = report_ner(sentences.tokens, gold, predicted, task.label_names, out_dir)
    metrics["decoding"] = "viterbi" if viterbi else "argmax"
    return metrics
