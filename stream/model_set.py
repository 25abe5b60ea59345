"""The models texts are inferred with: what each role needs of a predictor, and `infer_batch`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast, runtime_checkable

from schemas.entities import Classification, Entity
from schemas.manifest import ModelManifest

T = TypeVar("T")

#: The role a failure is reported under (the prefix of a dead letter's error message).
Role = Literal["classifier", "ner", "classify-and-tag"]


class ItemFailure(Protocol):
    """A per-item error from the inference layer (inference.ItemError)."""

    @property
    def reason(self) -> str: ...

    @property
    def message(self) -> str: ...


class Model(Protocol):
    """What is known of every model: its artifact and the backend running it."""

    @property
    def manifest(self) -> ModelManifest: ...

    @property
    def backend_name(self) -> str: ...


class Classifier(Model, Protocol):
    """What the classifier role needs of a predictor."""

    def classify(self, texts: Sequence[object]) -> Sequence[Classification | ItemFailure]: ...


class EntityTagger(Model, Protocol):
    """What the NER role needs of a predictor."""

    def entities(self, texts: Sequence[object]) -> Sequence[list[Entity] | ItemFailure]: ...


@runtime_checkable
class ClassifierTagger(Classifier, EntityTagger, Protocol):
    """What both roles need of one model giving class and entities in one pass (a
    classify-and-tag predictor); its halves alone serve requests for one role only."""

    def classify_and_tag(
        self, texts: Sequence[object]
    ) -> Sequence[tuple[Classification, list[Entity]] | ItemFailure]: ...


@dataclass(frozen=True, init=False)
class ModelSet:
    """The predictors a batch is routed with; swapped whole when a model reloads.

    Either a classifier with an optional NER model (`ModelSet.separate`: one call each per
    batch) or one classify-and-tag model in both roles (`ModelSet.joint_model`: one call per
    batch), fixed when the set is made. `classifier` and `ner` name the model in each role
    either way, for its manifest and backend; `joint` is the joint model, or None.
    """

    classifier: Classifier
    ner: EntityTagger | None
    joint: ClassifierTagger | None

    def __init__(self, classifier: Classifier, ner: EntityTagger | None = None) -> None:
        """Shorthand for tests and scripts: the same classify-and-tag object in both roles
        makes `ModelSet.joint_model(it)`, anything else `ModelSet.separate(classifier, ner)`.
        Code that knows which it loaded (ReloadingModels) says so with those constructors."""
        joint: ClassifierTagger | None = None
        if isinstance(classifier, ClassifierTagger) and cast(object, ner) is classifier:
            joint = classifier
        self._fill(classifier, ner, joint)

    @classmethod
    def separate(cls, classifier: Classifier, ner: EntityTagger | None = None) -> ModelSet:
        """A classifier and, optionally, an NER model, each called once per batch."""
        models = cls.__new__(cls)
        models._fill(classifier, ner, None)
        return models

    @classmethod
    def joint_model(cls, model: ClassifierTagger) -> ModelSet:
        """One classify-and-tag model in both roles, called once per batch."""
        models = cls.__new__(cls)
        models._fill(model, model, model)
        return models

    def _fill(
        self, classifier: Classifier, ner: EntityTagger | None, joint: ClassifierTagger | None
    ) -> None:
        # Frozen: the set is shared with the inference thread and swapped whole, never edited.
        object.__setattr__(self, "classifier", classifier)
        object.__setattr__(self, "ner", ner)
        object.__setattr__(self, "joint", joint)


@dataclass(frozen=True)
class Failed:
    """Why one text got no result: the failure and the role of the model that gave it."""

    role: Role
    failure: ItemFailure


#: What one text gets: its class and entities (none without an NER model), or why not.
Outcome = tuple[Classification, list[Entity]] | Failed


@dataclass(frozen=True)
class InferredBatch:
    """The outcome of each text, in order, and the time each role's model took."""

    outcomes: list[Outcome]
    #: Seconds of the classifier call, or of the classify-and-tag model's one call.
    classify_s: float = 0.0
    #: Seconds of the NER call (0 when none ran).
    ner_s: float = 0.0
    #: Texts the NER model was called with (0 when none ran).
    tagged: int = 0


@dataclass(frozen=True)
class _Failure:
    """A failure raised by a predictor call rather than returned as an ItemError."""

    reason: str
    message: str


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


def infer_batch(
    models: ModelSet, texts: Sequence[str], *, ner_pool: Executor | None = None
) -> InferredBatch:
    """Class and entities of every text, or the failure of the model that failed it.

    A joint model runs once. Otherwise the classifier runs, then the NER model on the texts
    it classified; with `ner_pool`, the NER model tags every text there meanwhile. A call that
    raises is narrowed to the texts that cause it (call_isolating_failures); never raises.
    """
    if models.joint is not None:
        both, seconds = call_isolating_failures(models.joint.classify_and_tag, texts)
        return InferredBatch(
            [r if isinstance(r, tuple) else Failed("classify-and-tag", r) for r in both],
            classify_s=seconds,
        )
    ner = models.ner
    ner_future = None
    if ner is not None and ner_pool is not None:
        # Tag every text while the classifier runs, on the other core; tags of texts the
        # classifier then fails on are dropped.
        ner_future = ner_pool.submit(call_isolating_failures, ner.entities, texts)
    classes, classify_s = call_isolating_failures(models.classifier.classify, texts)
    ok = [isinstance(c, Classification) for c in classes]
    classified = [(i, c) for i, c in enumerate(classes) if isinstance(c, Classification)]
    outcomes: list[Outcome] = [
        (c, []) if isinstance(c, Classification) else Failed("classifier", c) for c in classes
    ]
    if ner is None:
        return InferredBatch(outcomes, classify_s=classify_s)

    entity_lists: list[list[Entity] | ItemFailure] = []
    ner_s, tagged = 0.0, 0
    if ner_future is not None:
        all_entities, ner_s = ner_future.result()
        tagged = len(texts)
        entity_lists = [e for e, keep in zip(all_entities, ok, strict=True) if keep]
    elif classified:
        tagged = len(classified)
        entity_lists, ner_s = call_isolating_failures(
            ner.entities, [texts[i] for i, _ in classified]
        )
    for (i, classification), ents in zip(classified, entity_lists, strict=True):
        if not isinstance(ents, list):
            outcomes[i] = Failed("ner", ents)
            continue
        outcomes[i] = (classification, ents)
    return InferredBatch(outcomes, classify_s, ner_s, tagged)


#: One text of a group: (group, position in the group, text).
Slot = tuple[int, int, str]


@dataclass(frozen=True)
class InferredGroups:
    """The outcomes of each group's texts, in order, and the model time of the whole batch."""

    outcomes: list[list[Outcome]]
    classify_s: float = 0.0
    ner_s: float = 0.0


def infer_groups(
    groups: Sequence[tuple[ModelSet, Sequence[str]]], *, ner_pool: Executor | None = None
) -> InferredGroups:
    """`infer_batch` for several pipelines' texts at once: each distinct model runs once, on
    the texts of every group that uses it (pipelines sharing a model share its batch).

    One group is `infer_batch` itself (NER beside the classifier with `ner_pool`). Never
    raises: a call that raises is narrowed to the texts that cause it.
    """
    if len(groups) == 1:
        models, texts = groups[0]
        one = infer_batch(models, texts, ner_pool=ner_pool)
        return InferredGroups([one.outcomes], one.classify_s, one.ner_s)
    outcomes: list[list[Outcome | None]] = [[None] * len(texts) for _, texts in groups]

    # First pass: each joint model or classifier once over all its texts.
    first: dict[int, tuple[Callable[[Sequence[object]], Sequence[Any]], Role, list[Slot]]] = {}
    for g, (models, texts) in enumerate(groups):
        model: object = models.joint if models.joint is not None else models.classifier
        fn: Callable[[Sequence[object]], Sequence[Any]]
        role: Role
        if models.joint is not None:
            fn, role = models.joint.classify_and_tag, "classify-and-tag"
        else:
            fn, role = models.classifier.classify, "classifier"
        entry = first.setdefault(id(model), (fn, role, []))
        entry[2].extend((g, i, text) for i, text in enumerate(texts))
    classify_s = 0.0
    to_tag: dict[int, tuple[EntityTagger, list[tuple[Slot, Classification]]]] = {}
    for fn, role, slots in first.values():
        results, seconds = call_isolating_failures(fn, [text for _, _, text in slots])
        classify_s += seconds
        for (g, i, text), result in zip(slots, results, strict=True):
            models = groups[g][0]
            if isinstance(result, tuple):
                outcomes[g][i] = result
            elif not isinstance(result, Classification):
                outcomes[g][i] = Failed(role, cast(ItemFailure, result))
            elif models.ner is None:
                outcomes[g][i] = (result, [])
            else:
                to_tag.setdefault(id(models.ner), (models.ner, []))[1].append(
                    ((g, i, text), result)
                )

    # Second pass: each NER model once over the texts its groups classified.
    ner_s = 0.0
    for ner, items in to_tag.values():
        entity_lists, seconds = call_isolating_failures(
            ner.entities, [text for (_, _, text), _ in items]
        )
        ner_s += seconds
        for ((g, i, _), classification), ents in zip(items, entity_lists, strict=True):
            outcomes[g][i] = (
                (classification, ents) if isinstance(ents, list) else Failed("ner", ents)
            )
    done = [[o for o in group if o is not None] for group in outcomes]
    return InferredGroups(done, classify_s, ner_s)
