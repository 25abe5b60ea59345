"""The worker's models: load the classifier and NER artifacts, swap in new versions live."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from schemas.artifact import read_manifest
from schemas.manifest import ModelManifest, TaskKind
from stream.errors import ModelSlotError
from stream.metrics import StreamMetrics
from stream.model_set import ClassifierTagger, EntityTagger, ModelSet

log = structlog.get_logger(__name__)

#: Loads one artifact directory into a predictor (inference.load_predictor in production).
Loader = Callable[[Path], Any]
#: Checks a candidate model set before it is used (e.g. the rules know the classifier's labels).
Validator = Callable[[ModelSet], None]


def inference_loader(*, split_cores: bool = False) -> Loader:
    """The inference layer's loader, with TEXTROUTE_INFERENCE_* settings.

    With `split_cores` (the classifier and NER run side by side), each model gets half the
    cores unless TEXTROUTE_INFERENCE_THREADS says otherwise: two sessions each spreading over
    every core would fight for them.
    """
    from inference import InferenceSettings, load_predictor

    # InferenceSettings() reads the environment; the empty mapping keeps mypy, which cannot see
    # its Field("...") defaults without pydantic's plugin, from taking every field as required.
    no_overrides: dict[str, Any] = {}
    settings = InferenceSettings(**no_overrides)
    if split_cores and "threads" not in settings.model_fields_set:
        settings = settings.model_copy(update={"threads": max(1, (os.cpu_count() or 2) // 2)})

    def load(artifact_dir: Path) -> Any:
        return load_predictor(artifact_dir, settings)

    return load


@dataclass(frozen=True)
class ModelDirs:
    """The artifact directory of each role, and whether one classify-and-tag artifact fills
    both: the one place that tells, from the configured directories (see `of`)."""

    classifier: Path
    ner: Path | None = None
    #: One artifact in both roles: loaded once, a ModelSet.joint_model called once a batch.
    shared: bool = False

    @classmethod
    def of(cls, classifier_dir: Path, ner_dir: Path | None) -> ModelDirs:
        """Both roles naming one directory (after resolving links and dots) share it."""
        shared = ner_dir is not None and classifier_dir.resolve() == ner_dir.resolve()
        return cls(classifier_dir, ner_dir, shared)

    @property
    def two_models(self) -> bool:
        """Whether a batch runs two models: a classifier and a separate NER model."""
        return self.ner is not None and not self.shared


#: The artifact tasks each slot can serve: a classify-and-tag model has both halves, so it
#: fills either role, and it alone fills both from one directory.
SLOT_TASKS: dict[str, tuple[TaskKind, ...]] = {
    "classifier": (TaskKind.CLASSIFICATION, TaskKind.MULTI_LABEL, TaskKind.CLASSIFY_AND_TAG),
    "NER": (TaskKind.TOKEN_CLASSIFICATION, TaskKind.CLASSIFY_AND_TAG),
    "classifier+NER": (TaskKind.CLASSIFY_AND_TAG,),
    #: A pipeline's attribute (e.g. a ticket's priority): one label per text.
    "attribute": (TaskKind.CLASSIFICATION, TaskKind.CLASSIFY_AND_TAG),
}


def check_slot(slot: str, artifact_dir: Path, manifest: ModelManifest) -> None:
    """Raise ModelSlotError when the artifact's task does not fit `slot` (a SLOT_TASKS key).

    Without this an NER model in the classifier slot loads fine and then fails every message.
    """
    expected = SLOT_TASKS[slot]
    if manifest.task in expected:
        return
    raise ModelSlotError(
        f"the {slot} slot needs a {' or '.join(t.value for t in expected)} model, but "
        f"{artifact_dir} holds {manifest.name} {manifest.version}, a {manifest.task.value} "
        "model; point the slot at a fitting artifact"
    )


class ReloadingModels:
    """Holds the current ModelSet; `check_for_update` loads a new artifact version when the
    manifest in a model directory changes, and keeps the old models if the new ones fail.

    When the classifier and NER directories are the same (a classify-and-tag artifact), one
    predictor plays both roles (ModelSet.joint_model), so the worker runs it once per batch.
    An artifact whose task does not fit its slot (SLOT_TASKS) is refused: ModelSlotError at
    start, the old models kept at reload.
    """

    def __init__(
        self,
        classifier_dir: Path,
        ner_dir: Path | None,
        loader: Loader,
        *,
        validate: Validator | None = None,
        metrics: StreamMetrics | None = None,
        role_prefix: str = "",
        classifier_slot: str = "classifier",
    ) -> None:
        self._dirs = ModelDirs.of(classifier_dir, ner_dir)
        # The SLOT_TASKS key the classifier role is checked against, at start and at reload
        # ("attribute" for a pipeline's attribute model).
        self._classifier_slot = classifier_slot
        # Metric role labels, e.g. "ticket/classifier": several pipelines each have one.
        self._prefix = role_prefix
        self._loader = loader
        self._validate = validate
        self._metrics = metrics
        self._lock = threading.Lock()
        models = self._candidate(None, ("classifier", "ner"))
        self._models = models
        self._publish_versions(None, models)

    def __call__(self) -> ModelSet:
        """The model set in use now (one attribute read: safe from any thread)."""
        return self._models

    def versions(self) -> dict[str, str]:
        """Role -> version of the loaded models."""
        models = self._models
        out = {"classifier": models.classifier.manifest.version}
        if models.ner is not None:
            out["ner"] = models.ner.manifest.version
        return out

    def check_for_update(self) -> list[str]:
        """Reload the roles whose artifact version changed on disk; the roles reloaded.

        Never raises: whatever goes wrong while checking or loading (a half-written, removed,
        unreadable or misplaced artifact) keeps the models in use, is logged and counted as a
        failed reload, and the next check tries again. Blocking (reads and verifies files):
        run it in the executor that runs inference, so a swap never happens in the middle of
        a batch.
        """
        with self._lock:
            current = self._models
            # The roles a failure is counted against: the one being checked, then those loading.
            roles: list[str] = []
            try:
                changed = []
                for role, version in self.versions().items():
                    roles = [role]
                    if self._disk_version(role) not in (None, version):
                        changed.append(role)
                if not changed:
                    return []
                roles = changed
                candidate = self._candidate(current, changed)
            except Exception as exc:
                for role in roles:
                    self._count(role, "failed")
                log.error("models.reload_failed", roles=roles, error=f"{type(exc).__name__}: {exc}")
                return []
            self._models = candidate
            self._publish_versions(current, candidate)
            for role in changed:
                self._count(role, "loaded")
            log.info("models.reloaded", versions=self.versions())
            return changed

    def _load(self, slot: str, artifact_dir: Path) -> Any:
        """Load one artifact after checking that its task fits `slot`."""
        # From the directory the path resolves to now: a model home's `current` link swapped
        # during the load never mixes the files of two versions (stream.model_home).
        target = artifact_dir.resolve()
        # The manifest on disk is checked first so a misplaced model is refused before the
        # minutes a large one takes to load; the loaded one again, as the file may change.
        check_slot(slot, artifact_dir, read_manifest(target, verify=False))
        model = self._loader(target)
        check_slot(slot, artifact_dir, model.manifest)
        return model

    def _candidate(self, current: ModelSet | None, changed: Collection[str]) -> ModelSet:
        """The model set with the `changed` roles loaded anew (all of them when there is no
        `current` set), checked; raises on any failure."""
        dirs = self._dirs
        candidate: ModelSet
        if dirs.shared:
            candidate = ModelSet.joint_model(self._load_joint(dirs.classifier))
        else:
            classifier = current.classifier if current is not None else None
            if classifier is None or "classifier" in changed:
                classifier = self._load(self._classifier_slot, dirs.classifier)
            ner: EntityTagger | None = current.ner if current is not None else None
            if dirs.ner is not None and (current is None or "ner" in changed):
                ner = self._load("NER", dirs.ner)
            candidate = ModelSet.separate(classifier, ner)
        if self._validate is not None:
            self._validate(candidate)
        return candidate

    def _load_joint(self, artifact_dir: Path) -> ClassifierTagger:
        """The one classify-and-tag model of both roles."""
        model = self._load("classifier+NER", artifact_dir)
        if not isinstance(model, ClassifierTagger):
            # Only a custom loader gets here: the inference layer loads a classify-and-tag
            # artifact as a MultiTaskPredictor.
            raise ModelSlotError(
                f"the classifier+NER slot needs a model with classify_and_tag, but the loader "
                f"gave a {type(model).__name__} for {artifact_dir}"
            )
        return model

    def _disk_version(self, role: str) -> str | None:
        path = self._dirs.classifier if role == "classifier" else self._dirs.ner
        if path is None:
            return None
        return read_manifest(path, verify=False).version

    def _count(self, role: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.model_reloads.labels(role=self._prefix + role, result=result).inc()

    def _publish_versions(self, old: ModelSet | None, new: ModelSet) -> None:
        if self._metrics is None:
            return
        gauge = self._metrics.model_version
        for role, before, after in (
            ("classifier", old.classifier if old else None, new.classifier),
            ("ner", old.ner if old else None, new.ner),
        ):
            label = self._prefix + role
            if before is not None and before is not after:
                gauge.labels(label, before.manifest.name, before.manifest.version).set(0)
            if after is not None:
                gauge.labels(label, after.manifest.name, after.manifest.version).set(1)
