"""The staged tasks in `private`: which are staged, and one task's current version read into Arrow tables."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import StagedMeta, StagedPointer
from challenge.core.errors import ChallengeError, StorageError
from challenge.core.storage import HASH_THREADS, Storage, file_digest, map_batched, stream_digest
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


def content_digest(file_digests: dict[str, str], spec: dict) -> str:
    """One SHA-256 of a staged version's content: its task.yaml as read (`spec`) and each file's SHA-256 (by
    its path inside the version; staged.json itself not included). Independent of the rules and of when or
    from which upload it was staged: two versions with one digest hold the same data."""
    lines = [json.dumps(spec, sort_keys=True, default=str), *(f"{name}\t{file_digests[name]}" for name in sorted(file_digests))]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def local_version_digests(out: Path, images: Path | None) -> dict[str, str]:
    """The SHA-256 of each file a version staged from `out` (the standardized tables) and the drop's `images`
    folder will hold, by its path inside the version."""
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    if images is not None and images.is_dir():
        files.update({f"{catalog.IMAGES}/{p.relative_to(images).as_posix()}": p for p in images.rglob("*") if p.is_file()})
    files.pop(catalog.STAGED_META, None)
    return dict(zip(files, map_batched(lambda path: file_digest(path, "sha256"), files.values(), threads=HASH_THREADS)))


def stored_content_digest(private: Storage, pointer: StagedPointer) -> str | None:
    """The content digest of the version `pointer` names: recorded in its staged.json since it is made, else
    computed from its stored files (once, for a version staged before). None when the version cannot be
    read (then it is not taken for the same)."""
    try:
        meta = catalog.read_record(private, catalog.staged_file_key(pointer.prefix, catalog.STAGED_META), StagedMeta)
        if isinstance(meta.content_sha256, str):
            return meta.content_sha256
        prefix = pointer.prefix.rstrip("/") + "/"
        digests = {}
        for info in private.list(prefix):
            name = info.key[len(prefix):]
            if name != catalog.STAGED_META:
                with private.open_read(info.key) as handle:
                    digests[name] = stream_digest(handle, "sha256")
        return content_digest(digests, meta.spec)
    except (ChallengeError, StorageError, OSError, ValueError):
        return None

