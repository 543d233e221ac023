"""Result records are read once: later scoring runs take unchanged ones from the index."""

from __future__ import annotations

import gzip
import json

import pytest

from challenge.core.catalog import RESULTS_INDEX as INDEX_KEY
from challenge.core.storage import Storage
from challenge.tasks.scoring.records import scan_results


def record(i: int, status: str = "scored") -> bytes:
    return json.dumps({"submission_id": f"s{i}", "status": status, "key": f"team-a/t/s{i}.csv"}).encode()


def counting_reads(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = storage.read_bytes

    def read_bytes(key: str) -> bytes:
        reads.append(key)
        return original(key)

    monkeypatch.setattr(storage, "read_bytes", read_bytes)
    return reads


def test_unchanged_records_come_from_the_index(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        storage.write_bytes(f"results/team-a/t/s{i}.json", record(i))
    storage.write_bytes("results/team-a/t/s9.error.json", b'{"attempts": 2}')
    reads = counting_reads(storage, monkeypatch)

    records, had_error = scan_results(storage)
    assert sorted(r["submission_id"] for r in records) == [f"s{i}" for i in range(5)] and had_error == {"s9": 2}
    assert len([k for k in reads if k.startswith("results/")]) == 6  # five records and the error note

    reads.clear()
    again, _ = scan_results(storage)
    assert again == records and sorted(reads) == [INDEX_KEY, "results/team-a/t/s9.error.json"]  # no record read

    reads.clear()
    storage.write_bytes("results/team-a/t/s2.json", record(2, "invalid"))  # a rescore rewrites one
    storage.write_bytes("results/team-a/t/s5.json", record(5))  # a new one
    storage.delete("results/team-a/t/s0.json")
    changed = {r["submission_id"]: r["status"] for r in scan_results(storage)[0]}
    assert changed == {"s1": "scored", "s2": "invalid", "s3": "scored", "s4": "scored", "s5": "scored"}
    records_read = sorted(k for k in reads if k.startswith("results/") and not k.endswith(".error.json"))
    assert records_read == ["results/team-a/t/s2.json", "results/team-a/t/s5.json"]


def test_a_damaged_index_is_rebuilt_from_the_records(storage: Storage) -> None:
    for i in range(3):
        storage.write_bytes(f"results/team-a/t/s{i}.json", record(i))
    storage.write_bytes(INDEX_KEY, b"not gzip")
    assert sorted(r["submission_id"] for r in scan_results(storage)[0]) == ["s0", "s1", "s2"]
    assert len(scan_results(storage)[0]) == 3  # the rewritten index is readable


def test_a_truncated_index_is_rebuilt(storage: Storage) -> None:
    for i in range(3):
        storage.write_bytes(f"results/team-a/t/s{i}.json", record(i))
    scan_results(storage)
    storage.write_bytes(INDEX_KEY, storage.read_bytes(INDEX_KEY)[:-20])  # cut short, as a killed write could
    assert sorted(r["submission_id"] for r in scan_results(storage)[0]) == ["s0", "s1", "s2"]


def test_a_forged_index_entry_is_not_trusted_over_its_record(storage: Storage) -> None:
    storage.write_bytes("results/team-a/t/s0.json", record(0, "invalid"))
    scan_results(storage)
    index = json.loads(gzip.decompress(storage.read_bytes(INDEX_KEY)))
    entry = index["results/team-a/t/s0.json"]
    entry["raw"] = entry["raw"].replace("invalid", "scored")  # same version, other bytes
    storage.write_bytes(INDEX_KEY, gzip.compress(json.dumps(index).encode()))
    assert [r["status"] for r in scan_results(storage)[0]] == ["invalid"]


def test_a_damaged_record_is_left_out_and_does_not_stop_the_scan(storage: Storage) -> None:
    storage.write_bytes("results/team-a/t/s0.json", record(0))
    storage.write_bytes("results/team-a/t/s1.json", record(1)[:10])  # truncated
    storage.write_bytes("results/team-a/t/s2.json", b"[1, 2]")  # not a record
    assert [r["submission_id"] for r in scan_results(storage)[0]] == ["s0"]
