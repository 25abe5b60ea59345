"""The routing worker's logic, free of faust: decode, validate, infer per batch, route."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, TypeVar, cast, runtime_checkable

from pydantic import ValidationError

from schemas.entities import Classification, Entity
from schemas.events import (
    DeadLetter,
    DeadLetterReason,
    ModelRef,
    RoutingEvent,
    SourceRef,
)
from schemas.manifest import ModelManifest
from schemas.messages import MESSAGE_TYPES, InboundMessage, MessageKind
from stream._pydantic import summarize_validation_error
from stream.config import TopicSettings, WorkerSettings
from stream.errors import RecordRejectedError
from stream.routing import Router
from stream.topics import OutboundRecord

PREVIEW_CHARS = 512
T = TypeVar("T")


class ItemFailure(Protocol):
    """A per-item error from the inference layer (stream.inference.ItemError)."""

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


class Classifier(Protocol):
    """What the worker needs of a classification predictor."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def backend_name(self) -> str: ...

    def classify(self, texts: Sequence[object]) -> Sequence[Classification | ItemFailure]: ...


class EntityTagger(Protocol):
    """What the worker needs of an NER predictor."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def backend_name(self) -> str: ...

    def entities(self, texts: Sequence[object]) -> Sequence[list[Entity] | ItemFailure]: ...


@runtime_checkable
class ClassifierTagger(Protocol):
    """What the worker needs of one model giving class and entities in one pass (a
    classify-and-tag predictor)."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def backend_name(self) -> str: ...

    def classify_and_tag(
        self, texts: Sequence[object]
    ) -> Sequence[tuple[Classification, list[Entity]] | ItemFailure]: ...


@dataclass(frozen=True)
class ModelSet:
    """The predictors a batch is routed with; swapped whole when a model reloads."""

    classifier: Classifier
    ner: EntityTagger | None = None

    @property
    def joint(self) -> ClassifierTagger | None:
        """The model, when one classify-and-tag model plays both roles: it runs once a batch."""
        model, ner = self.classifier, cast(object, self.ner)
        if ner is model and isinstance(model, ClassifierTagger):
            return model
        return None


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record as the worker received it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None
    received_at: datetime


@dataclass(frozen=True)
class Limits:
    """Input limits; records over them are dead-lettered before any model sees them."""

    max_message_bytes: int = 1_000_000
    max_text_chars: int = 20_000

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Limits:
        return cls(settings.max_message_bytes, settings.max_text_chars)


@dataclass
class BatchResult:
    """What one batch produced: routing events, dead letters and the model time spent."""

    events: list[RoutingEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    kinds: list[MessageKind | None] = field(default_factory=list)
    classify_s: float = 0.0
    ner_s: float = 0.0

    def outbound(self, topics: TopicSettings) -> list[OutboundRecord]:
        """Records to produce: events keyed by message id so consumers can de-duplicate."""
        out = [
            OutboundRecord(topics.routed, e.message_id.encode(), e.model_dump_json().encode())
            for e in self.events
        ]
        out += [
            OutboundRecord(topics.dead_letter, dead_letter_key(d), d.model_dump_json().encode())
            for d in self.dead_letters
        ]
        return out


def dead_letter_key(dead: DeadLetter) -> bytes:
    """The message id when known, else the record's coordinates (unique per input record)."""
    if dead.message_id:
        return dead.message_id.encode()
    s = dead.source
    return f"{s.topic}/{s.partition}/{s.offset}".encode()


@dataclass(frozen=True)
class _Failure:
    """A failure raised by a predictor call rather than returned as an ItemError."""

    reason: str
    message: str


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def call_isolating_failures(
    fn: Callable[[Sequence[object]], Sequence[T | ItemFailure]], texts: Sequence[str]
) -> tuple[list[T | ItemFailure], float]:
    """Results of `fn(texts)`, with a crash of the whole call narrowed to the items that cause
    it: on an exception every item is retried alone, so one poison text fails only itself."""
    started = time.perf_counter()
    try:
        results = list(fn(texts))
        if len(results) != len(texts):
            raise RuntimeError(f"predictor returned {len(results)} results for {len(texts)}")
    except Exception:
        results = []
        for text in texts:
            try:
                one = list(fn([text]))
                results.append(
                    one[0] if len(one) == 1 else _Failure("inference_error", "no result")
                )
            except Exception as exc:
                results.append(_Failure("inference_error", f"{type(exc).__name__}: {exc}"))
    return results, time.perf_counter() - started


def _reason(failure: ItemFailure) -> DeadLetterReason:
    try:
        return DeadLetterReason(failure.reason)
    except ValueError:
        return DeadLetterReason.INFERENCE_ERROR


def _model_ref(model: Classifier | EntityTagger | ClassifierTagger) -> ModelRef:
    manifest = model.manifest
    return ModelRef(name=manifest.name, version=manifest.version, backend=model.backend_name)


class BatchProcessor:
    """Turn a batch of inbound records into routing events and dead letters.

    Blocking and CPU-bound: the faust agent runs it in an executor. Never raises for one bad
    record; every input record yields exactly one output (event or dead letter).
    """

    def __init__(
        self,
        models: Callable[[], ModelSet],
        router: Router,
        topics: TopicSettings,
        limits: Limits | None = None,
        *,
        parallel_models: bool = False,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._models = models
        self._router = router
        self._inbound = topics.inbound()
        self._limits = limits or Limits()
        self._clock = clock
        self._ner_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ner") if parallel_models else None
        )

    def close(self) -> None:
        """Stop the NER thread, if any."""
        if self._ner_pool is not None:
            self._ner_pool.shutdown(wait=True)

    def decode(self, record: InboundRecord) -> InboundMessage:
        """Parse and validate one record; raises RecordRejectedError with the dead-letter reason."""
        kind = self._inbound.get(record.topic)
        if kind is None:
            raise RecordRejectedError(
                DeadLetterReason.UNKNOWN_TOPIC, f"topic {record.topic!r} is not an inbound topic"
            )
        raw = record.value
        if raw is None or not raw:
            raise RecordRejectedError(
                DeadLetterReason.INVALID_JSON, "record has no value (tombstone)"
            )
        if len(raw) > self._limits.max_message_bytes:
            raise RecordRejectedError(
                DeadLetterReason.MESSAGE_TOO_LARGE,
                f"record is {len(raw)} bytes, over the {self._limits.max_message_bytes} limit "
                "(TEXTROUTE_WORKER_MAX_MESSAGE_BYTES)",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordRejectedError(
                DeadLetterReason.NOT_UTF8, f"value is not UTF-8: {exc}"
            ) from exc
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            # RecursionError: nesting deeper than the parser allows, e.g. "[[[[...".
            raise RecordRejectedError(
                DeadLetterReason.INVALID_JSON, f"value is not JSON: {exc}"
            ) from exc
        message_id = data.get("id") if isinstance(data, dict) else None
        message_id = message_id if isinstance(message_id, str) and message_id else None
        try:
            message = MESSAGE_TYPES[kind].model_validate(data)
        except ValidationError as exc:
            raise RecordRejectedError(
                DeadLetterReason.SCHEMA_ERROR,
                f"not a valid {kind.value} message: {summarize_validation_error(exc)}",
                message_id=message_id,
            ) from exc
        model_text = message.text_for_models()
        if not model_text.strip():
            raise RecordRejectedError(
                DeadLetterReason.EMPTY_TEXT,
                f"{kind.value} has no text in {', '.join(message.text_fields)}",
                message_id=message.id,
            )
        if len(model_text) > self._limits.max_text_chars:
            raise RecordRejectedError(
                DeadLetterReason.TEXT_TOO_LONG,
                f"text is {len(model_text)} characters, over the {self._limits.max_text_chars} "
                "limit (TEXTROUTE_WORKER_MAX_TEXT_CHARS)",
                message_id=message.id,
            )
        return message

    def dead_letter(
        self,
        record: InboundRecord,
        reason: DeadLetterReason,
        error_class: str,
        error_message: str,
        *,
        message_id: str | None = None,
    ) -> DeadLetter:
        """A dead-letter record carrying the original bytes and why they were rejected."""
        raw = record.value or b""
        return DeadLetter(
            reason=reason,
            error_class=error_class,
            error_message=error_message,
            source=_source(record),
            payload_b64=base64.b64encode(raw).decode("ascii"),
            payload_preview=_preview(raw),
            payload_size=len(raw),
            key_b64=base64.b64encode(record.key).decode("ascii") if record.key else None,
            message_id=message_id,
            kind=self._inbound.get(record.topic),
            first_seen_at=record.received_at,
        )

    def process(self, records: Sequence[InboundRecord]) -> BatchResult:
        """Route every record of the batch; each bad one becomes a dead letter instead."""
        result = BatchResult(kinds=[self._inbound.get(r.topic) for r in records])
        valid: list[tuple[InboundRecord, InboundMessage, str]] = []
        for record in records:
            try:
                message = self.decode(record)
            except RecordRejectedError as exc:
                result.dead_letters.append(
                    self.dead_letter(
                        record, exc.reason, "InputRejected", str(exc), message_id=exc.message_id
                    )
                )
                continue
            except Exception as exc:
                result.dead_letters.append(self._unexpected(record, None, exc))
                continue
            valid.append((record, message, message.text_for_models()))
        if not valid:
            return result

        models = self._models()
        texts = [text for _, _, text in valid]
        joint = models.joint
        if joint is not None:
            self._route_joint(joint, valid, texts, result)
            return result
        ner_future = None
        if models.ner is not None and self._ner_pool is not None:
            # Tag every text while the classifier runs, on the other core; tags of texts the
            # classifier then fails on are dropped.
            ner_future = self._ner_pool.submit(call_isolating_failures, models.ner.entities, texts)
        classes, result.classify_s = call_isolating_failures(models.classifier.classify, texts)
        ok = [isinstance(c, Classification) for c in classes]
        classified = [
            (item, c)
            for item, c in zip(valid, classes, strict=True)
            if isinstance(c, Classification)
        ]
        for (record, message, _), c in zip(valid, classes, strict=True):
            if not isinstance(c, Classification):
                result.dead_letters.append(self._failed(record, message, "classifier", c))

        entity_lists: list[list[Entity] | ItemFailure] = [[] for _ in classified]
        if ner_future is not None:
            all_entities, result.ner_s = ner_future.result()
            entity_lists = [e for e, keep in zip(all_entities, ok, strict=True) if keep]
        elif models.ner is not None and classified:
            entity_lists, result.ner_s = call_isolating_failures(
                models.ner.entities, [text for (_, _, text), _ in classified]
            )
        refs = (_model_ref(models.classifier), _model_ref(models.ner) if models.ner else None)
        for ((record, message, _), classification), ents in zip(
            classified, entity_lists, strict=True
        ):
            if not isinstance(ents, list):
                result.dead_letters.append(self._failed(record, message, "ner", ents))
                continue
            self._emit(result, record, message, classification, ents, refs)
        return result

    def _route_joint(
        self,
        model: ClassifierTagger,
        valid: Sequence[tuple[InboundRecord, InboundMessage, str]],
        texts: Sequence[str],
        result: BatchResult,
    ) -> None:
        """Route with one call of a classify-and-tag model; its time counts as the classifier's."""
        outcomes, result.classify_s = call_isolating_failures(model.classify_and_tag, texts)
        ref = _model_ref(model)
        for (record, message, _), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, tuple):
                self._emit(result, record, message, outcome[0], outcome[1], (ref, ref))
            else:
                result.dead_letters.append(
                    self._failed(record, message, "classify-and-tag", outcome)
                )

    def _emit(
        self,
        result: BatchResult,
        record: InboundRecord,
        message: InboundMessage,
        classification: Classification,
        entities: list[Entity],
        refs: tuple[ModelRef, ModelRef | None],
    ) -> None:
        try:
            result.events.append(self._event(record, message, classification, entities, refs))
        except Exception as exc:
            result.dead_letters.append(self._unexpected(record, message, exc))

    def _event(
        self,
        record: InboundRecord,
        message: InboundMessage,
        classification: Classification,
        entities: list[Entity],
        refs: tuple[ModelRef, ModelRef | None],
    ) -> RoutingEvent:
        decision = self._router.route(message.kind, classification, entities)
        routed_at = self._clock()
        return RoutingEvent(
            message_id=message.id,
            kind=message.kind,
            category=classification.label,
            confidence=classification.score,
            top_k=classification.top_k,
            entities=entities,
            route=decision.queue,
            reasons=decision.reasons,
            classifier=refs[0],
            ner=refs[1],
            received_at=record.received_at,
            routed_at=routed_at,
            processing_ms=max(0.0, (routed_at - record.received_at).total_seconds() * 1000.0),
            source=_source(record),
        )

    def _unexpected(
        self, record: InboundRecord, message: InboundMessage | None, exc: Exception
    ) -> DeadLetter:
        # A bug or an input nobody foresaw must cost one record, never the batch or the worker.
        return self.dead_letter(
            record,
            DeadLetterReason.UNEXPECTED_ERROR,
            type(exc).__name__,
            str(exc) or repr(exc),
            message_id=message.id if message else None,
        )

    def _failed(
        self, record: InboundRecord, message: InboundMessage, role: str, failure: ItemFailure
    ) -> DeadLetter:
        return self.dead_letter(
            record,
            _reason(failure),
            type(failure).__name__,
            f"{role}: {failure.message}",
            message_id=message.id,
        )


def _preview(raw: bytes) -> str | None:
    """The start of the payload as text, when the whole payload is valid UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Cutting the bytes may split a character; the whole value decoded, so dropping it is safe.
    return raw[: PREVIEW_CHARS * 4].decode("utf-8", errors="ignore")[:PREVIEW_CHARS]


def _source(record: InboundRecord) -> SourceRef:
    return SourceRef(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
    )
