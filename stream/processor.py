"""The routing worker's logic, free of faust: decode, validate, infer per batch, route."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import NamedTuple

import structlog
from pydantic import ValidationError

from schemas.entities import Classification, Entity, LabelScore
from schemas.events import DeadLetter, DeadLetterReason, ModelRef, RoutingEvent
from schemas.feedback import ArchivedMessage, ShadowEvent, ShadowPrediction
from schemas.messages import MESSAGE_TYPES, EmailMessage, InboundMessage, MessageKind
from stream._pydantic import summarize_validation_error
from stream.config import TopicSettings, WorkerSettings
from stream.dead_letters import describe, encode_dead_letter, not_unicode, source_ref
from stream.errors import RecordRejectedError
from stream.metrics import StreamMetrics
from stream.model_set import (
    Classifier,
    Failed,
    ItemFailure,
    Model,
    ModelSet,
    call_isolating_failures,
    infer_groups,
)
from stream.pipelines import DEFAULT_PIPELINE, Pipeline, Pipelines, PreparedText
from stream.records import InboundRecord as InboundRecord
from stream.records import parse_json
from stream.routing import Router
from stream.topics import OutboundRecord

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Limits:
    """Input and output limits: records over the input limits are dead-lettered before any
    model sees them; no output is larger than `max_output_bytes` (key + value)."""

    max_message_bytes: int = 1_000_000
    max_text_chars: int = 20_000
    max_output_bytes: int = 1_000_000
    dead_letter_payload_bytes: int = 64 * 1024

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Limits:
        return cls(
            max_message_bytes=settings.max_message_bytes,
            max_text_chars=settings.max_text_chars,
            max_output_bytes=settings.max_output_bytes,
            dead_letter_payload_bytes=settings.dead_letter_payload_bytes,
        )


@dataclass(frozen=True)
class Companion:
    """A record produced beside a routing event, in the same batch: the message's archive
    record or its shadow pair, encoded and within max_output_bytes."""

    message: ArchivedMessage | ShadowEvent
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Output:
    """The output of one input record, encoded for Kafka inside that record's guard: its
    routing event or dead letter, and with an event its archive record and shadow pair when
    the worker writes them (never with a dead letter)."""

    message: RoutingEvent | DeadLetter
    key: bytes
    value: bytes
    archive: Companion | None = None
    shadow: Companion | None = None

    def records(self, topics: TopicSettings) -> list[OutboundRecord]:
        """The records to produce for this input, in order: the archive record, the event
        (or dead letter), the shadow pair. All are produced and acknowledged before the input
        is acked, so none is lost to a crash."""
        if isinstance(self.message, DeadLetter):
            return [OutboundRecord(topics.dead_letter, self.key, self.value)]
        out = []
        if self.archive is not None:
            out.append(OutboundRecord(topics.archive, self.archive.key, self.archive.value))
        out.append(OutboundRecord(topics.routed, self.key, self.value))
        if self.shadow is not None:
            out.append(OutboundRecord(topics.shadow, self.shadow.key, self.shadow.value))
        return out


@dataclass
class BatchResult:
    """What one batch produced: one output per input record, in input order, and the model
    time spent."""

    outputs: list[Output] = field(default_factory=list)
    kinds: list[MessageKind | None] = field(default_factory=list)
    classify_s: float = 0.0
    ner_s: float = 0.0
    #: Seconds of the shadow candidates' calls (0 when none ran).
    shadow_s: float = 0.0

    @property
    def events(self) -> list[RoutingEvent]:
        """The routing events, in input order."""
        return [o.message for o in self.outputs if isinstance(o.message, RoutingEvent)]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The dead letters, in input order."""
        return [o.message for o in self.outputs if isinstance(o.message, DeadLetter)]

    @property
    def archived(self) -> list[ArchivedMessage]:
        """The archive records, in input order."""
        return [
            o.archive.message
            for o in self.outputs
            if o.archive is not None and isinstance(o.archive.message, ArchivedMessage)
        ]

    @property
    def shadows(self) -> list[ShadowEvent]:
        """The shadow pairs, in input order."""
        return [
            o.shadow.message
            for o in self.outputs
            if o.shadow is not None and isinstance(o.shadow.message, ShadowEvent)
        ]

    def outbound(self, topics: TopicSettings) -> list[OutboundRecord]:
        """Records to produce, each input's in order (see Output.records): events, archive
        records and shadow pairs keyed by message id so consumers can de-duplicate, dead
        letters by message id or record coordinates."""
        return [record for o in self.outputs for record in o.records(topics)]


class _Valid(NamedTuple):
    """A record that passed the checks, with its position in the batch and its pipeline."""

    position: int
    record: InboundRecord
    message: InboundMessage
    pipeline: Pipeline
    prepared: PreparedText

    @property
    def text(self) -> str:
        return self.prepared.text


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _reason(failure: ItemFailure) -> DeadLetterReason:
    try:
        return DeadLetterReason(failure.reason)
    except ValueError:
        return DeadLetterReason.INFERENCE_ERROR


def _model_ref(model: Model) -> ModelRef:
    manifest = model.manifest
    return ModelRef(name=manifest.name, version=manifest.version, backend=model.backend_name)


def sent_to_review(event: RoutingEvent) -> bool:
    """Whether the router sent the message to human review (a `review:` rule's route)."""
    return any(target.rule.startswith("review:") for target in event.routes)


class _Routed(NamedTuple):
    """A record that got a routing event: what its shadow pair is built from."""

    item: _Valid
    classification: Classification
    event: RoutingEvent


class BatchProcessor:
    """Turn a batch of inbound records into routing events and dead letters.

    Blocking and CPU-bound: the faust agent runs it in an executor. Never raises for one bad
    record; every input record yields exactly one output (event or dead letter), encoded and
    within Limits.max_output_bytes.

    With `archive`, each event comes with its archive record (ArchivedMessage: the text the
    classifier read and its prediction); a pipeline with a shadow candidate adds its shadow
    pair (ShadowEvent). Neither ever changes an event: one that cannot be built or is too
    large is left out, logged and counted, and the event still goes. With `metrics`, the drift
    metrics of every routed message and the shadow counts are recorded here.
    """

    def __init__(
        self,
        pipelines: Pipelines,
        topics: TopicSettings,
        limits: Limits | None = None,
        *,
        parallel_models: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        archive: bool = False,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self._pipelines = pipelines
        self._inbound = topics.inbound()
        self._limits = limits or Limits()
        self._clock = clock
        self._archive = archive
        self._metrics = metrics
        self._ner_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="ner") if parallel_models else None
        )

    @classmethod
    def single(
        cls,
        models: Callable[[], ModelSet],
        router: Router,
        topics: TopicSettings,
        limits: Limits | None = None,
        *,
        parallel_models: bool = False,
        clock: Callable[[], datetime] = _utcnow,
        archive: bool = False,
        metrics: StreamMetrics | None = None,
    ) -> BatchProcessor:
        """A processor with one pipeline (these models and rules) for every kind."""
        return cls(
            Pipelines.single(models, router),
            topics,
            limits,
            parallel_models=parallel_models,
            clock=clock,
            archive=archive,
            metrics=metrics,
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
        data = parse_json(text)
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
        # A JSON escape like "\udc00" parses to a lone surrogate, which pydantic lets through
        # in a plain str field (not in the constrained id), but which no tokenizer and no UTF-8
        # output can carry.
        bad = not_unicode(model_text)
        if bad:
            raise RecordRejectedError(
                DeadLetterReason.SCHEMA_ERROR,
                f"{kind.value} text is not valid Unicode text: {bad}",
                message_id=message.id,
            )
        # A raw email's text is read from it by its pipeline (checked then, see _prepare).
        from_raw = isinstance(message, EmailMessage) and message.raw is not None
        if not from_raw and not model_text.strip():
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

    def process(self, records: Sequence[InboundRecord]) -> BatchResult:
        """Route every record of the batch; each bad one becomes a dead letter instead."""
        result = BatchResult(kinds=[self._inbound.get(r.topic) for r in records])
        outputs: list[Output | None] = [None] * len(records)
        messages: list[InboundMessage | None] = [None] * len(records)
        failure: Exception | None = None
        try:
            self._route(records, outputs, messages, result)
        except Exception as exc:
            # A bug outside every per-record guard: the records it left without an output are
            # dead-lettered, so the batch still yields one output per record and is acked.
            failure = exc
            log.error("worker.batch_failed", error=describe(exc), size=len(records))
        for i, record in enumerate(records):
            if outputs[i] is None:
                error: Exception = failure or RuntimeError("the batch produced no output for it")
                outputs[i] = self._unexpected(record, messages[i], error)
        result.outputs = [o for o in outputs if o is not None]
        self._observe(result)
        return result

    def _route(
        self,
        records: Sequence[InboundRecord],
        outputs: list[Output | None],
        messages: list[InboundMessage | None],
        result: BatchResult,
    ) -> None:
        """Fill `outputs` (and `messages`, once decoded) by input position; per-record failures
        are caught."""
        valid: list[_Valid] = []
        for i, record in enumerate(records):
            try:
                message = self.decode(record)
                messages[i] = message
                item = self._prepare(i, record, message)
            except RecordRejectedError as exc:
                outputs[i] = self._dead(
                    record, exc.reason, "InputRejected", str(exc), message_id=exc.message_id
                )
                continue
            except Exception as exc:
                outputs[i] = self._unexpected(record, messages[i], exc)
                continue
            valid.append(item)
        if not valid:
            return

        # Texts grouped by pipeline; each model runs once on every text that needs it.
        by_pipeline: dict[str, list[_Valid]] = {}
        for item in valid:
            by_pipeline.setdefault(item.pipeline.name, []).append(item)
        groups = list(by_pipeline.values())
        model_sets = [group[0].pipeline.models() for group in groups]
        inferred = infer_groups(
            [
                (ms, [item.text for item in group])
                for ms, group in zip(model_sets, groups, strict=True)
            ],
            ner_pool=self._ner_pool,
        )
        result.classify_s, result.ner_s = inferred.classify_s, inferred.ner_s
        attributes = self._attributes(groups)
        routed: list[_Routed] = []
        for models, group, outcomes in zip(model_sets, groups, inferred.outcomes, strict=True):
            # A joint model is in both roles, so its events name it as classifier and as NER.
            refs = (_model_ref(models.classifier), _model_ref(models.ner) if models.ner else None)
            for item, outcome in zip(group, outcomes, strict=True):
                failed = outcome if isinstance(outcome, Failed) else None
                attrs = attributes.get(item.position, {})
                if failed is None:
                    failed = next((f for f in attrs.values() if isinstance(f, Failed)), None)
                if failed is not None:
                    outputs[item.position] = self._failed(item, failed.role, failed.failure)
                    continue
                assert not isinstance(outcome, Failed)
                labels = {k: v for k, v in attrs.items() if isinstance(v, LabelScore)}
                out = self._emit(item, *outcome, refs, labels)
                outputs[item.position] = out
                if isinstance(out.message, RoutingEvent):
                    routed.append(_Routed(item, outcome[0], out.message))
        # Every event is final before a shadow runs: a candidate only adds records beside them.
        try:
            self._shadow(routed, outputs, result)
        except Exception as exc:
            log.error("shadow.batch_failed", error=describe(exc), size=len(routed))

    def _prepare(self, position: int, record: InboundRecord, message: InboundMessage) -> _Valid:
        """The record with its pipeline and the text that pipeline's models read."""
        pipeline = self._pipelines.for_kind(message.kind)
        if pipeline is None:
            raise RecordRejectedError(
                DeadLetterReason.NO_PIPELINE,
                f"no pipeline serves {message.kind.value} messages (see the pipelines file)",
                message_id=message.id,
            )
        try:
            prepared = pipeline.prepare(message)
        except RecordRejectedError as exc:
            exc.message_id = exc.message_id or message.id
            raise
        if not prepared.text.strip():
            raise RecordRejectedError(
                DeadLetterReason.EMPTY_TEXT,
                f"{message.kind.value} has no text left after the {pipeline.name} pipeline's "
                "cleaning",
                message_id=message.id,
            )
        if len(prepared.text) > self._limits.max_text_chars:
            raise RecordRejectedError(
                DeadLetterReason.TEXT_TOO_LONG,
                f"text is {len(prepared.text)} characters, over the "
                f"{self._limits.max_text_chars} limit (TEXTROUTE_WORKER_MAX_TEXT_CHARS)",
                message_id=message.id,
            )
        return _Valid(position, record, message, pipeline, prepared)

    def _attributes(self, groups: list[list[_Valid]]) -> dict[int, dict[str, LabelScore | Failed]]:
        """Position -> attribute -> its top label (or the failure), each attribute model run
        once over the texts of every pipeline that uses it."""
        calls: dict[int, tuple[Classifier, list[tuple[int, str, str]]]] = {}
        for group in groups:
            for attr, model in group[0].pipeline.attribute_models().items():
                entry = calls.setdefault(id(model), (model, []))
                entry[1].extend((item.position, attr, item.text) for item in group)
        out: dict[int, dict[str, LabelScore | Failed]] = {}
        for model, items in calls.values():
            results, _ = call_isolating_failures(model.classify, [text for _, _, text in items])
            for (position, attr, _), result in zip(items, results, strict=True):
                out.setdefault(position, {})[attr] = (
                    LabelScore(label=result.label, score=result.score)
                    if isinstance(result, Classification)
                    else Failed("classifier", result)
                )
        return out

    def _emit(
        self,
        item: _Valid,
        classification: Classification,
        entities: list[Entity],
        refs: tuple[ModelRef, ModelRef | None],
        attributes: dict[str, LabelScore],
    ) -> Output:
        """The routing event of one record, encoded; a dead letter when it cannot be built,
        encoded or produced."""
        try:
            event = self._event(item, classification, entities, refs, attributes)
            key = event.message_id.encode("utf-8")
            value = event.model_dump_json().encode("utf-8")
        except Exception as exc:
            return self._unexpected(item.record, item.message, exc)
        size = len(key) + len(value)
        if size > self._limits.max_output_bytes:
            return self._dead(
                item.record,
                DeadLetterReason.OUTPUT_TOO_LARGE,
                "OutputTooLarge",
                f"the routing event is {size} bytes (key + value, {len(entities)} entities), "
                f"over the {self._limits.max_output_bytes} limit "
                "(TEXTROUTE_WORKER_MAX_OUTPUT_BYTES)",
                message_id=item.message.id,
            )
        archive = self._archived(item, classification, event) if self._archive else None
        return Output(event, key, value, archive=archive)

    def _archived(
        self, item: _Valid, classification: Classification, event: RoutingEvent
    ) -> Companion | None:
        """The event's archive record, encoded; None (logged and counted) when it cannot be
        built or is over max_output_bytes: losing it must never cost the event."""
        reason = "output_too_large"
        try:
            archived = ArchivedMessage(
                message_id=event.message_id,
                kind=event.kind,
                pipeline=event.pipeline,
                text=item.prepared.text,
                category=event.category,
                confidence=event.confidence,
                # A multi-label model's labels; empty for one label per text (then `category`).
                labels=[ls.label for ls in classification.labels]
                if classification.labels is not None
                else [],
                route=event.route,
                review=sent_to_review(event),
                classifier=event.classifier,
                routed_at=event.routed_at,
                source=event.source,
            )
            key = event.message_id.encode("utf-8")
            value = archived.model_dump_json().encode("utf-8")
            size = len(key) + len(value)
            if size <= self._limits.max_output_bytes:
                return Companion(archived, key, value)
            detail = (
                f"{size} bytes (key + value, {len(archived.text)} characters of text), over "
                f"the {self._limits.max_output_bytes} limit (TEXTROUTE_WORKER_MAX_OUTPUT_BYTES)"
            )
        except Exception as exc:
            reason, detail = "unexpected_error", f"{type(exc).__name__}: {describe(exc)}"
        log.warning(
            "archive.dropped",
            message_id=event.message_id,
            pipeline=event.pipeline,
            reason=reason,
            detail=detail,
        )
        if self._metrics is not None:
            self._metrics.archive_dropped.labels(reason=reason).inc()
        return None

    def _shadow(
        self, routed: list[_Routed], outputs: list[Output | None], result: BatchResult
    ) -> None:
        """Add each routed message's shadow pair to its output: every shadow candidate runs
        once over the texts of every pipeline it shadows. Never raises and never touches an
        event: a failing candidate (or a record that cannot be built) only leaves messages
        without their pair, logged and counted."""
        calls: dict[int, tuple[Classifier, list[_Routed]]] = {}
        for entry in routed:
            try:
                candidate = entry.item.pipeline.shadow_classifier()
            except Exception as exc:
                self._shadow_failed([entry], f"the candidate is unavailable: {describe(exc)}")
                continue
            if candidate is not None:
                calls.setdefault(id(candidate), (candidate, []))[1].append(entry)
        for candidate, entries in calls.values():
            try:
                results, seconds = call_isolating_failures(
                    candidate.classify, [entry.item.text for entry in entries]
                )
                result.shadow_s += seconds
                ref = _model_ref(candidate)
            except Exception as exc:
                self._shadow_failed(entries, f"{type(exc).__name__}: {describe(exc)}")
                continue
            for entry, answer in zip(entries, results, strict=True):
                if not isinstance(answer, Classification):
                    self._shadow_failed([entry], f"{answer.reason}: {answer.message}")
                    continue
                try:
                    pair = self._shadow_pair(entry, answer, ref)
                except Exception as exc:
                    self._shadow_failed([entry], f"{type(exc).__name__}: {describe(exc)}")
                    continue
                if pair is None:
                    continue
                position = entry.item.position
                out = outputs[position]
                if out is not None and out.message is entry.event:
                    outputs[position] = replace(out, shadow=pair)
                    if self._metrics is not None:
                        agree = _agree(entry.classification, answer)
                        self._metrics.shadow_predictions.labels(
                            pipeline=entry.event.pipeline, agree="true" if agree else "false"
                        ).inc()

    def _shadow_pair(
        self, entry: _Routed, answer: Classification, candidate: ModelRef
    ) -> Companion | None:
        """The shadow pair of one routed message, encoded; None (counted) when too large."""
        event, active = entry.event, entry.classification
        pair = ShadowEvent(
            message_id=event.message_id,
            kind=event.kind,
            pipeline=event.pipeline,
            active=ShadowPrediction(
                model=event.classifier,
                category=event.category,
                confidence=event.confidence,
                labels=event.labels,
            ),
            candidate=ShadowPrediction(
                model=candidate,
                category=answer.label,
                confidence=answer.score,
                labels=answer.labels
                if answer.labels is not None
                else [LabelScore(label=answer.label, score=answer.score)],
            ),
            agree=_agree(active, answer),
            routed_at=event.routed_at,
        )
        key = event.message_id.encode("utf-8")
        value = pair.model_dump_json().encode("utf-8")
        if len(key) + len(value) > self._limits.max_output_bytes:
            self._shadow_failed(
                [entry],
                f"the shadow record is {len(key) + len(value)} bytes, over the "
                f"{self._limits.max_output_bytes} limit (TEXTROUTE_WORKER_MAX_OUTPUT_BYTES)",
            )
            return None
        return Companion(pair, key, value)

    def _shadow_failed(self, entries: Sequence[_Routed], error: str) -> None:
        """Count and log messages left without a shadow pair; their events are untouched."""
        by_pipeline: dict[str, int] = {}
        for entry in entries:
            by_pipeline[entry.event.pipeline] = by_pipeline.get(entry.event.pipeline, 0) + 1
        for pipeline, n in by_pipeline.items():
            log.warning("shadow.failed", pipeline=pipeline, messages=n, error=error[:1024])
            if self._metrics is not None:
                self._metrics.shadow_failures.labels(pipeline=pipeline).inc(n)

    def _observe(self, result: BatchResult) -> None:
        """The drift metrics of every routed message: confidence, labels, review, count.
        A metrics failure is logged, never raised: it must not cost the batch."""
        m = self._metrics
        if m is None:
            return
        try:
            for event in result.events:
                pipeline = event.pipeline
                m.routed_by_pipeline.labels(pipeline=pipeline).inc()
                m.prediction_confidence.labels(pipeline=pipeline).observe(event.confidence)
                for ls in event.labels:
                    m.predicted_labels.labels(pipeline=pipeline, label=ls.label).inc()
                if sent_to_review(event):
                    m.review.labels(pipeline=pipeline).inc()
        except Exception as exc:
            log.error("metrics.failed", error=describe(exc))

    def _event(
        self,
        item: _Valid,
        classification: Classification,
        entities: list[Entity],
        refs: tuple[ModelRef, ModelRef | None],
        attributes: dict[str, LabelScore],
    ) -> RoutingEvent:
        record, message, prepared = item.record, item.message, item.prepared
        decision = item.pipeline.router.route(
            message.kind, classification, entities, language=prepared.language
        )
        routed_at = self._clock()
        labels = classification.labels
        if labels is None:
            labels = [LabelScore(label=classification.label, score=classification.score)]
        return RoutingEvent(
            message_id=message.id,
            kind=message.kind,
            category=classification.label,
            confidence=classification.score,
            top_k=classification.top_k,
            entities=entities,
            route=decision.queue,
            reasons=decision.reasons,
            pipeline=item.pipeline.name,
            labels=labels,
            routes=decision.routes,
            attributes=attributes,
            model_text=prepared.model_text,
            classifier=refs[0],
            ner=refs[1],
            received_at=record.received_at,
            routed_at=routed_at,
            processing_ms=max(0.0, (routed_at - record.received_at).total_seconds() * 1000.0),
            source=source_ref(record),
        )

    def _dead(
        self,
        record: InboundRecord,
        reason: DeadLetterReason,
        error_class: str,
        error_message: str,
        *,
        message_id: str | None = None,
    ) -> Output:
        """A dead letter, encoded, within max_output_bytes; never raises."""
        dead = encode_dead_letter(
            record,
            reason,
            error_class,
            error_message,
            payload_bytes=self._limits.dead_letter_payload_bytes,
            max_output_bytes=self._limits.max_output_bytes,
            message_id=message_id,
            kind=self._inbound.get(record.topic),
        )
        return Output(dead.message, dead.key, dead.value)

    def _unexpected(
        self, record: InboundRecord, message: InboundMessage | None, exc: Exception
    ) -> Output:
        # A bug or an input nobody foresaw must cost one record, never the batch or the worker.
        return self._dead(
            record,
            DeadLetterReason.UNEXPECTED_ERROR,
            type(exc).__name__,
            describe(exc),
            message_id=message.id if message else None,
        )

    def _failed(self, item: _Valid, role: str, failure: ItemFailure) -> Output:
        return self._dead(
            item.record,
            _reason(failure),
            type(failure).__name__,
            f"{_where(item.pipeline, role)}: {failure.message}",
            message_id=item.message.id,
        )


def _agree(active: Classification, candidate: Classification) -> bool:
    """Same top label; for a multi-label model, the same set of labels given."""
    if active.labels is None and candidate.labels is None:
        return active.label == candidate.label
    return _label_set(active) == _label_set(candidate)


def _label_set(classification: Classification) -> set[str]:
    if classification.labels is None:
        return {classification.label}
    return {ls.label for ls in classification.labels}


def _where(pipeline: Pipeline, role: str) -> str:
    """The failing model's role, and its pipeline when there are several."""
    return role if pipeline.name == DEFAULT_PIPELINE else f"{pipeline.name}/{role}"
