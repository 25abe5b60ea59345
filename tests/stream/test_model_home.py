"""The model home: install, atomic activation, rollback by history, and failures that change
nothing. Artifacts here are small checksummed directories, no model in them."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.artifact import read_manifest, with_files, write_manifest
from schemas.errors import ChecksumMismatch
from schemas.manifest import FileRole, ModelManifest, TaskKind
from stream.model_home import (
    PROMOTE,
    ROLLBACK,
    HistoryEntry,
    ModelHome,
    ModelHomeError,
    NothingToRollBackError,
    rollback_stack,
)

LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def fake_artifact(
    root: Path, version: str, *, weights: bytes = b"w", accuracy: float = 0.9
) -> Path:
    """A checksummed artifact directory of `version` (a weights file and a report)."""
    root.mkdir(parents=True)
    (root / "model.int8.onnx").write_bytes(weights)
    (root / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    (root / "eval").mkdir()
    (root / "eval" / "errors.csv").write_text("text,label\n", encoding="utf-8")
    manifest = ModelManifest(
        name="topics",
        version=version,
        task=TaskKind.CLASSIFICATION,
        labels=LABELS,
        base_model="tiny",
        max_length=32,
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=len(version)),
        metrics={"test": {"accuracy": accuracy}},
    )
    manifest = with_files(
        manifest,
        root,
        {
            root / "model.int8.onnx": FileRole.ONNX_INT8,
            root / "labels.json": FileRole.LABELS,
            root / "eval" / "errors.csv": FileRole.OTHER,
        },
    )
    write_manifest(manifest, root)
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root`: file contents' sizes, link targets, directories."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + str(path.readlink())
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes().hex()
    return out


@pytest.fixture
def home(tmp_path: Path) -> ModelHome:
    return ModelHome(tmp_path / "home")


def test_a_first_promotion_installs_and_activates_through_a_relative_link(
    home: ModelHome, tmp_path: Path
) -> None:
    candidate = fake_artifact(tmp_path / "a", "v1")
    entry = home.promote(candidate, expected_active=None, gates=[{"gate": "parity"}])

    assert (entry.action, entry.from_version, entry.to_version) == (PROMOTE, None, "v1")
    link = home.root / "current"
    assert link.is_symlink() and str(link.readlink()) == "versions/v1"
    assert read_manifest(link).version == "v1", "the installed copy verifies through the link"
    assert (home.root / "versions" / "v1" / "eval" / "errors.csv").is_file()
    assert home.active_version() == "v1"
    [line] = home.history_path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["action"] == "promote" and record["from_version"] is None
    assert record["to_version"] == "v1" and record["gates"] == [{"gate": "parity"}]
    assert datetime.fromisoformat(record["time"]).tzinfo is not None
    # The home still works when moved: the link is relative.
    moved = tmp_path / "moved"
    home.root.rename(moved)
    assert ModelHome(moved).active_manifest() is not None


def test_install_verifies_the_candidate_and_accepts_an_identical_version_again(
    home: ModelHome, tmp_path: Path
) -> None:
    candidate = fake_artifact(tmp_path / "a", "v1")
    assert home.install(candidate) == ("v1", True)
    assert home.install(candidate) == ("v1", False), "identical: nothing to copy"

    other = fake_artifact(tmp_path / "b", "v1", weights=b"other")
    with pytest.raises(ModelHomeError, match=r"already installed .* with other files"):
        home.install(other)

    corrupt = fake_artifact(tmp_path / "c", "v2")
    (corrupt / "model.int8.onnx").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatch):
        home.install(corrupt)
    assert sorted(p.name for p in home.versions_dir.iterdir()) == ["v1"], "no half copy left"


def test_hidden_entries_of_the_candidate_are_not_installed(home: ModelHome, tmp_path: Path) -> None:
    candidate = fake_artifact(tmp_path / "a", "v1")
    (candidate / ".export-abc").mkdir()
    (candidate / ".export-abc" / "raw.onnx").write_bytes(b"x")
    home.install(candidate)
    assert not (home.versions_dir / "v1" / ".export-abc").exists()


def test_promote_then_rollback_walks_back_through_the_history(
    home: ModelHome, tmp_path: Path
) -> None:
    for i in (1, 2, 3):
        home.promote(
            fake_artifact(tmp_path / f"a{i}", f"v{i}"), expected_active=home.active_version()
        )
    assert home.active_version() == "v3"

    entry = home.rollback()
    assert (entry.action, entry.from_version, entry.to_version) == (ROLLBACK, "v3", "v2")
    assert home.active_version() == "v2"
    assert home.rollback().to_version == "v1"
    with pytest.raises(NothingToRollBackError, match="nothing to roll back to"):
        home.rollback()
    assert home.active_version() == "v1"
    actions = [e.action for e in home.history()]
    assert actions == [PROMOTE, PROMOTE, PROMOTE, ROLLBACK, ROLLBACK]
    # Every version stays installed: a rollback needs no copy.
    assert [v.version for v in home.versions()] == ["v1", "v2", "v3"]
    assert [v.active for v in home.versions()] == [True, False, False]


def test_a_promotion_after_a_rollback_is_undone_by_the_next_rollback(
    home: ModelHome, tmp_path: Path
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active="v1")
    home.rollback()
    home.promote(fake_artifact(tmp_path / "a3", "v3"), expected_active="v1")
    assert home.rollback().to_version == "v1"


def test_an_installed_older_version_can_be_promoted_again_without_a_copy(
    home: ModelHome, tmp_path: Path
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active="v1")
    entry = home.promote(home.versions_dir / "v1", expected_active="v2")
    assert (entry.from_version, entry.to_version) == ("v2", "v1")
    assert home.active_version() == "v1"
    assert home.rollback().to_version == "v2"
    with pytest.raises(ModelHomeError, match="already active"):
        home.promote(home.current_link, expected_active="v2")


def test_rollback_of_an_empty_or_single_version_home_is_a_clear_error(
    home: ModelHome, tmp_path: Path
) -> None:
    with pytest.raises(NothingToRollBackError, match="does not exist"):
        home.rollback()
    assert not home.root.exists()
    home.root.mkdir()
    with pytest.raises(NothingToRollBackError, match="no active model"):
        home.rollback()
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    before = snapshot(home.root)
    with pytest.raises(NothingToRollBackError, match=r"no version was active .* before v1"):
        home.rollback()
    assert snapshot(home.root) == before


def test_rollback_refuses_when_the_history_disagrees_with_current(
    home: ModelHome, tmp_path: Path
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active="v1")
    home.activate("v1")  # by hand, no history entry
    with pytest.raises(ModelHomeError, match=r"says v2 is active, but .* points at v1"):
        home.rollback()
    assert home.active_version() == "v1"


def test_the_stack_replays_a_home_whose_first_version_was_linked_by_hand() -> None:
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    entries = [HistoryEntry(t, PROMOTE, "v0", "v1"), HistoryEntry(t, PROMOTE, "v1", "v2")]
    assert rollback_stack(entries) == ["v0", "v1", "v2"]
    assert rollback_stack([*entries, HistoryEntry(t, ROLLBACK, "v2", "v1")]) == ["v0", "v1"]


def test_a_promotion_changes_nothing_when_current_moved_while_the_gates_ran(
    home: ModelHome, tmp_path: Path
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    before = snapshot(home.root)
    with pytest.raises(ModelHomeError, match="changed from None to v1"):
        home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active=None)
    assert snapshot(home.root) == before


def test_a_corrupt_installed_version_is_never_activated(home: ModelHome, tmp_path: Path) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    home.install(fake_artifact(tmp_path / "a2", "v2"))
    (home.versions_dir / "v2" / "model.int8.onnx").write_bytes(b"bit rot")
    before = snapshot(home.root)
    with pytest.raises(ChecksumMismatch):
        home.activate("v2")
    assert snapshot(home.root) == before
    assert not [p for p in home.root.iterdir() if p.name.startswith(".current")]


def test_a_failed_swap_leaves_current_and_history_unchanged(
    home: ModelHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    candidate = fake_artifact(tmp_path / "a2", "v2")
    before = snapshot(home.root)

    def refuse(self: Path, target: Path) -> Path:
        raise OSError("disk gone")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(OSError, match="disk gone"):
        home.promote(candidate, expected_active="v1")
    monkeypatch.undo()
    after = snapshot(home.root)
    assert after["current"] == before["current"] == "-> versions/v1"
    assert after["history.jsonl"] == before["history.jsonl"]
    assert not [p for p in home.root.iterdir() if p.name.startswith(".current")]


def test_the_swap_is_atomic_a_reader_always_finds_a_complete_version(
    home: ModelHome, tmp_path: Path
) -> None:
    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    home.install(fake_artifact(tmp_path / "a2", "v2", weights=b"w2"))
    stop = threading.Event()
    seen: list[str] = []
    problems: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                # As a worker loads: resolve once, then read only from the resolved directory.
                seen.append(read_manifest(home.current_link.resolve(), verify=True).version)
            except BaseException as exc:  # a missing link or a mix of versions
                problems.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            home.activate("v2" if i % 2 == 0 else "v1")
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert set(seen) <= {"v1", "v2"} and seen


def test_current_as_a_real_directory_is_refused(home: ModelHome, tmp_path: Path) -> None:
    (home.root / "current").mkdir(parents=True)
    with pytest.raises(ModelHomeError, match="is a directory, not a symlink"):
        home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    assert not (home.versions_dir / "v1").exists()


def test_a_version_that_names_no_plain_directory_is_refused(
    home: ModelHome, tmp_path: Path
) -> None:
    with pytest.raises(ModelHomeError, match="cannot name a directory"):
        home.install(fake_artifact(tmp_path / "a", "../../x"))


def test_the_cli_lists_versions_and_rolls_back(home: ModelHome, tmp_path: Path) -> None:
    import typer

    from stream.commands import register

    app = typer.Typer()
    register(app)
    home.promote(fake_artifact(tmp_path / "a1", "v1", accuracy=0.8), expected_active=None)
    home.promote(fake_artifact(tmp_path / "a2", "v2", accuracy=0.85), expected_active="v1")
    runner = CliRunner()

    listed = runner.invoke(app, ["models", "--home", str(home.root)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = {
        line.split()[1] if line.startswith(" *") else line.split()[0]: line
        for line in listed.output.splitlines()
        if "topics" in line
    }
    assert rows["v2"].lstrip().startswith("*") and "accuracy 85.00" in rows["v2"]
    assert not rows["v1"].lstrip().startswith("*") and "accuracy 80.00" in rows["v1"]

    rolled = runner.invoke(app, ["rollback", "--home", str(home.root)])
    assert rolled.exit_code == 0, rolled.output
    assert "from v2 to v1" in rolled.output
    assert home.active_version() == "v1"

    again = runner.invoke(app, ["rollback", "--home", str(home.root)])
    assert isinstance(again.exception, NothingToRollBackError)


class _Loaded:
    """What a fake loader returns: the manifest of the directory it was given."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = read_manifest(path, verify=False)


def test_reloading_models_load_from_the_resolved_version_directory(
    home: ModelHome, tmp_path: Path
) -> None:
    from stream.models import ReloadingModels

    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    loads: list[Path] = []

    def load(path: Path) -> _Loaded:
        loads.append(path)
        return _Loaded(path)

    models = ReloadingModels(home.current_link, None, load)
    assert loads == [(home.versions_dir / "v1").resolve()], "never the link itself"
    assert models.check_for_update() == []

    home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active="v1")
    assert models.check_for_update() == ["classifier"], "the version is read through the link"
    assert loads[-1] == (home.versions_dir / "v2").resolve()
    assert models.versions() == {"classifier": "v2"}
    home.rollback()
    assert models.check_for_update() == ["classifier"]
    assert models.versions() == {"classifier": "v1"}


def test_the_shared_loader_keeps_a_version_only_while_a_pipeline_holds_it(
    home: ModelHome, tmp_path: Path
) -> None:
    import gc

    from stream.pipelines import SharedLoader

    home.promote(fake_artifact(tmp_path / "a1", "v1"), expected_active=None)
    loads: list[Path] = []

    def load(path: Path) -> _Loaded:
        loads.append(path)
        return _Loaded(path)

    shared = SharedLoader(load)
    first = shared(home.current_link)
    assert shared(home.root / "." / "current") is first and len(loads) == 1
    assert first.path == (home.versions_dir / "v1").resolve()

    home.promote(fake_artifact(tmp_path / "a2", "v2"), expected_active="v1")
    second = shared(home.current_link)
    assert second.manifest.version == "v2" and shared(home.current_link) is second
    del first
    gc.collect()
    home.rollback()
    again = shared(home.current_link)
    assert again.manifest.version == "v1"
    assert len(loads) == 3, "v1 was dropped once nothing held it, and loaded anew"
