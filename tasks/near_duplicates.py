"""Near-duplicate records between a train and a test table, in bounded vectorized work.

A record is the set of its tokens: the words of its text columns (normalized)
and one token per other feature (`column=value`, numbers to 3 significant
digits, images by content hash). Two records are near-duplicates when the
Jaccard similarity of their token sets is at least a threshold: a copied
product with one word changed shares almost every token; two papers that only
share their authors do not.

Candidates come from MinHash signatures (NUM_HASHES per record, hashed over
the distinct tokens and gathered, no Python loop over rows) split into BANDS
bands: a test record and a train record are compared when one band agrees.
Each candidate pair's similarity is then computed exactly from the token sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NUM_HASHES = 32
BANDS = 8  # of NUM_HASHES // BANDS rows: a pair with similarity 0.8 becomes a candidate with probability 0.985
PREFILTER = 0.2  # candidates whose estimated similarity is this far below the threshold are not computed exactly
CHUNK_PAIRS = 1 << 20
_U64 = np.uint64


@dataclass
class TokenSets:
    """Each record's distinct token codes, records in order: codes[offsets[i]:offsets[i + 1]]."""

    offsets: np.ndarray  # int64, n + 1
    codes: np.ndarray  # int64, sorted within each record
    vocabulary: int

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class BestMatch:
    """For every test record: its most similar train record (-1 when no candidate) and the similarity."""

    train_index: np.ndarray  # int64
    similarity: np.ndarray  # float64, 0 when no candidate


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast, well-spread 64-bit hash of each value (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = values.astype(_U64, copy=True)
        x ^= x >> _U64(30)
        x *= _U64(0xBF58476D1CE4E5B9)
        x ^= x >> _U64(27)
        x *= _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (NumPy 2.4's np.unique is about 15× slower on millions of distinct int64)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def first_of_each(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, sorted, and the index of each one's first occurrence."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.concatenate([[True], ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, bool)
    return ordered[first], order[first]


def _rounded_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Numbers to 3 significant digits, as text (so 19.99 and 19.991 are one token)."""
    values = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = np.isfinite(values) & (values != 0)
    exponent = np.zeros_like(values)
    exponent[finite] = np.floor(np.log10(np.abs(values[finite])))
    scale = 10.0 ** (exponent - 2)
    rounded = np.where(finite, np.round(values / scale) * scale, values)
    text = pc.cast(pa.array(np.round(rounded, 10)), pa.string())
    return pc.if_else(pc.is_null(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column),
                      pa.scalar(None, pa.string()), text)


def record_tokens(table: pa.Table, text_columns: list[str], other_columns: list[str],
                  normalize: object) -> TokenSets:
    """Token sets of every row of `table` (`normalize`: the text normalization, e.g. leakage.normalized_text)."""
    rows, tokens = [], []
    for column in text_columns:
        words = pc.utf8_split_whitespace(normalize(table[column].combine_chunks()))  # type: ignore[operator]
        rows.append(np.asarray(pc.list_parent_indices(words)))
        tokens.append(pc.list_flatten(words))
    for i, column in enumerate(other_columns):
        values = table[column].combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        text = _rounded_text(values) if pa.types.is_floating(values.type) else pc.cast(values, pa.string())
        valid = pc.is_valid(text)
        rows.append(np.flatnonzero(np.asarray(valid.to_numpy(zero_copy_only=False))))
        tokens.append(pc.binary_join_element_wise(pa.scalar(f"\x1f{i}\x1f"), pc.filter(text, valid), ""))
    n = table.num_rows
    if not tokens:
        return TokenSets(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), 0)
    encoded = pc.dictionary_encode(pa.chunked_array([t.cast(pa.string()) for t in tokens])).combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    vocabulary = max(len(encoded.dictionary), 1)
    keys = distinct_sorted(np.concatenate(rows).astype(np.int64) * vocabulary + codes)  # by record, then code
    record = keys // vocabulary
    offsets = np.searchsorted(record, np.arange(n + 1)).astype(np.int64)
    return TokenSets(offsets, keys % vocabulary, vocabulary)


def signatures(sets: TokenSets, seed: int = 0) -> np.ndarray:
    """MinHash signatures (n × NUM_HASHES, uint32); a record without tokens keeps the all-ones signature."""
    n = len(sets.offsets) - 1
    sig = np.full((n, NUM_HASHES), np.iinfo(np.uint32).max, dtype=np.uint32)
    nonempty = sets.sizes > 0
    if not nonempty.any():
        return sig
    starts = sets.offsets[:-1][nonempty]
    base = _mix(np.arange(sets.vocabulary, dtype=np.int64) + seed)
    for k in range(NUM_HASHES):
        per_code = (_mix(base ^ _U64(0x9E3779B97F4A7C15 * (k + 1) % (1 << 64))) >> _U64(32)).astype(np.uint32)
        sig[nonempty, k] = np.minimum.reduceat(per_code[sets.codes], starts)
    return sig


def _band_keys(sig: np.ndarray, band: int) -> np.ndarray:
    rows = NUM_HASHES // BANDS
    part = sig[:, band * rows:(band + 1) * rows].astype(_U64)
    key = _mix(np.full(len(sig), band, dtype=_U64))
    with np.errstate(over="ignore"):
        for j in range(rows):
            key = _mix(key ^ part[:, j])
    return key


def _gather(sets: TokenSets, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token codes of `records`, concatenated, and for each the position of its record in `records`."""
    sizes = sets.sizes[records]
    owner = np.repeat(np.arange(len(records)), sizes)
    start = np.repeat(sets.offsets[:-1][records] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return sets.codes[np.arange(int(sizes.sum())) + start], owner


def jaccard(left: TokenSets, left_records: np.ndarray, right: TokenSets, right_records: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of each pair (left_records[i], right_records[i]); both sets share one vocabulary."""
    out = np.zeros(len(left_records))
    for lo in range(0, len(left_records), CHUNK_PAIRS):
        a, b = left_records[lo:lo + CHUNK_PAIRS], right_records[lo:lo + CHUNK_PAIRS]
        codes_a, pair_a = _gather(left, a)
        codes_b, pair_b = _gather(right, b)
        vocabulary = max(left.vocabulary, right.vocabulary)
        keys = np.sort(np.concatenate([pair_a * vocabulary + codes_a, pair_b * vocabulary + codes_b]))
        shared = keys[1:][keys[1:] == keys[:-1]] // vocabulary  # a token in both sets appears twice
        inter = np.bincount(shared, minlength=len(a)).astype(np.float64)
        union = left.sizes[a] + right.sizes[b] - inter
        out[lo:lo + len(a)] = np.divide(inter, union, out=np.zeros(len(a)), where=union > 0)
    return out


def best_train_match(tokens: TokenSets, n_train: int, threshold: float, seed: int = 0) -> BestMatch:
    """For each test record (rows n_train.. of `tokens`), the most similar train record among the LSH
    candidates whose estimated similarity is near `threshold` or above."""
    sig = signatures(tokens, seed)
    n_test = len(sig) - n_train
    has_tokens = tokens.sizes > 0
    pairs_test, pairs_train = [], []
    for band in range(BANDS):
        keys = _band_keys(sig, band)
        train_keys = keys[:n_train][has_tokens[:n_train]]
        train_rows = np.flatnonzero(has_tokens[:n_train])
        if not len(train_keys):
            break
        unique, first = first_of_each(train_keys)
        test_keys = keys[n_train:]
        pos = np.minimum(np.searchsorted(unique, test_keys), len(unique) - 1)
        hit = (unique[pos] == test_keys) & has_tokens[n_train:]
        pairs_test.append(np.flatnonzero(hit))
        pairs_train.append(train_rows[first[pos[hit]]])
    best = BestMatch(np.full(n_test, -1, np.int64), np.zeros(n_test))
    if not pairs_test or not sum(len(p) for p in pairs_test):
        return best
    pair_keys = distinct_sorted(np.concatenate(pairs_test).astype(np.int64) * max(n_train, 1) + np.concatenate(pairs_train))
    test_idx, train_idx = pair_keys // max(n_train, 1), pair_keys % max(n_train, 1)
    estimate = (sig[n_train + test_idx] == sig[train_idx]).mean(axis=1)
    keep = estimate >= threshold - PREFILTER
    test_idx, train_idx = test_idx[keep], train_idx[keep]
    similarity = jaccard(tokens, n_train + test_idx, tokens, train_idx)
    order = np.lexsort((train_idx, -similarity, test_idx))  # per test record: most similar, then lowest train row
    test_idx, train_idx, similarity = test_idx[order], train_idx[order], similarity[order]
    first_of_test = np.concatenate([[True], test_idx[1:] != test_idx[:-1]]) if len(test_idx) else np.zeros(0, bool)
    best.train_index[test_idx[first_of_test]] = train_idx[first_of_test]
    best.similarity[test_idx[first_of_test]] = similarity[first_of_test]
    return best
