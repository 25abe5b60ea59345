"""ModelSet and infer_batch: joint or separate is fixed when a set is made, and one function
infers every batch, for the worker and the API alike."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from inference import ItemError, load_predictor
from schemas.entities import Classification, Entity
from stream.errors import ModelSlotError
from stream.model_set import Failed, ModelSet, infer_batch
from stream.models import ModelDirs, ReloadingModels

TEXTS = ["alpha", "bad-class", "bad-tags", "omega"]


def _classification(text: str) -> Classification:
    return Classification(label=text, score=1.0, top_k=[])


def _entities(text: str) -> list[Entity]:
    return [Entity(type="ORG", text=text, start=0, end=len(text), score=1.0)]


class _FakeModel:
    """A classify-and-tag model without a backend: texts starting with "bad-class" or
    "bad-tags" get an ItemError from that half, texts containing "crash" crash the call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def _record(self, method: str, texts: Sequence[object]) -> list[str]:
        self.calls.append((method, [str(t) for t in texts]))
        if any("crash" in str(t) for t in texts):
            raise RuntimeError("kernel exploded")
        return [str(t) for t in texts]

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        return [
            ItemError(index=i, reason="inference_error", message="no class")
            if t.startswith("bad-class")
            else _classification(t)
            for i, t in enumerate(self._record("classify", texts))
        ]

    def entities(self, texts: Sequence[object]) -> list[list[Entity] | ItemError]:
        return [
            ItemError(index=i, reason="inference_error", message="no tags")
            if t.startswith("bad-tags")
            else _entities(t)
            for i, t in enumerate(self._record("entities", texts))
        ]

    def classify_and_tag(
        self, texts: Sequence[object]
    ) -> list[tuple[Classification, list[Entity]] | ItemError]:
        return [
            ItemError(index=i, reason="text_too_long", message="too long")
            if t.startswith("bad")
            else (_classification(t), _entities(t))
            for i, t in enumerate(self._record("classify_and_tag", texts))
        ]


def _roles(outcomes: Sequence[object]) -> list[str]:
    return [o.role if isinstance(o, Failed) else "ok" for o in outcomes]


def test_a_joint_set_calls_its_model_once_for_both_roles() -> None:
    model = _FakeModel()

    inferred = infer_batch(ModelSet.joint_model(model), TEXTS)

    assert model.calls == [("classify_and_tag", TEXTS)]
    assert _roles(inferred.outcomes) == ["ok", "classify-and-tag", "classify-and-tag", "ok"]
    assert inferred.outcomes[0] == (_classification("alpha"), _entities("alpha"))
    assert (inferred.ner_s, inferred.tagged) == (0.0, 0)


def test_a_separate_set_calls_each_role_even_when_one_object_fills_both() -> None:
    model = _FakeModel()
    models = ModelSet.separate(model, model)

    inferred = infer_batch(models, TEXTS)

    assert models.joint is None
    assert [method for method, _ in model.calls] == ["classify", "entities"]
    assert _roles(inferred.outcomes) == ["ok", "classifier", "ner", "ok"]


def test_tags_are_asked_only_for_classified_texts_unless_they_run_beside_the_classifier() -> None:
    after, beside = _FakeModel(), _FakeModel()

    in_turn = infer_batch(ModelSet.separate(after, after), TEXTS)
    with ThreadPoolExecutor(1) as pool:
        side_by_side = infer_batch(ModelSet.separate(beside, beside), TEXTS, ner_pool=pool)

    assert after.calls[1] == ("entities", ["alpha", "bad-tags", "omega"])
    assert in_turn.tagged == 3
    assert ("entities", TEXTS) in beside.calls and side_by_side.tagged == len(TEXTS)
    assert (
        _roles(side_by_side.outcomes)
        == _roles(in_turn.outcomes)
        == ["ok", "classifier", "ner", "ok"]
    )
    assert side_by_side.outcomes[3] == in_turn.outcomes[3]


def test_a_set_without_ner_gives_every_classified_text_no_entities() -> None:
    inferred = infer_batch(ModelSet.separate(_FakeModel()), TEXTS)

    assert inferred.outcomes[3] == (_classification("omega"), [])
    assert _roles(inferred.outcomes) == ["ok", "classifier", "ok", "ok"]
    assert inferred.tagged == 0


def test_a_crash_of_the_joint_call_fails_only_the_text_that_causes_it() -> None:
    model = _FakeModel()

    inferred = infer_batch(ModelSet.joint_model(model), ["alpha", "crash", "omega"])

    assert _roles(inferred.outcomes) == ["ok", "classify-and-tag", "ok"]
    failed = inferred.outcomes[1]
    assert isinstance(failed, Failed)
    assert failed.failure.reason == "inference_error"
    assert failed.failure.message == "RuntimeError: kernel exploded"
    assert len(model.calls) == 1 + 3, "one batch call, then one call per text"


def test_one_directory_named_by_two_paths_is_one_shared_artifact(tmp_path: Path) -> None:
    art, other = tmp_path / "art", tmp_path / "other"

    shared = ModelDirs.of(art, tmp_path / "." / "art")
    separate = ModelDirs.of(art, other)

    assert shared.shared and not shared.two_models
    assert not separate.shared and separate.two_models
    assert not ModelDirs.of(art, None).two_models


class _ClassifierOnly:
    """A loaded classify-and-tag model behind a wrapper that offers its classifier half only."""

    def __init__(self, inner: Any) -> None:
        self.manifest = inner.manifest
        self.backend_name = inner.backend_name
        self.classify = inner.classify


def test_a_shared_directory_refuses_a_model_that_cannot_classify_and_tag(
    tiny_multitask_artifact: Path,
) -> None:
    def loader(path: Path) -> Any:
        return _ClassifierOnly(load_predictor(path))

    with pytest.raises(ModelSlotError, match="needs a model with classify_and_tag"):
        ReloadingModels(tiny_multitask_artifact, tiny_multitask_artifact, loader)


def test_infer_groups_runs_each_distinct_model_once_over_every_group_that_uses_it() -> None:
    from stream.model_set import infer_groups

    shared, ner_a, ner_b, joint = _FakeModel(), _FakeModel(), _FakeModel(), _FakeModel()
    groups = [
        (ModelSet.separate(shared, ner_a), ["a1", "bad-class a2"]),
        (ModelSet.separate(shared, ner_b), ["b1", "bad-tags b2"]),
        (ModelSet.separate(shared), ["c1"]),
        (ModelSet.joint_model(joint), ["j1", "bad j2"]),
    ]
    inferred = infer_groups(groups)

    assert shared.calls == [("classify", ["a1", "bad-class a2", "b1", "bad-tags b2", "c1"])]
    assert ner_a.calls == [("entities", ["a1"])], "only the texts its group classified"
    assert ner_b.calls == [("entities", ["b1", "bad-tags b2"])]
    assert joint.calls == [("classify_and_tag", ["j1", "bad j2"])]
    assert [_roles(o) for o in inferred.outcomes] == [
        ["ok", "classifier"],
        ["ok", "ner"],
        ["ok"],
        ["ok", "classify-and-tag"],
    ]
    assert inferred.outcomes[2] == [(_classification("c1"), [])]
    assert inferred.outcomes[1][0] == (_classification("b1"), _entities("b1"))


def test_infer_groups_narrows_a_crash_to_the_text_that_causes_it_across_groups() -> None:
    from stream.model_set import infer_groups

    shared = _FakeModel()
    inferred = infer_groups(
        [(ModelSet.separate(shared), ["x1", "crash"]), (ModelSet.separate(shared), ["y1"])]
    )
    assert [_roles(o) for o in inferred.outcomes] == [["ok", "classifier"], ["ok"]]
