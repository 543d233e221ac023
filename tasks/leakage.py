"""Release-time leak checks between a task's train and test sides (SPEC §7).

A leak is a test *record* that (nearly) repeats a train record, not a value that
repeats by nature in one column (authors, brands, cities). Three checks:

- `exact_duplicate_rows`: test rows whose feature values all equal a train row's;
- `near_duplicate_records`: test records whose tokens (the words of every text
  column together, plus every other feature as one token) overlap a train
  record's by at least `similarity` (Jaccard), e.g. a copied product with one
  word changed; run when the task has text columns;
- `identifying_column_duplicates`: for columns the contributor marked
  `identifying: true` (e.g. a title), test rows whose value equals a train
  row's after normalization.

Every finding goes in the manifest; only those above the limits in
challenge.yaml refuse the release. A finding's `detail` is safe to publish; its
`label_agreement` (how many of the repeats share the train row's label) says
something about the test labels, so it goes only to the organizer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from challenge.tasks.near_duplicates import best_train_match, record_tokens

DEFAULT_SIMILARITY = 0.8
MAX_EXAMPLES = 3


@dataclass
class LeakFinding:
    check: str
    column: str | None
    test_rows: int  # test rows affected
    fraction: float  # of test rows
    detail: str  # safe to publish: nothing about test labels
    refusable: bool = True  # False: reported, never refuses (e.g. similar records in a matching task)
    label_agreement: str = ""  # organizer-only: how many repeats carry the train row's label

    def public(self) -> dict[str, object]:
        return {"check": self.check, "column": self.column, "test_rows": self.test_rows,
                "fraction": round(self.fraction, 6), "detail": self.detail, "refusable": self.refusable}


@dataclass(frozen=True)
class LeakColumns:
    """Which columns the checks read: every feature, the text ones, the identifying ones."""

    features: list[str]
    text: list[str] = field(default_factory=list)
    identifying: list[str] = field(default_factory=list)
    similarity: float = DEFAULT_SIMILARITY


def _row_hashes(table: pa.Table, columns: list[str]) -> np.ndarray:
    frame = table.select(columns).to_pandas()
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def normalized_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Lower case, ASCII punctuation removed, whitespace collapsed: 'Red  Shoe!' → 'red shoe'."""
    text = pc.replace_substring_regex(pc.utf8_lower(values), r"[[:punct:]]+", "")
    # Only runs of whitespace and non-space whitespace need rewriting (much faster than \s+).
    text = pc.replace_substring_regex(text, r"[\t\n\r\f\v ]{2,}|[\t\n\r\f\v]", " ")
    return pc.utf8_trim_whitespace(text)


def _agreement(train_labels: np.ndarray | None, test_labels: np.ndarray | None) -> str:
    if train_labels is None or test_labels is None or not len(test_labels):
        return ""
    same = int((train_labels == test_labels).sum())
    return f"{same} with the train row's label, {len(test_labels) - same} with another"


def _labels(table: pa.Table) -> np.ndarray | None:
    return table["label"].to_numpy(zero_copy_only=False) if "label" in table.column_names else None


def _exact_duplicates(train: pa.Table, test: pa.Table, features: list[str]) -> list[LeakFinding]:
    if not (features and test.num_rows and train.num_rows):
        return []
    train_hash = _row_hashes(train, features)
    test_hash = _row_hashes(test, features)
    duplicated = pc.is_in(pa.array(test_hash), value_set=pa.array(train_hash)).to_numpy(zero_copy_only=False)
    n = int(duplicated.sum())
    if not n:
        return []
    agreement = ""
    train_labels, test_labels = _labels(train), _labels(test)
    if train_labels is not None and test_labels is not None:
        first = pd.Series(np.arange(len(train_hash)), index=train_hash)
        first = first[~first.index.duplicated()]
        agreement = _agreement(train_labels[first.loc[test_hash[duplicated]].to_numpy()], test_labels[duplicated])
    return [LeakFinding("exact_duplicate_rows", None, n, n / test.num_rows,
                        f"{n} test row(s) have the same features as a train row", label_agreement=agreement)]


def _near_duplicates(train: pa.Table, test: pa.Table, columns: LeakColumns, refusable: bool,
                     what: str = "test record(s)") -> list[LeakFinding]:
    if not (columns.text and train.num_rows and test.num_rows):
        return []
    others = [c for c in columns.features if c not in columns.text]
    both = pa.concat_tables([train.select(columns.features), test.select(columns.features)])
    tokens = record_tokens(both, columns.text, others, normalized_text)
    best = best_train_match(tokens, train.num_rows, columns.similarity)
    near = best.similarity >= columns.similarity
    n = int(near.sum())
    if not n:
        return []
    exact = int((best.similarity[near] >= 1.0).sum())
    train_labels, test_labels = _labels(train), _labels(test)
    agreement = _agreement(train_labels[best.train_index[near]] if train_labels is not None else None,
                           test_labels[near] if test_labels is not None else None)
    return [LeakFinding(
        "near_duplicate_records", ", ".join(columns.text), n, n / test.num_rows,
        f"{n} {what} nearly repeat a train record (token similarity ≥ {columns.similarity:g} over the text of "
        f"{', '.join(columns.text)} and the other features; {exact} identical)",
        refusable=refusable, label_agreement=agreement)]


def _identifying_duplicates(train: pa.Table, test: pa.Table, column: str, text: bool) -> list[LeakFinding]:
    def values(table: pa.Table) -> pa.Array:
        data = table[column].combine_chunks()
        if pa.types.is_dictionary(data.type):
            data = data.cast(data.type.value_type)
        return normalized_text(data) if text else pc.cast(data, pa.string())

    test_values = values(test)
    hits = pc.fill_null(pc.and_(pc.is_in(test_values, value_set=values(train)),
                                pc.greater(pc.utf8_length(test_values), 0)), False)
    count = pc.sum(hits).as_py() or 0
    if not count:
        return []
    return [LeakFinding(
        "identifying_column_duplicates", column, count, count / max(test.num_rows, 1),
        f"{count} test row(s) have a '{column}' (an identifying column) equal to a train row's"
        + (" after normalization" if text else ""),
    )]


def find_leaks(train: pa.Table, test: pa.Table, columns: LeakColumns) -> list[LeakFinding]:
    """Classification: exact duplicate rows, near-duplicate records and identifying-column repeats.

    The checks run in threads (Arrow, pandas and numpy release the GIL).
    """
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [pool.submit(_exact_duplicates, train, test, columns.features),
                pool.submit(_near_duplicates, train, test, columns, True)]
        jobs += [pool.submit(_identifying_duplicates, train, test, column, column in columns.text)
                 for column in columns.identifying]
        return [finding for job in jobs for finding in job.result()]


def duplicate_records(records: pa.Table, train_side: pa.Array, test_side: pa.Array,
                      columns: LeakColumns) -> list[LeakFinding]:
    """Matching: records of test pairs whose features equal those of a record in train pairs (another id).

    The grouped split keeps every matching group on one side; an identical copy under another id
    still lets a model look a test pair's answer up in train. Near-identical records across the two
    sides are reported but never refuse: similar records of different entities are what a matching
    task is about.
    """
    features = columns.features
    if not (features and len(train_side) and len(test_side)):
        return []
    on_train = pc.is_in(records["id"], value_set=train_side).to_numpy(zero_copy_only=False)
    on_test = pc.is_in(records["id"], value_set=test_side).to_numpy(zero_copy_only=False) & ~on_train
    findings = []
    hashes = _row_hashes(records, features)
    copied = on_test & pc.is_in(pa.array(hashes), value_set=pa.array(hashes[on_train])).to_numpy(zero_copy_only=False)
    n = int(copied.sum())
    if n:
        findings.append(LeakFinding(
            "exact_duplicate_rows", None, n, n / int(on_test.sum()),
            f"{n} record(s) of test pairs have the same features as a record of train pairs (another id)"))
    findings += _near_duplicates(records.filter(pa.array(on_train)), records.filter(pa.array(on_test)), columns,
                                 refusable=False, what="record(s) of test pairs")
    return findings
