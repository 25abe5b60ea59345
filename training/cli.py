"""`textroute train ...` and `textroute evaluate`: the training package's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from training._cli_options import (
    EvalDataOpt,
    EvalLimitOpt,
    EvalSplitOpt,
    EvalTextColumnsOpt,
    LimitOpt,
    SplitOpt,
    TextColumnsOpt,
    split_csv,
)
from training._hp_options import flag_defaults, with_hyperparameters
from training.models import DEFAULT_BASE_MODEL

if TYPE_CHECKING:  # the trainer pulls in torch: keep `textroute --help` fast
    from training.trainer import Hyperparameters

console = Console(stderr=True)
train_app = typer.Typer(
    help="Fine-tune a model and write a versioned artifact.", no_args_is_help=True
)

Opt = typer.Option

#: `train classify`'s hyperparameters, the best recipe measured (bench/RESULTS.md: AG News and
#: the help-desk tickets): lr 1e-4 with layer decay 0.9, and at least 250 updates however small
#: the data (one epoch of 3,000 rows, 85 steps at 5e-5, left a help-desk model on the majority
#: class). With them: --pooling mean, --class-weight sqrt, --metric f1_macro (below).
CLASSIFY_HP = {"learning_rate": 1e-4, "layer_decay": 0.9, "epochs": 4.0, "min_steps": 250}


@train_app.command("classify")
@with_hyperparameters(include=("label_smoothing",), **flag_defaults(**CLASSIFY_HP))
def classify_command(
    ctx: typer.Context,
    data: Annotated[
        str, typer.Argument(help="Training data: CSV/TSV/JSONL/parquet file or Hub dataset name.")
    ],
    hp: Hyperparameters,
    text_column: TextColumnsOpt = None,
    label_column: Annotated[str, Opt(help="Label column.")] = "label",
    pair_column: Annotated[
        str | None, Opt(help="Second text column for sentence-pair tasks.")
    ] = None,
    label_names: Annotated[
        str | None,
        Opt(
            help="Names for integer labels 0..N-1, comma-separated. Without it label values "
            "are the class names (codes 1..12 make classes '1'..'12')."
        ),
    ] = None,
    eval_data: EvalDataOpt = None,
    eval_text_column: Annotated[
        list[str] | None,
        Opt(
            "--eval-text-column",
            help="Text column(s) of --eval-data, if not the training ones (AG News test has "
            "titles, the train subset none).",
        ),
    ] = None,
    class_weight: Annotated[
        Literal["sqrt", "balanced", "none"],
        Opt(
            help="Loss weight per class against imbalance: balanced (n / (classes x rows of "
            "the class)), sqrt (its square root) or none."
        ),
    ] = "sqrt",
    metric: Annotated[
        Literal["f1_macro", "accuracy", "f1", "matthews_correlation"],
        Opt(help="Validation figure that picks the epoch (f1: binary F1 of class 1)."),
    ] = "f1_macro",
    split: SplitOpt = "train",
    eval_split: EvalSplitOpt = "test",
    base_model: Annotated[
        str, Opt(help="Hub id or local dir; default: offline MiniLM.")
    ] = DEFAULT_BASE_MODEL,
    output: Annotated[Path, Opt("--output", "-o", help="Artifact directory to write.")] = Path(
        "models/classifier"
    ),
    name: Annotated[str, Opt(help="Model name recorded in the manifest.")] = "classifier",
    work_dir: Annotated[
        Path | None, Opt(help="Checkpoints and TensorBoard logs; default runs/NAME.")
    ] = None,
    pooling: Annotated[
        str,
        Opt(
            help="Head over the [CLS] vector (cls) or over the mean of the token vectors (mean: "
            "what sentence encoders such as the default MiniLM were trained with)."
        ),
    ] = "mean",
    limit: LimitOpt = None,
    eval_limit: EvalLimitOpt = None,
    validation_fraction: Annotated[
        float, Opt(help="Share of the training rows carved off for validation (0 < f < 0.5).")
    ] = 0.1,
    hp_search: Annotated[int, Opt("--hp-search", help="Optuna trials before the final run.")] = 0,
    baseline: Annotated[bool, Opt(help="Also train the TF-IDF + Naive Bayes baseline.")] = True,
    lexical: Annotated[
        bool,
        Opt(
            help="Fuse a TF-IDF + logistic-regression expert with the encoder when it gains on "
            "validation (single-text classifiers; see `textroute train lexical`)."
        ),
    ] = True,
    resume: Annotated[bool, Opt(help="Resume from the last checkpoint in the work dir.")] = False,
    init_from: Annotated[
        Path | None,
        Opt(
            "--init-from",
            help="Continue from this classification artifact (e.g. the deployed model): its "
            "encoder and head are the starting weights, its labels and their order are kept "
            "(an unknown label in DATA is an error); its base model, pooling, --max-length, "
            "text columns and name are the defaults.",
        ),
    ] = None,
    replay: Annotated[
        str | None,
        Opt(
            "--replay",
            help="With --init-from: earlier training data to mix in (read with DATA's columns) "
            "so the model does not forget; default: the parent's training data.",
        ),
    ] = None,
    replay_rows: Annotated[
        int | None,
        Opt(
            "--replay-rows",
            min=0,
            help="With --init-from: replay rows sampled (--seed); default 4 x the rows of DATA, "
            "capped by the replay data; 0: no replay.",
        ),
    ] = None,
) -> None:
    """Fine-tune a sequence (or sentence-pair) classifier and write its artifact.

    With --init-from ARTIFACT, continue from a trained classifier instead (retraining on
    reviewed rows): DATA's rows plus a replay sample of earlier data, the manifest's lineage
    naming the parent."""
    from training.pipelines.classification import ClassifyConfig, train_classifier

    settings: dict[str, Any] = dict(
        data=data,
        split=split,
        eval_data=eval_data,
        eval_split=eval_split,
        text_columns=split_csv(text_column) or ["text"],
        eval_text_columns=split_csv(eval_text_column),
        pair_column=pair_column,
        label_column=label_column,
        label_names=split_csv(label_names),
        base_model=base_model,
        name=name,
        output=output,
        work_dir=work_dir,
        limit=limit,
        eval_limit=eval_limit,
        validation_fraction=validation_fraction,
        baseline=baseline,
        hp_search=hp_search,
        resume=resume,
        pooling=pooling,  # pydantic checks the value
        lexical=lexical,
        class_weight=class_weight,  # pydantic checks the value
        metric=metric,
        hp=hp,
        init_from=init_from,
        replay=replay,
        replay_rows=replay_rows,
    )
    if init_from is not None:
        # What the user left at its default follows the parent (the pipeline fills in what the
        # settings do not set).
        if not text_column:
            del settings["text_columns"]
        if pair_column is None:
            del settings["pair_column"]
        for option in ("name", "pooling", "base_model"):
            if not _given(ctx, option):
                del settings[option]
        if not _given(ctx, "max_length"):
            settings["hp"] = hp.model_validate(hp.model_dump(exclude={"max_length"}))
    cfg = ClassifyConfig(**settings)
    manifest = train_classifier(cfg)
    print_summary(manifest.metrics, title=f"{manifest.name} {manifest.version} -> {output}")


@train_app.command("lexical")
def lexical_command(
    model: Annotated[
        Path, typer.Argument(help="A classifier (or classify-and-tag) artifact directory.")
    ],
    eval_data: Annotated[
        str | None,
        Opt("--eval-data", help="Test data to re-report fused; default: the training run's."),
    ] = None,
    eval_text_column: Annotated[
        list[str] | None, Opt("--eval-text-column", help="Text column(s) of --eval-data.")
    ] = None,
    no_eval: Annotated[bool, Opt("--no-eval", help="Skip the test re-report.")] = False,
) -> None:
    """Fit a TF-IDF + logistic-regression expert on the rows MODEL was trained on (its
    training config: data, columns, validation carve) and fuse it with the encoder: C by
    cross-validation on the training rows, the weight on the validation split. The stream,
    the API and `textroute evaluate` then serve the fused probabilities. MODEL may be a
    classifier or a classify-and-tag model (its classes; test figures: `textroute evaluate`)."""
    from schemas.artifact import read_manifest
    from schemas.manifest import TaskKind
    from training.errors import ConfigError
    from training.lexical import check_lexical_task
    from training.pipelines.classification import ClassifyConfig, lexical_for

    found = read_manifest(model, verify=False)  # loading the model verifies every file
    check_lexical_task(found, model)
    if found.lineage is not None and found.lineage.kind == "distilled":
        raise ConfigError(
            f"{model} is a distilled student: its expert is fitted as it is distilled "
            "(`train distill --lexical`)"
        )
    config = model / "training_config.json"
    if not config.is_file():
        raise ConfigError(f"{model} has no training_config.json: it was not trained by textroute")
    saved = json.loads(config.read_text(encoding="utf-8"))
    if found.task is TaskKind.CLASSIFY_AND_TAG:
        from training.pipelines.multitask import MultiTaskConfig, lexical_for_multitask

        manifest = lexical_for_multitask(model, MultiTaskConfig.model_validate(saved))
    else:
        update: dict[str, Any] = {"output": model}
        if eval_data is not None:
            update["eval_data"] = eval_data
        if eval_text_column:
            update["eval_text_columns"] = split_csv(eval_text_column)
        if no_eval:
            update["eval_data"] = None
        cfg = ClassifyConfig.model_validate(saved).model_copy(update=update)
        manifest = lexical_for(model, cfg)
    fit = manifest.metrics.get("lexical")
    if fit is None:  # the rows left no class to fit it on (warned above)
        console.print("lexical expert: none fitted")
        return
    console.print(
        f"lexical expert: C {fit['c']:g}, {fit['features']} n-grams, weight {fit['weight']:g} "
        f"(validation {100 * fit['validation_accuracy_encoder_only']:.2f} -> "
        f"{100 * fit['validation_accuracy_fused']:.2f})"
        + ("" if manifest.lexical else ": no gain on validation, none attached")
    )
    if found.task is not TaskKind.CLASSIFY_AND_TAG:  # its metrics hold both tasks
        print_summary(manifest.metrics, title=f"{manifest.name} {manifest.version} -> {model}")


def _given(ctx: typer.Context | None, option: str) -> bool:
    """Whether the user set `option` (on the command line or through its env var), rather
    than leaving its default."""
    source = ctx.get_parameter_source(option) if ctx is not None else None
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def print_summary(metrics: dict[str, Any], *, title: str) -> None:
    """A table of the headline figures of a training run."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("split")
    for col in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        table.add_column(col, justify="right")
    fused = "fine-tuned+lexical" if "test_encoder_only" in metrics else "fine-tuned"
    for key, label in (
        ("validation", "fine-tuned"),
        ("test_encoder_only", "fine-tuned"),
        ("test", fused),
        ("baseline", "tfidf+nb"),
    ):
        m = metrics.get(key)
        if not m:
            continue
        split = {"baseline": str(m.get("evaluated_on", "")), "test_encoder_only": "test"}.get(
            key, key
        )
        table.add_row(
            label,
            split,
            *(
                f"{100 * m[c]:.2f}"
                for c in ("accuracy", "precision_macro", "recall_macro", "f1_macro")
            ),
        )
    Console().print(table)
    print_per_class(metrics)


def print_per_class(metrics: dict[str, Any]) -> None:
    """Per-class figures of the model as served (test when given, else validation) beside the
    baseline's F1: macro figures hide which classes a model gave up on."""
    key = "test" if "test" in metrics else "validation"
    served = metrics.get(key, {}).get("per_class")
    if not served:
        return
    baseline = metrics.get("baseline", {}).get("per_class", {})
    table = Table(title=f"per class ({key})")
    for col in ("class", "support", "precision", "recall", "f1", "baseline f1"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, m in served.items():
        base = baseline.get(name)
        table.add_row(
            name,
            f"{m['support']:.0f}",
            *(f"{100 * m[c]:.2f}" for c in ("precision", "recall", "f1-score")),
            f"{100 * base['f1-score']:.2f}" if base else "",
        )
    Console().print(table)


def evaluate_command(
    models: Annotated[list[Path], typer.Argument(help="Artifact dir(s); several are ensembled.")],
    data: Annotated[str, Opt("--data", help="Labelled data to evaluate on.")],
    text_column: EvalTextColumnsOpt = None,
    label_column: Annotated[str, Opt(help="Label column.")] = "label",
    split: Annotated[
        str | None, Opt(help="Split of a Hub dataset, or file of a CoNLL directory.")
    ] = "test",
    output: Annotated[Path, Opt("--output", "-o", help="Report directory.")] = Path("reports/eval"),
    limit: Annotated[int | None, Opt(help="Only the first N rows.")] = None,
    batch_size: Annotated[int, Opt(help="Inference batch size.")] = 64,
    viterbi: Annotated[
        bool,
        Opt(
            "--viterbi/--argmax",
            help="NER: decode the best valid BIO sequence (as the stream does), or word by word.",
        ),
    ] = True,
) -> None:
    """Evaluate artifact(s): metrics, per-class report, confusion matrix, misclassified rows.

    Classifiers (a classify-and-tag model's class half too) are reported with their
    soft-voting and majority-voting ensembles; NER models (on CoNLL/JSONL sentences) with
    seqeval per type and, for several, the ensemble of their mean tag probabilities.
    """
    from schemas.artifact import read_manifest
    from schemas.manifest import TaskKind
    from training.formats.tagged import holds_tagged_sentences

    first = read_manifest(models[0], verify=False) if models else None
    taggers = first is not None and (
        first.task is TaskKind.TOKEN_CLASSIFICATION
        or (first.task is TaskKind.CLASSIFY_AND_TAG and holds_tagged_sentences(data, split))
    )
    if taggers:
        from training.evaluate_ner import SUMMARY_KEYS, evaluate_taggers

        results = evaluate_taggers(
            models,
            data=data,
            split=split,
            output=output,
            limit=limit,
            batch_size=batch_size,
            viterbi=viterbi,
        )
        columns: tuple[str, ...] = SUMMARY_KEYS
    else:
        from training.evaluate_classifiers import SUMMARY_KEYS as CLASSIFIER_KEYS
        from training.evaluate_classifiers import evaluate_models

        results = evaluate_models(
            models,
            data=data,
            text_columns=split_csv(text_column),
            label_column=label_column,
            split=split,
            output=output,
            limit=limit,
            batch_size=batch_size,
        )
        columns = CLASSIFIER_KEYS
    table = Table(title=f"evaluation on {data}")
    table.add_column("model")
    for col in columns:
        table.add_column(col, justify="right")
    for name, m in results.items():
        table.add_row(name, *(f"{100 * m[c]:.2f}" for c in columns))
    Console().print(table)
    console.print(
        f"reports written to {output}/ (metrics.json, confusion_matrix.png, misclassified.csv)"
    )


def register(app: typer.Typer) -> None:
    """Add `train` and `evaluate` to the textroute CLI."""
    from training.distill_cli import distill_command
    from training.tasks_cli import register_tasks

    register_tasks(train_app, app)
    train_app.command("distill")(distill_command)
    app.add_typer(train_app, name="train")
    app.command("evaluate")(evaluate_command)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
