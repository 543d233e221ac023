"""Reading contributors' files: formats, line breaks inside values, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import challenge.tasks.intake.read_limits as read_limits
import challenge.tasks.intake.read_tables as read_tables
from challenge.core.errors import DataReadError
from challenge.core.task_spec import snake_case
from challenge.tasks.intake.read_tables import read_table


def test_line_breaks_inside_quoted_values_survive_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": f"{i:04d}", "text": f"line one of {i}\nline two, with a comma\n\nand a blank line", "n": i} for i in range(400)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    monkeypatch.setattr(read_limits, "CSV_BLOCK_SIZE", 1024)  # many blocks, most cut inside a value
    table = read_table(tmp_path / "t.csv", "t.csv", ["id", "text"])
    assert table.num_rows == 400
    assert table.column("text").to_pylist() == [r["text"] for r in rows]
    assert table.column("id").to_pylist()[:2] == ["0000", "0001"]  # string columns keep leading zeros


def test_jsonl_and_parquet_keep_string_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5]})
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.jsonl", "t.jsonl", ["id"]).column("id").to_pylist() == ["1", "2", "3"]
    assert read_table(tmp_path / "t.parquet", "t.parquet", ["id"]).num_rows == 3


def test_duplicate_header_names(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,a,a\n1,2,3\n")
    with pytest.raises(DataReadError, match="d.csv: column names appear more than once: a"):
        read_table(tmp_path / "d.csv", "d.csv")


def test_utf16_is_named(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_bytes("id,text\n1,héllo\n".encode("utf-16"))
    with pytest.raises(DataReadError, match="UTF-16"):
        read_table(tmp_path / "u.csv", "u.csv", ["id", "text"])


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "c.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataReadError, match="c.parquet: cannot be read as parquet"):
        read_table(tmp_path / "c.parquet", "c.parquet")


@pytest.mark.parametrize(("name", "expected"), [
    ("Bill Length (mm)", "bill_length_mm"), ("camelCaseName", "camel_case_name"),
    ("  spaced  out ", "spaced_out"), ("2nd place", "c_2nd_place"), ("ÄÖ", "column"),
])
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_types_from_the_first_block_give_way_to_later_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first block looks like integers; later blocks hold a decimal and a word: read as if inferred whole.
    lines = ["id,n,m,k"] + [f"{i},{i},{i},{i}" for i in range(2000)] + ["x,1.5,word,7"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(read_limits, "CSV_BLOCK_SIZE", 1024)
    table = read_table(tmp_path / "t.csv", "t.csv", ["id"])
    assert [str(t) for t in table.schema.types] == ["string", "double", "string", "int64"]
    assert table.column("n").to_pylist()[-2:] == [1999.0, 1.5]
    assert table.column("m").to_pylist()[-2:] == ["1999", "word"]
    assert table.column("id").to_pylist()[:2] == ["0", "1"]


def test_a_file_with_line_breaks_in_values_is_parsed_twice_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"id": f"{i:04d}", "text": f"line one of {i}\nline two", "n": i, "x": i / 2} for i in range(4000)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    monkeypatch.setattr(read_limits, "CSV_BLOCK_SIZE", 4096)
    reads = []
    read_csv = read_tables.pa_csv.read_csv
    monkeypatch.setattr(read_tables.pa_csv, "read_csv", lambda *a, **k: reads.append(k) or read_csv(*a, **k))
    table = read_table(tmp_path / "t.csv", "t.csv", ["id", "text"])
    assert [str(t) for t in table.schema.types] == ["string", "string", "int64", "double"]
    assert table.column("text").to_pylist()[-1] == "line one of 3999\nline two"
    # a parse error is the same whatever the column types: the second read allows line breaks at once
    assert [k["parse_options"].newlines_in_values for k in reads] == [False, True]
    assert reads[-1]["convert_options"].column_types["n"] == pa.int64()  # types given, not inferred
