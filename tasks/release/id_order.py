"""Rows in the order of their published ids without holding the whole table: an external bucket sort.

Published ids are a keyed permutation of the rows, so the rows of any range of ids come from all over
the staged file. Each batch read is cut by id number into buckets of consecutive numbers and appended to
the bucket's spill file (an Arrow IPC stream on local disk); then the buckets are read back one by one,
each sorted in memory. Memory holds one batch while spilling and one bucket while reading back.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

BUCKET_ROWS = 1 << 16
NUMBER = "__id_number"


class IdOrderSpill:
    """Collects batches with their id numbers (0 ≤ number < n), then yields them in number order."""

    def __init__(self, folder: Path, n: int, bucket_rows: int | None = None):
        self.folder, self.bucket_rows = folder, bucket_rows or BUCKET_ROWS
        self.count = max(-(-n // self.bucket_rows), 1)
        self.writers: dict[int, ipc.RecordBatchStreamWriter] = {}
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: int) -> Path:
        return self.folder / f"bucket-{bucket:06d}.arrows"

    def add(self, table: pa.Table, numbers: np.ndarray) -> None:
        """Spill the rows of `table` (numbers[i] is row i's id number) into their buckets."""
        order = np.argsort(numbers, kind="stable")
        numbers = numbers[order]
        table = table.take(pa.array(order)).append_column(NUMBER, pa.array(numbers, pa.int64()))
        buckets = numbers // self.bucket_rows
        edges = np.flatnonzero(np.diff(buckets)) + 1
        for start, stop in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(numbers)]])):
            if stop <= start:
                continue
            bucket = int(buckets[start])
            if bucket not in self.writers:
                self.writers[bucket] = ipc.new_stream(str(self._path(bucket)), table.schema)
            self.writers[bucket].write_table(table.slice(start, stop - start))

    def buckets(self) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """Each bucket's rows sorted by id number, with the numbers; its spill file is removed once read."""
        for writer in self.writers.values():
            writer.close()
        try:
            for bucket in range(self.count):
                if bucket not in self.writers:
                    continue
                with pa.OSFile(str(self._path(bucket))) as source:
                    table = ipc.open_stream(source).read_all()
                numbers = np.asarray(table[NUMBER].to_numpy(), dtype=np.int64)
                order = np.argsort(numbers, kind="stable")
                yield table.drop_columns([NUMBER]).take(pa.array(order)), numbers[order]
                self._path(bucket).unlink()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
