"""What reading one contributor's data file may cost, and the checks made before it is decoded.

The limits come from challenge.yaml's `intake` section. Each is checked on what is cheap to read first:
the file's first bytes (a gzip, ZIP or Parquet file named .csv, UTF-16), a CSV's header line, the keys of a
JSON Lines file (counted with one regular expression, never parsed into columns), a Parquet file's footer and
metadata; then, once read, each text value's length (on a Parquet column's dictionary, before it expands).
Every refusal is one line naming the file, the limit and what to do.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from challenge.core.config import IntakeSettings
from challenge.core.errors import DataReadError
from challenge.core.sniff import NUL_BYTES, PARQUET, TEXT_KINDS, binary_kind

CSV_BLOCK_SIZE = 1 << 20  # pyarrow's default; tests shrink it
ROW_BLOCKS_PER_VALUE = 4  # a CSV or JSON Lines row may be this many times the longest value allowed
MAX_FOOTER_BYTES = 64 << 20  # a Parquet footer (the schema and every row group's metadata)
# A key of a JSON object: `"name":` right after `{` or `,`. Inside a valid JSON string no unescaped quote
# follows `{` or `,`, so each match is a real key (nested ones included: they become struct fields).
_JSON_KEY = re.compile(rb'[{,]\s*"([^"\\]*(?:\\.[^"\\]*)*)"\s*:')


class LimitExceeded(DataReadError):
    """A data file over one of the intake limits (the gate's data_file_within_limits check); `column` is the
    column at fault, if one is."""

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


def size(n: float) -> str:
    """Bytes of a value or a file, for people: `10.0 MB`, `512.0 KB`."""
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.1f} KB"


def _limit(kb: float) -> str:
    """A limit as configured: `1 MB`, `4 MB`, `512 KB`."""
    return f"{kb / 1024:g} MB" if kb >= 1024 else f"{kb:g} KB"


@dataclass(frozen=True)
class ReadLimits:
    """The bounds of one data file: columns, size of a single text value, decoded size of the table."""

    max_columns: int = 1000
    max_value_kb: float = 1024
    max_table_mb: float = 4096

    @classmethod
    def from_settings(cls, intake: IntakeSettings) -> "ReadLimits":
        return cls(intake.max_columns, intake.max_value_kb, intake.max_table_mb)

    @property
    def max_value_bytes(self) -> int:
        return int(self.max_value_kb * 1024)

    @property
    def max_table_bytes(self) -> int:
        return int(self.max_table_mb * (1 << 20))

    @property
    def block_size(self) -> int:
        """The CSV and JSON Lines readers' block: the longest row they can read."""
        return max(CSV_BLOCK_SIZE, ROW_BLOCKS_PER_VALUE * self.max_value_bytes)

    @property
    def value_rule(self) -> str:
        return f"at most {_limit(self.max_value_kb)} (intake.max_value_kb in challenge.yaml)"

    @property
    def row_rule(self) -> str:
        return f"a row may be at most {_limit(self.block_size / 1024)} and a value {self.value_rule}"

    def too_many_columns(self, name: str, what: str) -> LimitExceeded:
        return LimitExceeded(
            f"{name}: {what}; at most {self.max_columns:,} columns (intake.max_columns in challenge.yaml): "
            "declare the columns you use in task.yaml and keep only those in the file")

    def too_large(self, name: str, decoded: float) -> LimitExceeded:
        return LimitExceeded(
            f"{name}: decodes to {size(decoded)}, more than intake.max_table_mb ({self.max_table_mb:g} MB) in "
            "challenge.yaml: keep only the declared columns, split the data, or ask the organizers to raise the limit")


# ---- what a file is ---------------------------------------------------------------------------------------

_FORMATS = {".csv": "a CSV", ".jsonl": "JSON Lines", ".parquet": "a Parquet file"}


def check_file_kind(path: Path, name: str) -> None:
    """Refuse a file whose first bytes show it is not what its extension says (challenge/sniff.py tells what
    it is; one line: what it is, what to do)."""
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(4096)
    expected = _FORMATS.get(suffix, suffix)
    what = binary_kind(head)
    if suffix == ".parquet":
        if what == PARQUET or not head:
            return
        if what is None or what in TEXT_KINDS:
            what, hint = "text", (f"if it is a CSV or JSON Lines file, name it {path.stem}.csv or {path.stem}.jsonl "
                                  "(and data: in task.yaml)")
        elif what == NUL_BYTES:
            what, hint = "not Parquet", "write it with pandas' to_parquet or pyarrow"
        else:
            hint = "decompress it and drop the .parquet itself" if "compressed" in what else "export it as Parquet"
        raise DataReadError(f"{name}: the file is {what}, not a Parquet file (it does not start with PAR1); {hint}")
    if what in TEXT_KINDS:
        raise DataReadError(f"{name}: the file is {what.split()[0]} encoded; re-save it as UTF-8")
    if what == PARQUET:
        raise DataReadError(f"{name}: the file is a Parquet file, not {expected}; name it {path.stem}.parquet "
                            "(and data: in task.yaml)")
    if what == NUL_BYTES:
        raise DataReadError(f"{name}: the file holds binary data (NUL bytes), not {expected} text; export it as UTF-8 text")
    if what is not None:
        fix = f"decompress it and drop the {suffix} itself" if "compressed" in what else f"export it as {expected} (UTF-8)"
        raise DataReadError(f"{name}: the file is {what}, not {expected}; {fix}")


def check_file_size(path: Path, name: str, limits: ReadLimits) -> None:
    """A CSV or JSON Lines table decodes to about the size of its text (numbers to a few times theirs)."""
    if path.stat().st_size > limits.max_table_bytes:
        raise limits.too_large(name, path.stat().st_size)


# ---- a CSV's header ------------------------------------------------------------------------------------


def csv_header(path: Path, name: str, limits: ReadLimits | None) -> list[str]:
    """The column names on a CSV's first line (read alone, at most one block), checked against the column
    limit; a first line longer than a block is refused (it cannot be the header)."""
    block = limits.block_size if limits else CSV_BLOCK_SIZE
    with open(path, "rb") as fh:
        head = fh.read(block + 1)
    head = head.removeprefix(codecs.BOM_UTF8)
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends and len(head) > block:
        raise LimitExceeded(f"{name}: the first line is longer than {_limit(block / 1024)}; it should be the header (the column "
                            "names, comma-separated, one row per line): check that the file is a CSV")
    line = head[:min(ends)] if ends else head
    try:
        names = next(csv.reader([line.decode("utf-8", "replace")]), [])
    except csv.Error:  # a name over the csv module's field limit (128 KB)
        raise LimitExceeded(f"{name}: a column name in the header is longer than 128 KB; name the columns briefly") from None
    if limits and len(names) > limits.max_columns:
        raise limits.too_many_columns(name, f"the header has {len(names):,} columns")
    check_distinct(names, name)
    return names


def check_distinct(names: list[str], name: str) -> None:
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        shown = ", ".join(repeated[:10]) + (f" and {len(repeated) - 10} more" if len(repeated) > 10 else "")
        raise DataReadError(f"{name}: column names appear more than once: {shown}; rename them")


def describe_long_record(path: Path, name: str, limits: ReadLimits | None) -> str:
    """Which row of a CSV is longer than the reader's block: a long line, or a quoted value spanning lines."""
    block = limits.block_size if limits else CSV_BLOCK_SIZE
    rule = limits.row_rule if limits else f"a row may be at most {_limit(block / 1024)}"
    with open(path, "rb") as fh:
        ends = b"\n" if b"\n" in fh.read(block) else b"\r"
        fh.seek(0)
        inside, start, length = False, 1, 0
        for number, line in enumerate(_lines(fh, ends), start=1):
            if not inside:
                start, length = number, 0
            length += len(line)
            if not inside and len(line) > block:
                return f"{name}: line {number} is {size(len(line))} long; {rule}: shorten the long values or leave them out"
            inside ^= line.count(b'"') % 2 == 1
            if length > block:
                return (f"{name}: the record starting at line {start} is longer than {_limit(block / 1024)} (a quoted "
                        "value with line breaks, or a quote that is never closed)"
                        + (f"; a value may be {limits.value_rule}" if limits else ""))
    return f"{name}: a row is longer than the reader's block; {rule}"


def _lines(fh, ends: bytes):  # noqa: ANN001, ANN202 (a binary file; its lines split on `ends`)
    if ends == b"\n":
        yield from fh
        return
    rest = b""
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        *complete, rest = (rest + chunk).split(ends)
        yield from complete
    if rest:
        yield rest


# ---- a JSON Lines file's keys -------------------------------------------------------------------------


def check_json_keys(path: Path, name: str, limits: ReadLimits) -> None:
    """Count the distinct keys and the lines of a JSON Lines file before it is parsed: the reader makes a column
    of every key over every line, so 50,000 keys in one line of a few MB decode to gigabytes of nulls."""
    block = limits.block_size
    keys: set[bytes] = set()
    lines, rest = 0, b""
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > block:
                raise LimitExceeded(f"{name}: line {lines + 1} is longer than {_limit(block / 1024)}; "
                                    f"{limits.row_rule}: shorten the long values or leave them out")
            keys.update(_JSON_KEY.findall(data, 0, cut))
            lines += data.count(b"\n", 0, cut)
            rest = data[cut:]
            if len(keys) > limits.max_columns:
                raise limits.too_many_columns(name, f"the lines hold at least {len(keys):,} distinct keys")
    keys.update(_JSON_KEY.findall(rest))
    lines += bool(rest.strip())
    if len(keys) > limits.max_columns:
        raise limits.too_many_columns(name, f"the lines hold {len(keys):,} distinct keys")
    decoded = len(keys) * lines * 8 + path.stat().st_size  # each key a column over every line, and the values
    if decoded > limits.max_table_bytes:
        raise limits.too_large(name, decoded)


# ---- text values --------------------------------------------------------------------------------------


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
        or pa.types.is_large_binary(kind)


def check_value_lengths(table: pa.Table, name: str, limits: ReadLimits, id_column: str | None) -> None:
    """Refuse a text value longer than the limit, naming its column, row and id (for a Parquet dictionary
    column, on the dictionary: before any row expands)."""
    for column in table.column_names:
        values = table[column]
        kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
        if not is_text(kind):
            continue
        offset = 0
        for chunk in values.chunks:
            lengths = pc.binary_length(chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk)
            longest = pc.max(lengths).as_py() or 0
            if longest > limits.max_value_bytes:
                over = pc.greater(lengths, limits.max_value_bytes)
                if pa.types.is_dictionary(chunk.type):
                    over = pc.is_in(chunk.indices, value_set=pc.indices_nonzero(over).cast(chunk.indices.type))
                row = offset + pc.index(pc.fill_null(over, False), True).as_py()
                where = f"row {row + 1}" if row >= offset else "a row"
                if id_column and id_column in table.column_names and id_column != column and row >= offset:
                    where += f", {id_column} {table[id_column][row].as_py()}"
                raise LimitExceeded(f"{name}: '{column}' holds a value of {size(longest)} ({where}); "
                                    f"a value may be {limits.value_rule}: shorten it or leave it out", column)
            offset += len(chunk)
