"""Correct a released task's answer key with a trail (issue 13): a new key version in private (the old
ones kept), `answer_versions.json` (private: the version in use), a public corrections trail (when,
which version, its SHA-256, how many labels changed; never which) at `corrections/<release>/<task>.json`,
beside the release folders (a published release folder never changes), and the same fix written into
the staged data as a new staged version, so the next release keeps it. The checks of the file are in
tasks/corrections/file_checks.py; rescoring is the scoring run's (tasks/scoring/batches.py).

Order of writes, so that a crash heals: the new key file, the staged version, then
`answer_versions.json` (from here the corrected key is in use, and every scoring run rescores the
results scored with an earlier version), then the public trail (rewritten from the private record
when it is behind). A `corrections.json` that earlier versions wrote inside a release folder is left
as it is and never read: the trail is rebuilt from the private record.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import AnswerVersion, AnswerVersions, StagedMeta, StagedPointer
from challenge.core.errors import ChallengeError
from challenge.core.storage import TRANSFER_THREADS, Storage
from challenge.tasks.corrections.file_checks import (
    CorrectionError,
    apply_corrections,
    fix_staged_labels,
    fix_staged_pairs,
    read_corrections,
)
from challenge.tasks.release.latest import read_answer_versions
from challenge.tasks.scoring.score import load_answer_key


@dataclass
class Correction:
    """What one correction did."""

    task_id: str
    release: str
    version: int
    answers_sha256: str
    previous_sha256: str
    labels_changed: int
    staged: str  # what happened to the staged data, for the organizer


@dataclass(frozen=True)
class CorrectionsFile:
    """The organizer's corrections CSV: its name (for the messages) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class _KeyFix:
    """A correction to carry into the staged data: the checked corrections, the new key's SHA-256, and the staged
    fingerprint the release was built from."""

    corrections: pa.Table
    answers_sha256: str
    built_from: str | None


def _parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def public_corrections(versions: AnswerVersions) -> bytes:
    """The public corrections trail of a task: every correction, without the staged fingerprint or the file's hash."""
    entries = [{"version": v.version, "corrected_at": v.corrected_at, "answers_sha256": v.answers_sha256,
                "labels_changed": v.labels_changed, "release": v.release} for v in versions.versions if v.version > 1]
    return catalog.json_bytes({"task_id": versions.task_id, "answers_sha256_in_use": versions.versions[-1].answers_sha256,
                               "original_answers_sha256": versions.versions[0].answers_sha256, "corrections": entries})


def sync_public_corrections(public: Storage, release: str, versions: AnswerVersions) -> bool:
    """Write the public corrections trail when it is not what the private record says; True when written."""
    key, data = catalog.corrections_key(release, versions.task_id), public_corrections(versions)
    if public.exists(key) and public.read_bytes(key) == data:
        return False
    public.write_bytes(key, data)
    return True


def _fix_staged(private: Storage, release: str, task_id: str, kind: str, fix: _KeyFix,
                now: datetime) -> tuple[str | None, str]:
    """Write the corrected labels into a new staged version of the task and point current.json at it.
    Returns the new staged fingerprint (None when the staged data is no longer the one the release was
    built from, so the next release rebuilds the task anyway) and a line for the organizer."""
    pointer = catalog.read_staged_pointer(private, task_id)
    if pointer is None:
        return None, "not staged: nothing to fix there"
    meta = catalog.read_record(private, catalog.staged_file_key(pointer.prefix, catalog.STAGED_META), StagedMeta)
    table_name, map_name = ("data", catalog.ID_MAP) if kind == "classification" else ("pairs", catalog.PAIR_ID_MAP)
    staged = pq.read_table(io.BytesIO(private.read_bytes(catalog.staged_file_key(pointer.prefix, catalog.table_file(table_name)))))
    id_map = pq.read_table(io.BytesIO(private.read_bytes(catalog.release_file_key(release, task_id, map_name))))
    fixed, rows = (fix_staged_labels if kind == "classification" else fix_staged_pairs)(staged, id_map, fix.corrections)
    fingerprint = hashlib.sha256(f"{pointer.fingerprint}\ncorrected answers {fix.answers_sha256}".encode()).hexdigest()
    prefix = catalog.staged_version_prefix(task_id, fingerprint[:16])
    old = pointer.prefix + "/"
    skip = {catalog.staged_file_key(pointer.prefix, catalog.table_file(table_name)),
            catalog.staged_file_key(pointer.prefix, catalog.STAGED_META)}
    pairs = [(i.key, prefix + "/" + i.key[len(old):]) for i in private.list(old) if i.key not in skip]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(lambda pair: private.copy(*pair), pairs))
    private.write_bytes(catalog.staged_file_key(prefix, catalog.table_file(table_name)), _parquet_bytes(fixed))
    extra = dict(meta.model_extra or {})
    extra.update(corrected_from=pointer.version, corrected_at=now.isoformat(), staged_at=now.isoformat())
    new_meta = StagedMeta(task_id=meta.task_id, kind=meta.kind, fingerprint=fingerprint, tables=meta.tables,
                          spec=meta.spec, **extra)
    catalog.write_record(private, catalog.staged_file_key(prefix, catalog.STAGED_META), new_meta)
    catalog.write_record(private, catalog.staged_pointer_key(task_id), StagedPointer(
        task_id=task_id, kind=pointer.kind, contributor=pointer.contributor, version=fingerprint[:16], prefix=prefix,
        fingerprint=fingerprint, staged_at=now.isoformat()))
    where = private.uri_for(prefix)
    if fix.built_from != pointer.fingerprint:
        return None, (f"{rows} staged row(s) fixed in {where}; the staged data had changed since the release, so the "
                      "next release rebuilds the task")
    return fingerprint, f"{rows} staged row(s) fixed in {where}; the next release carries the corrected key over"


def correct_answer_key(public: Storage, private: Storage, release: str, task_id: str, upload: CorrectionsFile,
                       now: datetime) -> Correction:
    """Check `upload` (a corrections CSV) against the key in use, then write the new version and its trail.
    Nothing is written when the file has any problem, or changes no label."""
    name = upload.name
    key = load_answer_key(public, private, release, task_id)  # the version in use, its SHA-256 checked
    answers = pq.read_table(io.BytesIO(private.read_bytes(catalog.answers_key(release, task_id, key.version))))
    corrections = read_corrections(upload.data, name, answers, key.classes)
    fixed, changed = apply_corrections(answers, corrections)
    if changed == 0:
        raise CorrectionError(f"{name}: every label in it already equals the answer key in use (version {key.version}) "
                              f"of {task_id}: nothing to correct")
    manifest = catalog.read_manifest(public, release, task_id)
    versions = read_answer_versions(private, release, task_id) or AnswerVersions(
        task_id=task_id, versions=[AnswerVersion(version=1, answers_sha256=manifest.answers_sha256, release=manifest.release,
                                                 staged_fingerprint=(manifest.build_inputs or {}).get("staged_fingerprint"))])
    new_bytes = _parquet_bytes(fixed)
    sha = hashlib.sha256(new_bytes).hexdigest()
    version = versions.versions[-1].version + 1
    target = catalog.answers_key(release, task_id, version)
    if private.exists(target) and private.read_bytes(target) != new_bytes:
        raise ChallengeError(f"{private.uri_for(target)} exists and differs: an earlier correction stopped half-way; "
                             "move it away and run the correction again")
    private.write_bytes(target, new_bytes)
    fix = _KeyFix(corrections, sha, built_from=versions.versions[-1].staged_fingerprint)
    fingerprint, staged = _fix_staged(private, release, task_id, manifest.kind, fix, now)
    versions.versions.append(AnswerVersion(
        version=version, answers_sha256=sha, corrected_at=now.isoformat(), labels_changed=changed, release=release,
        staged_fingerprint=fingerprint, source_sha256=hashlib.sha256(upload.data).hexdigest()))
    catalog.write_record(private, catalog.answer_versions_key(release, task_id), versions)  # the new key is in use
    sync_public_corrections(public, release, versions)
    return Correction(task_id, release, version, sha, key.sha256, changed, staged)
