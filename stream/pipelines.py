"""The worker's pipelines: per message kind, its models, text preparation, language check, rules."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from schemas.artifact import read_manifest
from schemas.events import DeadLetterReason, ModelText
from schemas.messages import TEXT_SEPARATOR, EmailMessage, InboundMessage, MessageKind
from stream.errors import ModelSlotError, PipelineConfigError, RecordRejectedError
from stream.metrics import StreamMetrics, training_label_share
from stream.model_set import Classifier, ModelSet
from stream.models import Loader, ReloadingModels, Validator
from stream.pipeline_config import (
    LongTextPolicy,
    ResolvedPipeline,
    TextOptions,
    check_models,
    classes_of,
    label_error,
    shadow_error,
)
from stream.routing import LanguageGuess, Router

log = structlog.get_logger(__name__)

#: The language of a text among candidate languages (None: any); inference.detect_language
#: in production.
LanguageDetector = Callable[[str, Sequence[str] | None], LanguageGuess]


@dataclass(frozen=True)
class RawEmail:
    """What the models need of a raw RFC 822 message."""

    subject: str
    body: str
    attachments: int


class EmailText(Protocol):
    """Email text handling (inference's email_text functions in production)."""

    def clean(self, body: str, options: TextOptions) -> str:
        """The body as the options say: HTML to text, quotes and signature cut."""
        ...

    def parse(self, raw: str) -> RawEmail:
        """Subject, body text and attachment count of a raw message; raises
        RecordRejectedError (schema_error) when it cannot be parsed."""
        ...


DEFAULT_PIPELINE = "default"


def read_long_texts(model: Any, policy: LongTextPolicy) -> Any:
    """`model` (a predictor) reading long texts by `policy`: inference's `with_long_text`, a
    twin sharing its graph, or the model itself when that is its policy already."""
    from inference import with_long_text

    return with_long_text(model, policy.long_text, chunk_stride=policy.chunk_stride)


#: Makes a loaded model read long texts by a pipeline's policy (`read_long_texts`).
PolicyApplier = Callable[[Any, LongTextPolicy], Any]


class SharedLoader:
    """Loads each artifact directory once per version, so pipelines naming one model share one
    predictor (and its memory), and a new version is loaded once for all of them.

    A pipeline with a long-text policy of its own loads through `reading(policy)`: it gets
    the shared predictor made to read by that policy (`read_long_texts`, a twin sharing its
    graph), one per directory and policy, so pipelines with one policy still share a model
    and its batch."""

    def __init__(self, loader: Loader, *, apply_policy: PolicyApplier = read_long_texts) -> None:
        self._loader = loader
        self._apply_policy = apply_policy
        self._lock = threading.Lock()
        # Weak: a model is dropped once no pipeline holds it, e.g. the version a model home's
        # `current` pointed at before a promotion (each version is a directory of its own).
        self._cache: weakref.WeakValueDictionary[_Key, Any] = weakref.WeakValueDictionary()
        self._pinned: dict[_Key, Any] = {}  # models that take no weak reference
        # Policy twin -> the model it was made from, alive as long as the twin: a pipeline with
        # yet another policy on that directory starts from it rather than loading it again.
        self._bases: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __call__(self, artifact_dir: Path) -> Any:
        return self.load(artifact_dir)

    def reading(self, policy: LongTextPolicy | None) -> Loader:
        """A loader of this one's models reading long texts by `policy` (None: as loaded)."""
        if policy is None:
            return self
        return functools.partial(self.load, policy=policy)

    def load(self, artifact_dir: Path, policy: LongTextPolicy | None = None) -> Any:
        """The model of `artifact_dir` (loaded at most once per version), read by `policy`."""
        # Loaded from the resolved directory: a `current` link swapped during the load never
        # mixes the files of two versions.
        key = artifact_dir.resolve()
        with self._lock:
            version = read_manifest(key, verify=False).version
            return self._get(key, version, policy)

    def _get(self, key: Path, version: str, policy: LongTextPolicy | None) -> Any:
        hit = self._cache.get((key, policy), self._pinned.get((key, policy)))
        if hit is not None and hit.manifest.version == version:
            return hit
        if policy is None:
            model = self._loader(key)
        else:
            base = self._get(key, version, None)
            model = self._apply_policy(base, policy)
            if model is not base:
                with contextlib.suppress(TypeError):
                    self._bases[model] = base
        try:
            self._cache[(key, policy)] = model
        except TypeError:
            self._pinned[(key, policy)] = model
        return model


#: A SharedLoader entry: a resolved artifact directory and the policy its model reads by.
_Key = tuple[Path, LongTextPolicy | None]


class InferenceEmailText:
    """Email cleaning and raw-message parsing by the inference layer's email_text."""

    def clean(self, body: str, options: TextOptions) -> str:
        from inference import clean_email_body

        cleaned = clean_email_body(
            body,
            html=None if options.clean_html else False,
            quotes=options.strip_quotes,
            signature=options.strip_signature,
        )
        return cleaned.text

    def parse(self, raw: str) -> RawEmail:
        from inference import EmailParseError, parse_raw_email

        try:
            parsed = parse_raw_email(raw)
        except EmailParseError as exc:
            raise RecordRejectedError(
                DeadLetterReason.SCHEMA_ERROR, f"raw email cannot be parsed: {exc}"
            ) from exc
        return RawEmail(parsed.subject, parsed.body, parsed.attachments)


def detect_language(text: str, candidates: Sequence[str] | None) -> LanguageGuess:
    """inference.detect_language as the router's LanguageGuess."""
    # Imported on first use: only pipelines whose rules check the language load the model.
    from inference import detect_language as detect

    guess = detect(text, candidates=candidates)
    return LanguageGuess(guess.code, guess.score)


@dataclass(frozen=True)
class PreparedText:
    """What the models of a pipeline read for one message, and what the event says of it."""

    text: str
    model_text: ModelText
    language: LanguageGuess | None = None


@dataclass(frozen=True)
class Pipeline:
    """One job: the kinds it routes, its models (reloaded live), how its text is prepared
    and checked, and its router."""

    name: str
    kinds: tuple[MessageKind, ...]
    models: Callable[[], ModelSet]
    router: Router
    attributes: dict[str, Callable[[], ModelSet]] = field(default_factory=dict)
    text: TextOptions = field(default_factory=TextOptions)
    email_text: EmailText = field(default_factory=lambda: InferenceEmailText())
    detect_language: LanguageDetector = field(default_factory=lambda: detect_language)
    #: A candidate classifier (reloaded live) run beside the classifier, never routed by.
    shadow: Callable[[], ModelSet] | None = None

    def attribute_models(self) -> dict[str, Classifier]:
        """Attribute name -> the classifier in use now."""
        return {name: models().classifier for name, models in self.attributes.items()}

    def shadow_classifier(self) -> Classifier | None:
        """The shadow candidate in use now, or None when the pipeline has none."""
        return self.shadow().classifier if self.shadow is not None else None

    def prepare(self, message: InboundMessage) -> PreparedText:
        """The text the models read (cleaned as the pipeline says), its fingerprint and its
        language (when the rules check it)."""
        original = message.text_for_models()
        text, attachments = original, None
        if isinstance(message, EmailMessage):
            subject, body = message.subject, message.body
            if message.raw is not None and not body.strip():
                raw = self.email_text.parse(message.raw)
                subject, body, attachments = subject or raw.subject, raw.body, raw.attachments
                original = TEXT_SEPARATOR.join(p for p in (subject, body) if p.strip())
            if self.text.cleans:
                body = self.email_text.clean(body, self.text)
            text = TEXT_SEPARATOR.join(p for p in (subject, body) if p.strip())
        language = None
        rule = self.router.rules.language
        if rule is not None:
            language = (
                self.detect_language(text, rule.candidates)
                if len(text.strip()) >= rule.min_chars
                else LanguageGuess("und", 0.0)
            )
        model_text = ModelText(
            length=len(text),
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            cleaned=text != original,
            language=language.code if language is not None else None,
            attachments=attachments,
            text=text if self.text.include_text else None,
        )
        return PreparedText(text, model_text, language)


class Pipelines:
    """The pipeline of each message kind; `check_for_update` reloads changed models of all."""

    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        reloaders: Sequence[tuple[str, ReloadingModels]] = (),
        *,
        shadows: Sequence[tuple[str, ReloadingModels]] = (),
        metrics: StreamMetrics | None = None,
    ) -> None:
        self._pipelines = list(pipelines)
        self._by_kind: dict[MessageKind, Pipeline] = {}
        for pipeline in pipelines:
            for kind in pipeline.kinds:
                if kind in self._by_kind:
                    raise PipelineConfigError(
                        f"{kind.value} is served by pipelines {self._by_kind[kind].name} and "
                        f"{pipeline.name}; each kind has one pipeline"
                    )
                self._by_kind[kind] = pipeline
        self._reloaders = list(reloaders)
        #: Shadow candidates' reloaders, by pipeline: checked after the routing models, and
        #: whatever happens to them never touches those.
        self._shadows = list(shadows)
        self._metrics = metrics

    @classmethod
    def single(cls, models: Callable[[], ModelSet], router: Router) -> Pipelines:
        """One pipeline for every kind: the worker without a pipelines file."""
        return cls([Pipeline(DEFAULT_PIPELINE, tuple(MessageKind), models, router)])

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self._pipelines)

    def labels_of(self, name: str) -> frozenset[str] | None:
        """The classes of pipeline `name`'s classifier in use now (None: no such pipeline):
        what reviewers' feedback on its messages is checked against."""
        for pipeline in self._pipelines:
            if pipeline.name == name:
                return frozenset(classes_of(pipeline.models().classifier.manifest))
        return None

    def for_kind(self, kind: MessageKind) -> Pipeline | None:
        """The pipeline routing `kind`, or None when none does."""
        return self._by_kind.get(kind)

    def check_for_update(self) -> list[str]:
        """Reload changed models of every pipeline; the slots reloaded, as pipeline/role
        (a shadow candidate's as pipeline/shadow/classifier)."""
        reloaded = [
            f"{name}/{role}" for name, r in self._reloaders for role in r.check_for_update()
        ]
        for pipeline, r in self._shadows:
            try:
                roles = r.check_for_update()
            except Exception as exc:
                # ReloadingModels never raises; should it ever, the candidate stays as it was.
                log.error(
                    "shadow.reload_failed",
                    pipeline=pipeline,
                    error=f"{type(exc).__name__}: {exc}",
                )
                if self._metrics is not None:
                    self._metrics.shadow_failures.labels(pipeline=pipeline).inc()
                continue
            reloaded += [f"{pipeline}/shadow/{role}" for role in roles]
        return reloaded

    def versions(self) -> dict[str, str]:
        """pipeline/role -> version of the loaded models (pipeline/shadow/classifier for a
        shadow candidate)."""
        out = {
            f"{name}/{role}": version
            for name, r in self._reloaders
            for role, version in r.versions().items()
        }
        for pipeline, r in self._shadows:
            out.update({f"{pipeline}/shadow/{role}": v for role, v in r.versions().items()})
        return out


def _rules_fit(pipeline: ResolvedPipeline) -> Callable[[ModelSet], None]:
    def check(models: ModelSet) -> None:
        error = label_error(pipeline, models.classifier.manifest)
        if error:
            raise PipelineConfigError(error)

    return check


def publish_label_share(
    check: Validator | None, metrics: StreamMetrics | None, pipeline: str
) -> Validator | None:
    """`check`, then (once it passed) the training label shares of the classifier about to
    be used published as textroute_training_label_share: at start and at every reload."""
    if metrics is None:
        return check

    def validate(models: ModelSet) -> None:
        if check is not None:
            check(models)
        try:
            shares = training_label_share(models.classifier.manifest)
        except Exception as exc:
            # A gauge must never refuse a model.
            log.warning("metrics.label_share_failed", pipeline=pipeline, error=str(exc))
            return
        metrics.set_training_label_share(pipeline, shares)

    return validate


def shadow_fits(active: Callable[[], ModelSet], where: str) -> Validator:
    """A shadow candidate's check, at start and at reload: it does the task of the classifier
    it shadows (the one in use then). `where` names the setting, e.g. pipelines.ticket.shadow."""

    def check(models: ModelSet) -> None:
        error = shadow_error(active().classifier.manifest, models.classifier.manifest)
        if error:
            raise PipelineConfigError(f"{where}: {error}")

    return check


def shadow_models(
    artifact_dir: Path,
    active: Callable[[], ModelSet],
    loader: Loader,
    *,
    where: str,
    role_prefix: str,
    metrics: StreamMetrics | None = None,
) -> ReloadingModels:
    """A pipeline's shadow candidate, loaded (checked against the classifier slot and the
    active classifier's task) and reloaded live like its other models."""
    try:
        return ReloadingModels(
            artifact_dir,
            None,
            loader,
            validate=shadow_fits(active, where),
            metrics=metrics,
            role_prefix=role_prefix,
        )
    except ModelSlotError as exc:
        raise ModelSlotError(f"{where}: {exc}") from exc


def build_pipelines(
    resolved: Sequence[ResolvedPipeline],
    loader: Loader,
    *,
    metrics: StreamMetrics | None = None,
) -> Pipelines:
    """Load every pipeline's models (each directory once), checked against its slots and
    rules first; PipelineConfigError names the key at fault."""
    check_models(list(resolved))
    shared = SharedLoader(loader)
    pipelines: list[Pipeline] = []
    reloaders: list[tuple[str, ReloadingModels]] = []
    shadows: list[tuple[str, ReloadingModels]] = []
    for spec in resolved:
        # Every model of the pipeline (attributes and shadow too) reads by its policy.
        load = shared.reading(spec.long_text)
        models = ReloadingModels(
            spec.classifier,
            spec.ner,
            load,
            validate=publish_label_share(_rules_fit(spec), metrics, spec.name),
            metrics=metrics,
            role_prefix=f"{spec.name}/",
        )
        reloaders.append((spec.name, models))
        attributes: dict[str, Callable[[], ModelSet]] = {}
        for attr, artifact_dir in spec.attributes.items():
            attribute = ReloadingModels(
                artifact_dir,
                None,
                load,
                metrics=metrics,
                role_prefix=f"{spec.name}/{attr}/",
                classifier_slot="attribute",
            )
            reloaders.append((f"{spec.name}/{attr}", attribute))
            attributes[attr] = attribute
        shadow = None
        if spec.shadow is not None:
            # Through the shared loader: a candidate that is another pipeline's classifier
            # is loaded once.
            shadow = shadow_models(
                spec.shadow,
                models,
                load,
                where=f"pipelines.{spec.name}.shadow",
                role_prefix=f"{spec.name}/shadow/",
                metrics=metrics,
            )
            shadows.append((spec.name, shadow))
        pipelines.append(
            Pipeline(
                name=spec.name,
                kinds=tuple(spec.kinds),
                models=models,
                router=Router(spec.rules),
                attributes=attributes,
                text=spec.text,
                shadow=shadow,
            )
        )
    return Pipelines(pipelines, reloaders, shadows=shadows, metrics=metrics)
