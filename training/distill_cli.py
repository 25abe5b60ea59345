"""`textroute train distill`: a fast profile, a student with fewer layers taught by a classifier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from training._cli_options import (
    EvalDataOpt,
    EvalLimitOpt,
    EvalSplitOpt,
    LimitOpt,
    SplitOpt,
    TextColumnsOpt,
    split_csv,
)
from training._hp_options import flag_defaults, with_hyperparameters
from training.cli import CLASSIFY_HP, _given, print_summary
from training.tasks_cli import WorkDirOpt

if TYPE_CHECKING:  # the trainer pulls in torch: keep `textroute --help` fast
    from training.trainer import Hyperparameters

Opt = typer.Option


# `train classify`'s recipe: a student starts from fine-tuned weights as a continued classifier
# does.
@with_hyperparameters(include=("label_smoothing",), **flag_defaults(**CLASSIFY_HP))
def distill_command(
    ctx: typer.Context,
    teacher: Annotated[
        Path,
        typer.Argument(help="A fine-tuned classification or classify-and-tag artifact directory."),
    ],
    data: Annotated[
        str,
        typer.Argument(
            help="Labelled training texts (the teacher's training rows, e.g.); never test data."
        ),
    ],
    hp: Hyperparameters,
    layers: Annotated[
        int, Opt(help="Encoder layers the student keeps, evenly spaced from the bottom.")
    ] = 3,
    temperature: Annotated[
        float, Opt(help="Softmax temperature of the teacher and student distributions.")
    ] = 2.0,
    alpha: Annotated[
        float, Opt(help="Weight of the gold-label cross-entropy beside the T^2-scaled KL.")
    ] = 0.5,
    text_column: TextColumnsOpt = None,
    label_column: Annotated[str | None, Opt(help="Label column; default: the teacher's.")] = None,
    pair_column: Annotated[
        str | None, Opt(help="Second text column; default: the teacher's.")
    ] = None,
    ner_data: Annotated[
        str | None,
        Opt(help="Classify-and-tag teacher: tagged sentences (CoNLL dir...); default: its own."),
    ] = None,
    eval_data: EvalDataOpt = None,
    eval_text_column: Annotated[
        list[str] | None,
        Opt("--eval-text-column", help="Text column(s) of --eval-data, if not the training ones."),
    ] = None,
    split: SplitOpt = "train",
    eval_split: EvalSplitOpt = "test",
    output: Annotated[
        Path | None, Opt("--output", "-o", help="Artifact directory; default models/NAME.")
    ] = None,
    name: Annotated[
        str | None, Opt(help="Model name; default: the teacher's name + '-l' + --layers.")
    ] = None,
    work_dir: WorkDirOpt = None,
    limit: LimitOpt = None,
    eval_limit: EvalLimitOpt = None,
    validation_fraction: Annotated[
        float, Opt(help="Share of the training rows carved off for validation (0 < f < 0.5).")
    ] = 0.1,
    metric: Annotated[
        Literal["f1_macro", "accuracy", "f1", "matthews_correlation"] | None,
        Opt(help="Validation figure that picks the epoch; default: the teacher's."),
    ] = None,
    class_weight: Annotated[
        Literal["sqrt", "balanced", "none"] | None,
        Opt(help="Class weights of the gold-label loss; default: the teacher's."),
    ] = None,
    lexical: Annotated[
        bool,
        Opt(help="Fuse a TF-IDF + logistic-regression expert when it gains on validation."),
    ] = True,
    resume: Annotated[bool, Opt(help="Resume from the last checkpoint in the work dir.")] = False,
) -> None:
    """Distil a fine-tuned classifier (TEACHER) into a student with fewer encoder layers.

    The student is the teacher with --layers of its encoder layers kept (DistilBERT's choice:
    0, 2, 4 of 6 for 3), embeddings, head, tokenizer, labels, pooling and max_length copied;
    it learns from the teacher's softened logits over DATA (KL x T^2) plus --alpha x the
    gold-label cross-entropy. Validation is carved and the epoch chosen as `train classify`
    does; the manifest's lineage names the teacher and the layers kept. A classify-and-tag
    teacher teaches both heads: its classes on DATA, its tags on --ner-data (per token), the
    data read as `train multitask` reads it."""
    from schemas import TaskKind
    from training.pipelines.distill import DistillConfig, distill

    if not _given(ctx, "max_length"):  # the teacher's, unless the user says otherwise
        hp = hp.model_validate(hp.model_dump(exclude={"max_length"}))
    cfg = DistillConfig(
        teacher=teacher,
        data=data,
        layers=layers,
        temperature=temperature,
        alpha=alpha,
        split=split,
        eval_data=eval_data,
        eval_split=eval_split,
        text_columns=split_csv(text_column),
        eval_text_columns=split_csv(eval_text_column),
        pair_column=pair_column,
        label_column=label_column,
        ner_data=ner_data,
        name=name,
        output=output,
        work_dir=work_dir,
        validation_fraction=validation_fraction,
        limit=limit,
        eval_limit=eval_limit,
        metric=metric,
        class_weight=class_weight,
        lexical=lexical,
        resume=resume,
        hp=hp,
    )
    manifest = distill(cfg)
    lineage = manifest.lineage
    kept = ", ".join(map(str, lineage.kept_layers or [])) if lineage else ""
    title = (
        f"{manifest.name} {manifest.version} (layers {kept} of {teacher}) -> "
        f"{manifest.training.get('output')}"
    )
    if manifest.task is TaskKind.CLASSIFY_AND_TAG:
        from training.tasks_cli import print_multitask_summary

        print_multitask_summary(manifest.metrics, title=title)
    else:
        print_summary(manifest.metrics, title=title)
