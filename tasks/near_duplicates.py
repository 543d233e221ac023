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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NUM_HASHES = 32
BANDS = 8  # of NUM_HASHES // BANDS rows: a pair with similarity 0.8 becomes a candidate with probability 0.985
PREFILTER = 0.2  # candidates whose estimated similarity is this far below the threshold are not computed exactly
CHUNK_PAIRS = 1 << 18
CHUNK_TOKENS = 1 << 17  # tokens whose codes stay in cache while every hash function reads them
MAX_WORDS = 64  # words of each text column per record: a copy with a word changed shows in its first 64
_U64 = np.uint64


@dataclass
class TokenSets:
    """Distinct token codes of some records: codes[offsets[i]:offsets[i + 1]] for the i-th, sorted."""

    offsets: np.ndarray  # int64, n + 1
    codes: np.ndarray  # int64

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class ColumnTokens:
    """One column's tokens, record after record: codes[offsets[r]:offsets[r + 1]] belong to record r."""

    offsets: np.ndarray  # int64, n + 1
    codes: np.ndarray  # int32


@dataclass
class RecordTokens:
    """Every record's tokens, column by column (no sort of all tokens: each column is already in
    record order), coded in one vocabulary so that a word means the same in every text column."""

    columns: list[ColumnTokens]
    vocabulary: int
    n: int

    def sets(self, records: np.ndarray) -> TokenSets:
        """The distinct tokens of `records` (few: the candidates), gathered from every column."""
        codes, owners = [], []
        for column in self.columns:
            got, owner = _gather(column.offsets, column.codes, records)
            codes.append(got)
            owners.append(owner)
        keys = distinct_sorted(np.concatenate(owners) * self.vocabulary + np.concatenate(codes))
        offsets = np.searchsorted(keys // self.vocabulary, np.arange(len(records) + 1)).astype(np.int64)
        return TokenSets(offsets, keys % self.vocabulary)

    def has_tokens(self) -> np.ndarray:
        return np.any([np.diff(c.offsets) > 0 for c in self.columns], axis=0) if self.columns else np.zeros(self.n, bool)


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
                  normalize: object) -> RecordTokens:
    """Tokens of every row of `table` (`normalize`: the text normalization, e.g. leakage.normalized_text)."""
    n = table.num_rows
    flat, offsets = [], []
    for column in text_columns:
        words = pc.utf8_split_whitespace(normalize(table[column].combine_chunks()))  # type: ignore[operator]
        words = pc.list_slice(words, 0, MAX_WORDS)
        flat.append(pc.list_flatten(words))
        offsets.append(np.asarray(words.offsets, dtype=np.int64) - words.offsets[0].as_py())
    for i, column in enumerate(other_columns):
        values = table[column].combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        text = _rounded_text(values) if pa.types.is_floating(values.type) else pc.cast(values, pa.string())
        valid = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False))
        flat.append(pc.binary_join_element_wise(pa.scalar(f"\x1f{i}\x1f"), pc.filter(text, pa.array(valid)), ""))
        offsets.append(np.concatenate([[0], np.cumsum(valid)]).astype(np.int64))
    if not flat:
        return RecordTokens([], 1, n)
    encoded = pc.dictionary_encode(pa.chunked_array([f.cast(pa.string()) for f in flat]))
    columns = [ColumnTokens(off, np.asarray(chunk.indices.to_numpy(zero_copy_only=False), dtype=np.int32))
               for off, chunk in zip(offsets, encoded.chunks)] if encoded.num_chunks == len(flat) else None
    if columns is None:  # chunks merged or split: cut the combined codes at the column boundaries
        codes = np.asarray(encoded.combine_chunks().indices.to_numpy(zero_copy_only=False), dtype=np.int32)
        bounds = np.cumsum([0, *(len(f) for f in flat)])
        columns = [ColumnTokens(off, codes[a:b]) for off, a, b in zip(offsets, bounds[:-1], bounds[1:])]
    vocabulary = max(max((len(c.dictionary) for c in encoded.chunks), default=1), 1)
    return RecordTokens(columns, vocabulary, n)


def signatures(tokens: RecordTokens, seed: int = 0) -> np.ndarray:
    """MinHash signatures (n × NUM_HASHES, uint32); a record without tokens keeps the all-ones signature.

    The columns' tokens are merged into record order once: a stable sort of row numbers that are
    already sorted within each column (timsort merges the runs). Then records are taken in chunks
    whose codes stay in the CPU cache while every hash function reads them.
    """
    sig = np.full((tokens.n, NUM_HASHES), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not tokens.columns:
        return sig
    sizes = [np.diff(c.offsets) for c in tokens.columns]
    rows = np.concatenate([np.repeat(np.arange(tokens.n, dtype=np.int32), size) for size in sizes])
    codes = np.concatenate([c.codes for c in tokens.columns])[np.argsort(rows, kind="stable")]
    del rows
    total = np.sum(sizes, axis=0)
    ends = np.cumsum(total)
    base = _mix(np.arange(tokens.vocabulary, dtype=np.int64) + seed)
    table = np.stack([(_mix(base ^ _U64(0x9E3779B97F4A7C15 * (k + 1) % (1 << 64))) >> _U64(32)).astype(np.uint32)
                      for k in range(NUM_HASHES)])  # hash k of every token code
    record = 0
    while record < tokens.n:
        # records [record, stop) hold about CHUNK_TOKENS tokens
        stop = max(int(np.searchsorted(ends, ends[record] - total[record] + CHUNK_TOKENS, side="right")), record + 1)
        first = ends[record] - total[record]
        chunk = codes[first:ends[stop - 1]]
        nonempty = np.flatnonzero(total[record:stop] > 0)
        if len(nonempty):
            starts = (ends[record:stop] - total[record:stop])[nonempty] - first
            block = np.empty((NUM_HASHES, len(nonempty)), dtype=np.uint32)
            for k in range(NUM_HASHES):
                np.minimum.reduceat(table[k].take(chunk), starts, out=block[k])
            sig[record + nonempty] = block.T
        record = stop
    return sig


def _band_keys(sig: np.ndarray, band: int) -> np.ndarray:
    rows = NUM_HASHES // BANDS
    part = sig[:, band * rows:(band + 1) * rows].astype(_U64)
    key = _mix(np.full(len(sig), band, dtype=_U64))
    with np.errstate(over="ignore"):
        for j in range(rows):
            key = _mix(key ^ part[:, j])
    return key


def _gather(offsets: np.ndarray, codes: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The codes of `records` (CSR `offsets`), concatenated, and for each the position of its record in `records`."""
    sizes = offsets[1:][records] - offsets[:-1][records]
    owner = np.repeat(np.arange(len(records), dtype=np.int64), sizes)
    start = np.repeat(offsets[:-1][records] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return codes[np.arange(int(sizes.sum())) + start], owner


def jaccard(tokens: RecordTokens, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact Jaccard similarity of the token sets of each pair (left[i], right[i])."""
    out = np.zeros(len(left))
    for lo in range(0, len(left), CHUNK_PAIRS):
        a, b = left[lo:lo + CHUNK_PAIRS], right[lo:lo + CHUNK_PAIRS]
        sets_a, sets_b = tokens.sets(a), tokens.sets(b)
        pair_a = np.repeat(np.arange(len(a), dtype=np.int64), sets_a.sizes)
        pair_b = np.repeat(np.arange(len(b), dtype=np.int64), sets_b.sizes)
        keys = np.sort(np.concatenate([pair_a * tokens.vocabulary + sets_a.codes, pair_b * tokens.vocabulary + sets_b.codes]))
        shared = keys[1:][keys[1:] == keys[:-1]] // tokens.vocabulary  # a token in both sets appears twice
        inter = np.bincount(shared, minlength=len(a)).astype(np.float64)
        union = sets_a.sizes + sets_b.sizes - inter
        out[lo:lo + len(a)] = np.divide(inter, union, out=np.zeros(len(a)), where=union > 0)
    return out


def best_train_match(tokens: RecordTokens, n_train: int, threshold: float, seed: int = 0) -> BestMatch:
    """For each test record (rows n_train.. of `tokens`), the most similar train record among the LSH
    candidates whose estimated similarity is near `threshold` or above."""
    sig = signatures(tokens, seed)
    n_test = len(sig) - n_train
    has_tokens = tokens.has_tokens()
    pairs_test, pairs_train = [], []
    train_rows = np.flatnonzero(has_tokens[:n_train])
    for band in range(BANDS if len(train_rows) else 0):
        keys = _band_keys(sig, band)
        buckets = pd.Index(keys[train_rows])  # a hash table: one train record stands for each bucket
        first = ~buckets.duplicated()
        position = buckets[first].get_indexer(keys[n_train:])
        hit = (position >= 0) & has_tokens[n_train:]
        pairs_test.append(np.flatnonzero(hit))
        pairs_train.append(train_rows[first][position[hit]])
    best = BestMatch(np.full(n_test, -1, np.int64), np.zeros(n_test))
    if not pairs_test or not sum(len(p) for p in pairs_test):
        return best
    pair_keys = distinct_sorted(np.concatenate(pairs_test).astype(np.int64) * max(n_train, 1) + np.concatenate(pairs_train))
    test_idx, train_idx = pair_keys // max(n_train, 1), pair_keys % max(n_train, 1)
    keep = np.zeros(len(test_idx), bool)
    for lo in range(0, len(test_idx), CHUNK_PAIRS):  # estimated similarity: the share of equal minhashes
        part = slice(lo, lo + CHUNK_PAIRS)
        estimate = (sig[n_train + test_idx[part]] == sig[train_idx[part]]).mean(axis=1)
        keep[part] = estimate >= threshold - PREFILTER
    test_idx, train_idx = test_idx[keep], train_idx[keep]
    similarity = jaccard(tokens, n_train + test_idx, train_idx)
    order = np.lexsort((train_idx, -similarity, test_idx))  # per test record: most similar, then lowest train row
    test_idx, train_idx, similarity = test_idx[order], train_idx[order], similarity[order]
    first_of_test = np.concatenate([[True], test_idx[1:] != test_idx[:-1]]) if len(test_idx) else np.zeros(0, bool)
    best.train_index[test_idx[first_of_test]] = train_idx[first_of_test]
    best.similarity[test_idx[first_of_test]] = similarity[first_of_test]
    return best
