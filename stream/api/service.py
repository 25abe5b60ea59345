"""The models behind the API: background loading, readiness, shared micro-batches, routing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal, TypeVar

import structlog

from schemas.entities import Classification, Entity, LabelScore
from schemas.events import ModelRef
from schemas.messages import MessageKind
from stream.api.errors import (
    ModelNotConfiguredError,
    NotReadyError,
    QueueFullError,
    ShuttingDownError,
)
from stream.api.metrics import ApiMetrics
from stream.api.payloads import ItemErrorInfo, ModelInfo, RouteOutcome
from stream.api.settings import ApiSettings
from stream.batching import BatchFn, BatchRunner, batch_runner
from stream.errors import BatcherClosedError, BatchQueueFullError
from stream.heap import freeze_startup_objects, refreezing
from stream.model_set import (
    Failed,
    ItemFailure,
    Model,
    ModelSet,
    Outcome,
    call_isolating_failures,
    infer_batch,
)
from stream.models import Loader, ReloadingModels, Validator, inference_loader
from stream.routing import Router, RoutingRules, load_rules

log = structlog.get_logger("textroute.api")

ModelStatus = Literal["loading", "ready", "failed"]
_R = TypeVar("_R")


@dataclass(frozen=True)
class WorkItem:
    """One text of a request, with where it came from."""

    index: int
    text: str
    message_id: str | None = None
    kind: MessageKind | None = None


def _error_info(failure: ItemFailure) -> ItemErrorInfo:
    return ItemErrorInfo(reason=str(failure.reason), message=failure.message)


def _info(model: Model) -> ModelInfo:
    manifest = model.manifest
    return ModelInfo(name=manifest.name, version=manifest.version, backend=model.backend_name)


def _ref(model: Model) -> ModelRef:
    manifest = model.manifest
    return ModelRef(name=manifest.name, version=manifest.version, backend=model.backend_name)


async def _run(runner: BatchRunner[str, _R], items: Sequence[WorkItem]) -> Sequence[_R]:
    """The runner's results for the items' texts; its refusals as the API's 503s."""
    try:
        return await runner.run([item.text for item in items])
    except BatchQueueFullError as exc:
        raise QueueFullError(f"{exc} (TEXTROUTE_API_BATCH_QUEUE_MAX_ITEMS)") from exc
    except BatcherClosedError as exc:
        raise ShuttingDownError(
            "the server is shutting down and takes no new work; retry on another instance"
        ) from exc


def _label_check(rules: RoutingRules) -> Validator:
    def check(models: ModelSet) -> None:
        rules.check_labels(models.classifier.manifest.labels)

    return check


class ModelService:
    """Owns the models (hot-reloaded like the worker's), the router and the batch runners: one
    per model for /classify and /entities, and one for /route, which infers like the worker
    (stream.model_set.infer_batch).

    `load()` runs once at startup in the background; until it succeeds every inference call
    raises NotReadyError, which the app turns into 503.
    """

    def __init__(
        self, settings: ApiSettings, metrics: ApiMetrics, *, loader: Loader | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader
        self.status: ModelStatus = "loading"
        self.error: str | None = None
        self.router: Router | None = None
        self._models: ReloadingModels | None = None
        # One executor for every model call and reload, so model calls never fight each
        # other for the cores and a reload never swaps models in the middle of a batch.
        self._executor = ThreadPoolExecutor(
            max_workers=settings.inference_threads, thread_name_prefix="textroute-infer"
        )
        self._classify: BatchRunner[str, Classification | ItemFailure] | None = None
        self._entities: BatchRunner[str, list[Entity] | ItemFailure] | None = None
        self._route: BatchRunner[str, Outcome] | None = None
        self._reloader: asyncio.Task[None] | None = None
        for model in settings.model_dirs():
            metrics.model_ready.labels(model=model).set(0)

    async def load(self) -> None:
        """Load rules and models off the event loop; record a failure instead of raising."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        try:
            rules = load_rules(settings.rules_path)
            loader = self._loader
            if loader is None:
                loader = await loop.run_in_executor(None, inference_loader)
            models = await loop.run_in_executor(
                None,
                partial(
                    ReloadingModels,
                    settings.classifier_dir,
                    settings.ner_dir,
                    loader,
                    validate=_label_check(rules),
                ),
            )
        except Exception as exc:
            # Any load failure (missing dir, checksum mismatch, labels the rules do not know)
            # is reported on /readyz; the process stays up so operators can read why.
            self.status = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("api.models_failed", error=self.error)
            return
        self.router = Router(rules)
        self._models = models
        self._classify = self._runner(self._classify_batch, model="classifier")
        if models().ner is not None:
            self._entities = self._runner(self._entities_batch, model="ner")
        # Observed per model inside the batch, which may call one model or two.
        self._route = self._runner(self._route_batch, model=None)
        self._publish_models()
        # Models and modules are in: full collections need not walk them again (short pauses).
        freeze_startup_objects()
        self.status = "ready"
        log.info("api.models_ready", versions=models.versions())
        if settings.reload_interval_s > 0:
            self._reloader = asyncio.create_task(self._reload_loop(), name="reload-models")

    def _classify_batch(self, texts: Sequence[str]) -> list[Classification | ItemFailure]:
        # Read the model set per batch so a hot reload applies from the next batch on.
        assert self._models is not None
        return call_isolating_failures(self._models().classifier.classify, texts)[0]

    def _entities_batch(self, texts: Sequence[str]) -> list[list[Entity] | ItemFailure]:
        assert self._models is not None
        ner = self._models().ner
        assert ner is not None
        return call_isolating_failures(ner.entities, texts)[0]

    def _route_batch(self, texts: Sequence[str]) -> list[Outcome]:
        assert self._models is not None
        models = self._models()
        inferred = infer_batch(models, texts)
        if models.joint is not None:
            self.metrics.observe_batch("multitask", len(texts), inferred.classify_s)
            return inferred.outcomes
        self.metrics.observe_batch("classifier", len(texts), inferred.classify_s)
        if inferred.tagged:
            self.metrics.observe_batch("ner", inferred.tagged, inferred.ner_s)
        return inferred.outcomes

    def _runner(self, fn: BatchFn[str, _R], *, model: str | None) -> BatchRunner[str, _R]:
        """A batch runner of `fn` whose batches count as calls of `model` (when named)."""
        settings = self.settings
        return batch_runner(
            fn,
            max_size=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000.0,
            cross_caller=settings.batching,
            executor=self._executor,
            observer=partial(self.metrics.observe_batch, model) if model is not None else None,
            max_pending=settings.batch_queue_max_items,
        )

    async def _reload_loop(self) -> None:
        assert self._models is not None
        loop = asyncio.get_running_loop()
        # Refrozen after a swap: the new models stay out of full collections (short pauses) and
        # what cycles held of the replaced ones is freed.
        check = refreezing(self._models.check_for_update)
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            changed = await loop.run_in_executor(self._executor, check)
            if changed:
                self._publish_models()

    def _publish_models(self) -> None:
        self.metrics.model_info.clear()
        for role, info in self.models().items():
            self.metrics.model_ready.labels(model=role).set(1)
            self.metrics.model_info.labels(
                model=role, name=info.name, version=info.version, backend=info.backend
            ).set(1)

    def _current(self) -> ModelSet:
        if self.status == "loading":
            raise NotReadyError("the models are still loading; retry shortly (see /readyz)")
        if self.status == "failed" or self._models is None:
            raise NotReadyError(
                "the models failed to load, so this server cannot answer; fix the artifact "
                f"or settings and restart. Cause: {self.error}"
            )
        return self._models()

    def models(self) -> dict[str, ModelInfo]:
        """The loaded models by role; empty before loading finished."""
        if self._models is None:
            return {}
        current = self._models()
        out = {"classifier": _info(current.classifier)}
        if current.ner is not None:
            out["ner"] = _info(current.ner)
        return out

    def classifier_info(self) -> ModelInfo:
        """The classifier in use; raises NotReadyError before it is loaded."""
        return _info(self._current().classifier)

    def ner_info(self) -> ModelInfo:
        """The NER model in use; raises when not loaded or not configured."""
        ner = self._current().ner
        if ner is None:
            raise ModelNotConfiguredError(
                "this server runs without an NER model; start it with --ner or "
                "TEXTROUTE_API_NER_DIR to serve entities"
            )
        return _info(ner)

    async def classify(self, items: Sequence[WorkItem]) -> list[Classification | ItemErrorInfo]:
        """A classification or an error for each item, in order."""
        self._current()
        assert self._classify is not None
        results = await _run(self._classify, items)
        return [r if isinstance(r, Classification) else _error_info(r) for r in results]

    async def entities(self, items: Sequence[WorkItem]) -> list[list[Entity] | ItemErrorInfo]:
        """Entities or an error for each item, in order."""
        self.ner_info()
        assert self._entities is not None
        results = await _run(self._entities, items)
        return [r if isinstance(r, list) else _error_info(r) for r in results]

    async def route(self, items: Sequence[WorkItem]) -> list[RouteOutcome | ItemErrorInfo]:
        """Classify, find entities (when NER is loaded) and apply the routing rules; every
        item must have its message kind, which rules may depend on."""
        current = self._current()
        assert self.router is not None and self._route is not None
        outcomes = await _run(self._route, items)
        classifier_ref = _ref(current.classifier)
        ner_ref = _ref(current.ner) if current.ner is not None else None
        out: list[RouteOutcome | ItemErrorInfo] = []
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, Failed):
                out.append(_error_info(outcome.failure))
                continue
            cls, ents = outcome
            if item.kind is None:
                raise ValueError(f"item {item.index} has no message kind to route by")
            decision = self.router.route(item.kind, cls, ents)
            out.append(
                RouteOutcome(
                    category=cls.label,
                    confidence=cls.score,
                    top_k=cls.top_k,
                    entities=ents,
                    route=decision.queue,
                    reasons=decision.reasons,
                    labels=cls.labels
                    if cls.labels is not None
                    else [LabelScore(label=cls.label, score=cls.score)],
                    routes=decision.routes,
                    classifier=classifier_ref,
                    ner=ner_ref,
                )
            )
        return out

    async def aclose(self) -> None:
        """Stop reloading, the batch runners and the inference threads."""
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        for runner in (self._classify, self._entities, self._route):
            if runner is not None:
                await runner.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
