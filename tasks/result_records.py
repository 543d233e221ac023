"""Reading every result record, cheaply, on every scoring run.

The records live one object per submission under `<private>/results/`. A run
lists them (one request per 1,000) and reads only those it has not seen at
their current version: the rest come from `<private>/cache/results-index.json.gz`,
which maps each record's key to (version, record) and is rewritten when
anything changed. The index is only a cache: a missing, stale or unreadable
index costs reads, never a wrong record.
"""

from __future__ import annotations

import gzip
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tasks.storage import TRANSFER_THREADS, ObjectInfo, Storage

INDEX_KEY = "cache/results-index.json.gz"
log = logging.getLogger(__name__)


def read_index(private: Storage) -> dict[str, dict[str, Any]]:
    """key → {"version", "record"}; empty when there is no usable index."""
    try:
        if not private.exists(INDEX_KEY):
            return {}
        index = json.loads(gzip.decompress(private.read_bytes(INDEX_KEY)))
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError) as exc:  # a damaged cache: rebuild it from the records
        log.warning("%s is unreadable (%s); reading every result record", private.uri_for(INDEX_KEY), exc)
        return {}


def scan_results(private: Storage) -> tuple[list[dict[str, Any]], set[str]]:
    """One listing of `results/`: every final record, and the ids whose last attempt was an error."""
    finals: list[ObjectInfo] = []
    had_error: set[str] = set()
    for info in private.list("results/"):
        if info.key.endswith(".error.json"):
            had_error.add(info.key.rsplit("/", 1)[-1][: -len(".error.json")])
        elif info.key.endswith(".json"):
            finals.append(info)
    cached = read_index(private)
    fresh = [i for i in finals if cached.get(i.key, {}).get("version") != i.version]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        read = dict(zip([i.key for i in fresh], pool.map(lambda i: json.loads(private.read_bytes(i.key)), fresh)))
    index = {i.key: {"version": i.version, "record": read[i.key] if i.key in read else cached[i.key]["record"]}
             for i in finals}
    if fresh or len(index) != len(cached):
        private.write_bytes(INDEX_KEY, gzip.compress(json.dumps(index, separators=(",", ":")).encode(), mtime=0))
    return [entry["record"] for entry in index.values()], had_error


def load_results(private: Storage) -> list[dict[str, Any]]:
    """Every final result record (error records are not final)."""
    return scan_results(private)[0]
