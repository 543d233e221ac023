"""What a participant's commands do (SPEC §10): download a release, check and upload a submission, read
back one's own submissions. With the team's own credentials: `public` is read, only the team's folder of
`submissions` is listed and written (the IAM policy allows nothing else).

A file is checked before upload with the scorer's own check (tasks/scoring/score.py `checked_labels`) against
the release's test ids and the classes of its train table, so a refusal here is the message the scorer
would write in the feedback.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.catalog import ChallengeInfo, Latest, Manifest
from challenge.core.errors import ChallengeError, StorageError
from challenge.core.records import FinalAnswer, Quota
from challenge.core.storage import KeyTooLong, Storage, download_many, file_digest, is_valid_key, map_batched
from challenge.tasks.scoring.notes import check_message, note_bytes
from challenge.tasks.scoring.score import checked_labels
from challenge.tasks.scoring.submissions import SUBMISSION_SUFFIXES, IdIndex, Submission, shown

MAX_FEEDBACK_BYTES = 256 * 1024  # a feedback or history file the scorer writes is a few KB


# ---- download --------------------------------------------------------------------------------------------


@dataclass
class DownloadedTask:
    task_id: str
    folder: Path
    files: int
    fetched: int  # files downloaded this time (the others were there with the right SHA-256)
    bytes: int


def release_task_ids(latest: Latest, only: list[str] | None) -> list[str]:
    """The tasks to work on: `only` (each must be in the release), else all of it."""
    if not only:
        return list(latest.tasks)
    unknown = [t for t in only if t not in latest.tasks]
    if unknown:
        withdrawn = [f"{t} is withdrawn ({latest.withdrawn[t]})" for t in unknown if t in latest.withdrawn]
        raise ChallengeError(f"unknown task id(s) {', '.join(unknown)}: release {latest.release} has "
                             f"{', '.join(latest.tasks)}" + (f"; {'; '.join(withdrawn)}" if withdrawn else ""))
    return list(dict.fromkeys(only))


def _safe_path(path: str, where: str) -> PurePosixPath:
    """A manifest entry's path, refused when it could leave the task's folder."""
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts) or not is_valid_key(path):
        raise ChallengeError(f"{where} lists the file {shown(path)!r}, which is not a plain path inside the task's "
                             "folder: the release is damaged; tell the organizers")
    return PurePosixPath(*parts)


def download_task(public: Storage, release: str, task_id: str, to: Path) -> DownloadedTask:
    """Every file of the task's manifest into `to/<release>/<task>/`, each checked against its SHA-256 and
    size; a file already there with the right SHA-256 is kept (a second download fetches nothing). A file
    is written under a temporary name and renamed once it is verified."""
    manifest_key = catalog.manifest_key(release, task_id)
    raw = public.read_bytes(manifest_key)
    manifest = catalog.parse_record(Manifest, raw, public.uri_for(manifest_key))
    folder = to / release / task_id
    entries = [(e, folder / _safe_path(e.path, public.uri_for(manifest_key))) for e in manifest.files]
    present = [target.is_file() and target.stat().st_size == e.bytes for e, target in entries]
    digests = list(map_batched(lambda item: file_digest(item[1][1], "sha256") if item[0] else None, list(zip(present, entries))))
    due = [(e, target) for (e, target), digest in zip(entries, digests) if digest != e.sha256]
    folder.mkdir(parents=True, exist_ok=True)
    temporary = {target: target.with_name(f".part-{os.getpid()}-{target.name}") for _, target in due}
    try:
        download_many(public, [(catalog.release_file_key(release, task_id, e.path), temporary[t]) for e, t in due])
        for e, target in due:
            got = file_digest(temporary[target], "sha256")
            if got != e.sha256 or temporary[target].stat().st_size != e.bytes:
                raise ChallengeError(
                    f"{public.uri_for(catalog.release_file_key(release, task_id, e.path))}: its SHA-256 ({got[:12]}…) or size "
                    f"does not match the manifest ({e.sha256[:12]}…, {e.bytes} bytes): download again; "
                    "if it persists, tell the organizers")
        for _, target in due:
            os.replace(temporary[target], target)
    finally:
        for part in temporary.values():
            part.unlink(missing_ok=True)
    (folder / catalog.MANIFEST).write_bytes(raw)
    return DownloadedTask(task_id, folder, len(entries) + 1, len(due),
                          sum(int(e.bytes or 0) for e, _ in entries) + len(raw))


# ---- the task a file is checked against ----------------------------------------------------------------


@dataclass
class TaskKey:
    """What checking a file needs from the public release: the test ids and the classes seen in train."""

    release: str
    task_id: str
    kind: str
    metric: str
    index: IdIndex
    classes: pa.Array


def _parquet_column(public: Storage, key: str, column: str) -> pa.Array:
    table = pq.read_table(io.BytesIO(public.read_bytes(key)), columns=[column])
    return table[column].cast(pa.string()).combine_chunks()


def task_key(public: Storage, release: str, task_id: str) -> TaskKey:
    manifest = catalog.read_manifest(public, release, task_id)
    test_ids = _parquet_column(public, catalog.release_file_key(release, task_id, catalog.table_file("test")), "id")
    if manifest.kind == "classification":
        labels = _parquet_column(public, catalog.release_file_key(release, task_id, catalog.table_file("train")), "label")
        classes = pc.unique(labels).sort()
    else:
        classes = pa.array(["0", "1"])
    return TaskKey(release, task_id, manifest.kind, manifest.metric, IdIndex(test_ids), classes)


def check_file(data: bytes, name: str, key: TaskKey) -> None:
    """ParticipantVisibleError (the scorer's message) when the file would be invalid."""
    checked_labels(data, name, key.index, key.classes)


# ---- my submissions ------------------------------------------------------------------------------------


@dataclass
class Upload:
    """One upload in the team's folder and what the scorer said of it so far."""

    task_id: str
    name: str
    key: str
    uploaded_at: datetime
    bytes: int
    status: str = "pending"  # until its feedback is newer than it
    public_score: float | None = None
    message: str = ""
    description: str | None = None
    final_pick: bool = False
    counts_on_leaderboard: bool = False


@dataclass
class TaskSubmissions:
    task_id: str
    uploads: list[Upload] = field(default_factory=list)
    quota: Quota | None = None  # from history.json: the scorer's count of today's scored uploads
    final: FinalAnswer | None = None  # FINAL.result.json
    final_names: list[str] = field(default_factory=list)  # what FINAL says

    def pending(self) -> list[Upload]:
        return [u for u in self.uploads if u.status == "pending"]

    def left_today(self, limit: int | None, now: datetime) -> int | None:
        """Scored submissions left today (UTC), counting every upload still pending as if it will be scored."""
        today = now.astimezone(timezone.utc).date().isoformat()
        quota = self.quota if self.quota and self.quota.get("day") == today else None
        limit = limit if limit is not None else (self.quota or {}).get("limit")  # challenge.json's is the current one
        if limit is None:
            return None
        used = (quota or {}).get("used", 0)
        waiting = sum(1 for u in self.pending() if u.uploaded_at.astimezone(timezone.utc).date().isoformat() == today)
        return max(limit - used - waiting, 0)


def _json(store: Storage, key: str) -> Any:
    """A small JSON file of the team's folder, or None when it is missing, too large or not JSON."""
    try:
        raw = store.read_limited(key, MAX_FEEDBACK_BYTES)
        return json.loads(raw) if len(raw) <= MAX_FEEDBACK_BYTES else None
    except (ChallengeError, ValueError):
        return None


def my_submissions(submissions: Storage, team: str, task_ids: list[str]) -> dict[str, TaskSubmissions]:
    """The team's uploads per task (of `task_ids`), each with its status: `pending` until its feedback
    file is newer than the upload, else the feedback's; history.json adds final picks and the quota."""
    found = {t: TaskSubmissions(t) for t in task_ids}
    listed, moved = {}, {}  # moved: feedback in the team's folder, of uploads whose names left no room beside them
    for info in submissions.list(f"{team}/"):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[1] in found:
            listed[info.key] = info
        elif len(parts) == 2:
            moved[info.key] = info
    for key, info in sorted(listed.items(), key=lambda kv: (kv[1].modified, kv[0])):
        _, task_id, name = key.split("/")
        if name.lower().endswith(SUBMISSION_SUFFIXES):
            upload = Upload(task_id, name, key, info.modified, info.size)
            answer = listed.get(catalog.feedback_key(key)) or moved.get(str(Submission(
                key, team, task_id, name, info.version, info.size, info.modified, feedback_fits=False).feedback_key))
            if answer is not None and answer.modified >= info.modified:
                body = _json(submissions, answer.key) or {}
                upload.status = str(body.get("status") or "pending")
                upload.public_score = body.get("public_score") if isinstance(body.get("public_score"), (int, float)) else None
                upload.message = str(body.get("message") or "")
                upload.description = body.get("description") if isinstance(body.get("description"), str) else None
            found[task_id].uploads.append(upload)
    for task_id, mine in found.items():
        history = _json(submissions, catalog.history_key(team, task_id)) if catalog.history_key(team, task_id) in listed else None
        if isinstance(history, dict):
            mine.quota = history.get("quota") if isinstance(history.get("quota"), dict) else None
            rows = {r.get("name"): r for r in history.get("submissions") or [] if isinstance(r, dict)}
            for upload in mine.uploads:
                row = rows.get(upload.name) or {}
                upload.final_pick = bool(row.get("final_pick"))
                upload.counts_on_leaderboard = bool(row.get("counts_on_leaderboard"))
        final_key = catalog.final_choice_key(team, task_id)
        if final_key in listed:
            text = submissions.read_limited(final_key, 4096)[:4096].decode("utf-8", "replace")
            mine.final_names = [line.strip() for line in text.splitlines() if line.strip()][:20]
            answer = _json(submissions, catalog.feedback_key(final_key))
            mine.final = answer if isinstance(answer, dict) else None
    return found


# ---- submit ------------------------------------------------------------------------------------------------


@dataclass
class Received:
    key: str
    where: str
    bytes: int
    uploaded_at: datetime
    renamed_from: str | None = None


def upload_name(name: str, taken: set[str]) -> str:
    """`name`, or `stem-2.csv`, `stem-3.csv`, ... when an upload of that name exists (a re-upload under one
    name would be a new submission whose feedback replaces the old one's)."""
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    n = 2
    while f"{stem}-{n}{dot}{suffix}" in taken:
        n += 1
    return f"{stem}-{n}{dot}{suffix}"


def check_upload_name(name: str) -> None:
    lower = name.lower()
    if not lower.endswith(SUBMISSION_SUFFIXES):
        raise ChallengeError(f"{shown(name)}: only .csv and .parquet files with columns id,label are scored; "
                             "write it with df.to_csv(path, index=False)")
    if (not is_valid_key(name) or "/" in name or name.startswith(".") or name.upper() == catalog.FINAL_CHOICE
            or lower.endswith((catalog.FEEDBACK_SUFFIX, catalog.MESSAGE_SUFFIX))):
        raise ChallengeError(f"{shown(name)!r} cannot be an upload's name: use a plain name such as predictions.csv (--name)")


def check_key_room(submissions: Storage, key: str, with_message: bool) -> None:
    """ChallengeError, before anything is uploaded, when `key` or a key written beside it (the scorer's feedback,
    the --message note) is too long for the location (S3: 1,024 bytes with the location's prefix)."""
    beside = [("the scorer's feedback", catalog.feedback_key(key))] + (
        [("the message", catalog.message_key(key))] if with_message else [])
    for what, companion in [("the upload", key), *beside]:
        try:
            submissions.uri_for(companion)
        except KeyTooLong as exc:
            suffix = f" ({companion[len(key):]} added to the name)" if companion != key else ""
            raise ChallengeError(f"not uploaded: the name {shown(key.rsplit('/', 1)[-1])!r} is {exc.excess} byte(s) too "
                                 f"long for {what}{suffix}: {exc.limit}; upload under a shorter name (--name)") from None


def window_problem(info: ChallengeInfo | None, now: datetime) -> tuple[str | None, str | None]:
    """(why an upload now is refused, a warning) from challenge.json's window."""
    if info is None:
        return None, None
    if info.opens_at and now < datetime.fromisoformat(info.opens_at):
        return f"the challenge opens at {info.opens_at}; uploads before the opening are not scored", None
    ended = info.finalized_at or (info.closes_at if info.closes_at and now > datetime.fromisoformat(info.closes_at) else None)
    if ended:
        if info.after_close == "benchmark":
            return None, "the challenge is closed: this upload goes to the post-challenge benchmark board"
        return f"the challenge closed at {ended}; later uploads are rejected", None
    return None, None


@dataclass(frozen=True)
class CheckedFile:
    """A predictions file checked on the participant's side, to upload: its name, its bytes and the team's
    message for the leaderboard row (None: no note)."""

    name: str
    data: bytes
    message: str | None = None


def submit_file(submissions: Storage, team: str, task_id: str, file: CheckedFile, taken: set[str]) -> Received:
    """Upload the note (when there is a message), then the bytes that were checked, to `<team>/<task>/<name>`
    (renamed when `name` is `taken`); then head the key: what was received."""
    name, data, message = file.name, file.data, file.message
    final_name = upload_name(name, taken)
    key = catalog.submission_key(team, task_id, final_name)
    check_key_room(submissions, key, message is not None)
    if message is not None:
        submissions.write_bytes(catalog.message_key(key), note_bytes(check_message(message), data))
    submissions.write_bytes(key, data)
    info = submissions.head(key)
    if info is None:
        raise StorageError(f"{submissions.uri_for(key)}: uploaded, but not found afterwards; upload again")
    return Received(key, submissions.uri_for(key), info.size, info.modified, name if final_name != name else None)
