"""corrections.csv: organizers' fixes of wrong labels in a released answer key (pure logic, no storage)."""

from __future__ import annotations

import pyarrow as pa
import pytest

import challenge.tasks.corrections.file_checks as corrections_module
from challenge.tasks.corrections.file_checks import (
    CorrectionError,
    apply_corrections,
    fix_staged_labels,
    fix_staged_pairs,
    read_corrections,
)

NAME = "corrections.csv"
IDS = [f"t{i:03d}" for i in range(10)]
LABELS = list("abcabcabca")  # t000=a, t001=b, t002=c, t003=a, ...
CLASSES = pa.array(["a", "b", "c"])
HINT = "use the published test ids of the answer key (not train ids or original ids)"


def answer_key(labels: list[str] = LABELS, classes: pa.Array = CLASSES) -> pa.Table:
    return pa.table({"id": pa.array(IDS, pa.string()), "label": pa.array(labels, pa.string()),
                     "usage": pa.array(["public", "private"] * 5, pa.string())})


def read(text: str | bytes, answers: pa.Table | None = None, classes: pa.Array = CLASSES) -> pa.Table:
    data = text.encode() if isinstance(text, str) else text
    return read_corrections(data, NAME, answer_key() if answers is None else answers, classes)


def refused(text: str | bytes, *expected: str, answers: pa.Table | None = None, classes: pa.Array = CLASSES) -> str:
    """The CorrectionError message for `text`, which names the file and holds every expected part."""
    with pytest.raises(CorrectionError) as caught:
        read(text, answers, classes)
    message = str(caught.value)
    assert NAME in message
    for part in expected:
        assert part in message, (part, message)
    return message


# --- reading a good file --------------------------------------------------------------------------------------------

def test_good_file_is_read_in_file_order_and_applied() -> None:
    corrections = read("id,label\nt003,c\nt001,b\nt000,b\n")  # t001 is already b
    assert corrections.schema == pa.schema([("id", pa.string()), ("label", pa.string())])
    assert corrections.to_pylist() == [{"id": "t003", "label": "c"}, {"id": "t001", "label": "b"},
                                       {"id": "t000", "label": "b"}]
    fixed, changed = apply_corrections(answer_key(), corrections)
    assert changed == 2  # the correction to the label already there counts 0
    expected = list(LABELS)
    expected[3], expected[0] = "c", "b"
    assert fixed["label"].to_pylist() == expected
    assert fixed["id"].to_pylist() == IDS and fixed["usage"].to_pylist() == answer_key()["usage"].to_pylist()
    assert fixed.schema == answer_key().schema


def test_a_correction_to_the_same_label_changes_nothing() -> None:
    fixed, changed = apply_corrections(answer_key(), read("id,label\nt001,b\n"))
    assert changed == 0
    assert fixed["label"].to_pylist() == LABELS


def test_bom_crlf_and_blank_lines_are_accepted() -> None:
    corrections = read(b"\xef\xbb\xbfid,label\r\n\r\nt002,a\r\n\r\n")
    assert corrections.to_pylist() == [{"id": "t002", "label": "a"}]


def test_whitespace_around_ids_and_labels_is_dropped() -> None:
    corrections = read("id,label\n  t004 ,\tc \n")
    assert corrections.to_pylist() == [{"id": "t004", "label": "c"}]
    assert apply_corrections(answer_key(), corrections)[1] == 1


def test_columns_in_the_other_order_are_read_by_name() -> None:
    assert read("label,id\nc,t004\n").to_pylist() == [{"id": "t004", "label": "c"}]


def test_large_string_answer_key() -> None:
    key = answer_key()
    large = key.cast(pa.schema([(f.name, pa.large_string()) for f in key.schema]))
    corrections = read("id,label\nt005,a\n", answers=large, classes=pa.array(["a", "b", "c"], pa.large_string()))
    fixed, changed = apply_corrections(large, corrections)
    assert changed == 1
    assert fixed.schema == key.schema  # strings come back as pa.string()
    assert fixed["label"][5].as_py() == "a" and fixed["label"][4].as_py() == "b"


# --- refused files ----------------------------------------------------------------------------------------------------

def test_unknown_id_is_named_with_its_line() -> None:
    refused("id,label\nt001,a\nt999,b\n", "t999", "line 3", "not in the answer key", HINT)


def test_train_or_original_id_is_refused() -> None:
    message = refused("id,label\nimg_0017.jpg,a\nr00042,b\n", "line 2: img_0017.jpg", "line 3: r00042", HINT)
    assert "2 id(s)" in message


def test_unknown_label_lists_the_valid_classes() -> None:
    refused("id,label\nt001,a\nt002,dog\n", "line 3: dog", "label column", "not classes", "valid classes: a, b, c")


def test_many_classes_are_not_listed() -> None:
    classes = pa.array([f"class{i}" for i in range(30)])
    message = refused("id,label\nt001,nope\n", "line 2: nope", "30 classes", classes=classes)
    assert "class29" not in message


def test_duplicate_id_names_both_lines() -> None:
    refused("id,label\nt001,a\nt002,b\nt001,c\n", "id column", "t001 on lines 2 and 4", "one row per id")


def test_line_numbers_count_blank_lines_and_quoted_line_breaks() -> None:
    refused('id,label\n\nt001,a\n"t0\n02",b\nt777,c\n', "line 3: t001", "line 4: t0\\n02", "line 6: t777",
            answers=answer_key()[2:])  # t001 not in this key


def test_problems_are_collected_in_one_message() -> None:
    message = refused("id,label\nt999,a\nt001,zz\n", "line 2: t999", "line 3: zz")
    assert message.count("; ") >= 1


def test_examples_stop_at_five() -> None:
    text = "id,label\n" + "".join(f"x{i},a\n" for i in range(8))
    message = refused(text, "8 id(s)", "x4", ", …")
    assert "x5" not in message


def test_long_values_are_cut() -> None:
    long_id = "z" * 500
    message = refused(f"id,label\n{long_id},a\n", "line 2", "…")
    assert "z" * 61 not in message


def test_wrong_columns_are_named() -> None:
    refused("id,class\nt001,a\n", "columns must be exactly id,label: missing label; unexpected class")
    refused("id\nt001\n", "missing label")
    refused("id,label,note\nt001,a,x\n", "unexpected note")
    refused("ID, label\nt001,a\n", "in lower case")
    message = refused("id;label\nt001;a\n", "separate the columns with commas")
    assert "Parquet" not in message  # corrections are CSV only


def test_pandas_index_column_gets_the_hint() -> None:
    refused(",id,label\n0,t001,a\n", "index=False")
    refused("Unnamed: 0,id,label\n0,t001,a\n", "index=False")


def test_empty_file_and_header_only() -> None:
    refused(b"", "empty", "no corrections")
    refused(b"\xef\xbb\xbf\n", "empty", "no corrections")
    refused("id,label\n", "no rows", "no corrections")


def test_not_utf8_names_the_line() -> None:
    refused(b"id,label\nt001,caf\xe9\n", "not UTF-8", "line 2", "0xe9")


def test_malformed_csv_names_the_line() -> None:
    refused("id,label\nt001,a\nt002,b,extra\n", "cannot be read as CSV", "line 3", "3 column(s)")


def test_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corrections_module, "MAX_CORRECTION_BYTES", 20)
    refused("id,label\nt001,a\nt002,b\n", "bytes", "more than the 20")
    monkeypatch.setattr(corrections_module, "MAX_CORRECTION_BYTES", 1000)
    assert read("id,label\nt001,a\nt002,b\n").num_rows == 2


def test_empty_label_and_empty_id() -> None:
    refused("id,label\nt001,\nt002,a\n", "label column is empty", "line 2 (id t001)")
    refused('id,label\nt001,a\n ,b\n"",c\n', "id column is empty on 2 row(s)", "lines 3 and 4")


# --- matching keys ----------------------------------------------------------------------------------------------------

def test_matching_labels_are_0_or_1() -> None:
    binary = pa.array(["0", "1"])
    key = answer_key(labels=["0", "1"] * 5, classes=binary)
    corrections = read("id,label\nt000,1\nt001,1\n", answers=key, classes=binary)
    fixed, changed = apply_corrections(key, corrections)
    assert changed == 1 and fixed["label"].to_pylist()[:3] == ["1", "1", "0"]
    refused("id,label\nt000,2\n", "line 2: 2", "valid classes: 0, 1", answers=key, classes=binary)


def test_apply_refuses_ids_outside_the_key() -> None:
    with pytest.raises(CorrectionError, match="t999"):
        apply_corrections(answer_key(), pa.table({"id": ["t999"], "label": ["a"]}))


# --- staged tables --------------------------------------------------------------------------------------------------

def test_fix_staged_labels_changes_exactly_the_mapped_rows() -> None:
    staged = pa.table({"id": pa.array(["o1", "o2", "o3", "o4"]), "x": pa.array([1.0, 2.0, 3.0, 4.0]),
                       "label": pa.array(["a", "b", "c", "a"])})
    id_map = pa.table({"id": ["t000", "t001", "t002", "t003", "t004"], "original_id": ["o3", "o1", "o4", "o2", "gone"]})
    corrections = pa.table({"id": ["t000", "t001", "t004", "t009", "t003"], "label": ["a", "c", "b", "b", "b"]})
    fixed, changed = fix_staged_labels(staged, id_map, corrections)
    # t000→o3 c→a, t001→o1 a→c, t003→o2 b→b (same), t004→"gone" (no staged row) and t009 (not in id_map) skipped
    assert changed == 2
    assert fixed["label"].to_pylist() == ["c", "b", "a", "a"]
    assert fixed["id"].to_pylist() == staged["id"].to_pylist() and fixed["x"].to_pylist() == staged["x"].to_pylist()
    assert fixed.schema == staged.schema


def test_fix_staged_pairs_keeps_int8_labels() -> None:
    pairs = pa.table({"left_id": ["r1", "r1", "r2", "r3"], "right_id": ["r2", "r3", "r3", "r4"],
                      "label": pa.array([1, 0, 0, 1], pa.int8())})
    pair_map = pa.table({"id": ["p00", "p01", "p02", "p03"], "left_original": ["r2", "r1", "r3", "r9"],
                         "right_original": ["r3", "r2", "r4", "r9"]})
    corrections = pa.table({"id": ["p00", "p01", "p03", "p77"], "label": ["1", "1", "0", "0"]})
    fixed, changed = fix_staged_pairs(pairs, pair_map, corrections)
    # p00 (r2,r3) 0→1, p01 (r1,r2) 1→1 (same), p03 (r9,r9) not staged and p77 unmapped: skipped
    assert changed == 1
    assert fixed["label"].to_pylist() == [1, 0, 1, 1]
    assert fixed.schema == pairs.schema and fixed["label"].type == pa.int8()
    with pytest.raises(CorrectionError, match="not 0 or 1"):
        fix_staged_pairs(pairs, pair_map, pa.table({"id": ["p00"], "label": ["2"]}))
