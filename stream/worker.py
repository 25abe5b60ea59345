"""Start the routing worker: check rules and models, then run faust until SIGTERM."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from schemas.messages import MessageKind
from stream.config import WorkerSettings
from stream.heap import freeze_startup_objects, refreezing
from stream.logs import configure_logging
from stream.metrics import StreamMetrics
from stream.model_set import ModelSet
from stream.models import Loader, ModelDirs, ReloadingModels, inference_loader
from stream.pipeline_config import classes_of, load_pipelines
from stream.pipelines import (
    DEFAULT_PIPELINE,
    Pipeline,
    Pipelines,
    SharedLoader,
    build_pipelines,
    publish_label_share,
    shadow_models,
)
from stream.processor import BatchProcessor, Limits
from stream.routing import Router, RoutingRules, load_rules

if TYPE_CHECKING:
    import faust

log = structlog.get_logger(__name__)


def _label_check(rules: RoutingRules) -> Callable[[ModelSet], None]:
    def check(models: ModelSet) -> None:
        unmapped = rules.check_labels(classes_of(models.classifier.manifest))
        if unmapped:
            log.warning("rules.unmapped_labels", labels=unmapped, queue=rules.default_queue)

    return check


@dataclass
class BuiltWorker:
    """What `build_worker` assembles; `close()` releases the threads once faust has stopped."""

    app: faust.App
    models: Pipelines
    metrics: StreamMetrics
    processor: BatchProcessor
    executor: ThreadPoolExecutor
    #: The app's periodic model check: new versions in, the replaced models' memory freed.
    reload: Callable[[], list[str]]

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.processor.close()


def build_worker(settings: WorkerSettings, *, loader: Loader | None = None) -> BuiltWorker:
    """Everything the worker runs, checked: bad rules or models fail here, before Kafka."""
    from stream.faust_app import create_app

    # faust makes its app directory inside data_dir but not data_dir itself.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = StreamMetrics()
    if settings.pipelines_path is not None:
        resolved = load_pipelines(settings.pipelines_path)
        pipelines = build_pipelines(
            resolved, loader or inference_loader(split_cores=False), metrics=metrics
        )
    else:
        pipelines = _single_pipeline(settings, loader, metrics)
    processor = BatchProcessor(
        pipelines,
        settings.topics,
        Limits.from_settings(settings),
        parallel_models=settings.parallel_models,
        archive=settings.archive,
        metrics=metrics,
    )
    # One thread: batches are processed one at a time, and a model reload (run on the same
    # executor) never overlaps a batch.
    executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
    reload = refreezing(pipelines.check_for_update)
    app = create_app(
        settings, processor, executor, metrics, reload=reload, labels_of=pipelines.labels_of
    )
    return BuiltWorker(app, pipelines, metrics, processor, executor, reload)


def _single_pipeline(
    settings: WorkerSettings, loader: Loader | None, metrics: StreamMetrics
) -> Pipelines:
    """Today's settings (one rules file, a classifier and an NER model, and optionally a
    shadow candidate) as one pipeline for every kind."""
    rules = load_rules(settings.rules_path)
    dirs = ModelDirs.of(*settings.model_dirs())
    # Cores are split only between two models running side by side.
    split = settings.parallel_models and dirs.two_models
    load = loader or inference_loader(split_cores=split)
    shadow_dir = settings.shadow_classifier_dir
    if shadow_dir is not None:
        # A candidate in the classifier's (or NER model's) directory is loaded once.
        load = SharedLoader(load)
    models = ReloadingModels(
        dirs.classifier,
        dirs.ner,
        load,
        validate=publish_label_share(_label_check(rules), metrics, DEFAULT_PIPELINE),
        metrics=metrics,
    )
    shadows = []
    shadow = None
    if shadow_dir is not None:
        shadow = shadow_models(
            shadow_dir,
            models,
            load,
            where="TEXTROUTE_WORKER_SHADOW_CLASSIFIER_DIR",
            role_prefix="shadow/",
            metrics=metrics,
        )
        shadows.append((DEFAULT_PIPELINE, shadow))
    pipeline = Pipeline(DEFAULT_PIPELINE, tuple(MessageKind), models, Router(rules), shadow=shadow)
    return Pipelines(
        [pipeline], reloaders=[(DEFAULT_PIPELINE, models)], shadows=shadows, metrics=metrics
    )


def run_worker(settings: WorkerSettings, *, loader: Loader | None = None) -> None:
    """Run the worker in this process until SIGTERM/SIGINT; exits the process when done."""
    import faust

    configure_logging(settings.log_level, json=settings.log_json)
    built = build_worker(settings, loader=loader)
    # Models and modules are in: full collections need not walk them again (short pauses).
    freeze_startup_objects()
    if settings.metrics_port is not None:
        built.metrics.serve(settings.metrics_port)
    log.info(
        "worker.starting",
        app_id=settings.app_id,
        bootstrap=settings.broker.bootstrap_servers,
        inbound=list(settings.topics.inbound()),
        routed=settings.topics.routed,
        dead_letter=settings.topics.dead_letter,
        archive=settings.topics.archive if settings.archive else None,
        shadow=settings.topics.shadow if any(p.shadow for p in built.models) else None,
        batch_size=settings.batch_size,
        batch_wait_s=settings.batch_wait_s,
        models=built.models.versions(),
        metrics_port=settings.metrics_port,
    )
    worker = faust.Worker(
        built.app,
        loglevel=settings.log_level,
        quiet=True,
        # Our structlog handlers stay in charge of logging; faust's would replace them.
        override_logging=False,
        redirect_stdouts=False,
    )
    # The start-up spinner writes terminal escapes to stdout, among the JSON log lines.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    finally:
        built.close()
        log.info("worker.stopped", app_id=settings.app_id)
