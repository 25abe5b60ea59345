"""SQuAD-format question answering data (v1.1, and v2 with is_impossible), split by article."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from schemas import DataRef
from schemas.artifact import sha256_file
from training.errors import DataError, DataFileNotFound
from training.formats.tagged import Skipped

log = structlog.get_logger(__name__)

_SHOWN = 5


@dataclass(frozen=True)
class QAExample:
    """One question on one context; `answers` are (text, start char) pairs, empty if impossible."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    title: str = ""

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass(frozen=True)
class QAExamples:
    """A split of QA examples with its provenance and the examples skipped on loading."""

    examples: list[QAExample]
    ref: DataRef = field(default_factory=lambda: DataRef(source="memory"))
    skipped: list[Skipped] = field(default_factory=list)
    version: str = "1.1"

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def titles(self) -> list[str]:
        """Article titles in order of first appearance."""
        return list(dict.fromkeys(e.title for e in self.examples))

    @property
    def has_impossible(self) -> bool:
        return any(e.is_impossible for e in self.examples)

    def subset(self, examples: Sequence[QAExample], split: str) -> QAExamples:
        return QAExamples(
            examples=list(examples),
            ref=self.ref.model_copy(update={"rows": len(examples), "split": split}),
            skipped=self.skipped,
            version=self.version,
        )

    def skip_summary(self) -> dict[str, int]:
        return dict(Counter(s.reason.split(":")[0] for s in self.skipped))


def _check(qa: dict[str, Any], context: str, where: str, *, v2: bool) -> str | None:
    """Why this question cannot be used, or None."""
    question = str(qa.get("question", "")).strip()
    if not question:
        return "empty question"
    if not context.strip():
        return "empty context"
    impossible = bool(qa.get("is_impossible", False))
    answers = qa.get("answers") or []
    if impossible:
        return None
    if not answers:
        return "no answer: the question has no answers and is not marked is_impossible" + (
            "" if v2 else " (SQuAD v1.1 has no unanswerable questions)"
        )
    for answer in answers:
        text, start = str(answer.get("text", "")), answer.get("answer_start")
        if not text.strip():
            return "empty answer text"
        if not isinstance(start, int) or not 0 <= start < len(context):
            return f"answer_start out of range: {start!r} for a context of {len(context)} chars"
        if context[start : start + len(text)] != text:
            found = context[start : start + len(text)]
            return f"answer not at answer_start: {text!r} expected at {start}, found {found!r}"
    return None


def load_squad(
    path: str | Path, *, limit: int | None = None, on_error: str = "raise"
) -> QAExamples:
    """Load a SQuAD v1.1/v2 JSON file. A question with an empty question or context, or an
    answer that does not occur at its answer_start, raises DataError naming it; with
    `on_error="skip"` it is skipped and recorded with the reason in `skipped`."""
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    source = Path(path)
    if not source.is_file():
        raise DataFileNotFound(f"SQuAD file {source} does not exist")
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise DataError(f"{source}: expected SQuAD JSON with a top-level 'data' list of articles")
    version = str(raw.get("version", "1.1"))
    examples: list[QAExample] = []
    skipped: list[Skipped] = []
    v2 = version.startswith("v2") or version.startswith("2")
    for a, article in enumerate(raw["data"]):
        title = str(article.get("title", f"article-{a}"))
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            context = str(paragraph.get("context", ""))
            for q, qa in enumerate(paragraph.get("qas", [])):
                qid = str(qa.get("id", f"{a}-{p}-{q}"))
                where = f"{source} question {qid} ({title!r}, paragraph {p})"
                problem = _check(qa, context, where, v2=v2)
                if problem:
                    if on_error == "raise":
                        raise DataError(
                            f"{where}: {problem}. Fix the file, or pass --on-error skip to skip "
                            "(and count) such questions."
                        )
                    skipped.append(Skipped(where=where, reason=problem))
                    continue
                answers = (
                    ()
                    if qa.get("is_impossible")
                    else tuple((str(x["text"]), int(x["answer_start"])) for x in qa["answers"])
                )
                examples.append(
                    QAExample(
                        id=qid,
                        question=str(qa["question"]).strip(),
                        context=context,
                        answers=answers,
                        title=title,
                    )
                )
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise DataError(f"{source}: no usable questions")
    if skipped:
        log.warning(
            "squad.skipped",
            source=str(source),
            count=len(skipped),
            first=[f"{s.where}: {s.reason}" for s in skipped[:_SHOWN]],
        )
    ref = DataRef(
        source=str(source),
        rows=len(examples),
        columns=["question", "context", "answers"],
        sha256=sha256_file(source),
    )
    return QAExamples(examples=examples, ref=ref, skipped=skipped, version=version)


def split_by_article(
    data: QAExamples, *, held_out: int, seed: int, names: tuple[str, str] = ("train", "held-out")
) -> tuple[QAExamples, QAExamples]:
    """Split by article so no context of the held-out part is seen in training: `held_out`
    articles, chosen with `seed`, go to the second split. `names` label the two splits."""
    titles = data.titles
    if not 0 < held_out < len(titles):
        raise DataError(
            f"cannot hold out {held_out} of {len(titles)} articles: keep at least one on each side"
        )
    chosen = set(random.Random(seed).sample(titles, held_out))
    kept = [e for e in data.examples if e.title not in chosen]
    out = [e for e in data.examples if e.title in chosen]
    return (
        data.subset(kept, f"{names[0]}: {len(titles) - held_out} articles"),
        data.subset(out, f"{names[1]}: {held_out} articles (seed {seed})"),
    )
