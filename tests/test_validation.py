"""Submission validation without storage: both id lookups (published numbered ids and any other ids)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from challenge.tasks.submissions import IdIndex, ParticipantVisibleError, validate

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
