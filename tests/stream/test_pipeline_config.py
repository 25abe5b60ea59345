"""The pipelines file: each mistake is refused at start with one line naming the key at fault."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from schemas.messages import MessageKind
from stream.errors import PipelineConfigError
from stream.pipeline_config import LongText, LongTextPolicy, check_models, load_pipelines

TOPIC_RULES = """
      default_queue: triage
      categories: {World: desk.world, Sports: desk.sports, Business: desk.business,
                   Sci/Tech: desk.scitech}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _file(classifier: Path, ner: Path, *, ticket: str = "", rules: str = TOPIC_RULES) -> str:
    return f"""
models:
  topics: {classifier}
  ner: {ner}
pipelines:
  article:
    classifier: topics
    ner: ner
    rules:{rules}
  ticket:
    classifier: topics
    rules:{rules}
{ticket}
"""


def test_a_valid_file_resolves_kinds_models_and_rules(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    path = _write(tmp_path, _file(tiny_classifier_artifact, tiny_ner_artifact))
    pipelines = load_pipelines(path)
    check_models(pipelines)
    assert [(p.name, p.kinds) for p in pipelines] == [
        ("article", [MessageKind.ARTICLE]),
        ("ticket", [MessageKind.TICKET]),
    ]
    assert pipelines[0].ner == tiny_ner_artifact
    assert pipelines[1].rules.categories["World"] == "desk.world"


def test_relative_model_paths_are_read_from_the_files_directory(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "topics").symlink_to(tiny_classifier_artifact)
    (tmp_path / "m" / "ner").symlink_to(tiny_ner_artifact)
    path = _write(tmp_path, _file(Path("m/topics"), Path("m/ner")))
    pipelines = load_pipelines(path)
    check_models(pipelines)
    assert pipelines[0].classifier == tmp_path / "m" / "topics"


def test_a_pipeline_naming_an_undefined_model_is_refused_with_its_key(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    text = _file(tiny_classifier_artifact, tiny_ner_artifact).replace(
        "classifier: topics\n    rules", "classifier: queues\n    rules"
    )
    with pytest.raises(
        PipelineConfigError, match=r"pipelines\.ticket\.classifier names model 'queues'"
    ):
        load_pipelines(_write(tmp_path, text))


def test_a_model_directory_that_does_not_exist_is_refused_with_its_key(
    tmp_path: Path, tiny_ner_artifact: Path
) -> None:
    pipelines = load_pipelines(_write(tmp_path, _file(tmp_path / "nowhere", tiny_ner_artifact)))
    with pytest.raises(
        PipelineConfigError, match=r"pipelines\.article\.classifier: .*does not exist"
    ):
        check_models(pipelines)


def test_a_model_of_the_wrong_task_for_its_slot_is_refused(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    # The NER model where the classifier belongs, and the classifier where the NER belongs.
    pipelines = load_pipelines(_write(tmp_path, _file(tiny_ner_artifact, tiny_classifier_artifact)))
    with pytest.raises(
        PipelineConfigError, match=r"pipelines\.article\.classifier: .*token-classification"
    ):
        check_models(pipelines)


def test_a_label_with_no_rule_is_refused_unless_allowed(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    partial = "\n      default_queue: triage\n      categories: {World: desk.world}\n"
    text = _file(tiny_classifier_artifact, tiny_ner_artifact, rules=partial)
    pipelines = load_pipelines(_write(tmp_path, text))
    with pytest.raises(PipelineConfigError, match=r"no rule for label\(s\) \['Sports'"):
        check_models(pipelines)
    allowed = text.replace("    rules:", "    allow_unmapped_labels: true\n    rules:")
    check_models(load_pipelines(_write(tmp_path, allowed)))


def test_a_rule_for_a_label_the_model_lacks_is_refused(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    rules = TOPIC_RULES.replace("World: desk.world", "Weather: desk.weather")
    pipelines = load_pipelines(
        _write(tmp_path, _file(tiny_classifier_artifact, tiny_ner_artifact, rules=rules))
    )
    with pytest.raises(PipelineConfigError, match=r"pipelines\.article\.rules: .*\['Weather'\]"):
        check_models(pipelines)


def test_one_kind_served_by_two_pipelines_is_refused(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    extra = f"""  news:
    kinds: [article]
    classifier: topics
    rules:{TOPIC_RULES}"""
    text = _file(tiny_classifier_artifact, tiny_ner_artifact, ticket=extra)
    with pytest.raises(PipelineConfigError, match=r"pipelines\.news serves article, already"):
        load_pipelines(_write(tmp_path, text))


def test_an_unknown_key_is_named(tmp_path: Path, tiny_classifier_artifact: Path) -> None:
    text = f"models: {{t: {tiny_classifier_artifact}}}\n"
    text += "pipelines:\n  email: {classifier: t, rule: x}\n"
    with pytest.raises(PipelineConfigError, match=r"pipelines\.email\.rule"):
        load_pipelines(_write(tmp_path, text))


def test_the_worker_command_refuses_a_bad_pipelines_file_in_one_line_with_exit_2(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    partial = "\n      default_queue: triage\n      categories: {World: desk.world}\n"
    path = _write(tmp_path, _file(tiny_classifier_artifact, tiny_ner_artifact, rules=partial))
    done = subprocess.run(
        [sys.executable, "-m", "stream", "worker", "--pipelines", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300", "HOME": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "no rule for label(s)" in lines[0]


def test_the_example_pipelines_file_serves_every_kind_once() -> None:
    example = Path(__file__).parents[2] / "deploy" / "pipelines.example.yaml"
    pipelines = load_pipelines(example)
    kinds = [kind for p in pipelines for kind in p.kinds]
    assert sorted(kinds) == sorted(MessageKind)
    by_name = {p.name: p for p in pipelines}
    assert by_name["ticket"].attributes["priority"].name == "tickets-priority"
    assert by_name["email"].text.strip_quotes
    assert by_name["email"].rules.default_queue == "triage", "rules read from the named file"


def test_a_pipeline_sets_its_own_long_text_policy_and_chunk_stride(tmp_path: Path) -> None:
    text = f"""
models: {{t: {tmp_path}}}
pipelines:
  email: {{classifier: t, long_text: head_tail, rules: {{default_queue: q}}}}
  article: {{classifier: t, long_text: chunks, chunk_stride: 64, rules: {{default_queue: q}}}}
  ticket: {{classifier: t, rules: {{default_queue: q}}}}
"""
    email, article, ticket = load_pipelines(_write(tmp_path, text))
    assert email.long_text == LongTextPolicy("head_tail")
    assert article.long_text == LongTextPolicy("chunks", 64)
    assert ticket.long_text is None, "the worker's TEXTROUTE_INFERENCE_LONG_TEXT"


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("long_text: middle", r"pipelines\.email\.long_text"),
        ("long_text: head_tail, chunk_stride: 16", r"chunk_stride is only read with .*chunks"),
        ("long_text: chunks, chunk_stride: -1", r"pipelines\.email\.chunk_stride"),
    ],
)
def test_a_bad_long_text_setting_is_refused_with_its_key(
    tmp_path: Path, setting: str, error: str
) -> None:
    text = f"models: {{t: {tmp_path}}}\n"
    text += f"pipelines:\n  email: {{classifier: t, {setting}, rules: {{default_queue: q}}}}\n"
    with pytest.raises(PipelineConfigError, match=error):
        load_pipelines(_write(tmp_path, text))


def test_the_pipelines_file_offers_the_long_text_policies_inference_knows() -> None:
    from inference import InferenceSettings

    field = InferenceSettings.model_fields["long_text"]
    assert get_args(LongText) == get_args(field.annotation)
