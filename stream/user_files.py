"""A user's own CSV or JSON-lines file of one kind of message: its columns mapped onto fields."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from schemas.messages import MESSAGE_TYPES, MessageKind
from stream.errors import FieldMappingError, InputFileError
from stream.samples import SampleRecord

#: Suffix -> CSV delimiter.
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ID_FIELD = "id"
#: How many invalid rows a report quotes; the rest are only counted.
EXAMPLES_KEPT = 5
# Help desk exports carry whole mail threads in one cell, beyond the csv module's default
# 128 KiB; the worker, not the reader, decides what text is too long.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


class InvalidRows(str, Enum):
    """What becomes of a row that does not make a valid message."""

    SKIP = "skip"
    SEND = "send"


@dataclass(frozen=True)
class Row:
    """One row of a file: where it starts (1-based line, as an editor counts) and its values,
    or, for a line that is no JSON object, None, its bytes and what is wrong with it."""

    line: int
    values: dict[str, Any] | None
    raw: bytes = b""
    problem: str | None = None


def _utf8(raw: bytes, line: int) -> str:
    text = raw.decode("utf-8")
    # Spreadsheet programs start UTF-8 exports with a byte order mark.
    return text.removeprefix("\ufeff") if line == 1 else text


def _not_utf8(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 ({exc.reason} at byte {exc.start} of the line)"


def _text_lines(handle: BinaryIO, path: Path) -> Iterator[str]:
    # Decoded line by line (ends kept, as csv wants them) so an encoding error names its line.
    for number, raw in enumerate(handle, start=1):
        try:
            yield _utf8(raw, number)
        except UnicodeDecodeError as exc:
            raise InputFileError(f"{path}:{number}: {_not_utf8(exc)}; save it as UTF-8.") from exc


@dataclass(frozen=True)
class UserFile:
    """A CSV (.csv, .tsv) or JSON-lines (.jsonl, .ndjson) file and the columns it has: the
    CSV header, or the keys of the first JSON object."""

    path: Path
    columns: tuple[str, ...]

    @classmethod
    def open(cls, path: Path) -> UserFile:
        """The file's columns, read from its start; clear errors for what cannot be read."""
        suffix = path.suffix.lower()
        if suffix not in CSV_SUFFIXES and suffix not in JSONL_SUFFIXES:
            known = ", ".join([*CSV_SUFFIXES, *JSONL_SUFFIXES])
            raise InputFileError(f"cannot tell the format of {path} from its suffix; use {known}.")
        source = cls(path, ())
        if suffix in CSV_SUFFIXES:
            return cls(path, source._csv_header())
        first = next(source.rows(), None)
        if first is None:
            raise InputFileError(f"{path} holds no JSON object.")
        if first.values is None:
            raise InputFileError(f"{path}:{first.line}: {first.problem}.")
        return cls(path, tuple(first.values))

    def _open(self) -> BinaryIO:
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise InputFileError(f"cannot read messages file {self.path}: {exc}") from exc

    def _csv_reader(self, handle: BinaryIO) -> Any:
        csv.field_size_limit(CSV_FIELD_LIMIT)
        delimiter = CSV_SUFFIXES[self.path.suffix.lower()]
        return csv.reader(_text_lines(handle, self.path), delimiter=delimiter)

    def _csv_header(self) -> tuple[str, ...]:
        with self._open() as handle:
            reader = self._csv_reader(handle)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise InputFileError(f"{self.path}:{reader.line_num}: {exc}") from exc
        if not header:
            raise InputFileError(f"{self.path} has no header row naming its columns.")
        return tuple(name.strip() for name in header)

    def rows(self) -> Iterator[Row]:
        """Every non-blank row, in file order."""
        if self.path.suffix.lower() in CSV_SUFFIXES:
            yield from self._csv_rows()
        else:
            yield from self._jsonl_rows()

    def _csv_rows(self) -> Iterator[Row]:
        with self._open() as handle:
            reader = self._csv_reader(handle)
            try:
                next(reader, None)
                start = reader.line_num + 1
                for cells in reader:
                    # A quoted cell may span lines; the row is where it starts.
                    line, start = start, reader.line_num + 1
                    if not any(cell.strip() for cell in cells):
                        continue
                    if len(cells) > len(self.columns):
                        problem = f"{len(cells)} cells, but the header names {len(self.columns)}"
                        yield Row(line, None, json.dumps(cells).encode(), problem)
                        continue
                    yield Row(line, dict(zip(self.columns, cells, strict=False)))
            except csv.Error as exc:
                raise InputFileError(f"{self.path}:{reader.line_num}: {exc}") from exc

    def _jsonl_rows(self) -> Iterator[Row]:
        with self._open() as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                line = raw.rstrip(b"\r\n")
                try:
                    values = json.loads(_utf8(line, number))
                except UnicodeDecodeError as exc:
                    yield Row(number, None, line, _not_utf8(exc))
                    continue
                except json.JSONDecodeError as exc:
                    yield Row(number, None, line, f"not JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(values, dict):
                    yield Row(number, None, line, f"a JSON {type(values).__name__}, not an object")
                    continue
                yield Row(number, values)


def parse_assignments(items: Iterable[str], option: str) -> dict[str, str]:
    """`NAME=VALUE` items of a repeatable option as a dict (the value may be empty)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise FieldMappingError(f"{option} {item!r}: expected FIELD=VALUE.")
        out[name.strip()] = value
    return out


def parse_value_maps(items: Iterable[str], option: str) -> dict[str, dict[str, str]]:
    """`FIELD:FROM=TO` items as {field: {from: to}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        old, eq, new = rest.partition("=")
        if not sep or not eq or not name.strip():
            raise FieldMappingError(f"{option} {item!r}: expected FIELD:FROM=TO.")
        out.setdefault(name.strip(), {})[old] = new
    return out


def kind_fields(kind: MessageKind) -> dict[str, bool]:
    """The kind's wire field names (aliases, e.g. email's 'from'), each with whether it is
    required; 'id' is never required here, as a row without one gets an id from its content."""
    return {
        info.alias or name: info.is_required() and name != ID_FIELD
        for name, info in MESSAGE_TYPES[kind].model_fields.items()
    }


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def row_id(kind: MessageKind, values: Mapping[str, Any]) -> str:
    """An id from the whole row's content: the same row gets the same id on every send, and
    unlike a row number it does not shift when rows are added, removed or reordered."""
    canonical = json.dumps(values, sort_keys=True, default=str)
    return f"{kind.value}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class FieldMap:
    """How one file's rows become one kind's messages (field names as on the wire)."""

    kind: MessageKind
    columns: Mapping[str, str]
    constants: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def message(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The message dict of `row`. A blank cell (or null) counts as absent, so a field's
        default applies and a required one is reported missing rather than failing as an empty
        string; but text fields (subject, body, headline) stay, empty."""
        message: dict[str, Any] = {}
        for name, column in self.columns.items():
            value = row.get(column)
            if _blank(value):
                continue
            if isinstance(value, str) and name in self.values:
                value = self.values[name].get(value, value)
            message[name] = value
        for name, value in self.defaults.items():
            message.setdefault(name, value)
        for name in MESSAGE_TYPES[self.kind].text_fields:
            if name in self.columns:
                # A blank text field is an empty one: a ticket with a subject but no body is
                # still routable; a row with no text at all is caught by the text check.
                message.setdefault(name, "")
        message.update(self.constants)
        if ID_FIELD in message:
            message[ID_FIELD] = str(message[ID_FIELD])  # JSON ids may be numbers
        elif ID_FIELD not in self.columns:
            message[ID_FIELD] = row_id(self.kind, row)
        return message


def _column_for(name: str, columns: tuple[str, ...], python_name: str) -> str | None:
    for wanted in (name, python_name):
        if wanted in columns:
            return wanted
    folded = [c for c in columns if c.lower() in {name.lower(), python_name.lower()}]
    return folded[0] if len(folded) == 1 else None


def plan_fields(
    kind: MessageKind,
    columns: tuple[str, ...],
    *,
    maps: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    values: Mapping[str, Mapping[str, str]] | None = None,
    id_column: str | None = None,
    where: str = "the file",
) -> FieldMap:
    """Which column feeds each field: `maps` (FIELD=COLUMN) first, then a column named like
    the field (exactly, else the one matching it case-insensitively). Raises
    FieldMappingError, before anything is read past the header, for an unknown field or
    column and for a required field with neither a column nor a value."""
    maps, constants, defaults = dict(maps or {}), dict(constants or {}), dict(defaults or {})
    values = dict(values or {})
    if id_column is not None:
        maps[ID_FIELD] = id_column
    fields = kind_fields(kind)
    python_names = {
        info.alias or name: name for name, info in MESSAGE_TYPES[kind].model_fields.items()
    }
    have = ", ".join(columns) or "none"
    for option, names in (
        ("--map", maps),
        ("--set", constants),
        ("--default", defaults),
        ("--value-map", values),
    ):
        unknown = [n for n in names if n not in fields]
        if unknown:
            raise FieldMappingError(
                f"{option} names {', '.join(unknown)}, not a field of {kind.value} messages "
                f"({', '.join(fields)})."
            )
    for name, column in maps.items():
        if column not in columns:
            raise FieldMappingError(
                f"--map {name}={column}: {where} has no column {column!r}; it has: {have}."
            )
        if name in constants:
            raise FieldMappingError(f"{name} is given both --map and --set; keep one.")
    mapped = dict(maps)
    for name in fields:
        if name not in mapped and name not in constants:
            found = _column_for(name, columns, python_names[name])
            if found is not None:
                mapped[name] = found
    missing = [n for n, required in fields.items() if required and n not in mapped]
    if kind is MessageKind.EMAIL and "raw" not in mapped and "raw" not in constants:
        # An email is addressed and has a body unless it carries the whole raw message.
        missing += [n for n in ("from", "to", "body") if n not in mapped]
    missing = [n for n in missing if n not in constants and n not in defaults]
    if missing:
        raise FieldMappingError(
            f"{kind.value} messages need {', '.join(missing)}, but {where} has no such column "
            f"(it has: {have}); map one with --map FIELD=COLUMN or give a value with "
            "--set FIELD=VALUE."
        )
    return FieldMap(kind, mapped, constants, defaults, values)


@dataclass
class FileReport:
    """What reading a file of `kind` came to: rows read, and the invalid ones (the first few
    quoted)."""

    kind: MessageKind
    rows: int = 0
    invalid: int = 0
    examples: list[str] = field(default_factory=list)

    def note_invalid(self, line: int, problem: str) -> None:
        self.invalid += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(f"line {line}: {problem}")


def _row_errors(error: ValidationError) -> str:
    """Like summarize_validation_error, with the value the row gave where it is short: the
    user fixes a cell, and 'got 'medium'' says which value to map with --value-map."""
    parts = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        given = e.get("input")
        shown = isinstance(given, (str, int, float)) and len(repr(given)) <= 40
        parts.append(f"{where}: {e['msg']}" + (f", got {given!r}" if shown else ""))
    return "; ".join(parts)


def _problem(message: dict[str, Any], kind: MessageKind) -> str | None:
    """What keeps `message` from being a valid message of `kind`, or None."""
    try:
        valid = MESSAGE_TYPES[kind].model_validate(message)
    except ValidationError as exc:
        return _row_errors(exc)
    if not valid.text_for_models() and getattr(valid, "raw", None) is None:
        # The worker would dead-letter it as empty text; say so while the user can fix it.
        # (A raw email's text is read from it by the worker.)
        return f"no text: {' and '.join(valid.text_fields)} are blank"
    return None


def file_records(
    source: UserFile,
    fields: FieldMap,
    *,
    invalid: InvalidRows = InvalidRows.SKIP,
    limit: int | None = None,
    report: FileReport | None = None,
    progress: Callable[[FileReport], None] | None = None,
    progress_every: int = 10_000,
) -> Iterator[SampleRecord]:
    """The records of the first `limit` rows of `source`, lazily, keyed by message id.

    Valid rows go as their validated message; invalid ones are noted in `report` and, with
    InvalidRows.SEND, go as they are (JSON of the mapped fields, or the line itself when it is
    no JSON object) for the worker to dead-letter. `progress` is called every
    `progress_every` rows.
    """
    report = report if report is not None else FileReport(fields.kind)
    kind = fields.kind
    for row in islice(source.rows(), limit):
        report.rows += 1
        if progress is not None and report.rows % progress_every == 0:
            progress(report)
        if row.values is None:
            report.note_invalid(row.line, row.problem or "unreadable")
            payload, key = row.raw, f"{source.path.name}:{row.line}"
        else:
            message = fields.message(row.values)
            problem = _problem(message, kind)
            if problem is None:
                yield SampleRecord(kind, message[ID_FIELD], json.dumps(message).encode())
                continue
            report.note_invalid(row.line, problem)
            payload = json.dumps(message, default=str).encode()
            key = str(message.get(ID_FIELD) or f"{source.path.name}:{row.line}")
        if invalid is InvalidRows.SEND:
            yield SampleRecord(kind, key, payload)
