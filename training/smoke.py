"""MiniLM artifacts with untrained heads, exported to ONNX: right for speed, not accuracy; the
benchmarks' smoke runs use them where a tiny model would not show real costs."""

from __future__ import annotations

from pathlib import Path


def build_smoke_artifacts(out: Path) -> tuple[Path, Path, Path]:
    """MiniLM classifier, NER and classify-and-tag artifacts with UNTRAINED heads: right for
    speed, not accuracy."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    from schemas import ModelManifest, TaskKind
    from training.artifact import save_artifact
    from training.export import GateSettings, export_artifact
    from training.models import offline_minilm_dir

    base = offline_minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    classes = ["World", "Sports", "Business", "Sci/Tech"]
    tags = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    made = []
    for name, auto, task, labels in [
        ("classifier", AutoModelForSequenceClassification, TaskKind.CLASSIFICATION, classes),
        ("ner", AutoModelForTokenClassification, TaskKind.TOKEN_CLASSIFICATION, tags),
        ("multitask", AutoModelForTokenClassification, TaskKind.CLASSIFY_AND_TAG, tags + classes),
    ]:
        target = out / name
        if not (target / "model.int8.onnx").is_file():
            model = auto.from_pretrained(
                base,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)},
            )
            manifest = ModelManifest(
                name=f"smoke-{name}",
                version="smoke",
                task=task,
                labels=labels,
                class_labels=classes if task is TaskKind.CLASSIFY_AND_TAG else None,
                base_model=str(base),
                max_length=128,
                text_columns=["description"],
            )
            save_artifact(target, model, tokenizer, manifest)
            export_artifact(target, gates=GateSettings(enabled=False))
        made.append(target)
    return made[0], made[1], made[2]
