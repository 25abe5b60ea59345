"""Inference settings, read from TEXTROUTE_INFERENCE_* environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BackendChoice = Literal["auto", "onnx", "torch"]
Precision = Literal["int8", "fp32", "fp16", "bf16"]
#: How a text longer than max_length is read (see InferenceSettings.long_text).
LongText = Literal["truncate", "head_tail", "chunks"]


class InferenceSettings(BaseSettings):
    """How a predictor runs: backend, precision, threads, batching and input limits."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_INFERENCE_", extra="ignore")

    backend: BackendChoice = Field(
        default="auto", description="auto: PyTorch when CUDA is available, else ONNX Runtime."
    )
    precision: Precision = Field(
        default="int8",
        description="onnx: int8 or fp32; torch: fp32, fp16 or bf16 (int8 -> best fit).",
    )
    threads: int = Field(
        default=0, ge=0, description="Intra-op threads; 0 lets the runtime use all cores."
    )
    concurrency: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime on CPU: length buckets of one call run side by side, on "
        "this many threads sharing the graph's one session, each run with threads/concurrency "
        "intra-op threads (0 = one per core). Small buckets keep two cores busier side by side "
        "than split across both (measured 1.8x at batch 8, 1.05x at batch 32); 1 runs one "
        "bucket at a time with every thread.",
    )
    spin: bool = Field(
        default=False,
        description="ONNX Runtime: let idle intra-op threads spin between runs. On suits a "
        "process doing nothing but one model's inference; off (default) gives the cores back "
        "to the worker's event loop and Kafka client (measured faster for the worker).",
    )
    max_chars: int = Field(default=20_000, gt=0, description="Longer texts get text_too_long.")
    max_batch: int = Field(default=32, gt=0, description="Most sequences per backend call.")
    max_batch_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Most padded tokens (sequences x the longest) per backend call, unset for "
        "no bound: a batch of long texts then runs in several calls of a bounded working set.",
    )
    bucket_pad_ratio: float | None = Field(
        default=None,
        ge=1.0,
        description="A backend call holds texts at most this many times its shortest one's "
        "length. Unset: 1.1 on CPU, no bound on a GPU (where one call for the whole batch "
        "costs less than padding it).",
    )
    top_k: int = Field(default=3, ge=1, description="Labels listed in Classification.top_k.")
    long_text: LongText = Field(
        default="truncate",
        description="How a text longer than max_length is read. truncate: its first "
        "max_length tokens. head_tail: one window of its first quarter and last three "
        "quarters (128 + 382 tokens of 510; Sun et al. 2019), offsets still indexing the whole "
        "text; entities in the cut middle are not found. chunks: every max_length window "
        "(chunk_stride tokens shared), class probabilities mean-pooled, entities tagged in "
        "every window; costs one backend row per window. A pipelines file can set it per "
        "pipeline (`long_text:`).",
    )
    chunk_stride: int = Field(
        default=32, ge=0, description="Tokens shared by neighbouring classification chunks."
    )
    max_answer_tokens: int = Field(
        default=30, gt=0, description="Longest answer span, in tokens (question answering)."
    )
