"""Submission validation without storage: both id lookups (published numbered ids and any other ids)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from challenge.tasks.scoring.submissions import IdIndex, ParticipantVisibleError, validate

NUMBERED = ["p0003", "p0000", "p0007", "p0005"]
ARBITRARY = ["zeta", "alpha", "x-1", "Ω"]
CLASSES = pa.array(["a", "b"])


@pytest.mark.parametrize("ids", [NUMBERED, ARBITRARY])
def test_alignment_follows_the_test_ids_not_the_file_order(ids: list[str]) -> None:
    index = IdIndex(pa.array(ids))
    assert (index.lookup is not None) == (ids is NUMBERED)
    table = pa.table({"id": list(reversed(ids)), "label": ["a", "b", "b", "a"]})
    aligned = validate(table, index, CLASSES)
    assert aligned.dictionary_decode().to_pylist() == ["a", "b", "b", "a"][::-1]


@pytest.mark.parametrize("ids", [NUMBERED, ARBITRARY])
@pytest.mark.parametrize(("rows", "message"), [
    (lambda ids: {"id": ids + [ids[0]], "label": ["a"] * 5}, "1 id(s) appear more than once (e.g. {0})"),
    (lambda ids: {"id": ids[1:], "label": ["a"] * 3}, "1 test id(s) are missing (e.g. {0})"),
    (lambda ids: {"id": ids + ["p9999", "nope"], "label": ["a"] * 6}, "2 id(s) are not test ids (e.g. p9999, nope)"),
    (lambda ids: {"id": ids, "label": ["a", "c", "", None]}, "2 row(s) have an empty or NaN label"),
    (lambda ids: {"id": ids, "label": ["a", "c", "a", "NaN"]}, "1 label(s) are not classes of this task (e.g. c)"),
    (lambda ids: {"id": ids[:3] + [None], "label": ["a"] * 4}, "1 row(s) have no id"),
])
def test_each_problem_is_named_for_the_participant(ids: list[str], rows, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ParticipantVisibleError) as info:
        validate(pa.table(rows(ids)), IdIndex(pa.array(ids)), CLASSES)
    assert message.format(ids[0]) in str(info.value)


def test_columns_must_be_exactly_id_and_label() -> None:
    with pytest.raises(ParticipantVisibleError, match="missing label; unexpected pred, score"):
        validate(pa.table({"id": NUMBERED, "pred": ["a"] * 4, "score": [1] * 4}), IdIndex(pa.array(NUMBERED)), CLASSES)


def test_numeric_ids_and_labels_are_read_as_text() -> None:
    ids = ["10", "11", "12"]
    aligned = validate(pa.table({"id": [12, 10, 11], "label": [1.0, 0.0, 1.0]}), IdIndex(pa.array(ids)), pa.array(["0", "1"]))
    assert aligned.dictionary_decode().to_pylist() == ["0", "1", "1"]


def test_a_class_named_none_or_nan_is_a_class_when_the_task_has_it() -> None:
    classes = pa.array(["None", "Some"])
    aligned = validate(pa.table({"id": NUMBERED, "label": ["None", "Some", "None", "Some"]}), IdIndex(pa.array(NUMBERED)),
                       classes)
    assert aligned.dictionary_decode().to_pylist() == ["None", "Some", "None", "Some"]
    with pytest.raises(ParticipantVisibleError, match="1 row\\(s\\) have an empty or NaN label"):
        validate(pa.table({"id": NUMBERED, "label": ["None", "Some", "nan", "Some"]}), IdIndex(pa.array(NUMBERED)), classes)


def test_ids_with_other_digits_are_unknown_ids_not_a_crash() -> None:
    arabic = [i.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) for i in NUMBERED]
    with pytest.raises(ParticipantVisibleError, match="4 id\\(s\\) are not test ids"):
        validate(pa.table({"id": arabic, "label": ["a"] * 4}), IdIndex(pa.array(NUMBERED)), CLASSES)


def test_a_huge_header_is_refused_in_a_short_message_at_once() -> None:
    names = [f"c{i}" for i in range(100_000)]
    with pytest.raises(ParticipantVisibleError) as info:
        validate(pa.table({n: [1] for n in names[:50]}), IdIndex(pa.array(NUMBERED)), CLASSES)
    assert "the file has 50 columns" in str(info.value) and len(str(info.value)) < 300


def test_positions_of_published_ids_equal_a_hash_lookup_whatever_the_submitted_text() -> None:
    """The number-parsing fast path (fixed-width ids read straight from the Arrow buffers) finds the same
    positions as a plain hash lookup, for ids that only look alike: other digits, other widths, non-ASCII
    digits, nulls, a sliced array (an offset into its buffers)."""
    import numpy as np
    import pyarrow.compute as pc

    test = pa.array([f"t{n:05d}" for n in (3, 17, 42, 99999, 0)])
    index = IdIndex(test)
    submitted = pa.array(["t00042", "t00003", "x00003", "t0003", "t000042", "t00٤٢0", "t0004²", None, "t99999",
                          "t00000", "T00017", "t00017", "", "t-0001", "t00042 "] * 3).slice(2, 40)
    expected = pc.fill_null(pc.index_in(submitted, value_set=test), -1).to_numpy(zero_copy_only=False)
    assert index.positions(submitted).tolist() == expected.tolist()
    same_width = pa.array(["t00042", "t00017", "tx0017", "t0001/", "t0001:", "T00017", "t99999", "t00000"])
    assert index.positions(same_width).tolist() == [2, 1, -1, -1, -1, -1, 3, 4]  # one width in bytes: the fast path
    assert index.positions(same_width.slice(1, 3)).tolist() == [1, -1, -1]
    assert np.array_equal(index.positions(test), np.arange(5))


def test_published_ids_of_every_width_and_any_chunking_are_found() -> None:
    """Up to 8 digits the numbers are parsed in 32 bits, past it in 64; a column in chunks (as the CSV
    reader returns it) is looked up chunk by chunk, whichever path each chunk takes. Numbers far past
    the test set's size (not published ids) are looked up by hash, not in an array that large."""
    import numpy as np

    for width in (4, 8, 9, 12):
        test = pa.array([f"p{n:0{width}d}" for n in (0, 7, 3, 2)])
        index = IdIndex(test)
        assert index.lookup is not None
        submitted = pa.chunked_array([pa.array([f"p{2:0{width}d}", f"p{7:0{width}d}", "p" + "9" * width]),
                                      pa.array([f"p{0:0{width}d}", "p1", None]), pa.array([], pa.string())])
        assert index.positions(submitted).tolist() == [3, 1, -1, 0, -1, -1], width
        assert np.array_equal(index.positions(test), np.arange(4))
    every_fifth = IdIndex(pa.array([f"{n:06d}" for n in range(0, 100_000, 5)]))  # a test fraction of 0.2
    assert every_fifth.lookup is not None and every_fifth.positions(pa.array(["099995", "000005", "000006"])).tolist() == [
        19_999, 1, -1]
    sparse = IdIndex(pa.array(["p000000000000", "p999999999999"]))
    assert sparse.lookup is None and sparse.positions(pa.array(["p999999999999", "p000000000001"])).tolist() == [1, -1]


def test_the_aligned_labels_hold_only_the_classes_predicted() -> None:
    """The metrics take their label set from the dictionaries: a class nobody predicted is not in it."""
    classes = pa.array(["a", "b", "c"])
    table = pa.table({"id": NUMBERED, "label": pa.chunked_array([pa.array(["c", "a"]), pa.array(["c", "c"])])})
    aligned = validate(table, IdIndex(pa.array(NUMBERED)), classes)
    assert aligned.dictionary.to_pylist() == ["a", "c"]
    assert aligned.dictionary_decode().to_pylist() == ["c", "a", "c", "c"]


def test_parquet_labels_read_dictionary_encoded_are_aligned_across_row_groups() -> None:
    import io

    import pyarrow.parquet as pq

    from challenge.tasks.scoring.submissions import read_submission

    out = io.BytesIO()
    pq.write_table(pa.table({"id": NUMBERED, "label": ["b", "b", "a", "a"]}), out, row_group_size=2)
    table = read_submission(out.getvalue(), "sub.parquet", len(NUMBERED))
    assert pa.types.is_string(table["id"].type) and pa.types.is_dictionary(table["label"].type)
    assert validate(table, IdIndex(pa.array(NUMBERED)), CLASSES).dictionary_decode().to_pylist() == ["b", "b", "a", "a"]
    out = io.BytesIO()
    pq.write_table(pa.table({"id": NUMBERED, "label": ["b", "x", "a", None]}), out, row_group_size=2)
    with pytest.raises(ParticipantVisibleError, match="1 row\\(s\\) have an empty.*1 label\\(s\\) are not classes"):
        validate(read_submission(out.getvalue(), "sub.parquet", len(NUMBERED)), IdIndex(pa.array(NUMBERED)), CLASSES)


@pytest.mark.parametrize("first", ["p0000", None])
def test_a_huge_parquet_id_is_refused_from_its_dictionary_before_any_row_expands(first: str | None) -> None:
    """Ids are read as plain text (no hashing of a million distinct ids), so a dictionary page holding one
    huge id that every row repeats is read alone first and refused: the rows never expand (1,000 rows
    of 1.5 MB would be 1.5 GB). Past MAX_PEEKED_ROW_GROUPS row groups ids are read dictionary-encoded."""
    import io

    import numpy as np
    import pyarrow.parquet as pq

    from challenge.tasks.scoring.submissions import MAX_PEEKED_ROW_GROUPS, read_submission

    rows = 1000
    indices = pa.array([0 if first else None] + [1] * (rows - 1), pa.int32())
    huge = pa.DictionaryArray.from_arrays(indices, pa.array(["p0000", "9" * 1_500_000]))
    out = io.BytesIO()
    pq.write_table(pa.table({"id": huge, "label": ["a"] * rows}), out,
                   compression="zstd", dictionary_pagesize_limit=1 << 30, store_schema=False)
    with pytest.raises(ParticipantVisibleError, match="a value of the id column is 1500000 bytes long"):
        read_submission(out.getvalue(), "sub.parquet", rows)
    out = io.BytesIO()
    groups = MAX_PEEKED_ROW_GROUPS + 1
    pq.write_table(pa.table({"id": huge.take(pa.array(np.arange(groups) % 2)), "label": ["a"] * groups}), out,
                   compression="zstd", dictionary_pagesize_limit=1 << 30, row_group_size=1, store_schema=False)
    table = read_submission(out.getvalue(), "sub.parquet", 100_000)  # (65 dictionaries of 1.5 MB: 98 MB decoded)
    assert pa.types.is_dictionary(table["id"].type)
    with pytest.raises(ParticipantVisibleError, match="a value of the id column is 1500000 bytes long"):
        validate(table, IdIndex(pa.array(NUMBERED)), CLASSES)


def _rule(submitted: str | None, test: list[str]) -> int:
    """The id rule in plain Python (IdIndex.padded): the position of the published id a text stands for."""
    width = len(test[0])
    whole, _, zeros = (submitted or "").partition(".")
    if zeros and not zeros.strip("0") and whole.isascii() and whole.isdigit():  # 3.0, 3.00
        submitted = whole
    if submitted is not None and submitted.isascii() and submitted.isdigit() and len(submitted) < width:
        submitted = submitted.zfill(width)
    return test.index(submitted) if submitted in test else -1


SPELLINGS = ["0003", "3", "03", "003", "3.0", "0003.0", "3.00", "3.5", "+3", "-3", " 3", "3 ", "", None, "00003", "٣",
             "10003", "0017", "17", "17.0", "9999", "99999", "0", "0000", "0.0", "00", "x003", "3e0"]


@pytest.mark.parametrize("test", [["0003", "0017", "9999", "0000", "0042"],  # the lookup array
                                  ["000000000003", "000000000017", "999999999999", "000000000000"]])  # a hash lookup
def test_an_id_of_digits_shorter_than_the_published_ids_is_the_published_id_padded(test: list[str]) -> None:
    """Published ids all ASCII digits of one width W: an id of digits only, shorter than W, is the
    published id padded with zeros, and a whole decimal is its integer part; nothing else changes. The
    same on every path: fixed width, integers written as text, anything else, and the hash lookup."""
    index = IdIndex(pa.array(test))
    assert index.digits == len(test[0]) and (index.lookup is None) == (len(test[0]) == 12)
    width = len(test[0])
    spellings = SPELLINGS + [s.zfill(width) for s in ("3", "17")]
    expected = [_rule(s, test) for s in spellings]
    assert index.positions(pa.array(spellings)).tolist() == expected
    for block in (["3", "17", "9999", "0"], [s.zfill(width) for s in ("3", "17")], ["3", "17.0", "0003"], ["3.00", "17"]):
        assert index.positions(pa.array(block)).tolist() == [_rule(s, test) for s in block], block
    numbers = pa.chunked_array([pa.array([3, 17, None, -3, 10 ** width + 3, 0], pa.int64()), pa.array([9999], pa.int64())])
    assert index.positions(numbers).tolist() == [_rule(str(n), test) if n is not None and n >= 0 else -1
                                                 for n in numbers.to_pylist()]


def test_prefixed_ids_are_not_padded() -> None:
    """Matching ids (`r0003`, `p0003`) keep their exact form: `r3` is not `r0003`."""
    index = IdIndex(pa.array(["r0003", "r0017"]))
    assert index.digits == 0
    assert index.positions(pa.array(["r3", "r0017", "3", "0003"])).tolist() == [-1, 1, -1, -1]


def test_integer_ids_and_whole_float_labels_validate_as_their_text() -> None:
    """What a reader makes of `0003` (the int 3, the float 3.0) and of the class `3` (3.0) is accepted
    as the published id and the class; a label 3.0 of a task with named classes is not a class."""
    test, digits = pa.array(["0003", "0011", "0000", "0007"]), pa.array([str(i) for i in range(10)])
    index = IdIndex(test)
    expected = validate(pa.table({"id": test, "label": ["1", "2", "3", "0"]}), index, digits).dictionary_decode().to_pylist()
    for ids in ([3, 11, 0, 7], [3.0, 11.0, 0.0, 7.0], ["3", "11", "0", "7"], ["3.0", "11", "0000", "7"]):
        for labels in ([1, 2, 3, 0], [1.0, 2.0, 3.0, 0.0], ["1.0", "2", "3.00", "0"]):
            aligned = validate(pa.table({"id": ids, "label": labels}), index, digits)
            assert aligned.dictionary_decode().to_pylist() == expected, (ids, labels)
    with pytest.raises(ParticipantVisibleError, match=r"^1 label\(s\) are not classes of this task \(e.g. 1.0\)"):
        validate(pa.table({"id": [3, 11, 0, 7], "label": ["1.0", "a", "a", "a"]}), index, pa.array(["1", "a"]))
    with pytest.raises(ParticipantVisibleError, match=r"^1 label\(s\) are not classes of this task \(e.g. 01.0\)"):
        validate(pa.table({"id": [3, 11, 0, 7], "label": ["01.0", "1", "1", "1"]}), index, digits)


def test_one_id_written_two_ways_is_reported_as_repeated_with_both_spellings() -> None:
    index = IdIndex(pa.array(["0003", "0011", "0000", "0007"]))
    with pytest.raises(ParticipantVisibleError) as info:
        validate(pa.table({"id": ["0003", "3", "0", "7"], "label": ["a"] * 4}), index, CLASSES)
    assert str(info.value) == ("1 id(s) appear more than once (e.g. 0003); 3 and 0003 are the same id (an id of digits "
                               "only is the published id padded with zeros to 4 digits): keep one row per id; "
                               "1 test id(s) are missing (e.g. 0011)")
    with pytest.raises(ParticipantVisibleError) as info:  # the same spelling twice: the message as before
        validate(pa.table({"id": ["3", "3", "0", "7"], "label": ["a"] * 4}), index, CLASSES)
    assert str(info.value) == "1 id(s) appear more than once (e.g. 0003); 1 test id(s) are missing (e.g. 0011)"
