"""Organizers' fixes of wrong labels in a released task's hidden answer key (`corrections.csv`).

A corrections file has exactly the columns id,label: one row per label to fix, the id being a
published test id of the answer key. This module is pure logic on bytes and tables (no storage,
no Prefect): read_corrections checks a file against the answer key and the task's classes,
apply_corrections fixes the answer key, and fix_staged_labels / fix_staged_pairs carry the same
fixes into the staged (pre-release) tables through the private id maps, so a rebuilt release
keeps them.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from challenge.core.errors import ChallengeError
from challenge.tasks.scoring.submissions import id_label_problem

MAX_CORRECTION_BYTES = 50 * 1024 * 1024
MAX_EXAMPLES = 5  # examples shown in a message, then ", …"
MAX_CLASSES_LISTED = 20  # the valid classes are listed when the task has at most this many
MAX_SHOWN = 60  # characters of a value from the file shown in a message
COLUMNS = ("id", "label")
PAIR_KEY_SEPARATOR = "\x1f"  # joins left and right original ids into one key (as tasks/release/build.py does)
BOM = b"\xef\xbb\xbf"
PUBLISHED_IDS = "corrections fix the answer key: use the published test ids of the answer key (not train ids or original ids)"
MATCHING_LABELS = ("0", "1")


class CorrectionError(ChallengeError):
    """A corrections file (or a correction applied to a table) is wrong; the message names the file,
    the column, the line and/or the id, and says what to do."""


def _shown(text: object, limit: int = MAX_SHOWN) -> str:
    """A value from the file, on one line and cut for a message: `abc…` past `limit` characters."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _listed(examples: list[str], total: int) -> str:
    """At most MAX_EXAMPLES examples, then ", …" when there are more."""
    return ", ".join(examples[:MAX_EXAMPLES]) + (", …" if total > MAX_EXAMPLES else "")


def _and(words: list[str]) -> str:
    """'2', '2 and 5', '2, 5 and 9'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One array of pa.string() (large strings, dictionaries and numbers cast)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values if values.type == pa.string() else pc.cast(values, pa.string())


def _blank(values: pa.Array) -> np.ndarray:
    """True where a value is null or empty."""
    return pc.fill_null(pc.equal(values, ""), True).to_numpy(zero_copy_only=False)


def _positions(keys: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Index of each key in `value_set` (its first occurrence), -1 where it is absent."""
    return pc.fill_null(pc.index_in(keys, value_set=value_set), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _record_lines(data: bytes) -> np.ndarray:
    """The 1-based line on which each non-empty CSV record starts (the header first).

    Line ends are \\n, \\r\\n or a lone \\r; a line end inside double quotes (an odd number of
    quotes before it) continues the record; empty lines are skipped, as pyarrow skips them.
    A quote in the middle of an unquoted value can fool this: callers check the count.
    """
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero((buf == 10) | ((buf == 13) & (np.append(buf[1:], 0) != 10)))
    quotes = np.flatnonzero(buf == 34)
    record_ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
    starts, stops = np.concatenate(([0], record_ends + 1)), np.append(record_ends, len(buf))
    first = buf[np.minimum(starts, len(buf) - 1)] if len(buf) else np.zeros(len(starts), np.uint8)
    empty = (stops <= starts) | ((stops - starts == 1) & (first == 13))  # "" or the "\r" of an empty \r\n line
    return np.searchsorted(ends, starts[~empty]) + 1


class _Lines:
    """Where data rows sit in the file, worked out only when a message needs it."""

    def __init__(self, data: bytes, rows: int):
        self.data, self.rows = data, rows
        self._lines: np.ndarray | None = None

    @property
    def known(self) -> bool:
        """Whether file lines can be told (else data rows are numbered: a stray quote fools _record_lines)."""
        if self._lines is None:
            self._lines = _record_lines(self.data)
        return len(self._lines) == self.rows + 1

    def number(self, row: int) -> int:
        """The 1-based file line of a 0-based data row (the header is line 1), or its 1-based data row number."""
        return int(self._lines[row + 1]) if self.known else row + 1

    def of(self, row: int) -> str:
        """'line N' (or 'data row N') of a 0-based data row."""
        return f"{'line' if self.known else 'data row'} {self.number(row)}"

    def of_rows(self, rows: np.ndarray) -> str:
        """'lines 2 and 5' (or 'data rows 1 and 4'), at most MAX_EXAMPLES of them."""
        numbers = [str(self.number(r)) for r in rows[:MAX_EXAMPLES]] + (["…"] if len(rows) > MAX_EXAMPLES else [])
        return f"{'line' if self.known else 'data row'}{'s' if len(rows) > 1 else ''} {_and(numbers)}"


def _header(body: bytes) -> list[str]:
    """The column names on the first non-empty line (after the byte-order mark), as pyarrow reads them."""
    body = body.lstrip(b"\r\n")
    end = min((i for i in (body.find(b"\n"), body.find(b"\r")) if i >= 0), default=len(body))
    line = body[:end].decode("utf-8")  # the caller checked the encoding
    return next(csv.reader([line]), []) if line else []


def _parse_failure(name: str, data: bytes, invalid: list, exc: Exception) -> CorrectionError:
    """A CorrectionError for a file pyarrow cannot parse: the row it stopped at, or pyarrow's first message line."""
    if invalid:
        row = invalid[0]
        where = " a row"
        if row.number is not None:  # pyarrow counts non-empty records, the header being 1
            lines = _record_lines(data) if b'"' not in data else None  # exact when nothing is quoted
            where = (f" line {lines[row.number - 1]}" if lines is not None and row.number <= len(lines)
                     else f" record {row.number} (the header is record 1)")
        return CorrectionError(
            f"{_shown(name)} cannot be read as CSV:{where} has {row.actual_columns} column(s), expected "
            f"{row.expected_columns} ({_shown(row.text)}): write two columns id,label on every row, quoting a value "
            "that holds a comma")
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return CorrectionError(f"{_shown(name)} cannot be read as CSV: {_shown(first, 110)}: save it as a comma-separated file "
                           "with the columns id,label")


def read_corrections(data: bytes, name: str, answers: pa.Table, classes: pa.Array) -> pa.Table:
    """The corrections as a table (id, label: strings, in file order), every row checked; CorrectionError otherwise.

    `answers` is the task's answer key (published test ids), `classes` its valid labels ("0"/"1"
    for matching). Surrounding whitespace of ids and labels is dropped; a UTF-8 byte-order mark
    is allowed. Every problem of the rows is reported in one message.
    """
    file = _shown(name)
    if len(data) > MAX_CORRECTION_BYTES:
        raise CorrectionError(f"{file} is {len(data):,} bytes, more than the {MAX_CORRECTION_BYTES:,} allowed for "
                              "corrections: list only the test ids whose label is wrong, one row id,label each")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorrectionError(f"{file} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save it as "
                              "UTF-8 (\"CSV UTF-8\" in a spreadsheet; pandas writes UTF-8)") from None
    body = data.removeprefix(BOM)
    if not body.strip():
        raise CorrectionError(f"{file} is empty: no corrections. Write the header id,label and one row per label to fix")
    problem = id_label_problem(_header(body), parquet=False)
    if problem:
        raise CorrectionError(f"{file}: {problem}")
    invalid: list = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        invalid.append(row)
        return "error"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(use_threads=False),  # rows numbered in a parse error
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in COLUMNS}, include_columns=list(COLUMNS),
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except Exception as exc:  # noqa: BLE001 (whatever pyarrow makes of the organizer's bytes)
        raise _parse_failure(name, data, invalid, exc) from None
    if table.num_rows == 0:
        raise CorrectionError(f"{file} has the header id,label but no rows: no corrections. Add one row id,label "
                              "per label to fix")
    ids = pc.utf8_trim_whitespace(_text(table["id"]))
    labels = pc.utf8_trim_whitespace(_text(table["label"]))
    problems = _row_problems(ids, labels, _Lines(data, table.num_rows), answers, classes)
    if problems:
        raise CorrectionError(f"{file}: " + "; ".join(problems))
    return pa.table({"id": ids, "label": labels})


def _row_problems(ids: pa.Array, labels: pa.Array, lines: _Lines, answers: pa.Table, classes: pa.Array) -> list[str]:
    """Empty, repeated and unknown ids, empty and unknown labels, each with a few examples."""
    problems = []
    no_id, no_label = _blank(ids), _blank(labels)
    if no_id.any():
        rows = np.flatnonzero(no_id)
        problems.append(f"the id column is empty on {len(rows)} row(s) ({lines.of_rows(rows)}): "
                        "give each row the published test id whose label is wrong")
    if no_label.any():
        rows = np.flatnonzero(no_label)
        shown = [f"{lines.of(r)} (id {_shown(ids[r].as_py())})" for r in rows[:MAX_EXAMPLES]]
        problems.append(f"the label column is empty on {len(rows)} row(s) ({_listed(shown, len(rows))}): "
                        "give each row its correct label")
    encoded = pc.dictionary_encode(ids)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(codes, minlength=len(encoded.dictionary))
    repeated = np.flatnonzero((counts > 1) & ~_blank(encoded.dictionary))  # codes follow first appearance
    if len(repeated):
        shown = []
        for code in repeated[:MAX_EXAMPLES]:
            rows = np.flatnonzero(codes == code)
            shown.append(f"{_shown(encoded.dictionary[code].as_py())} on {lines.of_rows(rows)}")
        problems.append(f"the id column repeats {len(repeated)} id(s) ({_listed(shown, len(repeated))}): "
                        "keep one row per id, with its correct label")
    known = pc.is_in(ids, value_set=_text(answers["id"])).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(~known & ~no_id)
    if len(unknown):
        shown = [f"{lines.of(r)}: {_shown(ids[r].as_py())}" for r in unknown[:MAX_EXAMPLES]]
        problems.append(f"the id column has {len(unknown)} id(s) not in the answer key ({_listed(shown, len(unknown))}): "
                        f"{PUBLISHED_IDS}")
    valid = _text(classes)
    outside = np.flatnonzero(~pc.is_in(labels, value_set=valid).to_numpy(zero_copy_only=False) & ~no_label)
    if len(outside):
        shown = [f"{lines.of(r)}: {_shown(labels[r].as_py())}" for r in outside[:MAX_EXAMPLES]]
        names = valid.to_pylist()
        choices = (f"use one of the valid classes: {', '.join(_shown(c) for c in names)}" if len(names) <= MAX_CLASSES_LISTED
                   else f"use one of the task's {len(names)} classes, written exactly as in the answer key")
        problems.append(f"the label column has {len(outside)} label(s) that are not classes of this task "
                        f"({_listed(shown, len(outside))}): {choices}")
    return problems


def _string_columns(table: pa.Table) -> pa.Table:
    """The table with large-string and dictionary-of-string columns as pa.string()."""
    def plain(kind: pa.DataType) -> bool:
        return pa.types.is_large_string(kind) or (pa.types.is_dictionary(kind) and (
            pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)))
    fields = [f.with_type(pa.string()) if plain(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _corrections(corrections: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The ids and labels of a corrections table; CorrectionError when an id repeats."""
    ids, labels = _text(corrections["id"]), _text(corrections["label"])
    counts = pc.value_counts(ids)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        shown = [_shown(v) for v in repeated.slice(0, MAX_EXAMPLES).to_pylist()]
        raise CorrectionError(f"corrections: the id column repeats {len(repeated)} id(s) ({_listed(shown, len(repeated))}): "
                              "read the file with read_corrections, which refuses repeated ids")
    return ids, labels


def _relabel(table: pa.Table, column: str, labels: pa.Array, position: np.ndarray) -> tuple[pa.Table, int]:
    """`table` with labels[position[i]] in `column` wherever position[i] >= 0 (cast to the column's type),
    and how many values changed."""
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    old = table[column].combine_chunks()
    if pa.types.is_dictionary(old.type):
        old = old.dictionary_decode()
    hit = position >= 0
    if not hit.any():
        return table, 0
    try:
        new = pc.cast(labels, old.type).take(pa.array(np.where(hit, position, 0)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CorrectionError(f"corrections: a label cannot be written to the {column} column ({field.type}): "
                              f"{_shown(str(exc).splitlines()[0], 110)}") from None
    mask = pa.array(hit)
    merged = pc.if_else(mask, new, old)
    before, after = old.filter(mask), merged.filter(mask)
    same = pc.fill_null(pc.equal(before, after), pc.and_(pc.is_null(before), pc.is_null(after)))
    changed = int(len(same) - (pc.sum(same).as_py() or 0))
    return table.set_column(index, field, pc.cast(merged, field.type)), changed


def apply_corrections(answers: pa.Table, corrections: pa.Table) -> tuple[pa.Table, int]:
    """The answer key with the corrected labels (same rows, order, columns and types as `answers`, strings as
    pa.string()), and how many labels actually changed (a correction to the label already there counts 0).

    `corrections` is what read_corrections returned for this key; an id it does not hold, or a
    repeated id, is a CorrectionError.
    """
    answers = _string_columns(answers)
    ids, labels = _corrections(corrections)
    key_ids = _text(answers["id"])
    unknown = pc.filter(ids, pc.invert(pc.is_in(ids, value_set=key_ids)))
    if len(unknown):
        shown = [_shown(v) for v in unknown.slice(0, MAX_EXAMPLES).to_pylist()]
        raise CorrectionError(f"corrections: the id column has {len(unknown)} id(s) not in the answer key "
                              f"({_listed(shown, len(unknown))}): {PUBLISHED_IDS}")
    return _relabel(answers, "label", labels, _positions(key_ids, ids))


def fix_staged_labels(staged: pa.Table, id_map: pa.Table, corrections: pa.Table) -> tuple[pa.Table, int]:
    """Classification: the staged `data` table with the corrected labels, matched by original id through id_map
    (published id → original_id); same schema. Returns the table and how many rows changed.

    A correction whose published id is not in id_map, or whose original id is no longer in the
    staged table (the staged data changed since the release), is skipped: the count is of the
    staged rows whose label actually changed, so it is below apply_corrections' count when some
    were skipped.
    """
    ids, labels = _corrections(corrections)
    where = _positions(ids, _text(id_map["id"]))
    mapped = where >= 0
    originals = _text(id_map["original_id"]).take(pa.array(where[mapped]))
    position = _positions(_text(staged["id"]), originals)
    return _relabel(staged, "label", labels.filter(pa.array(mapped)), position)


def _pair_keys(left: pa.Array, right: pa.Array) -> pa.Array:
    """One string per (left, right) pair of original record ids."""
    return pc.binary_join_element_wise(left, right, PAIR_KEY_SEPARATOR)


def fix_staged_pairs(pairs: pa.Table, pair_id_map: pa.Table, corrections: pa.Table) -> tuple[pa.Table, int]:
    """Matching: the staged `pairs` table (left_id, right_id, label int8) with corrected labels, matched through
    pair_id_map (id → left_original, right_original); same schema (label stays int8).

    Labels must be "0" or "1" (CorrectionError otherwise). A correction whose pair id is not in
    pair_id_map, or whose (left, right) pair is no longer staged, is skipped: the count is of the
    staged pairs whose label actually changed.
    """
    ids, labels = _corrections(corrections)
    wrong = pc.filter(labels, pc.invert(pc.fill_null(pc.is_in(labels, value_set=pa.array(MATCHING_LABELS)), False)))
    if len(wrong):
        shown = [_shown(v) for v in wrong.slice(0, MAX_EXAMPLES).to_pylist()]
        raise CorrectionError(f"corrections: the label column has {len(wrong)} label(s) that are not 0 or 1 "
                              f"({_listed(shown, len(wrong))}): a pair's label is 1 (match) or 0 (no match)")
    where = _positions(ids, _text(pair_id_map["id"]))
    mapped = where >= 0
    rows = pa.array(where[mapped])
    keys = _pair_keys(_text(pair_id_map["left_original"]).take(rows), _text(pair_id_map["right_original"]).take(rows))
    position = _positions(_pair_keys(_text(pairs["left_id"]), _text(pairs["right_id"])), keys)
    return _relabel(pairs, "label", labels.filter(pa.array(mapped)), position)
