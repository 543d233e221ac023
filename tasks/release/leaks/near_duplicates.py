"""Near-duplicate records between train and test records, in bounded vectorized work.

A record is the set of its tokens (tasks/release/leaks/hashes.py): the normalized words of its text columns and
one token per other feature (`column=value`, numbers to 3 significant digits, images by content hash).
Two records are near-duplicates when the Jaccard similarity of their token sets is at least a
threshold: a copied product with one word changed shares almost every token; two papers that only share
their authors do not.

Candidates come from the records' MinHash signatures split into BANDS bands: a test record and a train
record are compared when one band agrees. Each candidate pair's similarity is then computed exactly
from the token sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from challenge.tasks.release.leaks.hashes import BANDS, RecordHashes

PREFILTER = 0.2  # candidates whose estimated similarity is this far below the threshold are not computed exactly
CHUNK_PAIRS = 1 << 16


@dataclass
class BestMatch:
    """For every test record: its most similar train record (-1 when no candidate) and the similarity."""

    train_index: np.ndarray  # int64, the train record (a row of the hashes)
    similarity: np.ndarray  # float64, 0 when no candidate


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (NumPy 2.4's np.unique is about 15× slower on millions of distinct int64)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def first_match(keys: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For each query, the first of `rows` (ascending; keys[i] is the key of rows[i]) whose key equals it,
    else -1. By sorting and a binary search: a few bytes per key, where a hash table of millions of keys
    takes tens of megabytes. Keys of 32 bits are sorted together with their position in one 64-bit
    value (no argsort: several times faster), longer keys by a stable argsort."""
    if not len(keys):
        return np.full(len(queries), -1, np.int64)
    if keys.dtype.itemsize <= 4 and len(keys) < (1 << 32):
        packed = np.sort(keys.astype(np.uint64) << np.uint64(32) | np.arange(len(keys), dtype=np.uint64))
        position = np.minimum(np.searchsorted(packed, queries.astype(np.uint64) << np.uint64(32)), len(keys) - 1)
        found = (packed[position] >> np.uint64(32)) == queries
        first = (packed[position] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    else:
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        position = np.minimum(np.searchsorted(ordered, queries), len(keys) - 1)
        found, first = ordered[position] == queries, order[position]
    return np.where(found, rows[first], -1)


def jaccard(hashes: RecordHashes, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the token sets of each pair of records (left[i], right[i])."""
    out = np.zeros(len(left))
    for lo in range(0, len(left), CHUNK_PAIRS):
        a, b = left[lo:lo + CHUNK_PAIRS], right[lo:lo + CHUNK_PAIRS]
        (offsets_a, tokens_a), (offsets_b, tokens_b) = hashes.sets(a), hashes.sets(b)
        sizes_a, sizes_b = np.diff(offsets_a), np.diff(offsets_b)
        pair_a = np.repeat(np.arange(len(a), dtype=np.int64), sizes_a)
        pair_b = np.repeat(np.arange(len(b), dtype=np.int64), sizes_b)
        keys = np.sort(np.concatenate([pair_a << 32 | tokens_a, pair_b << 32 | tokens_b]))
        shared = keys[1:][keys[1:] == keys[:-1]] >> 32  # a token in both sets appears twice
        inter = np.bincount(shared, minlength=len(a)).astype(np.float64)
        union = sizes_a + sizes_b - inter
        out[lo:lo + len(a)] = np.divide(inter, union, out=np.zeros(len(a)), where=union > 0)
    return out


def _estimate_kept(sig: np.ndarray, test: np.ndarray, train: np.ndarray, threshold: float) -> np.ndarray:
    """Which pairs (test[i], train[i]) have an estimated similarity (the share of equal minhashes) near
    `threshold` or above; pairs taken CHUNK_PAIRS at a time."""
    keep = np.zeros(len(test), bool)
    for lo in range(0, len(test), CHUNK_PAIRS):
        part = slice(lo, lo + CHUNK_PAIRS)
        keep[part] = (sig[test[part]] == sig[train[part]]).mean(axis=1) >= threshold - PREFILTER
    return keep


def best_train_match(hashes: RecordHashes, train_rows: np.ndarray, test_rows: np.ndarray, threshold: float) -> BestMatch:
    """For each of `test_rows` (records of `hashes`), the most similar of `train_rows` among the LSH
    candidates whose estimated similarity is near `threshold` or above. Each band's candidates are
    estimated as they are found, so only the few that pass are kept."""
    sig = hashes.signature
    has_tokens = hashes.has_tokens
    n_test = len(test_rows)
    pairs_test, pairs_train = [], []
    train_with = train_rows[has_tokens[train_rows]]
    test_with = np.flatnonzero(has_tokens[test_rows])
    for band in range(BANDS + 1 if len(train_with) and len(test_with) else 0):
        # the first train record of each bucket stands for it; the last "band" is the hash of all features,
        # so an exact copy of a train record finds it even when every band's bucket is crowded by others
        train_keys = hashes.bands[train_with, band] if band < BANDS else hashes.exact[train_with]
        test_keys = hashes.bands[test_rows[test_with], band] if band < BANDS else hashes.exact[test_rows[test_with]]
        match = first_match(train_keys, train_with, test_keys)
        hit = np.flatnonzero(match >= 0)
        kept = _estimate_kept(sig, test_rows[test_with[hit]], match[hit], threshold)
        pairs_test.append(test_with[hit[kept]])
        pairs_train.append(match[hit[kept]])
    best = BestMatch(np.full(n_test, -1, np.int64), np.zeros(n_test))
    if not pairs_test or not sum(len(p) for p in pairs_test):
        return best
    width = max(hashes.n, 1)
    pair_keys = distinct_sorted(np.concatenate(pairs_test).astype(np.int64) * width + np.concatenate(pairs_train))
    test_idx, train_record = pair_keys // width, pair_keys % width
    similarity = jaccard(hashes, test_rows[test_idx], train_record)
    order = np.lexsort((train_record, -similarity, test_idx))  # per test record: most similar, then lowest train row
    test_idx, train_record, similarity = test_idx[order], train_record[order], similarity[order]
    first_of_test = np.concatenate([[True], test_idx[1:] != test_idx[:-1]]) if len(test_idx) else np.zeros(0, bool)
    best.train_index[test_idx[first_of_test]] = train_record[first_of_test]
    best.similarity[test_idx[first_of_test]] = similarity[first_of_test]
    return best
