"""`textroute produce` input files and the sample generator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from schemas.events import DeadLetterReason
from schemas.messages import MESSAGE_TYPES, MessageKind
from stream.config import TopicSettings
from stream.errors import InputFileError
from stream.inputs import records_from_jsonl, to_outbound
from stream.samples import MALFORMED_REASONS, sample_records


def test_each_line_goes_to_the_topic_of_its_kind_field_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        b'{"kind": "email", "id": "e1", "from": "a@x", "to": "b@y", "body": "hi"}',
        b"",
        b'{"kind": "article", "id": "a1", "body": "news", "source": "AP"}',
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    out = to_outbound(records_from_jsonl(path), TopicSettings())

    assert [(r.topic, r.key, r.value) for r in out] == [
        ("textroute.email", b"e1", lines[0]),
        ("textroute.article", b"a1", lines[2]),
    ]


def test_with_kind_given_broken_lines_are_sent_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "t1", "customer": "c", "body": "x"}\n{not json\n')

    records = records_from_jsonl(path, MessageKind.TICKET)

    assert [r.value for r in records] == [
        b'{"id": "t1", "customer": "c", "body": "x"}',
        b"{not json",
    ]
    assert records[1].key == f"{path}:2", "an unparseable line is keyed by where it came from"


def test_a_line_without_a_kind_names_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(InputFileError, match=r"in.jsonl:1.*--kind"):
        records_from_jsonl(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read"):
        records_from_jsonl(tmp_path / "nope.jsonl")


def test_valid_samples_validate_against_their_message_schema() -> None:
    for record in sample_records(30, seed=5):
        message = MESSAGE_TYPES[record.kind].model_validate_json(record.value)
        assert message.id == record.key
        assert record.category in {"World", "Sports", "Business", "Sci/Tech"}


def test_samples_mix_kinds_and_every_kind_of_damage_at_the_asked_ratio() -> None:
    records = list(sample_records(2000, malformed_ratio=0.1, seed=1))
    kinds = Counter(r.kind for r in records)
    damage = Counter(r.expected_reason for r in records if r.expected_reason)

    assert set(kinds) == set(MessageKind)
    assert 150 <= sum(damage.values()) <= 250
    assert set(damage) == set(MALFORMED_REASONS)


def test_a_too_long_sample_is_longer_than_the_limit_asked_for() -> None:
    (record,) = [
        r
        for r in sample_records(400, malformed_ratio=1.0, seed=2, huge_text_chars=5000)
        if r.expected_reason is DeadLetterReason.TEXT_TOO_LONG
    ][:1]
    assert len(json.loads(record.value)["body"]) > 5000


def test_samples_are_reproducible_from_the_seed() -> None:
    assert list(sample_records(20, malformed_ratio=0.3, seed=9)) == list(
        sample_records(20, malformed_ratio=0.3, seed=9)
    )
