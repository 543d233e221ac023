"""Read a contributor's data file (CSV, Parquet or JSON Lines) into an Arrow table.

Errors say which file, which line and what to do: bad quoting, ragged rows,
a file that is not UTF-8 (and what encoding it looks like). With limits
(tasks/intake/read_limits.py), only the declared columns are decoded and a file over
a limit is refused before it is decoded: its first bytes, a CSV's header, a
JSON Lines file's keys, a Parquet file's metadata and dictionaries come first.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from challenge.core.errors import DataReadError
from challenge.tasks.intake import read_limits
from challenge.tasks.intake.read_limits import (
    LimitExceeded,
    ReadLimits,
    check_distinct,
    check_file_kind,
    check_file_size,
    check_json_keys,
    check_value_lengths,
    csv_header,
    describe_long_record,
    size,
)

STRADDLING = "straddling object straddles two block boundaries"  # pyarrow: a row longer than the read block


@dataclass
class DataFile:
    """A data file read: its table (only the wanted columns, when some are named) and every column it has."""

    table: pa.Table
    columns: list[str]


def read_table(path: Path, name: str, string_columns: list[str] | None = None) -> pa.Table:
    """Read every column of `path` by extension, without limits; `name` is how the file is named in errors.

    `string_columns` are read as strings whatever they look like (ids, text,
    labels), so '007' stays '007'.
    """
    return read_data_file(path, name, string_columns or []).table


def read_data_file(path: Path, name: str, string_columns: list[str], wanted: list[str] | None = None,
                   limits: ReadLimits | None = None, id_column: str | None = None) -> DataFile:
    """Read the `wanted` columns of `path` (all when None) within `limits` (none when None): a file over a
    limit raises LimitExceeded, one that cannot be read DataReadError. `id_column` names rows in errors."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataReadError(f"{name}: file not found in the drop; add it or fix the path in task.yaml")
    if suffix not in (".csv", ".parquet", ".jsonl"):
        raise DataReadError(f"{name}: unsupported extension {suffix!r}; use .csv, .parquet or .jsonl")
    check_file_kind(path, name)
    try:
        if suffix == ".csv":
            found = _read_csv(path, name, string_columns, wanted, limits)
        elif suffix == ".parquet":
            found = _read_parquet(path, name, wanted, limits, id_column)
        else:
            found = _read_jsonl(path, name, string_columns, wanted, limits)
    except DataReadError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DataReadError(f"{name}: cannot be read as {suffix[1:]}: {first}") from None
    if limits is not None and suffix != ".parquet":  # (a Parquet file's are checked on its dictionaries)
        check_value_lengths(found.table, name, limits, id_column)
    return found


def _head_types(path: Path, read: pa_csv.ReadOptions, strings: dict[str, pa.DataType],
                include: list[str]) -> dict[str, pa.DataType]:
    """Column types as the reader infers them from the file's first block (strings where asked); only
    types that a later block can contradict with a conversion error (int64, float64, bool, string)."""
    convert = pa_csv.ConvertOptions(column_types=strings, strings_can_be_null=True, include_columns=include)
    try:
        with pa_csv.open_csv(path, read_options=read, convert_options=convert) as reader:
            schema = reader.schema
    except (pa.ArrowInvalid, StopIteration):
        return {}
    kept = (pa.int64(), pa.float64(), pa.bool_(), pa.string())
    return {f.name: f.type for f in schema if f.type in kept}


def _read_csv(path: Path, name: str, string_columns: list[str], wanted: list[str] | None,
              limits: ReadLimits | None) -> DataFile:
    if limits is not None:
        check_file_size(path, name, limits)
    names = csv_header(path, name, limits)  # the first line alone, before any row is parsed
    include = names if wanted is None else [c for c in names if c in wanted] or names[:1]
    strings = {c: pa.string() for c in string_columns}
    read = pa_csv.ReadOptions(block_size=limits.block_size if limits else read_limits.CSV_BLOCK_SIZE)
    # Types given to the reader (as the first block shows them, strings where asked): it converts each block
    # once and frees it. Inferring, it keeps every parsed block to the end in case a later one widens a
    # type: twice the table's memory. When a later block contradicts the first, the file is read again
    # with inference, as without the guess.
    guessed = {**_head_types(path, read, strings, include), **strings}
    attempts = [guessed, strings] if guessed != strings else [strings]
    error: pa.ArrowInvalid | None = None
    for newlines in (False, True):
        # Without line breaks in values, blocks parse in parallel; a quoted value spanning lines across a
        # block boundary then stops with an error (never a wrong table). Product descriptions and
        # addresses may hold line breaks: read again allowing them.
        parse = pa_csv.ParseOptions(newlines_in_values=newlines)
        for types in attempts:
            convert = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True, include_columns=include)
            try:
                return DataFile(pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert),
                                names)
            except pa.ArrowInvalid as exc:
                error = exc
                if "CSV parse error" in str(exc) or "newlines_in_values" in str(exc) or STRADDLING in str(exc):
                    break  # the same whatever the types
                if "utf8" in str(exc).lower() and types is strings:
                    _explain_csv_error(path, name, exc, limits)
    assert error is not None
    return _explain_csv_error(path, name, error, limits)


def _explain_csv_error(path: Path, name: str, exc: pa.ArrowInvalid, limits: ReadLimits | None) -> NoReturn:
    """Raise a DataReadError that says what is wrong and where."""
    message = str(exc)
    if STRADDLING in message:
        raise LimitExceeded(describe_long_record(path, name, limits)) from None
    if "utf8" in message.lower():
        raise DataReadError(f"{name}: {describe_bad_encoding(path)}") from None
    if "CSV parse error" in message:
        raise DataReadError(f"{name}: {describe_bad_csv(path)}") from None
    raise exc


def _read_parquet(path: Path, name: str, wanted: list[str] | None, limits: ReadLimits | None,
                  id_column: str | None) -> DataFile:
    """Without limits, the whole file. With them: the footer's size, then the columns and the decoded size in
    the metadata (fixed-width values over every row, and the pages' uncompressed bytes: a run-length encoded
    column is tiny on disk whatever its rows), then the wanted columns, text ones dictionary-encoded so that
    each dictionary value's length and what it expands to are checked before it expands."""
    if limits is None:
        table = pq.read_table(path)
        check_distinct(table.column_names, name)
        return DataFile(table, table.column_names)
    _check_footer(path, name)
    source = pq.ParquetFile(path)
    schema, metadata = source.schema_arrow, source.metadata
    if len(schema.names) > limits.max_columns:
        raise limits.too_many_columns(name, f"the file has {len(schema.names):,} columns")
    check_distinct(schema.names, name)
    columns = [c for c in schema.names if wanted is None or c in wanted]
    fixed = metadata.num_rows * sum(_row_width(schema.field(c).type) for c in columns)
    pages = 0
    for group in map(metadata.row_group, range(metadata.num_row_groups)):
        pages += sum(group.column(i).total_uncompressed_size for i in range(group.num_columns)
                     if group.column(i).path_in_schema.split(".")[0] in columns)
    if fixed + pages > limits.max_table_bytes:
        raise limits.too_large(name, fixed + pages)
    texts = [c for c in columns if read_limits.is_text(schema.field(c).type)]
    table = pq.ParquetFile(path, read_dictionary=texts).read(columns=columns, use_pandas_metadata=False)
    check_value_lengths(table, name, limits, id_column)
    expanded = fixed + sum(_expanded_bytes(table[c]) for c in texts)
    if expanded > limits.max_table_bytes:
        raise limits.too_large(name, expanded)
    for column in texts:  # within the limits: back to plain text, as the file declares it
        field = schema.field(column)
        table = table.set_column(table.column_names.index(column), field, table[column].cast(field.type))
    return DataFile(table, schema.names)


def _check_footer(path: Path, name: str) -> None:
    """A Parquet footer is parsed whole before anything else: refuse one far larger than any table needs."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() < 12:
            return  # not Parquet: the reader says so
        fh.seek(-8, 2)
        tail = fh.read(8)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] == b"PAR1" and footer > read_limits.MAX_FOOTER_BYTES:
        raise LimitExceeded(f"{name}: its Parquet footer (the metadata of its columns and row groups) is {size(footer)}; "
                            f"at most {size(read_limits.MAX_FOOTER_BYTES)}: write fewer columns or larger row groups")


def _row_width(kind: pa.DataType) -> int:
    """Bytes per row of a decoded column besides its text (offsets for text, 8 for anything nested)."""
    if pa.types.is_boolean(kind):
        return 1
    if read_limits.is_text(kind) or pa.types.is_dictionary(kind):
        return 8
    try:
        return max(kind.bit_width // 8, 1)
    except ValueError:
        return 8


def _expanded_bytes(column: pa.ChunkedArray) -> int:
    """The text bytes of a dictionary-encoded column once every row carries its value."""
    total = 0
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            total += pc.sum(pc.take(pc.binary_length(chunk.dictionary), chunk.indices)).as_py() or 0
        else:
            total += pc.sum(pc.binary_length(chunk)).as_py() or 0
    return total


def _read_jsonl(path: Path, name: str, string_columns: list[str], wanted: list[str] | None,
                limits: ReadLimits | None) -> DataFile:
    read = pa_json.ReadOptions()
    if limits is not None:
        check_file_size(path, name, limits)
        check_json_keys(path, name, limits)  # the reader makes a column of every key: counted first
        read = pa_json.ReadOptions(block_size=limits.block_size)
    try:
        table = pa_json.read_json(path, read_options=read)
    except pa.ArrowInvalid as exc:
        if STRADDLING in str(exc):
            raise LimitExceeded(f"{name}: a line is longer than {size(read.block_size)}"
                                + (f"; {limits.row_rule}" if limits else "")) from None
        raise
    check_distinct(table.column_names, name)
    columns = table.column_names
    if wanted is not None:
        table = table.select([c for c in columns if c in wanted])
    for column in string_columns:
        if column in table.column_names and table.schema.field(column).type != pa.string():
            index = table.column_names.index(column)
            table = table.set_column(index, column, pc.cast(table[column], pa.string()))
    return DataFile(table, columns)


def describe_bad_encoding(path: Path) -> str:
    """Say where the file stops being UTF-8 and what it looks like instead."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with open(path, "rb") as fh:
        ends = b"\n" if b"\n" in fh.read(1 << 20) else b"\r"  # old Mac files end lines with CR alone
        fh.seek(0)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += chunk[: exc.start].count(ends)
                guess = _guess_encoding(path)
                return (
                    f"not valid UTF-8 (byte 0x{chunk[exc.start]:02x} at line {line}, byte offset {bad}); "
                    f"it looks like {guess}. Re-save the file as UTF-8"
                )
            line += chunk.count(ends)
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
    """Find the first row whose quoting or field count is wrong (values as long as a row, not the csv
    module's 128 KB: a long value is no quoting error)."""
    limit = csv.field_size_limit(max(csv.field_size_limit(), read_limits.CSV_BLOCK_SIZE << 6))
    try:
        return _first_bad_row(path)
    finally:
        csv.field_size_limit(limit)


def _first_bad_row(path: Path) -> str:
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
