"""The worker's pipelines: per message kind, its models, text preparation, language check, rules."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from schemas.artifact import read_manifest
from schemas.events import DeadLetterReason, ModelText
from schemas.messages import TEXT_SEPARATOR, EmailMessage, InboundMessage, MessageKind
from stream.errors import PipelineConfigError, RecordRejectedError
from stream.metrics import StreamMetrics
from stream.model_set import Classifier, ModelSet
from stream.models import Loader, ReloadingModels
from stream.pipeline_config import ResolvedPipeline, TextOptions, check_models, label_error
from stream.routing import LanguageGuess, Router

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


class SharedLoader:
    """Loads each artifact directory once per version, so pipelines naming one model share one
    predictor (and its memory), and a new version is loaded once for all of them."""

    def __init__(self, loader: Loader) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[str, Any]] = {}

    def __call__(self, artifact_dir: Path) -> Any:
        key = artifact_dir.resolve()
        with self._lock:
            version = read_manifest(key, verify=False).version
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
            model = self._loader(artifact_dir)
            # Only the newest version of a directory is kept: an old one is dropped once no
            # pipeline holds it.
            self._cache[key] = (model.manifest.version, model)
            return model


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

    def attribute_models(self) -> dict[str, Classifier]:
        """Attribute name -> the classifier in use now."""
        return {name: models().classifier for name, models in self.attributes.items()}

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

    @classmethod
    def single(cls, models: Callable[[], ModelSet], router: Router) -> Pipelines:
        """One pipeline for every kind: the worker without a pipelines file."""
        return cls([Pipeline(DEFAULT_PIPELINE, tuple(MessageKind), models, router)])

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self._pipelines)

    def for_kind(self, kind: MessageKind) -> Pipeline | None:
        """The pipeline routing `kind`, or None when none does."""
        return self._by_kind.get(kind)

    def check_for_update(self) -> list[str]:
        """Reload changed models of every pipeline; the slots reloaded, as pipeline/role."""
        return [f"{name}/{role}" for name, r in self._reloaders for role in r.check_for_update()]

    def versions(self) -> dict[str, str]:
        """pipeline/role -> version of the loaded models."""
        return {
            f"{name}/{role}": version
            for name, r in self._reloaders
            for role, version in r.versions().items()
        }


def _rules_fit(pipeline: ResolvedPipeline) -> Callable[[ModelSet], None]:
    def check(models: ModelSet) -> None:
        error = label_error(pipeline, models.classifier.manifest)
        if error:
            raise PipelineConfigError(error)

    return check


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
    for spec in resolved:
        models = ReloadingModels(
            spec.classifier,
            spec.ner,
            shared,
            validate=_rules_fit(spec),
            metrics=metrics,
            role_prefix=f"{spec.name}/",
        )
        reloaders.append((spec.name, models))
        attributes: dict[str, Callable[[], ModelSet]] = {}
        for attr, artifact_dir in spec.attributes.items():
            attribute = ReloadingModels(
                artifact_dir,
                None,
                shared,
                metrics=metrics,
                role_prefix=f"{spec.name}/{attr}/",
                classifier_slot="attribute",
            )
            reloaders.append((f"{spec.name}/{attr}", attribute))
            attributes[attr] = attribute
        pipelines.append(
            Pipeline(
                name=spec.name,
                kinds=tuple(spec.kinds),
                models=models,
                router=Router(spec.rules),
                attributes=attributes,
                text=spec.text,
            )
        )
    return Pipelines(pipelines, reloaders)
