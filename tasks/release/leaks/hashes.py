"""Fixed-size hashes of a task's records for the leak checks, computed one batch of rows at a time.

Per record, whatever the width of its text:
- `exact`: a 64-bit hash of all its features (a text value by its words, their order and its length);
- `identifying[column]`: a 64-bit hash of the column's normalized value (0 when empty or missing);
- `tokens`: the 32-bit hashes of its tokens (the normalized words of its text columns, up to MAX_WORDS
  per column, and one token per other feature: `column=value`, floats to 3 significant digits);
- `bands`: its MinHash signature over those tokens (NUM_HASHES minima) cut into BANDS bands, each hashed
  to 32 bits (records with one equal band are candidate near-duplicates), and `signature`: the low 8
  bits of each minimum (enough to estimate a candidate pair's similarity: two unequal minima agree on
  them with probability 1/256).

Strings are hashed through a dictionary of the batch's distinct values (Arrow's hash table, then pandas'
SipHash on the distinct values only), and text is normalized on the batch's distinct words, not on every
value: lower case, ASCII punctuation removed (a word that is only punctuation is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NUM_HASHES = 32  # bins of one-permutation hashing: a power of two
BANDS = 8  # of NUM_HASHES // BANDS rows: a pair with similarity 0.8 becomes a candidate with probability 0.985
SIGNATURE_ROWS = 8192  # records whose signatures are computed together
DEFAULT_SIMILARITY = 0.8
MAX_WORDS = 64  # words of each text column per record: a copy with a word changed shows in its first 64
_U64 = np.uint64
NULL_HASH = _U64(0x6A09E667F3BCC908)
_POSITION = _U64(0x9E3779B97F4A7C15)


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a fast, well-spread 64-bit hash of each value (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = values.astype(_U64, copy=True)
        x ^= x >> _U64(30)
        x *= _U64(0xBF58476D1CE4E5B9)
        x ^= x >> _U64(27)
        x *= _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


def _segment_sums(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Wrapping uint64 sum of values[offsets[i]:offsets[i + 1]] for every i (0 for an empty segment)."""
    totals = np.concatenate([[_U64(0)], np.cumsum(values, dtype=_U64)])
    with np.errstate(over="ignore"):
        return totals[offsets[1:]] - totals[offsets[:-1]]


def string_hashes(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of every string (NULL_HASH for a null), hashing each distinct value once."""
    if pa.types.is_dictionary(values.type):
        dictionary, indices = values.dictionary, values.indices
    else:
        encoded = pc.dictionary_encode(values)
        dictionary, indices = encoded.dictionary, encoded.indices
    if not pa.types.is_string(dictionary.type) and not pa.types.is_large_string(dictionary.type):
        dictionary = pc.cast(dictionary, pa.string())
    distinct = pd.util.hash_array(dictionary.to_numpy(zero_copy_only=False), categorize=False)
    codes = np.asarray(indices.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    out = distinct[codes] if len(distinct) else np.zeros(len(values), _U64)
    return np.where(np.asarray(values.is_null().to_numpy(zero_copy_only=False)), NULL_HASH, out)


@dataclass
class ColumnTokens:
    """One column's token hashes, record after record: tokens[offsets[r]:offsets[r + 1]] belong to record r."""

    offsets: np.ndarray  # int64, n + 1
    tokens: np.ndarray  # uint32


@dataclass
class RecordHashes:
    """The hashes of some records (see the module docstring), rows in the order the records came; their
    tokens are kept batch by batch (records starts[i].. are in batches[i]), never copied together."""

    exact: np.ndarray  # uint64
    bands: np.ndarray  # uint32, n × BANDS
    signature: np.ndarray  # uint8, n × NUM_HASHES
    has_tokens: np.ndarray  # bool
    batches: list[ColumnTokens] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    identifying: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.exact)

    @staticmethod
    def allocate(n: int, identifying: list[str]) -> RecordHashes:
        """Room for the hashes of n records, filled batch by batch with `put`."""
        return RecordHashes(np.zeros(n, _U64), np.zeros((n, BANDS), np.uint32), np.zeros((n, NUM_HASHES), np.uint8),
                            np.zeros(n, bool), identifying={c: np.zeros(n, _U64) for c in identifying})

    def put(self, start: int, part: RecordHashes) -> None:
        """Store the hashes of one batch of records, the first of which is record `start`."""
        rows = slice(start, start + part.n)
        self.exact[rows], self.bands[rows], self.signature[rows] = part.exact, part.bands, part.signature
        self.has_tokens[rows] = part.has_tokens
        for column, values in part.identifying.items():
            self.identifying[column][rows] = values
        self.batches.extend(part.batches)
        self.starts.extend(start + s for s in part.starts)

    def sets(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The distinct tokens of `records` (few: the candidates): (offsets, sorted tokens of each)."""
        tokens, owners = [], []
        ends = [*self.starts[1:], self.n]
        for batch, start, end in zip(self.batches, self.starts, ends):
            mine = np.flatnonzero((records >= start) & (records < end))
            local = records[mine] - start
            sizes = batch.offsets[1:][local] - batch.offsets[:-1][local]
            first = np.repeat(batch.offsets[:-1][local] - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
            tokens.append(batch.tokens[np.arange(int(sizes.sum())) + first].astype(np.int64))
            owners.append(np.repeat(mine.astype(np.int64), sizes))
        keys = np.sort(np.concatenate(owners) << 32 | np.concatenate(tokens)) if tokens else np.zeros(0, np.int64)
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        offsets = np.searchsorted(keys >> 32, np.arange(len(records) + 1)).astype(np.int64)
        return offsets, keys & 0xFFFFFFFF


def _merge(columns: list[ColumnTokens], n: int) -> ColumnTokens:
    """Every record's tokens of all columns together (one offsets array instead of one per column)."""
    if not columns:
        return ColumnTokens(np.zeros(n + 1, np.int64), np.zeros(0, np.uint32))
    counts = np.stack([np.diff(c.offsets) for c in columns])
    offsets = np.concatenate([[0], np.cumsum(counts.sum(axis=0))]).astype(np.int64)
    before = np.cumsum(counts, axis=0) - counts  # tokens of the earlier columns in the same record
    tokens = np.empty(int(offsets[-1]), np.uint32)
    for column, count, earlier in zip(columns, counts, before):
        shift = np.repeat(offsets[:-1] + earlier - column.offsets[:-1], count)  # token i goes to i + shift
        tokens[np.arange(len(column.tokens), dtype=np.int64) + shift] = column.tokens
    return ColumnTokens(offsets, tokens)


@dataclass(frozen=True)
class LeakColumns:
    """Which columns the leak checks read: every feature (hashed in this order), the text ones, the
    identifying ones; and the token similarity that makes two records near-duplicates."""

    features: list[str]
    text: list[str] = field(default_factory=list)
    identifying: list[str] = field(default_factory=list)
    similarity: float = DEFAULT_SIMILARITY


def _plain(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.cast(values.type.value_type) if pa.types.is_dictionary(values.type) else values


_PUNCTUATION = r"[[:punct:]]+"


def _text(values: pa.Array, want_identifying: bool) -> tuple[np.ndarray, ColumnTokens, np.ndarray | None]:
    """(exact hash, tokens, normalized value hash or None) of a text column."""
    values = pc.cast(values, pa.string()) if not pa.types.is_string(values.type) else values
    lists = pc.utf8_split_whitespace(values)
    offsets = np.asarray(lists.offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    words = pc.list_flatten(lists)
    encoded = pc.dictionary_encode(words)
    vocabulary = encoded.dictionary
    codes = encoded.indices.to_numpy(zero_copy_only=False)  # int32
    raw = pd.util.hash_array(vocabulary.to_numpy(zero_copy_only=False), categorize=False)
    normalized = pc.replace_substring_regex(pc.utf8_lower(vocabulary), _PUNCTUATION, "")
    kept = np.asarray(pc.greater(pc.utf8_length(normalized), 0).to_numpy(zero_copy_only=False), dtype=bool)
    norm = pd.util.hash_array(normalized.to_numpy(zero_copy_only=False), categorize=False)
    position = (np.arange(len(codes), dtype=np.int32) - np.repeat(offsets[:-1].astype(np.int32), np.diff(offsets)))
    with np.errstate(over="ignore"):  # each word's hash times an odd number that depends on its position
        exact = _segment_sums(raw[codes] * (position.astype(_U64) * _POSITION | _U64(1)), offsets)
        exact = mix(exact ^ np.asarray(pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False), _U64))
    exact = np.where(np.asarray(values.is_null().to_numpy(zero_copy_only=False)), NULL_HASH, exact)
    valid = kept[codes]
    counts = np.concatenate([[0], np.cumsum(valid)])
    rank = counts[1:] - np.repeat(counts[offsets[:-1]], np.diff(offsets))  # 1-based among kept words
    identifying = None
    if want_identifying:
        with np.errstate(over="ignore"):
            parts = np.where(valid, norm[codes] * (rank.astype(_U64) * _POSITION | _U64(1)), _U64(0))
        identifying = mix(_segment_sums(parts, offsets))
        identifying[np.diff(counts[offsets]) == 0] = 0  # nothing left after normalization: 0
    take = valid & (rank <= MAX_WORDS)
    token_offsets = np.concatenate([[0], np.cumsum(take)])[offsets]
    tokens = (norm[codes[take]] >> _U64(32)).astype(np.uint32)
    return exact, ColumnTokens(token_offsets.astype(np.int64), tokens), identifying


def _rounded(values: np.ndarray) -> np.ndarray:
    """Floats to 3 significant digits (so 19.99 and 19.991 are one token)."""
    finite = np.isfinite(values) & (values != 0)
    exponent = np.zeros_like(values)
    exponent[finite] = np.floor(np.log10(np.abs(values[finite])))
    scale = 10.0 ** (exponent - 2)
    return np.round(np.where(finite, np.round(values / scale) * scale, values), 10)


def _other(values: pa.Array, salt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact hash, token, valid) of every value of a non-text feature (a null has no token)."""
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(values.type) or pa.types.is_integer(values.type):
        numbers = np.asarray(pc.cast(values, pa.float64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.float64)
        exact = mix(numbers.view(_U64) if pa.types.is_floating(values.type)
                    else np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.int64).view(_U64))
        token = mix(_rounded(numbers).view(_U64)) if pa.types.is_floating(values.type) else exact
        exact = np.where(valid, exact, NULL_HASH)
    else:
        exact = token = string_hashes(values if pa.types.is_dictionary(values.type) or pa.types.is_string(values.type)
                                      else pc.cast(values, pa.string()))
    token = mix(token ^ mix(np.full(1, salt, _U64)))
    return exact, (token >> _U64(32)).astype(np.uint32), valid


def _signatures(tokens: ColumnTokens, n: int, seed: int = 0) -> np.ndarray:
    """MinHash signatures by one-permutation hashing (n × NUM_HASHES, uint32): each token is hashed once,
    its top bits pick one of NUM_HASHES bins, and each bin keeps its minimum; an empty bin borrows the
    value of the next non-empty bin to its right (circularly), shifted by the distance ("rotation
    densification", Shrivastava and Li, 2014), so two records agree on a bin with probability close to
    their Jaccard similarity. A record without tokens keeps the all-ones signature. Records are taken
    SIGNATURE_ROWS at a time, so the work arrays stay small whatever the batch."""
    sig = np.empty((n, NUM_HASHES), dtype=np.uint32)
    for lo in range(0, n, SIGNATURE_ROWS):
        hi = min(lo + SIGNATURE_ROWS, n)
        first, last = tokens.offsets[lo], tokens.offsets[hi]
        sig[lo:hi] = _signature_rows(tokens.tokens[first:last], tokens.offsets[lo:hi + 1] - first, seed)
    return sig


def _signature_rows(tokens: np.ndarray, offsets: np.ndarray, seed: int) -> np.ndarray:
    n = len(offsets) - 1
    empty = np.iinfo(np.uint32).max
    sig = np.full(n * NUM_HASHES, empty, dtype=np.uint32)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    hashed = mix(tokens.astype(_U64) + _U64(seed))
    slots = rows * NUM_HASHES + (hashed >> _U64(64 - 5)).view(np.int64)  # NUM_HASHES = 2 ** 5 bins
    np.minimum.at(sig, slots, (hashed & _U64(0xFFFFFFFE)).astype(np.uint32))  # never the empty mark
    sig = sig.reshape(n, NUM_HASHES)
    filled = sig != empty
    if filled.all():
        return sig
    twice = np.concatenate([sig, sig], axis=1)
    position = np.where(np.concatenate([filled, filled], axis=1), np.arange(2 * NUM_HASHES, dtype=np.int8),
                        np.int8(2 * NUM_HASHES - 1))
    following = np.minimum.accumulate(position[:, ::-1], axis=1)[:, ::-1][:, :NUM_HASHES]  # next filled bin
    borrowed = np.take_along_axis(twice, following.astype(np.intp), axis=1)
    with np.errstate(over="ignore"):
        shifted = borrowed + (following - np.arange(NUM_HASHES, dtype=np.int8)).astype(np.uint32) * np.uint32(0x9E3779B1)
    has_tokens = filled.any(axis=1, keepdims=True)
    return np.where(filled | ~has_tokens, sig, shifted & np.uint32(0xFFFFFFFE))


def _band_keys(sig: np.ndarray) -> np.ndarray:
    """Each band of NUM_HASHES // BANDS minima (two 64-bit words of the signature) hashed to 32 bits."""
    words = np.ascontiguousarray(sig).view(_U64)  # n × NUM_HASHES / 2
    per_band = words.shape[1] // BANDS
    keys = np.empty((len(sig), BANDS), np.uint32)
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            key = words[:, band * per_band] * _U64(0x9FB21C651E98DF25) + _U64(band)
            for j in range(1, per_band):
                key = (key ^ words[:, band * per_band + j]) * _U64(0xC2B2AE3D27D4EB4F)
            keys[:, band] = (mix(key) >> _U64(32)).astype(np.uint32)
    return keys


def hash_records(table: pa.Table | pa.RecordBatch, columns: LeakColumns) -> RecordHashes:
    """The hashes of every row of `table` (one batch)."""
    n = table.num_rows
    exact = np.zeros(n, _U64)
    tokens, identifying, others, valid = [], {}, [], []
    for salt, name in enumerate(columns.features):
        values = _plain(table.column(name))
        if name in columns.text:
            column_exact, column_tokens, normalized = _text(values, name in columns.identifying)
            tokens.append(column_tokens)
            if normalized is not None:
                identifying[name] = normalized
        else:
            column_exact, token, has_value = _other(values, salt)
            others.append(token)
            valid.append(has_value)
            if name in columns.identifying:
                text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
                filled = pc.fill_null(pc.greater(pc.utf8_length(text), 0), False).to_numpy(zero_copy_only=False)
                identifying[name] = np.where(np.asarray(filled, dtype=bool), column_exact, _U64(0))
        with np.errstate(over="ignore"):
            exact = mix(exact * _U64(0x100000001B3) + column_exact)
    if others:  # one token list for all other features: one offsets array, not one per column
        mask = np.column_stack(valid)
        tokens.append(ColumnTokens(np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64),
                                   np.column_stack(others)[mask]))
    merged = _merge(tokens, n)
    sig = _signatures(merged, n)
    return RecordHashes(exact, _band_keys(sig), sig.astype(np.uint8), np.diff(merged.offsets) > 0, [merged], [0],
                        identifying)
