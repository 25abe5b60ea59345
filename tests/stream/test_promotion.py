"""`textroute promote`: the gates on the tiny exported classifier, scoring, exit codes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from inference import ItemError
from schemas import Classification, DataRef, LabelScore
from schemas.artifact import read_manifest, write_manifest
from stream.commands import register
from stream.model_home import ModelHome
from stream.promotion import (
    GATE_ARTIFACT,
    GATE_PARITY,
    GATE_REVIEWED,
    GATE_TEST,
    Figures,
    GateOptions,
    GateStatus,
    LabelledSet,
    PromotionInputError,
    compare,
    evaluate_gates,
    label_difference,
    read_labelled,
    score,
)
from training.tiny import TOPICS, topic_texts, write_topics_csv


def variant(source: Path, out: Path, **updates: Any) -> Path:
    """A copy of the artifact `source` with manifest fields replaced (e.g. a new version)."""
    shutil.copytree(source, out)
    manifest = read_manifest(out, verify=False)
    write_manifest(manifest.model_copy(update=updates), out)
    return out


def snapshot(root: Path) -> list[str]:
    if not root.exists():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        link = f" -> {path.readlink()}" if path.is_symlink() else ""
        out.append(f"{path.relative_to(root)}{link}")
    if (root / "history.jsonl").exists():
        out.append((root / "history.jsonl").read_text(encoding="utf-8"))
    return out


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _invoke(cli: typer.Typer, *args: str | Path) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    return write_topics_csv(tmp_path / "test.csv", 64, seed=9)


@pytest.fixture
def home_v1(tmp_path: Path, tiny_classifier_artifact: Path, cli: typer.Typer) -> ModelHome:
    """A home whose active version is the tiny classifier, v1."""
    v1 = variant(tiny_classifier_artifact, tmp_path / "cand-v1", version="v1")
    home = ModelHome(tmp_path / "home")
    result = _invoke(cli, "promote", v1, "--home", home.root)
    assert result.exit_code == 0, result.output
    return home


def test_a_first_promotion_reports_no_active_model_and_keeps_the_parity_gate(
    tmp_path: Path, tiny_classifier_artifact: Path, cli: typer.Typer, test_csv: Path
) -> None:
    home = ModelHome(tmp_path / "home")
    v1 = variant(tiny_classifier_artifact, tmp_path / "cand", version="v1")

    result = _invoke(cli, "promote", v1, "--home", home.root, "--test", test_csv)

    assert result.exit_code == 0, result.output
    assert home.active_version() == "v1"
    [entry] = home.history()
    gates = {g["gate"]: g for g in entry.gates}
    assert gates[GATE_ARTIFACT]["status"] == "pass"
    assert gates[GATE_PARITY]["status"] == "pass"
    assert gates[GATE_TEST]["status"] == "no active model"
    assert gates[GATE_TEST]["candidate"]["rows"] == 64, "the candidate's figures still shown"
    assert gates[GATE_REVIEWED]["status"] == "skipped"
    assert "promoted tiny-topics v1" in result.output
    assert "no active model" in result.output


def test_a_first_promotion_without_an_export_report_fails_the_parity_gate(
    tmp_path: Path, tiny_classifier_trained: Path, cli: typer.Typer
) -> None:
    home = ModelHome(tmp_path / "home")
    result = _invoke(cli, "promote", tiny_classifier_trained, "--home", home.root)

    assert result.exit_code == 1, result.output
    assert "not promoted: the parity gate failed: the candidate has no export report" in (
        " ".join(result.output.split())
    )
    assert snapshot(home.root) == []


def test_a_candidate_as_good_as_the_active_one_is_promoted_with_its_figures(
    home_v1: ModelHome,
    tmp_path: Path,
    tiny_classifier_artifact: Path,
    cli: typer.Typer,
    test_csv: Path,
) -> None:
    reviewed = tmp_path / "reviewed.csv"
    texts, labels = topic_texts(20, seed=21)
    with reviewed.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["message_id", "text", "label", "reviewer", "model_label"])
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            writer.writerow([f"m{i}", text, label, "ana", "World"])
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")

    result = _invoke(
        cli, "promote", v2, "--home", home_v1.root, "--test", test_csv, "--reviewed", reviewed
    )

    assert result.exit_code == 0, result.output
    assert home_v1.active_version() == "v2"
    entry = home_v1.history()[-1]
    assert (entry.from_version, entry.to_version) == ("v1", "v2")
    gates = {g["gate"]: g for g in entry.gates}
    assert [g["status"] for g in entry.gates] == ["pass"] * 4
    assert gates[GATE_TEST]["candidate"] == gates[GATE_TEST]["active"], "same weights"
    assert gates[GATE_REVIEWED]["candidate"]["rows"] == 20
    assert "accuracy" in result.output and "macro-F1" in result.output


def test_dry_run_evaluates_and_changes_nothing(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_artifact: Path, cli: typer.Typer
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")
    before = snapshot(home_v1.root)
    result = _invoke(cli, "promote", v2, "--home", home_v1.root, "--skip-test-gate", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: every gate passed" in result.output
    assert snapshot(home_v1.root) == before


def test_promoting_the_active_version_again_does_nothing(
    home_v1: ModelHome, cli: typer.Typer
) -> None:
    before = snapshot(home_v1.root)
    result = _invoke(cli, "promote", home_v1.versions_dir / "v1", "--home", home_v1.root)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    assert snapshot(home_v1.root) == before


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["Sports", "World", "Business", "Sci/Tech"], "in another order (label 0 is Sports"),
        (["World", "Sports", "Business", "Science"], "lacks Sci/Tech and adds Science"),
    ],
    ids=["reordered", "renamed"],
)
def test_a_candidate_with_other_labels_fails_the_artifact_gate_and_changes_nothing(
    home_v1: ModelHome,
    tmp_path: Path,
    tiny_classifier_artifact: Path,
    cli: typer.Typer,
    labels: list[str],
    expected: str,
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2", labels=labels)
    before = snapshot(home_v1.root)

    result = _invoke(cli, "promote", v2, "--home", home_v1.root, "--skip-test-gate")

    assert result.exit_code == 1, result.output
    one_line = " ".join(result.output.split())
    assert "not promoted: the artifact gate failed" in one_line
    assert expected in one_line
    assert "FAIL" in result.output and "skipped" in result.output, "the table of every gate"
    assert snapshot(home_v1.root) == before


def test_a_corrupt_candidate_fails_the_artifact_gate_and_is_not_scored(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_artifact: Path, test_csv: Path
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")
    (v2 / "labels.json").write_text("[]", encoding="utf-8")
    report = evaluate_gates(v2, home_v1, GateOptions(test=test_csv))
    statuses = {g.name: g.status for g in report.gates}
    assert statuses[GATE_ARTIFACT] is GateStatus.FAIL
    assert statuses[GATE_TEST] is GateStatus.NOT_RUN
    assert [g.name for g in report.failures()] == [GATE_ARTIFACT]


def test_the_default_test_set_is_the_active_models_own_eval_data(
    tmp_path: Path, tiny_classifier_artifact: Path, cli: typer.Typer
) -> None:
    data = tmp_path / "eval.csv"
    texts, labels = topic_texts(30, seed=4)
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["headline", "body", "topic"])
        for text, label in zip(texts, labels, strict=True):
            words = text.split()
            writer.writerow([" ".join(words[:2]), " ".join(words[2:]), label])
    ref = DataRef(source=str(data), columns=["headline", "body", "topic"])
    v1 = variant(tiny_classifier_artifact, tmp_path / "cand-v1", version="v1", eval_data=ref)
    home = ModelHome(tmp_path / "home")
    assert _invoke(cli, "promote", v1, "--home", home.root).exit_code == 0
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")

    report = evaluate_gates(v2, home, GateOptions())

    [test_gate] = [g for g in report.gates if g.name == GATE_TEST]
    assert test_gate.status is GateStatus.PASS
    assert test_gate.candidate is not None and test_gate.candidate.rows == 30


def test_without_a_test_set_the_comparison_asks_for_one(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")
    with pytest.raises(PromotionInputError, match="pass --test FILE or --skip-test-gate"):
        evaluate_gates(v2, home_v1, GateOptions())


def test_invalid_input_is_one_line_and_exit_2(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_artifact: Path, test_csv: Path
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")
    env = {k: v for k, v in os.environ.items() if k != "TEXTROUTE_VERBOSE"}
    env["COLUMNS"] = "300"
    before = snapshot(home_v1.root)
    cases: list[tuple[Sequence[str], str]] = [
        (["--test", str(tmp_path / "missing.csv")], "missing.csv does not exist"),
        (["--test", str(test_csv), "--label-column", "topic"], "column(s) 'topic' not found"),
        ([], "pass --test FILE or --skip-test-gate"),
    ]
    for flags, message in cases:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "stream",
                "promote",
                str(v2),
                "--home",
                str(home_v1.root),
                *flags,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr
    assert snapshot(home_v1.root) == before


def test_labels_are_read_as_training_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [
        {"text": "a", "label": "Sports"},
        {"text": "b", "label": 2},  # an integer indexes the names, as with --label-names
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    data = read_labelled(path, ["text"], "label", TOPICS, multi_label=False, what="test")
    assert data.gold == [frozenset({"Sports"}), frozenset({"Business"})]

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,World\nodd,Weather\n", encoding="utf-8")
    with pytest.raises(PromotionInputError, match=r"bad.csv:3: label 'Weather' is not one"):
        read_labelled(bad, ["text"], "label", TOPICS, multi_label=False, what="test")

    multi = tmp_path / "multi.csv"
    multi.write_text('text,label\nx,"[""World"", ""Sports""]"\ny,[]\n', encoding="utf-8")
    data = read_labelled(multi, ["text"], "label", TOPICS, multi_label=True, what="test")
    assert data.gold == [frozenset({"World", "Sports"}), frozenset()]
    plain = tmp_path / "plain.csv"
    plain.write_text("text,label\nx,World\n", encoding="utf-8")
    with pytest.raises(PromotionInputError, match="not a JSON list of labels"):
        read_labelled(plain, ["text"], "label", TOPICS, multi_label=True, what="test")


class _Fixed:
    """A model that answers fixed label sets, an ItemError for None."""

    def __init__(self, answers: list[list[str] | None], *, multi: bool) -> None:
        self.answers = answers
        self.multi = multi

    def classify(self, texts: Sequence[str]) -> list[Classification | ItemError]:
        out: list[Classification | ItemError] = []
        for i, _ in enumerate(texts):
            answer = self.answers[i]
            if answer is None:
                out.append(ItemError(index=i, reason="empty_text", message="x"))
                continue
            scores = [LabelScore(label=label, score=0.9) for label in answer]
            top = answer[0] if answer else "World"
            out.append(
                Classification(
                    label=top, score=0.9, top_k=scores, labels=scores if self.multi else None
                )
            )
        return out


def test_scores_single_and_multi_label_models() -> None:
    gold = [
        frozenset({"World"}),
        frozenset({"Sports"}),
        frozenset({"World"}),
        frozenset({"Sports"}),
    ]
    data = LabelledSet(Path("t.csv"), ["a", "b", "c", "d"], gold)
    figures = score(
        _Fixed([["World"], ["World"], ["World"], None], multi=False), data, multi_label=False
    )
    assert (figures.metric, figures.value, figures.rows, figures.errors) == ("accuracy", 0.5, 4, 1)
    # World: tp 2, fp 1, fn 0 -> F1 0.8; Sports: tp 0 -> 0.
    assert figures.f1_macro == pytest.approx(0.4)

    gold = [frozenset({"World", "Sports"}), frozenset()]
    data = LabelledSet(Path("t.csv"), ["a", "b"], gold)
    figures = score(_Fixed([["World"], ["Business"]], multi=True), data, multi_label=True)
    # tp 1 (World), fp 1 (Business), fn 1 (Sports): micro-F1 2/4.
    assert (figures.metric, figures.value) == ("f1_micro", 0.5)


def test_the_margin_is_in_points() -> None:
    active = Figures("accuracy", 0.90, 0.9, 100)
    assert compare("t", Figures("accuracy", 0.895, 0.9, 100), active, 0.5).status is GateStatus.PASS
    failed = compare("t", Figures("accuracy", 0.894, 0.9, 100), active, 0.5)
    assert failed.status is GateStatus.FAIL
    assert "0.60 points below the active model's 90.00 (margin 0.5)" in failed.detail


def test_label_differences_are_named() -> None:
    assert label_difference(["a", "b"], ["a", "b"]) is None
    assert "lacks b" in (label_difference(["a", "b"], ["a"]) or "")


def test_shadow_points_the_shadow_link_and_leaves_current_and_rollback_alone(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_artifact: Path, cli: typer.Typer
) -> None:
    v2 = variant(tiny_classifier_artifact, tmp_path / "cand-v2", version="v2")

    result = _invoke(cli, "promote", v2, "--home", home_v1.root, "--shadow")

    assert result.exit_code == 0, result.output
    assert home_v1.active_version() == "v1"
    assert home_v1.shadow_link.readlink() == Path("versions/v2")
    assert read_manifest(home_v1.shadow_link, verify=True).version == "v2"
    assert [e.action for e in home_v1.history()] == ["promote", "shadow"]
    rollback = _invoke(cli, "rollback", "--home", home_v1.root)
    assert "nothing to roll back" in str(rollback.exception), "a shadow is no version"


def test_a_shadow_candidate_without_an_export_report_changes_nothing(
    home_v1: ModelHome, tmp_path: Path, tiny_classifier_trained: Path, cli: typer.Typer
) -> None:
    before = snapshot(home_v1.root)

    result = _invoke(cli, "promote", tiny_classifier_trained, "--home", home_v1.root, "--shadow")

    assert result.exit_code == 1, result.output
    assert "parity gate failed" in " ".join(result.output.split())
    assert snapshot(home_v1.root) == before
