"""load_predictor refuses missing, corrupt or incomplete artifacts, saying what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inference import (
    InferenceSettings,
    ModelLoadFailedError,
    OnnxFileMissingError,
    TokenizerMissingError,
    load_predictor,
)
from schemas.errors import ArtifactError, ChecksumMismatch, ManifestMissing


def test_onnx_backend_on_an_unexported_artifact_says_to_run_export(
    tiny_classifier_trained: Path,
) -> None:
    with pytest.raises(OnnxFileMissingError, match="run `textroute export") as caught:
        load_predictor(tiny_classifier_trained, InferenceSettings(backend="onnx"))
    assert isinstance(caught.value, ArtifactError)


def test_torch_backend_loads_an_unexported_artifact(tiny_classifier_trained: Path) -> None:
    predictor = load_predictor(tiny_classifier_trained, InferenceSettings(backend="torch"))
    assert predictor.backend_name == "torch-cpu-fp32"


def test_a_modified_onnx_file_fails_checksum_verification(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_classifier_artifact, art)
    with (art / "model.int8.onnx").open("ab") as fh:
        fh.write(b"junk")
    with pytest.raises(ChecksumMismatch, match=r"model\.int8\.onnx is corrupt"):
        load_predictor(art)


def test_an_onnx_file_the_runtime_cannot_parse_is_a_load_error(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    from schemas import FileRole
    from schemas.artifact import read_manifest, with_files, write_manifest

    art = tmp_path / "art"
    shutil.copytree(tiny_classifier_artifact, art)
    (art / "model.int8.onnx").write_bytes(b"not a protobuf")
    # Re-record the checksum so the corruption gets past verification to the runtime.
    manifest = with_files(
        read_manifest(art, verify=False), art, {art / "model.int8.onnx": FileRole.ONNX_INT8}
    )
    write_manifest(manifest, art)
    with pytest.raises(ModelLoadFailedError, match="re-run `textroute export"):
        load_predictor(art)


def test_a_directory_without_manifest_is_not_an_artifact(tmp_path: Path) -> None:
    with pytest.raises(ManifestMissing):
        load_predictor(tmp_path)


def test_an_artifact_without_tokenizer_json_is_refused(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    from schemas.artifact import read_manifest, write_manifest

    art = tmp_path / "art"
    shutil.copytree(tiny_classifier_artifact, art)
    manifest = read_manifest(art)
    kept = [f for f in manifest.files if f.path != "tokenizer.json"]
    write_manifest(manifest.model_copy(update={"files": kept}), art)
    (art / "tokenizer.json").unlink()
    with pytest.raises(TokenizerMissingError, match=r"tokenizer\.json"):
        load_predictor(art)
