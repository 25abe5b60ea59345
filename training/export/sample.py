"""The evaluation rows parity gates run on: given in Python, read from a file, or built in."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from schemas import ModelManifest, TaskKind
from training.errors import DataError, DataFileNotFound, UnknownLabel

_CONLL_SUFFIXES = {".conll", ".iob", ".iob2", ".txt"}

# Used when neither --data nor the manifest's eval data is at hand: no labels, so the gates
# compare fp32 with PyTorch and int8 with fp32 only.
_BUILTIN_TEXTS = [
    "Stocks fell sharply on Wall Street after the central bank raised interest rates.",
    "The home team won the championship final with a late goal in extra time.",
    "Rebels and government troops agreed to a ceasefire after talks in Geneva.",
    "The company unveiled a faster mobile chip and new software for its phones.",
    "Oil prices climbed as OPEC signalled further cuts to production.",
    "NASA said the probe sent back the first images from the far side of the moon.",
    "John Smith, chief executive of Acme Corp, will step down in London next month.",
    "Police in Paris arrested two men after the robbery of a jewellery shop.",
    "The coach praised his players after the season's opening match in Berlin.",
    "Google and Apple face new antitrust scrutiny from European regulators.",
    "The prime minister called an early election amid a row over the budget.",
    "Researchers trained a neural network to predict protein structures.",
]
_BUILTIN_PAIRS = [
    "What did the central bank do?",
    "Who won the championship final?",
    "Where were the talks held?",
    "What did the company unveil?",
    "Why did oil prices climb?",
    "What did the probe send back?",
    "Who will step down?",
    "Where were the men arrested?",
    "Where was the opening match?",
    "Which companies face scrutiny?",
    "What did the prime minister call?",
    "What did the researchers train?",
]


class EvalSample(BaseModel):
    """Rows for the gates. Classification: `texts` (+ `pairs` for pair tasks) and optional
    `labels`; NER: `words` with optional gold `tags`, or raw `texts`; QA: `texts` are questions
    and `pairs` their contexts."""

    source: str = "memory"
    texts: list[str] = Field(default_factory=list)
    pairs: list[str] | None = None
    labels: list[int] | None = None
    #: Multi-label models: each row's label indexes (its gold label set).
    label_sets: list[list[int]] | None = None
    words: list[list[str]] | None = None
    tags: list[list[str]] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> EvalSample:
        n = len(self.words) if self.words is not None else len(self.texts)
        for name in ("pairs", "labels", "label_sets", "tags"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows but there are {n} examples")
        if self.words is not None and self.tags is not None:
            for i, (w, t) in enumerate(zip(self.words, self.tags, strict=True)):
                if len(w) != len(t):
                    raise ValueError(f"sentence {i}: {len(w)} words but {len(t)} tags")
        if n == 0:
            raise ValueError("the evaluation sample is empty")
        return self

    def __len__(self) -> int:
        return len(self.words) if self.words is not None else len(self.texts)

    @classmethod
    def from_labelled(
        cls,
        texts: Sequence[str],
        labels: Sequence[str | int] | None,
        label_names: Sequence[str],
        *,
        pairs: Sequence[str] | None = None,
        source: str = "memory",
    ) -> EvalSample:
        """Texts with labels given as names or as indexes into `label_names`."""
        return cls(
            source=source,
            texts=list(texts),
            pairs=None if pairs is None else list(pairs),
            labels=None if labels is None else encode_labels(labels, label_names),
        )

    def subsample(self, n: int, *, seed: int = 0) -> EvalSample:
        """At most `n` rows, picked at random (seeded) so the gate sees every class."""
        if len(self) <= n:
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))

        def pick(
            rows: list[str] | list[int] | list[list[str]] | list[list[int]] | None,
        ) -> list[object] | None:
            return None if rows is None else [rows[i] for i in keep]

        return EvalSample.model_validate(
            {
                "source": f"{self.source} (random {n} of {len(self)})",
                "texts": pick(self.texts) if self.texts else [],
                "pairs": pick(self.pairs),
                "labels": pick(self.labels),
                "label_sets": pick(self.label_sets),
                "words": pick(self.words),
                "tags": pick(self.tags),
            }
        )


def encode_labels(labels: Sequence[str | int], names: Sequence[str]) -> list[int]:
    """Label names or indexes -> indexes; anything else is an UnknownLabel error."""
    index = {name: i for i, name in enumerate(names)}
    out: list[int] = []
    for row, value in enumerate(labels):
        text = str(value).strip()
        if text in index:
            out.append(index[text])
        elif text.isdigit() and int(text) < len(names):
            out.append(int(text))
        else:
            raise UnknownLabel(
                f"evaluation row {row + 1} has label {value!r}, not one of the model's "
                f"labels {list(names)}; fix the data or pass data for this model"
            )
    return out


def builtin_sample(task: TaskKind) -> EvalSample:
    """A dozen news-like sentences: enough to compare outputs, not to measure accuracy."""
    if task is TaskKind.QUESTION_ANSWERING:
        return EvalSample(source="built-in", texts=_BUILTIN_PAIRS, pairs=_BUILTIN_TEXTS)
    if task is TaskKind.PAIR_CLASSIFICATION:
        return EvalSample(source="built-in", texts=_BUILTIN_TEXTS, pairs=_BUILTIN_PAIRS)
    return EvalSample(source="built-in", texts=_BUILTIN_TEXTS)


def read_conll(path: Path) -> EvalSample:
    """CoNLL-2003 style: one token per line, the tag in the last column, blank lines between
    sentences, -DOCSTART- lines skipped."""
    words: list[list[str]] = []
    tags: list[list[str]] = []
    sent_w: list[str] = []
    sent_t: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if sent_w:
                words.append(sent_w)
                tags.append(sent_t)
                sent_w, sent_t = [], []
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{lineno}: expected 'token ... tag', got {line!r}")
        sent_w.append(cols[0])
        sent_t.append(cols[-1])
    if sent_w:
        words.append(sent_w)
        tags.append(sent_t)
    return EvalSample(source=str(path), words=words, tags=tags)


def read_squad(path: Path) -> EvalSample:
    """SQuAD v1 JSON: every question with its paragraph (answers are not needed for parity)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    questions: list[str] = []
    contexts: list[str] = []
    for article in doc.get("data", []):
        for para in article.get("paragraphs", []):
            for qa in para.get("qas", []):
                questions.append(qa["question"])
                contexts.append(para["context"])
    return EvalSample(source=str(path), texts=questions, pairs=contexts)


def load_eval_sample(
    source: str | Path,
    manifest: ModelManifest,
    *,
    label_column: str = "label",
    split: str | None = None,
) -> EvalSample:
    """Read gate rows from a file in the form the artifact's task needs (for a classify-and-tag
    artifact: CoNLL sentences for its tags, labelled texts for its classes). The default
    `label_column` means the column the artifact was trained with (its training config)."""
    path = Path(source)
    tagged = manifest.task in (TaskKind.TOKEN_CLASSIFICATION, TaskKind.CLASSIFY_AND_TAG)
    if tagged and path.suffix.lower() in _CONLL_SUFFIXES:
        if not path.is_file():
            raise DataFileNotFound(f"evaluation data {path} does not exist")
        return read_conll(path)
    if manifest.task is TaskKind.QUESTION_ANSWERING and path.suffix.lower() == ".json":
        if not path.is_file():
            raise DataFileNotFound(f"evaluation data {path} does not exist")
        return read_squad(path)
    if manifest.task is TaskKind.MULTI_LABEL:
        return _label_set_sample(str(source), manifest, label_column, split)
    from training.data import load_labelled_texts

    columns = manifest.text_columns or ["text"]
    pair_column = None
    if manifest.task is TaskKind.PAIR_CLASSIFICATION and len(columns) >= 2:
        columns, pair_column = columns[:-1], columns[-1]
    if label_column == "label":
        # A model trained with --label-column queue is gated on the same column.
        label_column = str(manifest.training.get("label_column") or "label")
    data = load_labelled_texts(
        str(source),
        text_columns=columns,
        label_column=label_column,
        pair_column=pair_column,
        split=split,
        label_names=manifest.class_labels or manifest.labels,
    )
    return EvalSample(source=str(source), texts=data.texts, pairs=data.pairs, labels=data.labels)


def _label_set_sample(
    source: str, manifest: ModelManifest, label_column: str, split: str | None
) -> EvalSample:
    """A multi-label model's gate rows, its labels read as it was trained to read them (the
    label column, separator or 0/1 columns of its training config); a `label_column` other
    than the default "label" overrides the column."""
    from training.formats.labelsets import load_label_sets

    training = manifest.training
    data = load_label_sets(
        source,
        text_columns=manifest.text_columns or ["text"],
        label_column=str(training.get("label_column", "labels"))
        if label_column == "label"
        else label_column,
        label_separator=training.get("label_separator"),
        label_columns=training.get("label_columns"),
        label_names=manifest.labels,
        split=split,
    )
    return EvalSample(source=source, texts=data.texts, label_sets=data.labels)


def default_eval_sample(manifest: ModelManifest) -> EvalSample:
    """The manifest's evaluation data when it is on this machine, else the built-in sample."""
    ref = manifest.eval_data
    if ref is not None and Path(ref.source).is_file():
        split = None if ref.split is None or ref.split.startswith("validation(") else ref.split
        return load_eval_sample(ref.source, manifest, split=split)
    return builtin_sample(manifest.task)


#: Keys of a classify-and-tag artifact's training config (MultiTaskConfig fields) naming its
#: held-out texts and sentences, the default gate data of its two heads.
CLASSIFY_EVAL_KEY = "classify_eval_data"
NER_EVAL_KEY = "ner_eval_data"


def default_head_samples(manifest: ModelManifest) -> tuple[EvalSample, EvalSample]:
    """A classify-and-tag artifact's held-out texts and CoNLL sentences named in its training
    config when they are on this machine, else the built-in sample for that head."""
    training = manifest.training
    texts: EvalSample = builtin_sample(TaskKind.CLASSIFICATION)
    source = training.get(CLASSIFY_EVAL_KEY)
    if isinstance(source, str) and Path(source).is_file():
        label_column = training.get("label_column", "label")
        texts = load_eval_sample(source, manifest, label_column=str(label_column))
    sentences: EvalSample = builtin_sample(TaskKind.TOKEN_CLASSIFICATION)
    source = training.get(NER_EVAL_KEY)
    if (
        isinstance(source, str)
        and Path(source).is_file()
        and Path(source).suffix.lower() in _CONLL_SUFFIXES
    ):
        sentences = read_conll(Path(source))
    return texts, sentences
