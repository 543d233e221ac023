"""The staged tasks in `private`: which are staged, and one task's current version read into Arrow tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import StagedMeta, StagedPointer
from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage
from challenge.core.task_spec import TaskSpec


@dataclass
class StagedTask:
    """A staged version, its tables downloaded as local Parquet files (read whole, or batch by batch)."""

    spec: TaskSpec
    prefix: str
    files: dict[str, Path]
    fingerprint: str

    def table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.files[name], columns=columns)


def load_staged_task(private: Storage, task_id: str, workdir: Path) -> StagedTask:
    """The current staged version of `task_id`, its tables downloaded into `workdir`."""
    pointer = catalog.read_staged_pointer(private, task_id)
    if pointer is None:
        raise ChallengeError(
            f"task '{task_id}' is not staged: it has not passed the quality gate. Run `challenge collect` "
            f"and read its report under {private.uri_for(catalog.reports_prefix(task_id))}"
        )
    meta = catalog.read_record(private, catalog.staged_file_key(pointer.prefix, catalog.STAGED_META), StagedMeta)
    spec = TaskSpec.model_validate(meta.spec)
    files = {}
    for name in meta.tables:
        files[name] = workdir / "staged" / task_id / catalog.table_file(name)
        private.download_file(catalog.staged_file_key(pointer.prefix, catalog.table_file(name)), files[name])
    return StagedTask(spec, pointer.prefix, files, pointer.fingerprint)



def list_staged(private: Storage) -> dict[str, StagedPointer]:
    """task_id → the pointer to the current staged version of every staged task."""
    staged = {}
    for info in private.list(f"{catalog.STAGED}/"):
        task_id = catalog.staged_task_of(info.key)
        if task_id is not None:
            staged[task_id] = catalog.read_record(private, info.key, StagedPointer)
    return staged
