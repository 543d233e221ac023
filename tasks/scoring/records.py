"""Reading every result record, cheaply, on every scoring run.

The records live one object per submission under `<private>/results/`. A run
lists them (one request per 1,000) and reads only those it has not seen at
their current version: the rest come from `<private>/cache/results-index.json.gz`,
which maps each record's key to (version, the record's exact bytes) and is
rewritten when anything changed. The index is only a hint: an entry is used
only when its bytes hash to the version the listing shows (an MD5, as S3's
ETag of a single-part object and the local backend's version are), so a
missing, stale, damaged or forged index costs reads, never a wrong record.
A record that cannot be parsed is left out (the submission is scored again
and the record rewritten).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from challenge.core import catalog
from challenge.core.logs import step_logger
from challenge.core.records import IndexEntry, ResultRecord
from challenge.core.storage import TRANSFER_THREADS, ObjectInfo, Storage

log = step_logger(__name__)


def read_index(private: Storage) -> dict[str, IndexEntry]:
    """key → {"version", "raw"}; empty when there is no usable index."""
    try:
        if not private.exists(catalog.RESULTS_INDEX):
            return {}
        index = json.loads(gzip.decompress(private.read_bytes(catalog.RESULTS_INDEX)))
    except Exception as exc:  # noqa: BLE001 (truncated gzip, bad JSON, ...: a damaged cache is rebuilt)
        log.warning("%s is unreadable (%s); reading every result record", private.uri_for(catalog.RESULTS_INDEX), exc)
        return {}
    return index if isinstance(index, dict) else {}


def _trusted(entry: Any, info: ObjectInfo) -> str | None:
    """The cached bytes of a record, when they are the bytes the listing's version names."""
    if not isinstance(entry, dict) or entry.get("version") != info.version or not isinstance(entry.get("raw"), str):
        return None
    raw = entry["raw"]
    return raw if hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest() == info.version else None


def _parse(key: str, raw: str) -> ResultRecord | None:
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "submission_id" not in record or "status" not in record:
        log.error("result record %s is damaged; its submission will be scored again", key)
        return None
    return record


def _attempts(private: Storage, info: ObjectInfo) -> int:
    try:
        return int(json.loads(private.read_bytes(info.key)).get("attempts", 1))
    except Exception:  # noqa: BLE001 (a damaged error note counts as one attempt)
        return 1


def scan_results(private: Storage) -> tuple[list[ResultRecord], dict[str, int]]:
    """One listing of `results/`: every final record, and for the submissions whose last attempt was
    an internal error, how many attempts they have had."""
    finals: list[ObjectInfo] = []
    errors: list[ObjectInfo] = []
    for info in private.list(f"{catalog.RESULTS}/"):
        if info.key.endswith(catalog.ERROR_SUFFIX):
            errors.append(info)
        elif info.key.endswith(".json"):
            finals.append(info)
    cached = read_index(private)
    raws = {i.key: _trusted(cached.get(i.key), i) for i in finals}
    fresh = [i for i in finals if raws[i.key] is None]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        raws.update(zip([i.key for i in fresh], pool.map(lambda i: private.read_bytes(i.key).decode("utf-8", "replace"), fresh)))
        attempts = dict(zip([catalog.submission_id_of_error(i.key) for i in errors],
                            pool.map(lambda i: _attempts(private, i), errors)))
    index = {i.key: {"version": i.version, "raw": raws[i.key]} for i in finals}
    if fresh or index.keys() != cached.keys():
        private.write_bytes(catalog.RESULTS_INDEX, gzip.compress(catalog.json_bytes(index, indent=None), mtime=0))
    records = [_parse(key, entry["raw"]) for key, entry in index.items()]
    return [r for r in records if r is not None], attempts


def load_results(private: Storage) -> list[ResultRecord]:
    """Every final result record (error records are not final)."""
    return scan_results(private)[0]
