"""One encoder pass per text for a classify-and-tag artifact: its class and its entities."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference._encoding import MAX_PAD_RATIO, Encoded, Row, TextEncoder
from inference._runner import BatchRunner, Outputs, _failure, _refused, classifications, softmax
from inference._spans import entity_spans
from inference.backend import Backend
from inference.errors import ArtifactUnusableError
from inference.items import ItemError
from inference.lexical import WeightedExpert
from inference.settings import InferenceSettings
from schemas import Classification, Entity, ModelManifest

ClassAndEntities = tuple[Classification, list[Entity]]


class MultiTaskPredictor(BatchRunner):
    """The predictor of a classify-and-tag artifact (one head: BIO tags, then classes).

    `classify_and_tag` runs the backend once per text (per window of a long text) and reads
    the class from [CLS] over the class columns and the tags from the words over the tag
    columns, each softmax over its own columns as in training. `classify` and `entities` are
    its two halves, so the artifact also serves where a classifier or a tagger is expected.
    It has no other task methods (pairs, answers): a `Predictor` serves those.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        backend: Backend,
        encoder: TextEncoder,
        settings: InferenceSettings,
        *,
        concurrency: int = 1,
        lexical: WeightedExpert | None = None,
        pad_ratio: float | None = MAX_PAD_RATIO,
    ) -> None:
        if not manifest.class_labels:
            raise ArtifactUnusableError(
                f"model {manifest.name} is {manifest.task.value} but its manifest names no "
                "class_labels, so its classes cannot be told from its tags; re-train it with "
                "`textroute train multitask`"
            )
        super().__init__(
            manifest,
            backend,
            encoder,
            settings,
            concurrency=concurrency,
            lexical=lexical,
            pad_ratio=pad_ratio,
        )
        self.class_labels = list(manifest.class_labels)
        self.tag_labels = manifest.tag_labels

    def classify_and_tag(self, texts: Sequence[object]) -> list[ClassAndEntities | ItemError]:
        """Per text, in order: (Classification, entities as spans of the original text) from
        one pass of the encoder, or an ItemError that costs no other text its result.

        With long_text=chunks a long text is read in windows: every window is tagged and the
        class is the mean of the windows' [CLS] class probabilities; with head_tail, in one
        window of its head and tail (no entity of the middle is found); with truncate, its
        first max_length tokens.
        """
        good, errors = self._check_texts(texts)
        encoded = self._encode(good)
        errors.update(_refused(encoded))
        windows = _by_item(encoded, self._run(encoded.rows, ["logits"], per_token=True), errors)
        n = len(self.tag_labels)
        classes = {
            i: softmax(logits[0][0, n:])
            if len(logits) == 1
            else np.mean([softmax(window[0, n:]) for window in logits], axis=0)
            for i, (_, logits) in windows.items()
            if i not in errors
        }
        classes = self._with_lexical(classes, dict(good))
        built = classifications(classes, self.class_labels, self.settings.top_k)
        results: list[ClassAndEntities | ItemError] = []
        for i, text in enumerate(texts):
            if i in errors:
                results.append(errors[i])
                continue
            rows, logits = windows[i]
            assert isinstance(text, str)  # _check_texts refused every non-string
            tags = [softmax(window[:, :n]) for window in logits]
            entities = entity_spans(text, rows, tags, self.tag_labels)
            results.append((built[i], entities))
        return results

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        """The class half of `classify_and_tag` (the encoder pass is the same)."""
        return [r[0] if isinstance(r, tuple) else r for r in self.classify_and_tag(texts)]

    def entities(self, texts: Sequence[object]) -> list[list[Entity] | ItemError]:
        """The entity half of `classify_and_tag` (the encoder pass is the same)."""
        return [r[1] if isinstance(r, tuple) else r for r in self.classify_and_tag(texts)]


def _by_item(
    encoded: Encoded, outputs: Sequence[Outputs | Exception], errors: dict[int, ItemError]
) -> dict[int, tuple[list[Row], list[np.ndarray]]]:
    """Each item's windows and their logits; an item with a failed window goes to `errors`."""
    found: dict[int, tuple[list[Row], list[np.ndarray]]] = {}
    for row, out in zip(encoded.rows, outputs, strict=True):
        if isinstance(out, Exception):
            errors.setdefault(row.item, _failure(row.item, out))
        else:
            rows, logits = found.setdefault(row.item, ([], []))
            rows.append(row)
            logits.append(np.asarray(out["logits"]))
    return found
