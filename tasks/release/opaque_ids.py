"""Opaque published ids: a keyed, seeded permutation of the sorted original ids.

The key is a secret kept in `private`; without it the published ids say
nothing about the original ids or the original row order. The same data and
key give the same ids, so releases are reproducible.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from challenge.core import catalog
from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage


def load_or_create_key(private: Storage) -> bytes:
    """The challenge's id key, created once (32 random bytes) in `private`, before the first release.

    Once a release exists, a missing key is an error: a new key would give every record of the next
    release new published ids (and lose the link to the answers of the earlier ones).
    """
    if private.exists(catalog.ID_KEY):
        key = private.read_bytes(catalog.ID_KEY)
        if len(key) != 32:
            raise ChallengeError(f"{private.uri_for(catalog.ID_KEY)} is damaged ({len(key)} bytes, not 32): restore it "
                                 "from a backup of the private location")
        return key
    if next(iter(private.list(f"{catalog.RELEASES}/")), None) is not None:
        raise ChallengeError(
            f"the id key {private.uri_for(catalog.ID_KEY)} is missing, but releases exist under "
            f"{private.uri_for(catalog.RELEASES)}: restore the key from a backup of the private location. A new key "
            "would change every published id in the next release")
    key = secrets.token_bytes(32)
    private.write_bytes(catalog.ID_KEY, key)
    return key


def load_key(private: Storage) -> bytes:
    """The id key; it must exist (load_or_create_key runs once before a release)."""
    return private.read_bytes(catalog.ID_KEY)


def opaque_ids(ids: pa.Array | pa.ChunkedArray, key: bytes, scope: str, prefix: str) -> tuple[pa.Array, np.ndarray]:
    """Map each distinct id to `<prefix><number>`, numbers permuted by a keyed seed.

    `scope` (e.g. "penguins/rows") gives each table its own permutation. Returns
    the ids and their numbers (zero-padded to one width, so sorting by number
    sorts the ids).
    """
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(ids)
    seed = int.from_bytes(hmac.new(key, scope.encode(), hashlib.sha256).digest()[:8], "big")
    order = np.asarray(pc.array_sort_indices(ids))
    numbers = np.empty(n, dtype=np.int64)
    numbers[order] = np.random.default_rng(seed).permutation(n)
    width = max(len(str(max(n - 1, 0))), 4)
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, ""), numbers
