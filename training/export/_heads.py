"""What the parity gates measure: a model's whole output, or each task of a classify-and-tag
head."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from schemas import ModelManifest, TaskKind
from training.export.errors import ExportError
from training.export.sample import EvalSample, default_eval_sample, default_head_samples

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Head:
    """One task's view of the exported model: the manifest it reads as, its gate rows, and the
    part of the outputs that holds its predictions."""

    name: str
    manifest: ModelManifest
    sample: EvalSample
    select: Callable[[Outputs], Outputs]


def _whole(outputs: Outputs) -> Outputs:
    return outputs


def heads(
    manifest: ModelManifest, eval_data: EvalSample | None, tag_data: EvalSample | None
) -> list[Head]:
    """The whole output of a single-task artifact (head name ''); for classify-and-tag, its
    classes (logits of the class columns at [CLS]) and its tags (tag columns per token), each
    gated on its own data as a classifier and a tagger of those labels are."""
    if manifest.task is not TaskKind.CLASSIFY_AND_TAG:
        if tag_data is not None:
            raise ExportError(
                f"NER gate data (--tag-data) is for classify-and-tag artifacts; {manifest.name} "
                f"is a {manifest.task.value} model: pass its gate data as --data"
            )
        return [Head("", manifest, eval_data or default_eval_sample(manifest), _whole)]
    if eval_data is None or tag_data is None:
        default_texts, default_sentences = default_head_samples(manifest)
        eval_data = default_texts if eval_data is None else eval_data
        tag_data = default_sentences if tag_data is None else tag_data
    n = len(manifest.tag_labels)
    as_classifier, as_tagger = manifest.class_half(), manifest.tag_half()

    def classes(outputs: Outputs) -> Outputs:
        return {"logits": outputs["logits"][:, 0, n:]}

    def tags(outputs: Outputs) -> Outputs:
        return {"logits": outputs["logits"][..., :n]}

    return [
        Head("classification", as_classifier, eval_data, classes),
        Head("ner", as_tagger, tag_data, tags),
    ]
