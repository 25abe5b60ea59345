"""The pipelines file (YAML): which models and rules serve each message kind, checked at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.artifact import read_manifest
from schemas.manifest import ModelManifest, TaskKind
from schemas.messages import MessageKind
from stream._pydantic import summarize_validation_error
from stream.errors import ModelSlotError, PipelineConfigError, RulesInvalidError
from stream.models import check_slot
from stream.routing import RoutingRules, load_rules

#: A pipeline or model name: also a metric label and part of rule ids.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]

#: How a text longer than the model's max_length is read: inference's
#: InferenceSettings.long_text, whose description says what each does.
LongText = Literal["truncate", "head_tail", "chunks"]


@dataclass(frozen=True)
class LongTextPolicy:
    """A pipeline's own long-text policy, over the worker-wide TEXTROUTE_INFERENCE_LONG_TEXT
    and TEXTROUTE_INFERENCE_CHUNK_STRIDE; None keeps the worker's setting."""

    long_text: LongText | None = None
    chunk_stride: int | None = None


class TextOptions(BaseModel):
    """How a pipeline turns a message into the text its models read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clean_html: bool = Field(default=False, description="Email bodies in HTML become text.")
    strip_quotes: bool = Field(default=False, description="Quoted replies are removed.")
    strip_signature: bool = Field(default=False, description="Signatures are removed.")
    include_text: bool = Field(
        default=False,
        description="Put the model text itself in the event (model_text.text); by default only "
        "its length and sha256, as the text may be personal data.",
    )

    @property
    def cleans(self) -> bool:
        return self.clean_html or self.strip_quotes or self.strip_signature


class PipelineSpec(BaseModel):
    """One job: the kinds it serves, its models (by name, see PipelinesFile.models), its rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[MessageKind] = Field(
        default_factory=list,
        description="Message kinds this pipeline routes; default: the one its name names.",
    )
    classifier: Name = Field(
        description="A classifier, multi-label tagger or classify-and-tag model."
    )
    ner: Name | None = Field(
        default=None,
        description="An NER or classify-and-tag model; the classifier's name again uses a "
        "classify-and-tag model for both in one pass.",
    )
    attributes: dict[Name, Name] = Field(
        default_factory=dict,
        description="Attribute -> classifier whose top label the event carries, e.g. "
        "priority: ticket-priority.",
    )
    shadow: Name | None = Field(
        default=None,
        description="A candidate classifier run beside `classifier` on the same texts, never "
        "routed by: its predictions go to the shadow topic, to compare before promoting it. "
        "Same task as the classifier.",
    )
    rules: RoutingRules | Path = Field(
        description="Routing rules, inline or the path of a rules file (relative to this file)."
    )
    text: TextOptions = Field(default_factory=TextOptions)
    long_text: LongText | None = Field(
        default=None,
        description="How this pipeline's models read a text longer than their max_length: "
        "truncate (its first max_length tokens), head_tail (its first quarter and last three "
        "quarters in one window; entities in the cut middle are not found) or chunks (every "
        "window: one backend row each, entities anywhere). Default: the worker's "
        "TEXTROUTE_INFERENCE_LONG_TEXT (truncate).",
    )
    chunk_stride: int | None = Field(
        default=None,
        ge=0,
        description="Tokens shared by neighbouring chunks with long_text chunks. Default: "
        "the worker's TEXTROUTE_INFERENCE_CHUNK_STRIDE (32).",
    )
    allow_unmapped_labels: bool = Field(
        default=False,
        description="Let labels without a category rule go to default_queue; by default every "
        "label of the classifier needs one, so a new label cannot be misrouted unnoticed.",
    )

    @model_validator(mode="after")
    def _stride_needs_chunks(self) -> PipelineSpec:
        if self.chunk_stride is not None and self.long_text not in (None, "chunks"):
            raise ValueError(
                f"chunk_stride is only read with long_text chunks, not {self.long_text}; "
                "drop it or set long_text: chunks"
            )
        return self

    @property
    def long_text_policy(self) -> LongTextPolicy | None:
        """The pipeline's own long-text policy, or None when it keeps the worker's."""
        if self.long_text is None and self.chunk_stride is None:
            return None
        return LongTextPolicy(self.long_text, self.chunk_stride)


class PipelinesFile(BaseModel):
    """The whole pipelines file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, le=1)
    models: dict[Name, Path] = Field(
        min_length=1, description="Model name -> artifact directory (relative to this file)."
    )
    pipelines: dict[Name, PipelineSpec] = Field(min_length=1)


@dataclass(frozen=True)
class ResolvedPipeline:
    """A pipeline with its names resolved: model directories, loaded rules, kinds."""

    name: str
    kinds: list[MessageKind]
    classifier: Path
    ner: Path | None
    attributes: dict[str, Path]
    rules: RoutingRules
    text: TextOptions
    allow_unmapped_labels: bool
    #: The shadow candidate's directory (PipelineSpec.shadow), or None.
    shadow: Path | None = None
    #: How every model of the pipeline reads long texts, or None: the worker's setting.
    long_text: LongTextPolicy | None = None


def _default_kinds(name: str, spec: PipelineSpec) -> list[MessageKind]:
    if spec.kinds:
        return spec.kinds
    try:
        return [MessageKind(name)]
    except ValueError:
        raise PipelineConfigError(
            f"pipelines.{name}.kinds is missing: a pipeline not named after a kind "
            f"({', '.join(k.value for k in MessageKind)}) must list the kinds it serves"
        ) from None


def parse_pipelines(text: str, *, source: str, base_dir: Path) -> list[ResolvedPipeline]:
    """Validate a pipelines file; paths are taken relative to `base_dir`. Checks the names
    and the rules, not the model directories (see `check_models`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineConfigError(f"pipelines file {source} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PipelineConfigError(
            f"pipelines file {source} must be a YAML mapping with `models` and `pipelines`"
        )
    try:
        parsed = PipelinesFile.model_validate(data)
    except ValidationError as exc:
        raise PipelineConfigError(
            f"pipelines file {source} is invalid: {summarize_validation_error(exc)}"
        ) from exc
    models = {name: base_dir / path for name, path in parsed.models.items()}

    def model(name: str, key: str) -> Path:
        if name not in models:
            raise PipelineConfigError(
                f"pipelines file {source}: {key} names model {name!r}, which is not under "
                f"`models` (known: {', '.join(sorted(models))})"
            )
        return models[name]

    resolved = []
    owner: dict[MessageKind, str] = {}
    for name, spec in parsed.pipelines.items():
        key = f"pipelines.{name}"
        kinds = _default_kinds(name, spec)
        for kind in kinds:
            if kind in owner:
                raise PipelineConfigError(
                    f"pipelines file {source}: {key} serves {kind.value}, already served by "
                    f"pipeline {owner[kind]}; each kind has one pipeline"
                )
            owner[kind] = name
        rules = spec.rules
        if isinstance(rules, Path):
            try:
                rules = load_rules(base_dir / rules)
            except Exception as exc:
                raise PipelineConfigError(f"pipelines file {source}: {key}.rules: {exc}") from exc
        resolved.append(
            ResolvedPipeline(
                name=name,
                kinds=kinds,
                classifier=model(spec.classifier, f"{key}.classifier"),
                ner=model(spec.ner, f"{key}.ner") if spec.ner else None,
                attributes={
                    attr: model(m, f"{key}.attributes.{attr}")
                    for attr, m in spec.attributes.items()
                },
                rules=rules,
                text=spec.text,
                allow_unmapped_labels=spec.allow_unmapped_labels,
                shadow=model(spec.shadow, f"{key}.shadow") if spec.shadow else None,
                long_text=spec.long_text_policy,
            )
        )
    return resolved


def load_pipelines(path: Path | str) -> list[ResolvedPipeline]:
    """The pipelines of the file at `path`, names and rules checked (PipelineConfigError)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineConfigError(
            f"pipelines file {path} does not exist; pass --pipelines with a YAML file (see "
            "deploy/pipelines.example.yaml) or leave it unset for one pipeline for every kind"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineConfigError(f"cannot read pipelines file {path}: {exc}") from exc
    return parse_pipelines(text, source=str(path), base_dir=path.parent)


def classes_of(manifest: ModelManifest) -> list[str]:
    """The labels a classifier-slot model predicts (a classify-and-tag model's classes)."""
    return list(manifest.class_labels or manifest.labels)


def label_error(pipeline: ResolvedPipeline, manifest: ModelManifest) -> str | None:
    """Why the pipeline's rules do not fit its classifier's labels, or None when they do:
    a category rule for a label the model lacks, or (unless allowed) a label with no rule."""
    rules = pipeline.rules
    try:
        unmapped = rules.check_labels(classes_of(manifest))
    except RulesInvalidError as exc:
        return f"pipelines.{pipeline.name}.rules: {exc}"
    if unmapped and not pipeline.allow_unmapped_labels:
        shown = unmapped[:10] + (["..."] if len(unmapped) > 10 else [])
        return (
            f"pipelines.{pipeline.name}.rules.categories has no rule for label(s) {shown} of "
            f"{manifest.name}; map each or set allow_unmapped_labels: true"
        )
    return None


def shadow_error(classifier: ModelManifest, candidate: ModelManifest) -> str | None:
    """Why `candidate` cannot shadow `classifier` (a different task), or None when it can."""
    if candidate.task is classifier.task:
        return None
    return (
        f"the shadow candidate {candidate.name} {candidate.version} is a "
        f"{candidate.task.value} model, but the classifier it shadows ({classifier.name}) is "
        f"a {classifier.task.value} model; a shadow must do the classifier's task"
    )


def check_models(pipelines: list[ResolvedPipeline]) -> None:
    """Every model directory holds a readable artifact fitting its slot, every pipeline's
    rules fit its classifier's labels, and its shadow candidate (if any) does its classifier's
    task; the first problem raises PipelineConfigError."""
    manifests: dict[Path, ModelManifest] = {}

    def manifest(path: Path, key: str) -> ModelManifest:
        if path not in manifests:
            if not path.is_dir():
                raise PipelineConfigError(f"{key}: model directory {path} does not exist")
            try:
                manifests[path] = read_manifest(path, verify=False)
            except Exception as exc:
                raise PipelineConfigError(f"{key}: {path} is not a model artifact: {exc}") from exc
        return manifests[path]

    for p in pipelines:
        key = f"pipelines.{p.name}"
        slots: list[tuple[str, Path, str]] = [("classifier", p.classifier, f"{key}.classifier")]
        if p.ner is not None:
            slots.append(("NER", p.ner, f"{key}.ner"))
        slots += [("attribute", d, f"{key}.attributes.{a}") for a, d in p.attributes.items()]
        if p.shadow is not None:
            slots.append(("classifier", p.shadow, f"{key}.shadow"))
        for slot, path, where in slots:
            try:
                check_slot(slot, path, manifest(path, where))
            except ModelSlotError as exc:
                raise PipelineConfigError(f"{where}: {exc}") from exc
        if (
            p.ner is not None
            and p.ner.resolve() == p.classifier.resolve()
            and manifest(p.ner, key).task is not TaskKind.CLASSIFY_AND_TAG
        ):
            raise PipelineConfigError(
                f"{key}: one model as classifier and ner must be classify-and-tag"
            )
        error = label_error(p, manifest(p.classifier, f"{key}.classifier"))
        if error:
            raise PipelineConfigError(error)
        if p.shadow is not None:
            error = shadow_error(
                manifest(p.classifier, f"{key}.classifier"), manifest(p.shadow, f"{key}.shadow")
            )
            if error:
                raise PipelineConfigError(f"{key}.shadow: {error}")
