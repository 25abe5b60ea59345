"""`textroute train ner|qa|pair|multitask` and `textroute answer`: the token, QA, pair and
classify-and-tag task commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from training._cli_options import TextColumnsOpt, split_csv
from training._hp_options import with_hyperparameters
from training.models import DEFAULT_BASE_MODEL

if TYPE_CHECKING:  # the trainer pulls in torch: keep `textroute --help` fast
    from training.trainer import Hyperparameters

Opt = typer.Option
console = Console(stderr=True)
SettingsT = TypeVar("SettingsT", bound=BaseModel)

# Options every task command shares.
OutputOpt = Annotated[Path, Opt("--output", "-o", help="Artifact directory to write.")]
NameOpt = Annotated[str, Opt(help="Model name recorded in the manifest.")]
BaseModelOpt = Annotated[str, Opt(help="Hub id or local dir; default: offline MiniLM.")]
WorkDirOpt = Annotated[
    Path | None, Opt(help="Checkpoints and TensorBoard logs; default runs/NAME.")
]
ResumeOpt = Annotated[bool, Opt(help="Resume from the last checkpoint in the work dir.")]
OnErrorOpt = Annotated[
    Literal["raise", "skip"],
    Opt(help="A malformed sentence or question: raise, or skip it and count it."),
]
# Options of the commands that tag entities (ner, multitask).
LabelAllSubwordsOpt = Annotated[
    bool, Opt(help="Label every subword (B-X -> I-X after the first), not just the first.")
]
StrideOpt = Annotated[
    int, Opt(help="Token overlap between windows of a sentence longer than --max-length.")
]
ContextTokensOpt = Annotated[
    int,
    Opt(
        help="Subwords of the surrounding document (CoNLL -DOCSTART- blocks) read, "
        "unlabelled, on each side of a sentence; 0 = the sentence alone."
    ),
]


def _settings(cls: type[SettingsT], values: dict[str, Any], **overrides: Any) -> SettingsT:
    """The command's settings object from its parameters (named like the fields) and overrides."""
    # An unset optional flag (None) leaves the field to its TEXTROUTE_* env var or default; the
    # constructor, not model_validate, is what reads the environment.
    fields = {k: v for k, v in values.items() if k in cls.model_fields and v is not None}
    return cls(**{**fields, **overrides})


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f}" if isinstance(value, int | float) else "-"


def print_ner_summary(metrics: dict[str, Any], *, title: str) -> None:
    """Entity-level precision/recall/F1 overall and per type, for validation and test."""
    table = Table(title=title)
    for col in ("split", "type", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col in ("split", "type") else "right")
    for split in ("validation", "test"):
        m = metrics.get(split)
        if not m:
            continue
        table.add_row(
            split, "ALL", _pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]), str(m["entities"])
        )
        for kind, v in m["per_type"].items():
            table.add_row(
                "", kind, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"]), str(v["support"])
            )
    Console().print(table)


@with_hyperparameters(lr=1e-4, epochs=4.0)
def ner_command(
    data: Annotated[
        str,
        typer.Argument(
            help="CoNLL directory (train/valid/test), CoNLL or JSONL file, or Hub dataset."
        ),
    ],
    hp: Hyperparameters,
    output: OutputOpt = Path("models/ner"),
    name: NameOpt = "ner",
    validation_data: Annotated[
        str | None,
        Opt(help="Validation data; default: the directory's valid file, else 10% of train."),
    ] = None,
    eval_data: Annotated[
        str | None,
        Opt(
            "--eval-data",
            help="Held-out test data, reported only; default: the directory's test file.",
        ),
    ] = None,
    split: Annotated[str | None, Opt(help="Split of a Hub dataset for training.")] = None,
    tokens_column: Annotated[str, Opt(help="Tokens column of JSONL/parquet/Hub data.")] = "tokens",
    tags_column: Annotated[
        str, Opt(help="Tags column of JSONL/parquet/Hub data (ner_tags on the Hub).")
    ] = "tags",
    label_names: Annotated[
        str | None, Opt(help="Full tag set, comma-separated (maps integer tags).")
    ] = None,
    on_error: OnErrorOpt = "raise",
    label_all_subwords: LabelAllSubwordsOpt = False,
    stride: StrideOpt = 32,
    context_tokens: ContextTokensOpt = 0,
    base_model: BaseModelOpt = DEFAULT_BASE_MODEL,
    work_dir: WorkDirOpt = None,
    limit: Annotated[int | None, Opt(help="Use only the first N training sentences.")] = None,
    eval_limit: Annotated[
        int | None, Opt(help="Use only the first N validation and test sentences.")
    ] = None,
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune a token classifier (NER, IOB2 tags) and write its artifact."""
    from training.pipelines.token_classification import NerConfig, train_ner

    cfg = _settings(NerConfig, locals(), label_names=split_csv(label_names))
    manifest = train_ner(cfg)
    print_ner_summary(manifest.metrics, title=f"{manifest.name} {manifest.version} -> {output}")


@with_hyperparameters(lr=1e-4, epochs=3.0, max_length=384, batch_size=16)
def qa_command(
    data: Annotated[
        Path, typer.Argument(help="SQuAD-format JSON (v1.1, or v2 with is_impossible).")
    ],
    hp: Hyperparameters,
    output: OutputOpt = Path("models/qa"),
    name: NameOpt = "qa",
    eval_data: Annotated[
        Path | None,
        Opt("--eval-data", help="Held-out SQuAD JSON (reported, never used to select)."),
    ] = None,
    holdout_articles: Annotated[
        int, Opt(help="Without --eval-data: hold out N articles of DATA as the test split.")
    ] = 0,
    validation_articles: Annotated[
        int, Opt(help="Training articles used for validation; 0: about 10%.")
    ] = 0,
    on_error: OnErrorOpt = "raise",
    stride: Annotated[int, Opt(help="Token overlap between windows of a long context.")] = 128,
    max_answer_length: Annotated[int, Opt(help="Longest answer in tokens.")] = 30,
    null_threshold: Annotated[
        float | None,
        Opt(help="SQuAD v2: answer nothing when [CLS] beats the best span by more than this."),
    ] = None,
    base_model: BaseModelOpt = DEFAULT_BASE_MODEL,
    work_dir: WorkDirOpt = None,
    limit: Annotated[int | None, Opt(help="Use only the first N training questions.")] = None,
    eval_limit: Annotated[
        int | None, Opt(help="Use only the first N validation and test questions.")
    ] = None,
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune an extractive question-answering model and write its artifact."""
    from training.pipelines.question_answering import QAConfig, train_qa

    cfg = _settings(QAConfig, locals(), seed=hp.seed)
    manifest = train_qa(cfg)
    table = Table(title=f"{manifest.name} {manifest.version} -> {output}")
    for col in ("split", "questions", "exact_match", "f1"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in ("validation", "test"):
        m = manifest.metrics.get(split)
        if m:
            table.add_row(split, str(int(m["total"])), f"{m['exact_match']:.2f}", f"{m['f1']:.2f}")
    Console().print(table)


@with_hyperparameters(lr=5e-5, epochs=3.0)
def pair_command(
    data: Annotated[
        str,
        typer.Argument(
            help="Training data: TSV/CSV/JSONL/parquet (GLUE TSVs work) or Hub dataset."
        ),
    ],
    hp: Hyperparameters,
    task: Annotated[
        str | None, Opt(help="GLUE preset: sst2, mrpc, rte, qnli, mnli, qqp, cola, stsb.")
    ] = None,
    eval_data: Annotated[
        str | None,
        Opt(
            "--eval-data", help="Held-out data, e.g. GLUE dev.tsv (reported, never used to select)."
        ),
    ] = None,
    text_column: Annotated[
        str | None, Opt("--text-column", "-t", help="First text column (overrides the preset).")
    ] = None,
    pair_column: Annotated[
        str | None, Opt(help="Second text column (overrides the preset).")
    ] = None,
    label_column: Annotated[
        str | None, Opt(help="Label or score column (overrides the preset).")
    ] = None,
    label_names: Annotated[
        str | None, Opt(help="Names for integer labels 0..N-1, comma-separated.")
    ] = None,
    metric: Annotated[
        str | None,
        Opt(help="Metric choosing the best epoch: accuracy, f1, matthews_correlation, pearson."),
    ] = None,
    regression: Annotated[
        bool | None,
        Opt("--regression/--classification", help="One-output regression head (STS-B scores)."),
    ] = None,
    split: Annotated[str | None, Opt(help="Split of a Hub dataset for training.")] = "train",
    eval_split: Annotated[
        str | None, Opt(help="Split of a Hub dataset for --eval-data.")
    ] = "validation",
    base_model: BaseModelOpt = DEFAULT_BASE_MODEL,
    output: OutputOpt = Path("models/pair"),
    name: NameOpt = "pair",
    work_dir: WorkDirOpt = None,
    limit: Annotated[int | None, Opt(help="Use only the first N training rows.")] = None,
    eval_limit: Annotated[int | None, Opt(help="Use only the first N rows of --eval-data.")] = None,
    baseline: Annotated[
        bool, Opt(help="Also train the TF-IDF + Naive Bayes baseline (classification).")
    ] = True,
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune a sentence-pair (or single-sentence) GLUE-style classifier or regressor."""
    from training.pipelines.pair import PairConfig, train_pair

    cfg = _settings(PairConfig, locals(), label_names=split_csv(label_names))
    manifest = train_pair(cfg)
    table = Table(title=f"{manifest.name} {manifest.version} -> {output}")
    columns = ("accuracy", "f1", "matthews_correlation", "pearson", "spearman")
    table.add_column("split")
    for col in columns:
        table.add_column(col, justify="right")
    for split in ("validation", "test", "baseline"):
        m = manifest.metrics.get(split)
        if m:
            table.add_row(split, *(_pct(m.get(c)) for c in columns))
    Console().print(table)


def print_multitask_summary(metrics: dict[str, Any], *, title: str) -> None:
    """Class accuracy/macro F1, entity P/R/F1 and the headline score, per split."""
    table = Table(title=title)
    columns = ("accuracy", "f1_macro", "entity_p", "entity_r", "entity_f1", "score")
    table.add_column("split")
    for col in columns:
        table.add_column(col, justify="right")
    for split in ("validation", "test"):
        m = metrics.get(split)
        if not m:
            continue
        texts, ner = m.get("classification", {}), m.get("ner", {})
        table.add_row(
            split,
            *(_pct(texts.get(k)) for k in ("accuracy", "f1_macro")),
            *(_pct(ner.get(k)) for k in ("precision", "recall", "f1")),
            _pct(m.get("score")),
        )
    Console().print(table)


@with_hyperparameters(lr=1e-4, epochs=4.0)
def multitask_command(
    hp: Hyperparameters,
    classify_data: Annotated[
        str,
        Opt(help="Labelled texts: CSV/TSV/JSONL/parquet file or Hub dataset (validation: 10%)."),
    ],
    ner_data: Annotated[
        str,
        Opt(help="CoNLL directory (train/valid/test), CoNLL or JSONL file, or Hub dataset."),
    ],
    text_column: TextColumnsOpt = None,
    label_column: Annotated[str, Opt(help="Label column of the texts.")] = "label",
    label_names: Annotated[
        str | None, Opt(help="Class names for integer labels 0..N-1, comma-separated.")
    ] = None,
    classify_eval_data: Annotated[
        str | None, Opt(help="Held-out labelled texts (reported, never used to select).")
    ] = None,
    ner_validation_data: Annotated[
        str | None, Opt(help="NER validation; default: the directory's valid file, else 10%.")
    ] = None,
    ner_eval_data: Annotated[
        str | None, Opt(help="Held-out NER data; default: the directory's test file.")
    ] = None,
    tag_names: Annotated[
        str | None, Opt(help="Full NER tag set, comma-separated (maps integer tags).")
    ] = None,
    on_error: OnErrorOpt = "raise",
    label_all_subwords: LabelAllSubwordsOpt = False,
    stride: StrideOpt = 32,
    context_tokens: ContextTokensOpt = 0,
    output: OutputOpt = Path("models/multitask"),
    name: NameOpt = "multitask",
    base_model: BaseModelOpt = DEFAULT_BASE_MODEL,
    work_dir: WorkDirOpt = None,
    limit: Annotated[
        int | None, Opt(help="Use only the first N training texts and N training sentences.")
    ] = None,
    eval_limit: Annotated[
        int | None, Opt(help="Use only the first N held-out texts and sentences.")
    ] = None,
    resume: ResumeOpt = False,
    lexical: Annotated[
        bool,
        Opt(
            help="Fuse a TF-IDF + logistic-regression expert with the classes when it gains on "
            "validation (see `textroute train lexical`)."
        ),
    ] = True,
) -> None:
    """Fine-tune ONE encoder for classes and entities (one pass per text) and write its
    artifact (task classify-and-tag)."""
    from training.pipelines.multitask import MultiTaskConfig, train_multitask

    cfg = _settings(
        MultiTaskConfig,
        locals(),
        text_columns=split_csv(text_column) or ["text"],
        label_names=split_csv(label_names),
        tag_names=split_csv(tag_names),
    )
    manifest = train_multitask(cfg)
    print_multitask_summary(
        manifest.metrics, title=f"{manifest.name} {manifest.version} -> {output}"
    )


def answer_command(
    model: Annotated[Path, typer.Argument(help="Question-answering artifact directory.")],
    question: Annotated[str, Opt("--question", "-q", help="The question.")],
    context: Annotated[str, Opt("--context", "-c", help="The text holding the answer.")],
    null_threshold: Annotated[
        float | None,
        Opt(
            help="Answer nothing when [CLS] beats the best span by more than this; "
            "default: the model's (set for SQuAD v2 models only)."
        ),
    ] = None,
    max_answer_length: Annotated[int, Opt(help="Longest answer in tokens.")] = 30,
) -> None:
    """Answer a question from a context with a trained QA model (prints JSON)."""
    import json

    from inference import null_threshold_of
    from schemas import TaskKind
    from training.artifact import load_artifact
    from training.errors import ConfigError
    from training.tasks.question_answering import answer_question

    qa_model, tokenizer, manifest = load_artifact(model)
    if manifest.task is not TaskKind.QUESTION_ANSWERING:
        raise ConfigError(
            f"{model} is a {manifest.task.value} model; `answer` needs a question-answering one "
            "(train it with `textroute train qa`)"
        )
    training = manifest.training
    if null_threshold is None:
        null_threshold = null_threshold_of(manifest)
    answer = answer_question(
        qa_model,
        tokenizer,
        question,
        context,
        max_length=manifest.max_length,
        stride=int(training.get("stride", 128)),
        max_answer_length=max_answer_length,
        null_threshold=null_threshold,
    )
    typer.echo(
        json.dumps(
            {
                "answer": answer.text,
                "start": answer.start,
                "end": answer.end,
                "answered": bool(answer.text),
                "score": round(answer.score, 4),
            },
            ensure_ascii=False,
        )
    )


def register_tasks(train_app: typer.Typer, app: typer.Typer) -> None:
    """Add `train ner|qa|pair|multitask|multilabel` to `train_app` and `answer` to `app`."""
    train_app.command("ner")(ner_command)
    train_app.command("qa")(qa_command)
    train_app.command("pair")(pair_command)
    train_app.command("multitask")(multitask_command)
    from training.multilabel_cli import multilabel_command

    train_app.command("multilabel")(multilabel_command)
    app.command("answer")(answer_command)
