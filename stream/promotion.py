"""The gates a candidate model passes before a model home makes it current.

- artifact: the candidate's checksums verify; it has the active model's task and the same
  labels in the same order (routing rules name them);
- parity: its export report (export_report.json) exists and passed; when the active model has
  an int8 ONNX file, so does the candidate;
- test set: on a labelled file, the candidate is no worse than the active model by more than
  the margin (accuracy points; micro-F1 for multi-label models), both served as the worker
  serves them (stream.models.inference_loader: the ONNX int8 model by default);
- reviewed: the same comparison on reviewers' corrections (a CSV of text and label), when given.

A failed gate changes nothing; `promote` installs and activates only when every gate passes.
With no active model (a new home) the comparative gates say so and pass; parity still applies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from schemas import Classification, FileRole, ModelManifest, TaskKind
from schemas.artifact import read_manifest
from schemas.errors import TextrouteError
from stream.errors import StreamError
from stream.model_home import HistoryEntry, ModelHome
from stream.models import Loader
from stream.user_files import UserFile

GATE_ARTIFACT = "artifact"
GATE_PARITY = "parity"
GATE_TEST = "test set"
GATE_REVIEWED = "reviewed"
#: The columns of a reviewed-messages file (other columns are metadata, ignored).
REVIEWED_TEXT_COLUMN = "text"
REVIEWED_LABEL_COLUMN = "label"
DEFAULT_TEXT_COLUMN = "text"
DEFAULT_LABEL_COLUMN = "label"
DEFAULT_MARGIN = 0.5
#: Texts classified per call while scoring.
_CHUNK = 256
#: Tasks whose classes a labelled file can score.
_CLASSIFIERS = (TaskKind.CLASSIFICATION, TaskKind.MULTI_LABEL, TaskKind.CLASSIFY_AND_TAG)


class PromotionInputError(StreamError):
    """A file, column or label given to `textroute promote` cannot be used."""


class GateStatus(str, Enum):
    PASS = "pass"
    FAIL = "FAIL"
    #: A comparative gate with nothing to compare with: a new home's first promotion.
    NO_ACTIVE = "no active model"
    SKIPPED = "skipped"
    #: The candidate could not be checked this way (its artifact gate failed).
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Figures:
    """One model's scores on one labelled file."""

    #: "accuracy", or "f1_micro" for multi-label models: the figure the margin applies to.
    metric: str
    value: float
    f1_macro: float
    rows: int
    #: Texts the model returned an error for (counted as wrong).
    errors: int = 0

    def __str__(self) -> str:
        name = "accuracy" if self.metric == "accuracy" else "micro-F1"
        failed = f", {self.errors} failed" if self.errors else ""
        return f"{name} {100 * self.value:.2f}, macro-F1 {100 * self.f1_macro:.2f}{failed}"

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": round(self.value, 6),
            "f1_macro": round(self.f1_macro, 6),
            "rows": self.rows,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Gate:
    """The result of one gate."""

    name: str
    status: GateStatus
    detail: str
    candidate: Figures | None = None
    active: Figures | None = None

    @property
    def failed(self) -> bool:
        return self.status in (GateStatus.FAIL, GateStatus.NOT_RUN)

    def as_json(self) -> dict[str, Any]:
        return {
            "gate": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "candidate": self.candidate.as_json() if self.candidate else None,
            "active": self.active.as_json() if self.active else None,
        }


@dataclass(frozen=True)
class GateOptions:
    """What `textroute promote` was told about the comparison."""

    test: Path | None = None
    reviewed: Path | None = None
    #: None: "text", or the columns of the active model's own evaluation data when that is
    #: the default test file.
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    margin: float = DEFAULT_MARGIN
    skip_test_gate: bool = False


@dataclass(frozen=True)
class LabelledSet:
    """A labelled file read for scoring: texts and each one's gold label set."""

    path: Path
    texts: list[str]
    gold: list[frozenset[str]]


@dataclass(frozen=True)
class GateReport:
    """Every gate's result for one candidate against the active version."""

    candidate_dir: Path
    candidate: ModelManifest
    active_version: str | None
    gates: list[Gate]

    @property
    def passed(self) -> bool:
        return not any(g.failed for g in self.gates)

    def failures(self) -> list[Gate]:
        """The gates that failed (a gate not run counts only when none failed outright)."""
        failed = [g for g in self.gates if g.status is GateStatus.FAIL]
        return failed or [g for g in self.gates if g.failed]


@dataclass(frozen=True)
class Outcome:
    """What `promote` did: the gate report (None when the candidate was already active) and
    the history entry of the promotion (None when nothing changed)."""

    report: GateReport | None
    entry: HistoryEntry | None = None
    dry_run: bool = False

    @property
    def already_active(self) -> bool:
        return self.report is None


# -- reading labelled files -------------------------------------------------------------------


def _join_text(values: dict[str, Any], columns: Sequence[str]) -> str:
    # As training joins several text columns: '. ' between the non-empty ones.
    parts = [str(values.get(c) or "").strip() for c in columns]
    return " ".join(". ".join(p for p in parts if p).split())


def _single_label(value: Any, labels: Sequence[str], indexes: bool) -> str | None:
    text = str(value).strip()
    if text in labels:
        return text
    if indexes and text.isdigit() and int(text) < len(labels):
        return labels[int(text)]  # integer labels index the model's names, as in training
    return None


def _label_set(value: Any) -> list[str] | None:
    if isinstance(value, list):
        raw: Any = value
    else:
        text = str(value).strip()
        if not text.startswith("["):
            return None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, list) or not all(isinstance(v, str | int) for v in raw):
        return None
    return [str(v).strip() for v in raw]


def read_labelled(
    path: Path,
    text_columns: Sequence[str],
    label_column: str,
    labels: Sequence[str],
    *,
    multi_label: bool,
    what: str,
) -> LabelledSet:
    """Read a CSV/TSV or JSON-lines file of labelled texts; PromotionInputError names the
    line at fault (missing column, empty text, a label the model does not have)."""
    if not path.is_file():
        raise PromotionInputError(f"{what} file {path} does not exist")
    source = UserFile.open(path)
    missing = [c for c in (*text_columns, label_column) if c not in source.columns]
    if missing:
        raise PromotionInputError(
            f"{what} file {path}: column(s) {', '.join(map(repr, missing))} not found; "
            f"available: {', '.join(source.columns) or 'none'} (see --text-column, --label-column)"
        )
    indexes = not all(label.lstrip("-").isdigit() for label in labels)
    texts: list[str] = []
    gold: list[frozenset[str]] = []
    for row in source.rows():
        where = f"{what} file {path}:{row.line}"
        if row.values is None:
            raise PromotionInputError(f"{where}: {row.problem}")
        text = _join_text(row.values, text_columns)
        if not text:
            raise PromotionInputError(f"{where}: empty text in {'+'.join(text_columns)}")
        value = row.values.get(label_column)
        found: list[str | None]
        if multi_label:
            parsed = _label_set(value)
            if parsed is None:
                raise PromotionInputError(
                    f"{where}: {label_column} {value!r} is not a JSON list of labels"
                )
            found = [_single_label(v, labels, False) for v in parsed]
            unknown = [v for v, f in zip(parsed, found, strict=True) if f is None]
        else:
            found = [_single_label(value, labels, indexes)]
            unknown = [str(value)] if found[0] is None else []
        if unknown:
            raise PromotionInputError(
                f"{where}: label {unknown[0]!r} is not one of the model's labels "
                f"({', '.join(labels)})"
            )
        texts.append(text)
        gold.append(frozenset(f for f in found if f is not None))
    if not texts:
        raise PromotionInputError(f"{what} file {path} holds no rows")
    return LabelledSet(path, texts, gold)


# -- scoring --------------------------------------------------------------------------------


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def score(model: Any, data: LabelledSet, *, multi_label: bool) -> Figures:
    """Accuracy (micro-F1 for multi-label models) and macro-F1 of `model` on `data`, as it
    serves them; a text the model fails on counts as wrong."""
    predicted: list[frozenset[str] | None] = []
    for start in range(0, len(data.texts), _CHUNK):
        for result in model.classify(data.texts[start : start + _CHUNK]):
            if not isinstance(result, Classification):
                predicted.append(None)
            elif multi_label:
                predicted.append(frozenset(s.label for s in result.labels or []))
            else:
                predicted.append(frozenset([result.label]))
    errors = sum(p is None for p in predicted)
    pairs = [(g, p or frozenset()) for g, p in zip(data.gold, predicted, strict=True)]
    present = sorted({label for g, p in pairs for label in g | p})
    counts = {label: [0, 0, 0] for label in present}  # tp, fp, fn
    for g, p in pairs:
        for label in g & p:
            counts[label][0] += 1
        for label in p - g:
            counts[label][1] += 1
        for label in g - p:
            counts[label][2] += 1
    macro = sum(_f1(*c) for c in counts.values()) / len(counts) if counts else 0.0
    if multi_label:
        tp, fp, fn = (sum(c[i] for c in counts.values()) for i in range(3))
        return Figures("f1_micro", _f1(tp, fp, fn), macro, len(pairs), errors)
    correct = sum(1 for (g, p), raw in zip(pairs, predicted, strict=True) if raw and g == p)
    return Figures("accuracy", correct / len(pairs), macro, len(pairs), errors)


def compare(name: str, candidate: Figures, active: Figures, margin: float) -> Gate:
    """Pass when the candidate is at most `margin` points below the active model."""
    diff = 100 * (candidate.value - active.value)
    metric = "accuracy" if candidate.metric == "accuracy" else "micro-F1"
    if diff >= -margin - 1e-9:
        return Gate(
            name, GateStatus.PASS, f"{diff:+.2f} points (margin {margin:g})", candidate, active
        )
    return Gate(
        name,
        GateStatus.FAIL,
        f"candidate {metric} {100 * candidate.value:.2f} is {-diff:.2f} points below the "
        f"active model's {100 * active.value:.2f} (margin {margin:g}) on {candidate.rows} rows",
        candidate,
        active,
    )


# -- the gates ------------------------------------------------------------------------------


def label_difference(active: Sequence[str], candidate: Sequence[str]) -> str | None:
    """How the candidate's labels differ from the active model's, or None when equal."""
    if list(active) == list(candidate):
        return None
    missing = [label for label in active if label not in candidate]
    added = [label for label in candidate if label not in active]
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing)}")
    if added:
        parts.append(f"adds {', '.join(added)}")
    if not parts:
        i = next(i for i, (a, c) in enumerate(zip(active, candidate, strict=True)) if a != c)
        parts.append(
            f"has them in another order (label {i} is {candidate[i]}, the active model's "
            f"{active[i]})"
        )
    return "the candidate's labels differ from the active model's: it " + " and ".join(parts)


def artifact_gate(
    candidate: ModelManifest,
    active: ModelManifest | None,
    home: ModelHome,
    *,
    verify_error: str | None,
) -> Gate:
    """The candidate verifies (`verify_error` None), can be installed, and has the active
    model's task and labels."""
    if verify_error is not None:
        return Gate(GATE_ARTIFACT, GateStatus.FAIL, verify_error)
    try:
        conflict = home.installed_conflict(candidate)
    except TextrouteError as exc:
        return Gate(GATE_ARTIFACT, GateStatus.FAIL, str(exc))
    if conflict is not None:
        return Gate(GATE_ARTIFACT, GateStatus.FAIL, conflict)
    if active is None:
        return Gate(
            GATE_ARTIFACT,
            GateStatus.PASS,
            "checksums verify; no active model to compare task and labels with",
        )
    problems = []
    if candidate.task is not active.task:
        problems.append(
            f"the candidate is a {candidate.task.value} model, the active one a "
            f"{active.task.value} model"
        )
    difference = label_difference(active.labels, candidate.labels)
    if difference is not None:
        problems.append(difference)
    if problems:
        return Gate(GATE_ARTIFACT, GateStatus.FAIL, "; ".join(problems))
    return Gate(
        GATE_ARTIFACT,
        GateStatus.PASS,
        f"checksums verify; task and {len(candidate.labels)} labels as the active model's",
    )


def parity_gate(
    candidate_dir: Path, candidate: ModelManifest, active: ModelManifest | None
) -> Gate:
    """The candidate's export report exists and passed; int8 ONNX when the active has one."""
    entry = candidate.file_for(FileRole.REPORT)
    if entry is None:
        return Gate(
            GATE_PARITY,
            GateStatus.FAIL,
            "the candidate has no export report (export_report.json): run `textroute export` on it",
        )
    try:
        report = json.loads((candidate_dir / entry.path).read_text(encoding="utf-8"))
        gates = report["gates"]
        if not isinstance(gates, list):
            raise TypeError("gates is not a list")
        failed = [
            f"{g['name']} {g['value']:.4g} (limit {g['limit']:.4g})"
            for g in gates
            if not g["passed"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Gate(GATE_PARITY, GateStatus.FAIL, f"export report {entry.path} unreadable: {exc}")
    if failed:
        return Gate(
            GATE_PARITY,
            GateStatus.FAIL,
            f"the candidate's export failed its parity gates: {'; '.join(failed)}",
        )
    if (
        active is not None
        and active.file_for(FileRole.ONNX_INT8) is not None
        and candidate.file_for(FileRole.ONNX_INT8) is None
    ):
        return Gate(
            GATE_PARITY,
            GateStatus.FAIL,
            "the active model serves an int8 ONNX file and the candidate has none: run "
            "`textroute export` on it",
        )
    return Gate(GATE_PARITY, GateStatus.PASS, f"export report: {len(gates)} parity gates passed")


@dataclass(frozen=True)
class LabelledFile:
    """The labelled file of the test-set gate and how to read it."""

    path: Path
    text_columns: tuple[str, ...]
    label_column: str
    default: bool = False


def find_test_file(options: GateOptions, active: ModelManifest | None) -> LabelledFile | None:
    """The test file: --test, else the active model's own evaluation data when it is a local
    file that exists; None when the gate is skipped or there is no active model to compare
    with. PromotionInputError when a comparison is due and no file is known."""
    text_columns = options.text_columns or (DEFAULT_TEXT_COLUMN,)
    label_column = options.label_column or DEFAULT_LABEL_COLUMN
    if options.skip_test_gate:
        return None
    if options.test is not None:
        return LabelledFile(options.test, text_columns, label_column)
    if active is None:
        return None
    data = active.eval_data
    if data is not None and Path(data.source).is_file():
        columns = tuple(data.columns)
        # The evaluation data's columns are its text columns, then its label column.
        if options.text_columns is None and options.label_column is None and len(columns) >= 2:
            text_columns, label_column = columns[:-1], columns[-1]
        return LabelledFile(Path(data.source), text_columns, label_column, default=True)
    named = f" (its eval data {data.source} is no local file)" if data is not None else ""
    raise PromotionInputError(
        f"no test set to compare the candidate with the active model {active.name} "
        f"{active.version}{named}: pass --test FILE or --skip-test-gate"
    )


def _classes(manifest: ModelManifest) -> list[str]:
    return list(manifest.class_labels or manifest.labels)


@dataclass
class _Scoring:
    """The labelled sets of the comparative gates, and why a gate has none."""

    sets: dict[str, LabelledSet] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _read_sets(
    options: GateOptions, candidate: ModelManifest, active: ModelManifest | None
) -> _Scoring:
    scoring = _Scoring()
    source = find_test_file(options, active)
    if options.skip_test_gate:
        scoring.skipped[GATE_TEST] = "--skip-test-gate"
    if options.reviewed is None:
        scoring.skipped[GATE_REVIEWED] = "no --reviewed file"
    wanted = source is not None or options.reviewed is not None
    if wanted and candidate.task not in _CLASSIFIERS:
        raise PromotionInputError(
            f"the test-set and reviewed gates score classifiers; {candidate.name} is a "
            f"{candidate.task.value} model: pass --skip-test-gate (and no --reviewed)"
        )
    multi = candidate.task is TaskKind.MULTI_LABEL
    classes = _classes(candidate)
    if source is not None:
        what = "test (the active model's eval data)" if source.default else "test"
        scoring.sets[GATE_TEST] = read_labelled(
            source.path,
            source.text_columns,
            source.label_column,
            classes,
            multi_label=multi,
            what=what,
        )
    if options.reviewed is not None:
        scoring.sets[GATE_REVIEWED] = read_labelled(
            options.reviewed,
            (REVIEWED_TEXT_COLUMN,),
            REVIEWED_LABEL_COLUMN,
            classes,
            multi_label=multi,
            what="reviewed",
        )
    return scoring


def _figures_of(
    load: Callable[[], Any], sets: dict[str, LabelledSet], multi: bool
) -> dict[str, Figures] | str:
    """Each set's figures for the model `load` gives, or why it could not be loaded."""
    try:
        model = load()
    except TextrouteError as exc:
        return f"{type(exc).__name__}: {exc}"
    return {name: score(model, data, multi_label=multi) for name, data in sets.items()}


def evaluate_gates(
    candidate_dir: Path,
    home: ModelHome,
    options: GateOptions,
    *,
    loader: Loader | None = None,
) -> GateReport:
    """Run every gate; changes nothing. Raises PromotionInputError (and the schemas' artifact
    errors for a candidate that is no artifact at all) on input that cannot be used."""
    if not math.isfinite(options.margin) or options.margin < 0:
        raise PromotionInputError(f"--margin must be a number of points >= 0, not {options.margin}")
    if not candidate_dir.is_dir():
        raise PromotionInputError(f"candidate {candidate_dir} is not a directory")
    candidate = read_manifest(candidate_dir, verify=False)
    active = home.active_manifest()
    active_version = home.active_version()
    scoring = _read_sets(options, candidate, active)

    try:
        read_manifest(candidate_dir, verify=True)
        verify_error = None
    except TextrouteError as exc:
        verify_error = str(exc)
    artifact = artifact_gate(candidate, active, home, verify_error=verify_error)
    parity = parity_gate(candidate_dir, candidate, active)
    gates = [artifact, parity]
    for name in (GATE_TEST, GATE_REVIEWED):
        if name in scoring.skipped:
            gates.append(Gate(name, GateStatus.SKIPPED, scoring.skipped[name]))
        elif name not in scoring.sets:  # the test set, with no active model and no --test
            gates.append(Gate(name, GateStatus.NO_ACTIVE, "no active model to compare with"))
    if scoring.sets:
        gates += _comparisons(
            candidate_dir,
            candidate,
            active,
            home,
            options,
            scoring,
            verified=not verify_error,
            loader=loader,
        )
    order = [GATE_ARTIFACT, GATE_PARITY, GATE_TEST, GATE_REVIEWED]
    gates.sort(key=lambda g: order.index(g.name))
    return GateReport(candidate_dir, candidate, active_version, gates)


def _comparisons(
    candidate_dir: Path,
    candidate: ModelManifest,
    active: ModelManifest | None,
    home: ModelHome,
    options: GateOptions,
    scoring: _Scoring,
    *,
    verified: bool,
    loader: Loader | None,
) -> list[Gate]:
    """The test-set and reviewed gates: both models scored on each labelled set, one model
    loaded at a time."""
    names = list(scoring.sets)
    if not verified:
        return [Gate(n, GateStatus.NOT_RUN, "the candidate does not verify") for n in names]
    if loader is None:
        from stream.models import inference_loader

        load = inference_loader()
    else:
        load = loader
    multi = candidate.task is TaskKind.MULTI_LABEL
    ours = _figures_of(lambda: load(candidate_dir), scoring.sets, multi)
    if isinstance(ours, str):
        return [Gate(n, GateStatus.FAIL, f"the candidate cannot be loaded: {ours}") for n in names]
    if active is None:
        return [
            Gate(n, GateStatus.NO_ACTIVE, "no active model to compare with", ours[n]) for n in names
        ]
    # Loaded from the directory `current` resolves to, as a worker does.
    theirs = _figures_of(lambda: load(home.current_link.resolve()), scoring.sets, multi)
    if isinstance(theirs, str):
        return [
            Gate(
                n,
                GateStatus.FAIL,
                f"the active model cannot be loaded ({theirs}); --skip-test-gate promotes "
                "without comparing",
                ours[n],
            )
            for n in names
        ]
    return [compare(n, ours[n], theirs[n], options.margin) for n in names]


def promote(
    candidate_dir: Path,
    home: ModelHome,
    options: GateOptions,
    *,
    dry_run: bool = False,
    loader: Loader | None = None,
) -> Outcome:
    """Evaluate the gates and, when all pass (and not `dry_run`), install the candidate and
    make it current. A candidate identical to the active version changes nothing."""
    if candidate_dir.is_dir() and home.active_version() is not None:
        manifest = read_manifest(candidate_dir, verify=False)
        if home.active_version() == manifest.version and home.active_manifest() == manifest:
            return Outcome(None, dry_run=dry_run)
    report = evaluate_gates(candidate_dir, home, options, loader=loader)
    if not report.passed or dry_run:
        return Outcome(report, dry_run=dry_run)
    entry = home.promote(
        candidate_dir,
        expected_active=report.active_version,
        gates=[g.as_json() for g in report.gates],
    )
    return Outcome(report, entry, dry_run=dry_run)


def shadow(candidate_dir: Path, home: ModelHome, *, loader: Loader | None = None) -> Outcome:
    """Check the candidate (the artifact and parity gates: it must be servable) and point the
    home's `shadow` link at it, for workers to run beside the active model. The comparative
    gates wait for `promote`: the shadow is how they are earned on live traffic."""
    options = GateOptions(skip_test_gate=True)
    report = evaluate_gates(candidate_dir, home, options, loader=loader)
    if not report.passed:
        return Outcome(report)
    return Outcome(report, home.shadow(candidate_dir))
