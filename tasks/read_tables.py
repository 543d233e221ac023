"""Read a contributor's data file (CSV, Parquet or JSON Lines) into an Arrow table.

Errors say which file, which line and what to do: bad quoting, ragged rows,
a file that is not UTF-8 (and what encoding it looks like).
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path
from typing import NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from challenge.errors import DataReadError

CSV_BLOCK_SIZE = 1 << 20  # pyarrow's default; tests shrink it


def read_table(path: Path, name: str, string_columns: list[str] | None = None) -> pa.Table:
    """Read `path` by extension; `name` is how the file is named in errors.

    `string_columns` are read as strings whatever they look like (ids, text,
    labels), so '007' stays '007'.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataReadError(f"{name}: file not found in the drop; add it or fix the path in task.yaml")
    try:
        if suffix == ".csv":
            table = _read_csv(path, name, string_columns or [])
        elif suffix == ".parquet":
            table = pq.read_table(path)
        elif suffix == ".jsonl":
            table = _read_jsonl(path, string_columns or [])
        else:
            raise DataReadError(f"{name}: unsupported extension {suffix!r}; use .csv, .parquet or .jsonl")
    except DataReadError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataReadError(f"{name}: cannot be read as {suffix[1:]}: {exc}") from None
    duplicated = sorted({c for c in table.column_names if table.column_names.count(c) > 1})
    if duplicated:
        raise DataReadError(f"{name}: column names appear more than once: {', '.join(duplicated)}; rename them")
    return table


def _head_types(path: Path, read: pa_csv.ReadOptions, strings: dict[str, pa.DataType]) -> dict[str, pa.DataType]:
    """Column types as the reader infers them from the file's first block (strings where asked); only
    types that a later block can contradict with a conversion error (int64, float64, bool, string)."""
    convert = pa_csv.ConvertOptions(column_types=strings, strings_can_be_null=True)
    try:
        with pa_csv.open_csv(path, read_options=read, convert_options=convert) as reader:
            schema = reader.schema
    except (pa.ArrowInvalid, StopIteration):
        return {}
    kept = (pa.int64(), pa.float64(), pa.bool_(), pa.string())
    return {f.name: f.type for f in schema if f.type in kept}


def _read_csv(path: Path, name: str, string_columns: list[str]) -> pa.Table:
    strings = {c: pa.string() for c in string_columns}
    read = pa_csv.ReadOptions(block_size=CSV_BLOCK_SIZE)
    with open(path, "rb") as fh:
        if fh.read(4).startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DataReadError(f"{name}: the file is UTF-16 encoded; re-save it as UTF-8")
    # Types given to the reader (as the first block shows them, strings where asked): it converts each block
    # once and frees it. Inferring, it keeps every parsed block to the end in case a later one widens a
    # type: twice the table's memory. When a later block contradicts the first, the file is read again
    # with inference, as without the guess.
    guessed = {**_head_types(path, read, strings), **strings}
    attempts = [guessed, strings] if guessed != strings else [strings]
    error: pa.ArrowInvalid | None = None
    for newlines in (False, True):
        # Without line breaks in values, blocks parse in parallel; a quoted value spanning lines across a
        # block boundary then stops with an error (never a wrong table). Product descriptions and
        # addresses may hold line breaks: read again allowing them.
        parse = pa_csv.ParseOptions(newlines_in_values=newlines)
        for types in attempts:
            convert = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True)
            try:
                return pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
            except pa.ArrowInvalid as exc:
                error = exc
                if "CSV parse error" in str(exc) or "newlines_in_values" in str(exc):
                    break  # the same whatever the types
                if "utf8" in str(exc).lower() and types is strings:
                    _explain_csv_error(path, name, exc)
    assert error is not None
    return _explain_csv_error(path, name, error)


def _explain_csv_error(path: Path, name: str, exc: pa.ArrowInvalid) -> NoReturn:
    """Raise a DataReadError that says what is wrong and where."""
    message = str(exc)
    if "utf8" in message.lower():
        raise DataReadError(f"{name}: {describe_bad_encoding(path)}") from None
    if "CSV parse error" in message:
        raise DataReadError(f"{name}: {describe_bad_csv(path)}") from None
    raise exc


def _read_jsonl(path: Path, string_columns: list[str]) -> pa.Table:
    table = pa_json.read_json(path)
    for column in string_columns:
        if column in table.column_names and table.schema.field(column).type != pa.string():
            index = table.column_names.index(column)
            table = table.set_column(index, column, pc.cast(table[column], pa.string()))
    return table


def describe_bad_encoding(path: Path) -> str:
    """Say where the file stops being UTF-8 and what it looks like instead."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += chunk[: exc.start].count(b"\n")
                guess = _guess_encoding(path)
                return (
                    f"not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at line {line}, byte offset {bad}); "
                    f"it looks like {guess}. Re-save the file as UTF-8"
                )
            line += chunk.count(b"\n")
            offset += len(chunk)
    return "not valid UTF-8; re-save the file as UTF-8"


def _guess_encoding(path: Path) -> str:
    head = path.read_bytes()[: 1 << 20]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "UTF-16"
    for encoding, label in (("cp1252", "Windows-1252 (Latin-1)"), ("latin-1", "ISO-8859-1 (Latin-1)")):
        try:
            head.decode(encoding)
            return label
        except UnicodeDecodeError:
            continue
    return "an unknown 8-bit encoding"


def describe_bad_csv(path: Path) -> str:
    """Find the first row whose quoting or field count is wrong."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader)
        except (StopIteration, csv.Error) as exc:
            return f"the header row cannot be parsed ({exc}); check quoting"
        last_line = reader.line_num
        try:
            for row in reader:
                if row and len(row) != len(header):
                    return (
                        f"line {last_line + 1} has {len(row)} fields but the header has {len(header)}; "
                        "check for an unquoted comma or a missing quote"
                    )
                last_line = reader.line_num
        except csv.Error as exc:
            return (
                f"bad quoting in the record starting at line {last_line + 1} ({exc}); "
                "close the quote or escape embedded quotes by doubling them"
            )
    return "the CSV cannot be parsed; check quoting and the number of fields per row"
