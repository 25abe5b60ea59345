"""The model-artifact manifest: what a trained model directory holds and how to trust it."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

#: How a sequence classifier reads one vector per text from the encoder: [CLS] (the stock
#: Hugging Face head) or the mean over the tokens (inference.pooling).
Pooling = Literal["cls", "mean"]


def _inside_artifact(path: str) -> str:
    # Loaders open root / path: an absolute path, a drive or a '..' would let a manifest point
    # them (and the checksum check) at any file on the machine.
    posix = PurePosixPath(path)
    if (
        not path.strip()
        or "\x00" in path
        or "\\" in path
        or posix.is_absolute()
        or PureWindowsPath(path).anchor
        or ".." in posix.parts
    ):
        raise ValueError(
            f"file path {path!r} must be relative to the artifact directory and stay inside it: "
            "no absolute path, drive, backslash or '..'"
        )
    return path


#: A file's path relative to the artifact directory, POSIX separators, never leaving it.
ArtifactPath = Annotated[str, AfterValidator(_inside_artifact)]


class TaskKind(str, Enum):
    """The BERT fine-tuning tasks textroute trains and serves."""

    CLASSIFICATION = "classification"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"
    PAIR_CLASSIFICATION = "pair-classification"
    #: One encoder, one per-token head over BIO tags followed by classes: the class is read at
    #: [CLS], the tags at the words (see ModelManifest.class_labels).
    CLASSIFY_AND_TAG = "classify-and-tag"
    #: Independent labels (sigmoid per label); a text gets every label whose score reaches
    #: that label's threshold (ModelManifest.thresholds).
    MULTI_LABEL = "multi-label-classification"


class FileRole(str, Enum):
    """What a file in the artifact is for, so loaders pick files by role, not by name."""

    WEIGHTS = "weights"
    CONFIG = "config"
    TOKENIZER = "tokenizer"
    LABELS = "labels"
    TRAINING_CONFIG = "training-config"
    METRICS = "metrics"
    ONNX_FP32 = "onnx-fp32"
    ONNX_INT8 = "onnx-int8"
    #: A TF-IDF + logistic-regression expert fused with a classifier (see LexicalFusion).
    LEXICAL = "lexical"
    REPORT = "report"
    OTHER = "other"


class FileEntry(BaseModel):
    """One file of the artifact, with the checksum the loader verifies."""

    model_config = ConfigDict(frozen=True)

    path: ArtifactPath = Field(
        description="Path relative to the artifact directory, POSIX separators, inside it."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0, description="Size in bytes.")
    role: FileRole = FileRole.OTHER


class DataRef(BaseModel):
    """Where the training and evaluation data came from, so a run can be repeated."""

    source: str = Field(description="Hub dataset name or local path.")
    split: str | None = None
    rows: int | None = Field(default=None, ge=0)
    columns: list[str] = Field(default_factory=list)
    sha256: str | None = Field(default=None, description="Checksum of a local data file.")


class Lineage(BaseModel):
    """Where a model retrained from a deployed one (`textroute train classify --init-from`) came
    from: its parent, exactly, and the rows it continued on (new rows plus a replay sample of
    earlier training data, so the model does not forget). A student distilled from a teacher
    (`textroute train distill`, `kind` "distilled") names the teacher as its parent."""

    model_config = ConfigDict(frozen=True)

    parent_name: str = Field(description="The parent artifact's model name.")
    parent_version: str = Field(description="The parent artifact's version.")
    parent_manifest_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the parent's manifest.json bytes: it pins every parent file too.",
    )
    data: list[DataRef] = Field(
        default_factory=list,
        description="The new rows' data first (rows, sha256), then each replay source (the rows "
        "it holds, not the rows sampled).",
    )
    new_rows: int = Field(ge=0, description="Rows taken from the new data.")
    replay_rows: int = Field(
        ge=0, description="Rows sampled (seeded) from the replay sources; 0: no replay."
    )
    kind: Literal["continued", "distilled"] = Field(
        default="continued",
        description="continued: trained on from the parent's weights; distilled: a student "
        "with fewer encoder layers taught by the parent (its teacher).",
    )
    kept_layers: list[int] | None = Field(
        default=None,
        description="distilled: the teacher's encoder layers (0-based) the student started "
        "from, in order.",
    )


class LexicalFusion(BaseModel):
    """A lexical expert beside a classifier's classes: its log-probabilities, times `weight`,
    are added to the encoder's before the softmax (a product of experts). Word n-grams catch
    what a small encoder misses, and the two err on different texts."""

    model_config = ConfigDict(frozen=True)

    file: ArtifactPath = Field(description="The expert's arrays (role 'lexical'), relative path.")
    weight: float = Field(gt=0, description="Chosen on the validation split.")
    c: float = Field(gt=0, description="Inverse L2 strength, chosen by cross-validation.")
    features: int = Field(gt=0, description="Vocabulary size (word n-grams).")


class ModelManifest(BaseModel):
    """`manifest.json` of a model artifact: task, labels, provenance, metrics and file checksums."""

    model_config = ConfigDict(protected_namespaces=())

    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str = Field(description="Model name, used in routing events.")
    version: str = Field(
        description="Artifact version, e.g. a UTC timestamp; the stream reloads on change."
    )
    task: TaskKind
    labels: list[str] = Field(description="Index -> label name; BIO tags for token classification.")
    class_labels: list[str] | None = Field(
        default=None,
        description="classify-and-tag: the classes, which are the tail of `labels` (the BIO "
        "tags come first).",
    )
    pooling: Pooling = Field(
        default="cls",
        description="Sequence classifiers: 'cls' (a sequence-classification model) or 'mean' (a "
        "token-classification model whose per-token logits are averaged over the text).",
    )
    base_model: str = Field(description="Hub id or local dir the encoder was fine-tuned from.")
    max_length: int = Field(gt=0)
    text_columns: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    train_data: DataRef | None = None
    eval_data: DataRef | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters used.")
    files: list[FileEntry] = Field(default_factory=list)
    lexical: LexicalFusion | None = Field(
        default=None,
        description="Classifiers: a lexical expert fused with the encoder (`textroute train "
        "lexical`); None serves the encoder alone.",
    )

    thresholds: list[float] | None = Field(
        default=None,
        description="Multi-label models: the decision threshold of each label, in `labels` "
        "order, tuned on the validation split.",
    )
    lineage: Lineage | None = Field(
        default=None,
        description="A model continued from another artifact: its parent and the data it "
        "continued on; None for a model trained from its base model.",
    )

    @model_validator(mode="after")
    def _thresholds_match_labels(self) -> ModelManifest:
        if self.task is TaskKind.MULTI_LABEL:
            if self.thresholds is None or len(self.thresholds) != len(self.labels):
                raise ValueError(
                    "a multi-label manifest needs one threshold per label "
                    f"({len(self.labels)} labels, thresholds {self.thresholds})"
                )
            if any(not 0.0 < t < 1.0 for t in self.thresholds):
                raise ValueError(f"thresholds must lie strictly between 0 and 1: {self.thresholds}")
        elif self.thresholds is not None:
            raise ValueError(f"thresholds are for multi-label models, not {self.task.value}")
        return self

    @model_validator(mode="after")
    def _classes_are_the_tail(self) -> ModelManifest:
        classes = self.class_labels
        if classes is not None and (
            not classes
            or len(classes) >= len(self.labels)
            or self.labels[len(self.labels) - len(classes) :] != classes
        ):
            raise ValueError(
                f"class_labels {classes} must be the last entries of labels {self.labels}, "
                "after at least one tag"
            )
        return self

    @property
    def tag_labels(self) -> list[str]:
        """The per-token labels: all of `labels`, or those before `class_labels`."""
        if self.class_labels is None:
            return list(self.labels)
        return self.labels[: len(self.labels) - len(self.class_labels)]

    def class_half(self) -> ModelManifest:
        """A classify-and-tag manifest read as a sequence classifier of its classes."""
        return self._half(TaskKind.CLASSIFICATION, self.class_labels)

    def tag_half(self) -> ModelManifest:
        """A classify-and-tag manifest read as a tagger of its BIO tags."""
        return self._half(TaskKind.TOKEN_CLASSIFICATION, self.tag_labels)

    def _half(self, task: TaskKind, labels: list[str] | None) -> ModelManifest:
        return self.model_copy(update={"task": task, "labels": labels, "class_labels": None})

    def file_for(self, role: FileRole) -> FileEntry | None:
        """The first file with this role, or None."""
        return next((f for f in self.files if f.role == role), None)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}
