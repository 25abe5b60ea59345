"""Reading a user's own CSV or JSON-lines file and mapping its columns onto a kind's fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.messages import MESSAGE_TYPES, MessageKind
from stream.errors import FieldMappingError, InputFileError
from stream.samples import SampleRecord
from stream.user_files import (
    FileReport,
    InvalidRows,
    UserFile,
    file_records,
    parse_assignments,
    parse_value_maps,
    plan_fields,
)

TICKET = MessageKind.TICKET
HEADER = "id,customer,subject,body,priority\n"


def _write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _read(
    path: Path,
    kind: MessageKind = TICKET,
    *,
    invalid: InvalidRows = InvalidRows.SKIP,
    limit: int | None = None,
    **mapping: object,
) -> tuple[list[SampleRecord], FileReport]:
    source = UserFile.open(path)
    fields = plan_fields(kind, source.columns, **mapping)  # type: ignore[arg-type]
    report = FileReport(kind)
    records = list(file_records(source, fields, invalid=invalid, limit=limit, report=report))
    return records, report


def _messages(records: list[SampleRecord]) -> list[dict[str, object]]:
    return [json.loads(r.value) for r in records]


def test_columns_named_like_fields_map_themselves_and_others_through_map(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "Ref,Customer,Title,Description\nT-1,acme,Login,It fails\n")

    records, _ = _read(path, maps={"id": "Ref", "subject": "Title", "body": "Description"})

    assert _messages(records) == [
        {"id": "T-1", "customer": "acme", "subject": "Login", "body": "It fails"}
    ]
    assert records[0].key == "T-1" and records[0].kind is TICKET


def test_a_required_field_without_a_column_names_the_field_and_the_files_columns(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "t.csv", "subject,body,queue\ns,b,q\n")
    with pytest.raises(FieldMappingError, match=r"need customer.*it has: subject, body, queue"):
        plan_fields(TICKET, UserFile.open(path).columns)


def test_map_naming_an_unknown_field_or_a_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    columns = UserFile.open(_write(tmp_path / "t.csv", HEADER)).columns
    with pytest.raises(FieldMappingError, match=r"--map names colour, not a field of ticket"):
        plan_fields(TICKET, columns, maps={"colour": "body"})
    with pytest.raises(FieldMappingError, match=r"no column 'Text'; it has: id, customer"):
        plan_fields(TICKET, columns, maps={"body": "Text"})


def test_a_row_without_an_id_gets_one_from_its_content_that_survives_reordering(
    tmp_path: Path,
) -> None:
    first = _write(tmp_path / "a.csv", "customer,body\nc1,one\nc2,two\n")
    moved = _write(tmp_path / "b.csv", "customer,body\nc0,new\nc2,two\nc1,one\n")

    ids_first = {json.loads(r.value)["body"]: r.key for r in _read(first)[0]}
    ids_moved = {json.loads(r.value)["body"]: r.key for r in _read(moved)[0]}

    assert ids_first == {b: ids_moved[b] for b in ("one", "two")}
    assert len(set(ids_moved.values())) == 3
    assert all(key.startswith("ticket-") for key in ids_moved.values())


def test_the_id_column_gives_the_ids_and_json_number_ids_become_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", '{"newid": 14826, "title": "T", "body": "B"}\n')

    records, _ = _read(
        path,
        MessageKind.ARTICLE,
        id_column="newid",
        maps={"headline": "title"},
        constants={"source": "Reuters"},
    )

    assert _messages(records) == [
        {"id": "14826", "headline": "T", "body": "B", "source": "Reuters"}
    ]


def test_csv_with_a_bom_and_cells_spanning_lines_reads_whole_rows_at_their_first_line(
    tmp_path: Path,
) -> None:
    text = HEADER + 't1,c,"Two\nline subject","body\nwith ""quotes""\n"\nt2,c,,,bogus\n'
    path = _write(tmp_path / "t.csv", text, bom=True)

    records, report = _read(path)

    assert UserFile.open(path).columns[0] == "id", "the byte order mark is not part of 'id'"
    assert _messages(records)[0]["body"] == 'body\nwith "quotes"\n'
    assert report.examples[0].startswith("line 6: "), "t2 starts on line 6 of the file"


def test_invalid_rows_are_counted_quoted_with_line_numbers_and_skipped_by_default(
    tmp_path: Path,
) -> None:
    rows = "".join(f"t{i},c,s,b,{'bogus' if i % 2 else 'low'}\n" for i in range(10))
    path = _write(tmp_path / "t.csv", HEADER + rows)

    records, report = _read(path)

    assert [r.key for r in records] == ["t0", "t2", "t4", "t6", "t8"]
    assert (report.rows, report.invalid) == (10, 5)
    assert report.examples[0] == (
        "line 3: priority: Input should be 'low', 'normal', 'high' or 'urgent', got 'bogus'"
    )


def test_with_invalid_send_bad_rows_go_as_mapped_for_the_worker_to_dead_letter(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "t.csv", HEADER + "t1,c,s,b,bogus\n")

    records, report = _read(path, invalid=InvalidRows.SEND)

    assert report.invalid == 1
    assert _messages(records) == [
        {"id": "t1", "customer": "c", "subject": "s", "body": "b", "priority": "bogus"}
    ]


def test_a_jsonl_line_that_is_no_json_object_is_reported_by_its_line_number(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        '{"id": "a", "customer": "c", "body": "b"}\n\n{"id": "b", "body": \n[1]\n',
    )

    records, report = _read(path, invalid=InvalidRows.SEND)

    assert [r.key for r in records] == ["a", "t.jsonl:3", "t.jsonl:4"]
    assert records[1].value == b'{"id": "b", "body": ', "a broken line is sent as it is"
    assert report.examples[0].startswith("line 3: not JSON")
    assert report.examples[1] == "line 4: a JSON list, not an object"


def test_set_is_a_constant_default_fills_blanks_and_value_map_recodes(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "subject,body,priority,customer\ns,b,medium,\ns,b,high,x\n")

    records, report = _read(
        path,
        constants={"channel": "email"},
        defaults={"customer": "helpdesk"},
        values=parse_value_maps(["priority:medium=normal"], "--value-map"),
    )

    assert report.invalid == 0
    assert [(m["priority"], m["customer"], m["channel"]) for m in _messages(records)] == [
        ("normal", "helpdesk", "email"),
        ("high", "x", "email"),
    ]


def test_a_blank_body_stays_empty_beside_a_subject_but_a_row_without_text_is_invalid(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "t.csv", HEADER + "t1,c,Subject only,,\nt2,c,, ,\n")

    records, report = _read(path)

    assert [(m["id"], m["body"]) for m in _messages(records)] == [("t1", "")]
    MESSAGE_TYPES[TICKET].model_validate_json(records[0].value)
    assert report.examples == ["line 3: no text: subject and body are blank"]


def test_limit_reads_only_the_first_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", HEADER + "".join(f"t{i},c,s,b,low\n" for i in range(5)))
    records, report = _read(path, limit=2)
    assert [r.key for r in records] == ["t0", "t1"] and report.rows == 2


def test_progress_is_reported_every_so_many_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", HEADER + "".join(f"t{i},c,s,b,low\n" for i in range(7)))
    source = UserFile.open(path)
    seen: list[int] = []
    records = file_records(
        source,
        plan_fields(TICKET, source.columns),
        progress=lambda report: seen.append(report.rows),
        progress_every=3,
    )
    assert len(list(records)) == 7 and seen == [3, 6]


def test_a_file_not_in_utf8_is_an_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(HEADER.encode() + b"t1,c,s,caf\xe9,low\n")
    with pytest.raises(InputFileError, match=r"t.csv:2: not UTF-8"):
        _read(path)


def test_an_unknown_suffix_or_an_assignment_without_equals_is_a_clear_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputFileError, match=r"cannot tell the format.*\.csv"):
        UserFile.open(_write(tmp_path / "t.xlsx", "x"))
    with pytest.raises(FieldMappingError, match=r"--map 'body': expected FIELD=VALUE"):
        parse_assignments(["body"], "--map")


def test_an_email_file_needs_sender_recipients_and_body_unless_it_has_raw_messages(
    tmp_path: Path,
) -> None:
    plain = _write(tmp_path / "mails.csv", "id,subject,body\n1,Hi,hello\n")
    with pytest.raises(FieldMappingError, match="email messages need from, to"):
        _read(plain, MessageKind.EMAIL)
    raw = _write(tmp_path / "raw.jsonl", '{"id": "r1", "raw": "From: a@x\\nTo: b@y\\n\\nhi"}\n')
    records, report = _read(raw, MessageKind.EMAIL)
    assert [r.key for r in records] == ["r1"] and report.rows == 1
