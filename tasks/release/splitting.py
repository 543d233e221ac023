"""Where a split is decided: seeded, reproducible train/test and public/private splits.

Classification splits are stratified by label. Matching splits keep every group
of matching records (connected components of label-1 pairs) on one side; pairs
that join a train group to a test group are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from challenge.core.errors import ChallengeError


class SplitError(ChallengeError):
    """The requested split cannot be made from this data."""


@dataclass
class SplitResult:
    """Boolean masks over the rows of the input, plus what the report should say."""

    test: np.ndarray  # True where the row goes to test
    public: np.ndarray  # True where a test row is scored on the public leaderboard
    dropped: np.ndarray  # True where a row is in neither side (matching: pairs across groups)
    notes: dict[str, object] = field(default_factory=dict)


def stratified_mask(strata: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Pick about `fraction` of each stratum: within one row of n * fraction per stratum,
    and round(N * fraction) in all (largest remainders get the extra rows) unless the
    one-row minimum per stratum forces more.

    Every stratum of 2+ rows gets at least one picked and one unpicked row;
    strata with fewer than 2 rows cannot be on both sides: they stay unpicked
    and are returned.
    """
    picked = np.zeros(len(strata), dtype=bool)
    values, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    splittable = counts >= 2
    quota = counts * fraction
    take = np.where(splittable, np.clip(np.floor(quota).astype(int), 1, np.maximum(counts - 1, 1)), 0)
    extra = int(round(counts[splittable].sum() * fraction)) - int(take.sum())
    can_grow = splittable & (take < np.ceil(quota)) & (take < counts - 1)
    remainders = np.where(can_grow, quota - take, -np.inf) + rng.random(len(counts)) * 1e-9  # seeded tie-break
    for index in np.argsort(-remainders)[:max(extra, 0)]:
        if can_grow[index]:
            take[index] += 1
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for start, count, n in zip(starts, counts, take):
        if n:
            members = order[start:start + count]
            picked[rng.permutation(members)[:n]] = True
    return picked, list(values[~splittable])


def _rng(seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, salt])


def split_classification(ids: pa.Array, labels: pa.Array, test_fraction: float, public_fraction: float, seed: int) -> SplitResult:
    """Stratified train/test, then a stratified public/private partition of test.

    Rows are ordered by id first, so the split depends on the data, not on the file's row order.
    """
    order = np.asarray(pc.sort_indices(ids))
    encoded = pc.dictionary_encode(labels)
    encoded = encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))[order]
    test_sorted, small = stratified_mask(codes, test_fraction, _rng(seed, 1))
    public_sorted = np.zeros(len(order), dtype=bool)
    test_idx = np.flatnonzero(test_sorted)
    pub, _ = stratified_mask(codes[test_idx], public_fraction, _rng(seed, 2))
    public_sorted[test_idx[pub]] = True
    test, public = np.zeros(len(order), bool), np.zeros(len(order), bool)
    test[order], public[order] = test_sorted, public_sorted
    names = encoded.dictionary.to_pylist()
    return SplitResult(test, public, np.zeros(len(order), bool), {
        "method": "stratified by label", "classes_only_in_train": sorted(names[int(c)] for c in small if int(c) >= 0),
    })


def matching_groups(left: pa.Array, right: pa.Array, label: pa.Array, record_ids: pa.Array) -> np.ndarray:
    """Group number of every record: connected components of the label-1 pairs."""
    n = len(record_ids)
    li = np.asarray(pc.index_in(left, value_set=record_ids).to_numpy(zero_copy_only=False))
    ri = np.asarray(pc.index_in(right, value_set=record_ids).to_numpy(zero_copy_only=False))
    positive = np.asarray(label.to_numpy(zero_copy_only=False)) == 1
    graph = coo_matrix((np.ones(positive.sum()), (li[positive].astype(np.int64), ri[positive].astype(np.int64))), shape=(n, n))
    _, groups = connected_components(graph, directed=False)
    return groups


def split_matching(
    pairs: pa.Table, record_ids: pa.Array, test_fraction: float, public_fraction: float, seed: int,
    tolerance: float = 0.25,
) -> SplitResult:
    """Whole groups go to test or train; pairs joining a test group to a train group are dropped.
    `pairs`: the standardized pairs table (left_id, right_id, label).

    Groups get a seeded random rank; groups ranked below a threshold go to test.
    A pair is in test when both its groups are, in train when neither is. The
    threshold is the one whose kept pairs come closest to `test_fraction`.
    """
    left, right, label = pairs["left_id"], pairs["right_id"], pairs["label"]
    record_ids = record_ids.take(pc.array_sort_indices(record_ids))  # group numbers independent of row order
    groups = matching_groups(left, right, label, record_ids)
    li = np.asarray(pc.index_in(left, value_set=record_ids).to_numpy(zero_copy_only=False)).astype(np.int64)
    ri = np.asarray(pc.index_in(right, value_set=record_ids).to_numpy(zero_copy_only=False)).astype(np.int64)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    rank = _rng(seed, 1).permutation(n_groups)
    high = np.maximum(rank[groups[li]], rank[groups[ri]])
    low = np.minimum(rank[groups[li]], rank[groups[ri]])
    # For threshold t: test = #(high < t), train = #(low >= t).
    thresholds = np.arange(1, n_groups + 1)
    n_test = np.searchsorted(np.sort(high), thresholds, side="left")
    n_train = len(low) - np.searchsorted(np.sort(low), thresholds, side="left")
    kept = np.maximum(n_test + n_train, 1)
    best = int(np.argmin(np.abs(n_test / kept - test_fraction) + (n_test == 0) + (n_train == 0)))
    threshold = thresholds[best]
    test = high < threshold
    dropped = ~test & (low < threshold)
    achieved = float(test.sum() / max(int((~dropped).sum()), 1))
    if test.sum() == 0 or (~test & ~dropped).sum() == 0 or abs(achieved - test_fraction) > tolerance * test_fraction:
        raise SplitError(
            f"the matching groups make a test fraction of {test_fraction:.2f} impossible: the closest split "
            f"achieved {achieved:.3f} ({int(test.sum())} of {int((~dropped).sum())} kept pairs in test); "
            "a group of matching records holds too many pairs, or there are too few groups"
        )
    labels = np.asarray(label.to_numpy(zero_copy_only=False))
    public = np.zeros(len(test), dtype=bool)
    test_idx = np.flatnonzero(test)
    pub, _ = stratified_mask(labels[test_idx], public_fraction, _rng(seed, 2))
    public[test_idx[pub]] = True
    return SplitResult(test, public, dropped, {
        "method": "grouped: connected components of matching pairs stay on one side",
        "groups": n_groups, "test_groups": int(threshold),
        "pairs_dropped_across_groups": int(dropped.sum()),
        "achieved_test_fraction": round(achieved, 4),
    })
