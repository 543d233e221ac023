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

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from challenge.tasks.release.leaks.hashes import LeakColumns, RecordHashes, hash_records
from challenge.tasks.release.leaks.near_duplicates import best_train_match, first_match

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


def _agreement(train_labels: np.ndarray | None, test_labels: np.ndarray | None) -> str:
    if train_labels is None or test_labels is None or not len(test_labels):
        return ""
    same = int((train_labels == test_labels).sum())
    return f"{same} with the train row's label, {len(test_labels) - same} with another"


def _lookup(keys: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, the first of `rows` (ascending) whose key equals it, else -1 (by sorting: a few
    bytes per row, where a hash table of millions of keys takes tens of megabytes)."""
    return first_match(keys[rows], rows, queries)


@dataclass(frozen=True)
class _Sides:
    """The records' hashes, which of the records are on the train and on the test side (row numbers,
    ascending), and every record's label (None: not compared)."""

    hashes: RecordHashes
    train: np.ndarray
    test: np.ndarray
    labels: np.ndarray | None = None


def _exact_duplicates(sides: _Sides) -> list[LeakFinding]:
    hashes, train, test, labels = sides.hashes, sides.train, sides.test, sides.labels
    match = _lookup(hashes.exact, train, hashes.exact[test])
    duplicated = match >= 0
    n = int(duplicated.sum())
    if not n:
        return []
    agreement = _agreement(labels[match[duplicated]], labels[test[duplicated]]) if labels is not None else ""
    return [LeakFinding("exact_duplicate_rows", None, n, n / len(test),
                        f"{n} test row(s) have the same features as a train row", label_agreement=agreement)]


def _near_duplicates(sides: _Sides, columns: LeakColumns, refusable: bool, what: str = "test record(s)") -> list[LeakFinding]:
    hashes, train, test, labels = sides.hashes, sides.train, sides.test, sides.labels
    if not columns.text:
        return []
    best = best_train_match(hashes, train, test, columns.similarity)
    near = best.similarity >= columns.similarity
    n = int(near.sum())
    if not n:
        return []
    exact = int((best.similarity[near] >= 1.0).sum())
    agreement = _agreement(labels[best.train_index[near]], labels[test[near]]) if labels is not None else ""
    return [LeakFinding(
        "near_duplicate_records", ", ".join(columns.text), n, n / len(test),
        f"{n} {what} nearly repeat a train record (token similarity ≥ {columns.similarity:g} over the text of "
        f"{', '.join(columns.text)} and the other features; {exact} identical)",
        refusable=refusable, label_agreement=agreement)]


def _identifying_duplicates(sides: _Sides, column: str, text: bool) -> list[LeakFinding]:
    test = sides.test
    values = sides.hashes.identifying[column]
    train_values = values[sides.train]
    hits = (values[test] != 0) & pc.is_in(pa.array(values[test]), value_set=pa.array(train_values[train_values != 0])) \
        .to_numpy(zero_copy_only=False)
    count = int(hits.sum())
    if not count:
        return []
    return [LeakFinding(
        "identifying_column_duplicates", column, count, count / max(len(test), 1),
        f"{count} test row(s) have a '{column}' (an identifying column) equal to a train row's"
        + (" after normalization" if text else ""),
    )]


def leak_findings(hashes: RecordHashes, test: np.ndarray, labels: np.ndarray | None,
                  columns: LeakColumns) -> list[LeakFinding]:
    """Classification: exact duplicate rows, near-duplicate records and identifying-column repeats between
    the rows marked `test` and the others, from the records' hashes (`labels`: every row's, or None)."""
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    if not (columns.features and len(train_rows) and len(test_rows)):
        return []
    sides = _Sides(hashes, train_rows, test_rows, labels)
    findings = _exact_duplicates(sides)
    findings += _near_duplicates(sides, columns, True)
    for column in columns.identifying:
        findings += _identifying_duplicates(sides, column, column in columns.text)
    return findings


def find_leaks(train: pa.Table, test: pa.Table, columns: LeakColumns) -> list[LeakFinding]:
    """leak_findings for two tables (the release hashes its rows batch by batch instead)."""
    both = pa.concat_tables([train.select(columns.features), test.select(columns.features)])
    hashes = hash_records(both, columns)
    labels = None
    if "label" in train.column_names and "label" in test.column_names:
        labels = np.concatenate([train["label"].to_numpy(zero_copy_only=False), test["label"].to_numpy(zero_copy_only=False)])
    return leak_findings(hashes, np.arange(both.num_rows) >= train.num_rows, labels, columns)


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
    train_rows, test_rows = np.flatnonzero(on_train), np.flatnonzero(on_test)
    if not (len(train_rows) and len(test_rows)):
        return []
    hashes = hash_records(records, columns)
    findings = []
    n = int((_lookup(hashes.exact, train_rows, hashes.exact[test_rows]) >= 0).sum())
    if n:
        findings.append(LeakFinding(
            "exact_duplicate_rows", None, n, n / len(test_rows),
            f"{n} record(s) of test pairs have the same features as a record of train pairs (another id)"))
    findings += _near_duplicates(_Sides(hashes, train_rows, test_rows), columns, refusable=False,
                                 what="record(s) of test pairs")
    return findings
