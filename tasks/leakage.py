"""Release-time leak checks between a task's train and test sides."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class LeakFinding:
    check: str
    column: str | None
    test_rows: int  # test rows affected
    fraction: float  # of test rows
    detail: str


def _row_hashes(table: pa.Table, columns: list[str]) -> np.ndarray:
    frame = table.select(columns).to_pandas()
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def normalized_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Lower case, ASCII punctuation removed, whitespace collapsed: 'Red  Shoe!' → 'red shoe'."""
    text = pc.replace_substring_regex(pc.utf8_lower(values), r"[[:punct:]]+", "")
    # Only runs of whitespace and non-space whitespace need rewriting (much faster than \s+).
    text = pc.replace_substring_regex(text, r"[\t\n\r\f\v ]{2,}|[\t\n\r\f\v]", " ")
    return pc.utf8_trim_whitespace(text)


def _exact_duplicates(train: pa.Table, test: pa.Table, features: list[str]) -> list[LeakFinding]:
    if not (features and test.num_rows and train.num_rows):
        return []
    train_hash = _row_hashes(train, features)
    test_hash = _row_hashes(test, features)
    duplicated = pc.is_in(pa.array(test_hash), value_set=pa.array(train_hash)).to_numpy(zero_copy_only=False)
    if not duplicated.any():
        return []
    train_labels = pd.Series(train["label"].to_numpy(zero_copy_only=False), index=train_hash)
    train_labels = train_labels[~train_labels.index.duplicated()]
    test_labels = test["label"].to_numpy(zero_copy_only=False)[duplicated]
    same = int((train_labels.loc[test_hash[duplicated]].to_numpy() == test_labels).sum())
    n = int(duplicated.sum())
    return [LeakFinding(
        "exact_duplicate_rows", None, n, n / test.num_rows,
        f"{n} test row(s) have the same features as a train row ({same} with the same label, {n - same} with a different one)",
    )]


def _text_duplicates(train: pa.Table, test: pa.Table, column: str) -> list[LeakFinding]:
    test_text = normalized_text(test[column])
    hits = pc.fill_null(pc.and_(pc.is_in(test_text, value_set=normalized_text(train[column])),
                                pc.greater(pc.utf8_length(test_text), 0)), False)
    count = pc.sum(hits).as_py() or 0
    if not count:
        return []
    return [LeakFinding(
        "text_near_duplicates", column, count, count / max(test.num_rows, 1),
        f"{count} test row(s) have a '{column}' equal to a train row's after normalization",
    )]


def duplicate_records(records: pa.Table, train_side: pa.Array, test_side: pa.Array,
                      features: list[str]) -> list[LeakFinding]:
    """Matching: records of test pairs whose features equal those of a record in train pairs (another id).

    The grouped split keeps every matching group on one side; an identical copy under another id
    still lets a model look a test pair's answer up in train.
    """
    if not (features and len(train_side) and len(test_side)):
        return []
    hashes = _row_hashes(records, features)
    on_train = pc.is_in(records["id"], value_set=train_side).to_numpy(zero_copy_only=False)
    on_test = pc.is_in(records["id"], value_set=test_side).to_numpy(zero_copy_only=False) & ~on_train
    copied = on_test & pc.is_in(pa.array(hashes), value_set=pa.array(hashes[on_train])).to_numpy(zero_copy_only=False)
    n = int(copied.sum())
    if not n:
        return []
    return [LeakFinding(
        "exact_duplicate_rows", None, n, n / int(on_test.sum()),
        f"{n} record(s) of test pairs have the same features as a record of train pairs (another id)",
    )]


def find_leaks(train: pa.Table, test: pa.Table, features: list[str], text_columns: list[str]) -> list[LeakFinding]:
    """Exact duplicate feature rows across train/test, and normalized-text duplicates per text column.

    The checks run in threads (Arrow and pandas hashing release the GIL).
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(_exact_duplicates, train, test, features)]
        jobs += [pool.submit(_text_duplicates, train, test, column) for column in text_columns]
        return [finding for job in jobs for finding in job.result()]
