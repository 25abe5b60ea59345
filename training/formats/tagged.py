"""Token-tagged sentences for NER: CoNLL column files, JSONL/parquet rows, Hub datasets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from schemas import DataRef
from schemas.artifact import sha256_file
from training.errors import DataError, DataFileNotFound, UnknownLabel
from training.formats._iob import bio_label_set, is_bio_tag, to_iob2

log = structlog.get_logger(__name__)

CONLL_SUFFIXES = {".txt", ".conll", ".iob", ".iob2", ".bio", ".tsv"}
ROW_SUFFIXES = {".jsonl", ".json", ".parquet"}
DOCSTART = "-DOCSTART-"
_SPLIT_NAMES = {
    "train": ("train", "eng.train", "training"),
    "validation": ("valid", "validation", "dev", "eng.testa", "val"),
    "test": ("test", "eng.testb"),
}
_SHOWN = 5


@dataclass(frozen=True)
class Skipped:
    """A sentence left out on purpose, with where it was and why."""

    where: str
    reason: str


@dataclass(frozen=True)
class TaggedSentences:
    """Pre-split sentences with one IOB2 tag id per token, indexing `label_names`."""

    tokens: list[list[str]]
    tags: list[list[int]]
    label_names: list[str]
    ref: DataRef = field(default_factory=lambda: DataRef(source="memory"))
    skipped: list[Skipped] = field(default_factory=list)
    #: Tags rewritten from IOB1 to IOB2 (an entity opening with I-).
    repaired_tags: int = 0
    #: Document number of each sentence (CoNLL -DOCSTART- blocks), when the source has them:
    #: neighbouring sentences of the same document can then serve as context.
    documents: list[int] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    def tag_names(self, index: int) -> list[str]:
        return [self.label_names[t] for t in self.tags[index]]

    def subset(self, indices: Sequence[int]) -> TaggedSentences:
        """The sentences at `indices`; the skips and repairs of the source stay on record."""
        return TaggedSentences(
            tokens=[self.tokens[i] for i in indices],
            tags=[self.tags[i] for i in indices],
            label_names=self.label_names,
            ref=self.ref.model_copy(update={"rows": len(indices)}),
            skipped=self.skipped,
            repaired_tags=self.repaired_tags,
            documents=None if self.documents is None else [self.documents[i] for i in indices],
        )

    def skip_summary(self) -> dict[str, int]:
        """Skipped sentences counted by reason (without the line numbers)."""
        return dict(Counter(s.reason.split(":")[0] for s in self.skipped))


def find_conll_splits(directory: Path) -> dict[str, Path]:
    """The train/validation/test files of a CoNLL directory (train.txt, valid.txt, test.txt...)."""
    found: dict[str, Path] = {}
    files = {p.stem.lower(): p for p in sorted(directory.iterdir()) if p.is_file()}
    files.update({p.name.lower(): p for p in sorted(directory.iterdir()) if p.is_file()})
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            if name in files:
                found[split] = files[name]
                break
    if "train" not in found:
        raise DataFileNotFound(
            f"{directory} holds no training file: expected train.txt (and valid.txt, test.txt), "
            "or pass the file itself"
        )
    return found


def holds_tagged_sentences(data: str, split: str | None = None) -> bool:
    """Whether local `data` holds tagged sentences: a CoNLL file or directory, or JSONL whose
    first record has a `tokens` list; anything else (labelled texts, a Hub name) does not."""
    path = Path(data)
    if path.is_dir():
        path = find_conll_splits(path).get(split or "test", path)
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return True
    if suffix != ".jsonl" or not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        first = next((line for line in fh if line.strip()), "")
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and isinstance(record.get("tokens"), list)


def _conll_sentences(path: Path) -> Iterator[tuple[int, int, list[tuple[int, str]]]]:
    """(document number, first line number, [(line number, line)]) per blank-line separated
    sentence; each -DOCSTART- line opens a new document."""
    block: list[tuple[int, str]] = []
    document = 0
    with path.open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith(DOCSTART):
                if block:
                    yield document, block[0][0], block
                    block = []
                if line.startswith(DOCSTART):
                    document += 1
                continue
            block.append((number, line))
    if block:
        yield document, block[0][0], block


def _read_conll(
    path: Path, *, on_error: str
) -> tuple[list[list[str]], list[list[str]], list[Skipped], list[int]]:
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    skipped: list[Skipped] = []
    documents: list[int] = []
    for document, first, block in _conll_sentences(path):
        words: list[str] = []
        labels: list[str] = []
        problem = None
        for number, line in block:
            columns = line.split()
            if len(columns) < 2:
                problem = (
                    f"malformed line: {path}:{number} has {len(columns)} column(s) "
                    f"({line[:60]!r}); expected 'token ... tag'"
                )
            elif not is_bio_tag(columns[-1]):
                problem = (
                    f"bad tag: {path}:{number} has tag {columns[-1]!r}; expected O, B-TYPE "
                    "or I-TYPE in the last column"
                )
            if problem:
                break
            words.append(columns[0])
            labels.append(columns[-1])
        if problem:
            if on_error == "raise":
                raise DataError(
                    f"{problem}. Fix the file, or pass --on-error skip to skip "
                    "(and count) such sentences."
                )
            skipped.append(Skipped(where=f"{path}:{first}", reason=problem))
            continue
        tokens.append(words)
        tags.append(labels)
        documents.append(document)
    return tokens, tags, skipped, documents


def _read_rows(
    source: str, *, split: str | None, tokens_column: str, tags_column: str
) -> tuple[list[Any], list[Any], list[str] | None]:
    """Tokens and tags columns of a JSONL/parquet file or a Hub dataset, with ClassLabel names."""
    if Path(source).suffix.lower() in ROW_SUFFIXES or Path(source).exists():
        from training.data import read_table

        frame = read_table(source)
        missing = [c for c in (tokens_column, tags_column) if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source}: column(s) {missing} not found; available: {list(frame.columns)}. "
                "Pass --tokens-column/--tags-column."
            )
        return list(frame[tokens_column]), list(frame[tags_column]), None
    import datasets

    name, _, config = source.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as exc:  # the Hub raises many types: offline, missing, auth
        raise DataFileNotFound(
            f"cannot load Hub dataset {name!r} (split {split!r}): {exc}. "
            "Offline? Pass a CoNLL file or directory, or a JSONL file instead."
        ) from exc
    if tags_column == "tags" and "tags" not in ds.column_names and "ner_tags" in ds.column_names:
        tags_column = "ner_tags"  # the Hub's convention (conll2003, wnut_17, ...)
    if tokens_column not in ds.column_names or tags_column not in ds.column_names:
        raise DataError(
            f"{source}: needs columns {tokens_column!r} and {tags_column!r}; "
            f"has {ds.column_names}. Pass --tokens-column/--tags-column."
        )
    feature = ds.features[tags_column]
    names = getattr(getattr(feature, "feature", None), "names", None)
    return list(ds[tokens_column]), list(ds[tags_column]), names


def _row_tags(
    raw_tokens: list[Any], raw_tags: list[Any], names: Sequence[str] | None, source: str
) -> tuple[list[list[str]], list[list[str]], list[Skipped]]:
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    skipped: list[Skipped] = []
    for row, (words, labels) in enumerate(zip(raw_tokens, raw_tags, strict=True), start=1):
        where = f"{source} row {row}"
        words, labels = list(words), list(labels)
        if not words:
            skipped.append(Skipped(where=where, reason="empty sentence: no tokens"))
            continue
        if len(words) != len(labels):
            raise DataError(
                f"{where}: {len(words)} tokens but {len(labels)} tags; each token needs one tag"
            )
        as_names = []
        for label in labels:
            if isinstance(label, int | float) or (isinstance(label, str) and label.isdigit()):
                if names is None or not 0 <= int(label) < len(names):
                    raise UnknownLabel(
                        f"{where}: integer tag {label!r} but no label names to map it "
                        "(pass --label-names O,B-PER,I-PER,...)"
                    )
                label = names[int(label)]
            if not is_bio_tag(str(label)):
                raise DataError(f"{where}: tag {label!r} is not O, B-TYPE or I-TYPE")
            as_names.append(str(label))
        tokens.append([str(w) for w in words])
        tags.append(as_names)
    return tokens, tags, skipped


def load_tagged(
    source: str | Path,
    *,
    split: str | None = None,
    label_names: Sequence[str] | None = None,
    tokens_column: str = "tokens",
    tags_column: str = "tags",
    limit: int | None = None,
    on_error: str = "raise",
) -> TaggedSentences:
    """Load tagged sentences from a CoNLL file, a JSONL/parquet file or a Hub dataset.

    CoNLL: whitespace-separated columns, token first and IOB tag last, blank lines between
    sentences, -DOCSTART- lines skipped. IOB1 tags are rewritten as IOB2 (and counted). With
    `label_names` given (e.g. a trained model's), a tag outside them is an UnknownLabel error.
    Malformed sentences raise DataError, or with `on_error="skip"` are skipped and recorded in
    `skipped` with the reason.
    """
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    text = str(source)
    path = Path(text)
    documents: list[int] | None = None
    if path.is_dir():
        path = find_conll_splits(path)["train" if split in (None, "train") else split]
    if path.suffix.lower() in CONLL_SUFFIXES:
        if not path.is_file():
            raise DataFileNotFound(f"data file {path} does not exist")
        tokens, tag_names, skipped, documents = _read_conll(path, on_error=on_error)
    else:
        raw_tokens, raw_tags, names = _read_rows(
            text, split=split, tokens_column=tokens_column, tags_column=tags_column
        )
        tokens, tag_names, skipped = _row_tags(raw_tokens, raw_tags, names or label_names, text)
    if limit is not None:
        tokens, tag_names = tokens[:limit], tag_names[:limit]
        documents = documents[:limit] if documents is not None else None
    if not tokens:
        raise DataError(f"{source}: no sentences to load")
    repaired = 0
    for i, sentence_tags in enumerate(tag_names):
        tag_names[i], changed = to_iob2(sentence_tags)
        repaired += changed
    names_out = list(label_names) if label_names else bio_label_set(t for s in tag_names for t in s)
    index = {name: i for i, name in enumerate(names_out)}
    ids: list[list[int]] = []
    for i, sentence_tags in enumerate(tag_names):
        unknown = [t for t in sentence_tags if t not in index]
        if unknown:
            raise UnknownLabel(
                f"{source}: sentence {i + 1} ({' '.join(tokens[i][:8])}...) has tag "
                f"{unknown[0]!r}, which is not in the label set {names_out}; the model cannot "
                "predict it. Train with data that has this type, or fix the tag."
            )
        ids.append([index[t] for t in sentence_tags])
    if skipped:
        log.warning(
            "tagged.skipped",
            source=text,
            count=len(skipped),
            first=[f"{s.where}: {s.reason}" for s in skipped[:_SHOWN]],
        )
    ref = DataRef(
        source=text,
        split=split or (path.stem if path.is_file() else None),
        rows=len(tokens),
        columns=["tokens", "tags"],
        sha256=sha256_file(path) if path.is_file() else None,
    )
    return TaggedSentences(
        tokens=tokens,
        tags=ids,
        label_names=names_out,
        ref=ref,
        skipped=skipped,
        repaired_tags=repaired,
        documents=documents,
    )
