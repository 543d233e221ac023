"""Participants' submissions (SPEC §8): discover them, admit them, validate them.

A submission is `<submissions>/<team>/<task_id>/<name>.csv|.parquet`; its
identity is its key plus its ETag/version, so a re-upload under the same key
is a new submission. Problems a team may read are ParticipantVisibleError:
their message goes to the team's feedback file as is.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge.config import ChallengeConfig
from challenge.errors import ChallengeError
from tasks.storage import ObjectInfo, Storage

FEEDBACK_SUFFIX = ".result.json"
FINAL_CHOICE = "FINAL"
SUBMISSION_SUFFIXES = (".csv", ".parquet")
MAX_EXAMPLES = 5
PANDAS_INDEX_NAMES = ("", "Unnamed: 0")  # how a CSV written with its pandas index reads back
BASELINE_TEAM = "baseline"  # reserved: the organizers' reference submissions (tasks/baselines.py)


class ParticipantVisibleError(ChallengeError):
    """A problem with a submission whose message is safe and useful to show the team."""

    def __init__(self, message: str, status: str = "invalid"):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Submission:
    key: str
    team: str
    task_id: str
    name: str
    etag: str
    size: int
    uploaded_at: datetime

    @classmethod
    def from_record(cls, record: dict) -> "Submission":
        """The submission a result record was made for."""
        return cls(record["key"], record["team"], record["task_id"], record["name"], record["etag"],
                   record["bytes"], datetime.fromisoformat(record["uploaded_at"]))

    @property
    def submission_id(self) -> str:
        return hashlib.sha256(f"{self.key}\n{self.etag}".encode()).hexdigest()[:24]

    @property
    def result_key(self) -> str:
        return f"results/{self.team}/{self.task_id}/{self.submission_id}.json"

    @property
    def feedback_key(self) -> str:
        return f"{self.key}{FEEDBACK_SUFFIX}"


@dataclass
class Inbox:
    """What one listing of `submissions` holds."""

    submissions: list[Submission]
    feedback: set[str]  # keys of feedback files already written
    final_choices: dict[tuple[str, str], ObjectInfo]  # (team, task) → the FINAL file
    ignored: list[str]


def discover(submissions: Storage) -> Inbox:
    """One paginated pass over `submissions`."""
    inbox = Inbox([], set(), {}, [])
    for info in submissions.list(""):
        parts = info.key.split("/")
        if info.key.endswith(FEEDBACK_SUFFIX):
            inbox.feedback.add(info.key)
        elif len(parts) == 3 and parts[2] == FINAL_CHOICE:
            inbox.final_choices[(parts[0], parts[1])] = info
        elif len(parts) == 3 and parts[2].lower().endswith(SUBMISSION_SUFFIXES):
            inbox.submissions.append(_submission(info, parts))
        else:
            inbox.ignored.append(info.key)
    inbox.submissions.sort(key=lambda s: (s.uploaded_at, s.key))
    return inbox


SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".zst", ".7z", ".tar", ".tgz")
NOT_SCORED = "rejected: not a submission"


def why_not_scored(key: str) -> str | None:
    """For an upload that discover() ignores: the message of its feedback file, saying why it is not
    scored and what to upload instead. None for hidden files (`.DS_Store`), which get no feedback."""
    parts = key.split("/")
    name = parts[-1]
    lower = name.lower()
    if name.startswith(".") or lower.endswith(FEEDBACK_SUFFIX):
        return None
    where = "<your team>/<task_id>/<any name>.csv"
    if len(parts) != 3:
        place = "is not in a task folder" if len(parts) < 3 else "is in a subfolder of a task folder"
        return f"{key} {place}: submissions are uploaded as {where} (or .parquet), with columns id,label"
    if lower in ("final", "final.txt", "final.csv") or lower.startswith("final."):
        return f"{name}: the final choice is a file named exactly FINAL (no extension) holding the name of one scored submission"
    if lower.endswith(SPREADSHEET_SUFFIXES):
        return (f"{name} is a spreadsheet, which is not read: save it as CSV (UTF-8) or write it with "
                "df.to_csv(path, index=False), with columns id,label, and upload that")
    if lower.endswith(COMPRESSED_SUFFIXES):
        return (f"{name} is compressed, which is not read: upload the plain .csv, or a .parquet file "
                "(compressed by itself), with columns id,label")
    return f"{name} is not a submission: only .csv and .parquet files with columns id,label are scored"


def _submission(info: ObjectInfo, parts: list[str]) -> Submission:
    uploaded = info.modified if info.modified.tzinfo else info.modified.replace(tzinfo=timezone.utc)
    return Submission(info.key, parts[0], parts[1], parts[2], info.version, info.size, uploaded)


def admit(sub: Submission, config: ChallengeConfig, tasks: set[str]) -> None:
    """Admission before reading the file, in order: known team and task, on time, size.

    The reserved team `baseline` is admitted though challenge.yaml does not list it (config
    rejects a team of that id), and at any time: it is the organizers' reference, not a competitor.
    """
    policy = config.policy
    baseline = sub.team == BASELINE_TEAM
    if not baseline and sub.team not in {t.id for t in config.teams}:
        raise ParticipantVisibleError(f"unknown team '{sub.team}': upload under your team's id", "rejected")
    if sub.task_id not in tasks:
        raise ParticipantVisibleError(
            f"unknown task '{sub.task_id}': the current release has {', '.join(sorted(tasks))}", "rejected")
    outside = ((policy.opens_at and sub.uploaded_at < policy.opens_at)
               or (policy.closes_at and sub.uploaded_at > policy.closes_at))
    if outside and not baseline:
        raise ParticipantVisibleError(
            f"late: uploaded at {sub.uploaded_at.isoformat()}, outside the submission window "
            f"({policy.opens_at or 'open'} to {policy.closes_at or 'open'})", "rejected: late")
    if sub.size > policy.max_submission_mb * 1024 * 1024:
        raise ParticipantVisibleError(
            f"the file is {sub.size / 1048576:.1f} MB; the limit is {policy.max_submission_mb} MB", "rejected")


def check_quota(sub: Submission, config: ChallengeConfig, scored_today: int) -> None:
    """The last admission rule: scored submissions of this team and task on the upload's UTC day.

    The reserved team `baseline` has no quota (one file per task and release, re-run at will).
    """
    limit = config.policy.max_submissions_per_day
    if scored_today >= limit and sub.team != BASELINE_TEAM:
        raise ParticipantVisibleError(
            f"quota: {scored_today} submission(s) already scored for {sub.task_id} on "
            f"{sub.uploaded_at.date().isoformat()} (UTC); the limit is {limit} a day", "rejected: quota")


def read_submission(data: bytes, name: str) -> pa.Table:
    """The uploaded table, ids and labels as strings."""
    try:
        if name.lower().endswith(".parquet"):
            table = pq.read_table(io.BytesIO(data))
        else:
            table = pa_csv.read_csv(
                io.BytesIO(data),
                convert_options=pa_csv.ConvertOptions(
                    column_types={"id": pa.string(), "label": pa.string()}, strings_can_be_null=True),
            )
    except (pa.ArrowInvalid, OSError) as exc:
        kind = "Parquet" if name.lower().endswith(".parquet") else "CSV"
        raise ParticipantVisibleError(f"{name} cannot be read as {kind}: {str(exc).splitlines()[0]}") from None
    return table


def _examples(values: pa.Array | pa.ChunkedArray) -> str:
    shown = [str(v) for v in values.slice(0, MAX_EXAMPLES).to_pylist()]
    return ", ".join(shown) + (", …" if len(values) > MAX_EXAMPLES else "")


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.cast(column, pa.int64()) if pc.all(pc.equal(column, pc.round(column))).as_py() else column
    return column if column.type == pa.string() else pc.cast(column, pa.string())


class IdIndex:
    """Where each test id sits, for fast lookups of submitted ids.

    Published ids are `<prefix><zero-padded number>` (tasks/opaque_ids.py), so
    the fast path parses numbers and looks them up in a numpy array; any
    other id format falls back to a hash lookup.
    """

    def __init__(self, test_ids: pa.Array):
        self.test_ids = test_ids
        self.lookup: np.ndarray | None = None
        first = test_ids[0].as_py() if len(test_ids) else None
        match = re.match(r"^(\D*)(\d+)$", first or "")
        if match:
            self.prefix, self.width = match.group(1), len(match.group(2))
            numbers = self._numbers(test_ids)
            if numbers is not None and (numbers >= 0).all():
                self.lookup = np.full(int(numbers.max()) + 1, -1, dtype=np.int64)
                self.lookup[numbers] = np.arange(len(test_ids))

    def _numbers(self, ids: pa.Array) -> np.ndarray | None:
        """The number of each id of the published form, -1 for any other (or null) id."""
        ok = pc.and_(pc.starts_with(ids, self.prefix), pc.equal(pc.utf8_length(ids), len(self.prefix) + self.width))
        digits = pc.utf8_slice_codeunits(ids, len(self.prefix))
        ok = pc.fill_null(pc.and_(ok, pc.utf8_is_digit(digits)), False)
        numbers = pc.cast(pc.if_else(ok, digits, "-1"), pa.int64())
        return numbers.to_numpy(zero_copy_only=False)

    def positions(self, ids: pa.Array) -> np.ndarray:
        """Index of each submitted id among the test ids; -1 when it is not one."""
        if self.lookup is None:
            return pc.fill_null(pc.index_in(ids, value_set=self.test_ids), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        numbers = self._numbers(ids)
        inside = (numbers >= 0) & (numbers < len(self.lookup))
        out = np.full(len(numbers), -1, dtype=np.int64)
        out[inside] = self.lookup[numbers[inside]]
        return out


def validate(table: pa.Table, index: IdIndex, classes: pa.Array) -> pa.Array:
    """The predicted labels aligned with `test_ids`, or a ParticipantVisibleError saying what to fix.

    One hash lookup of the submitted ids in the test ids gives unknown,
    repeated and missing ids and the alignment; label checks run on the
    distinct labels only.
    """
    names = table.column_names
    if names and (names[0] in PANDAS_INDEX_NAMES or any(n.startswith("__index_level_") for n in names)):
        raise ParticipantVisibleError(
            "the file has an unnamed first column: it was written with its pandas index. Write it with "
            "df.to_csv(path, index=False) (or df.to_parquet(path, index=False)) so that the columns are exactly id,label")
    missing, extra = [c for c in ("id", "label") if c not in names], [c for c in names if c not in ("id", "label")]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(extra)}"] if extra else [])
        raise ParticipantVisibleError(f"columns must be exactly id,label: {'; '.join(parts)} (got {', '.join(names) or 'none'})")
    test_ids = index.test_ids
    ids = _as_text(table["id"]).combine_chunks()
    labels = _as_text(table["label"]).combine_chunks()
    problems = []
    if ids.null_count:
        problems.append(f"{ids.null_count} row(s) have no id")
    position = index.positions(ids)
    unknown = pc.and_(pa.array(position < 0), pc.is_valid(ids))
    if pc.any(unknown).as_py():
        bad = pc.filter(ids, unknown)
        problems.append(f"{len(bad)} id(s) are not test ids (e.g. {_examples(bad)})")
    found = position[position >= 0]
    seen = np.bincount(found, minlength=len(test_ids))
    if (seen > 1).any():
        repeated = test_ids.take(pa.array(np.flatnonzero(seen > 1)))
        problems.append(f"{len(repeated)} id(s) appear more than once (e.g. {_examples(repeated)})")
    if (seen == 0).any():
        absent = test_ids.take(pa.array(np.flatnonzero(seen == 0)))
        problems.append(f"{len(absent)} test id(s) are missing (e.g. {_examples(absent)})")
    encoded = pc.dictionary_encode(labels)
    distinct = encoded.dictionary
    blank = pc.or_(pc.equal(pc.utf8_trim_whitespace(distinct), ""),
                   pc.is_in(pc.utf8_lower(distinct), value_set=pa.array(["nan", "none", "null"])))
    empty_codes = pa.array(np.flatnonzero(blank.to_numpy(zero_copy_only=False)), pa.int32())
    empty = pc.or_(pc.is_null(labels), pc.fill_null(pc.is_in(encoded.indices, value_set=empty_codes), False))
    n_empty = pc.sum(empty).as_py() or 0
    if n_empty:
        problems.append(f"{n_empty} row(s) have an empty or NaN label (ids e.g. {_examples(pc.filter(ids, empty))})")
    outside = pc.filter(distinct, pc.and_(pc.invert(blank), pc.invert(pc.is_in(distinct, value_set=classes))))
    if len(outside):
        problems.append(f"{len(outside)} label(s) are not classes of this task (e.g. {_examples(outside)}); "
                        f"valid: {_examples(classes) if len(classes) > 20 else ', '.join(classes.to_pylist())}")
    if problems:
        raise ParticipantVisibleError("; ".join(problems))
    order = np.empty(len(test_ids), dtype=np.int64)
    order[position] = np.arange(len(position))
    # Reorder the small integer codes, not the strings.
    return pa.DictionaryArray.from_arrays(encoded.indices.take(pa.array(order)), distinct)
