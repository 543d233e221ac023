"""Participants' submissions (SPEC §8): discover them, admit them, validate them.

A submission is `<submissions>/<team>/<task_id>/<name>.csv|.parquet`; its
identity is its key plus its ETag/version, so a re-upload under the same key
is a new submission. Problems a team may read are ParticipantVisibleError:
their message goes to the team's feedback file as is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from challenge.core import catalog
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError, StorageError
from challenge.core.sniff import PARQUET, TEXT_KINDS, binary_kind
from challenge.core.storage import KeyTooLong, ObjectInfo, Storage, is_valid_key, key_fits, validate_key

SUBMISSION_SUFFIXES = (".csv", ".parquet")
MAX_EXAMPLES = 5
MAX_MESSAGE = 2000  # characters of a participant-visible message
MAX_LABEL_CHARS = 1000
ROWS_ALLOWED = 2  # a submission may have at most this many times the test rows (+ 1000) before it is read
BYTES_PER_ROW = 2048  # Parquet: decoded bytes allowed per allowed row (ids and labels are short)
MAX_LOOKUP_PER_ID = 16  # published ids: lookup entries per test id (1/test_fraction) beyond which ids are hashed
LOOKUP_BLOCK = 16384  # ids parsed and looked up this many at a time: the temporaries stay in the CPU's cache
MAX_PEEKED_ROW_GROUPS = 64  # Parquet: past this many row groups, ids are read dictionary-encoded (see _read_parquet)
PANDAS_INDEX_NAMES = ("", "Unnamed: 0")  # how a CSV written with its pandas index reads back
CSV_BLOCK_BYTES = 1 << 20  # pyarrow's CSV block: a line longer than this cannot be read
MAX_FOLDER_BYTES = 256  # a team's or a <team>/<task> folder: ids are at most 63 characters each
BASELINE_TEAM = "baseline"  # reserved: the organizers' reference submissions (tasks/baselines/models.py)


class ParticipantVisibleError(ChallengeError):
    """A problem with a submission whose message is safe and useful to show the team (at most
    MAX_MESSAGE characters: a feedback file stays small whatever the upload holds)."""

    def __init__(self, message: str, status: str = "invalid"):
        super().__init__(message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…")
        self.status = status


def shown(text: str, limit: int = 60) -> str:
    """A name or value from an upload, cut for a message: `abc…` past `limit` characters."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Submission:
    key: str
    team: str
    task_id: str
    name: str
    etag: str
    size: int
    uploaded_at: datetime
    has_message: bool = False  # a note (<file>.message.json) was listed beside it
    feedback_fits: bool = True  # its feedback key beside it fits the location (S3: 1,024 bytes with the prefix)

    @classmethod
    def from_record(cls, record: dict) -> "Submission":
        """The submission a result record was made for."""
        return cls(record["key"], record["team"], record["task_id"], record["name"], record["etag"],
                   record["bytes"], datetime.fromisoformat(record["uploaded_at"]))

    @property
    def submission_id(self) -> str:
        return hashlib.sha256(f"{self.key}\n{self.etag}".encode()).hexdigest()[:24]

    @property
    def usable(self) -> bool:
        """Whether the key is one the product can store results and feedback for (its team and task folder
        as short as ids are, whatever the private location's prefix)."""
        folder = catalog.task_folder(self.team, self.task_id)
        return is_valid_key(self.key) and is_valid_key(folder) and len(folder.encode()) <= MAX_FOLDER_BYTES

    @property
    def result_key(self) -> str:
        if not self.usable:
            return catalog.unusable_result_key(self.submission_id)
        return catalog.result_key(self.team, self.task_id, self.submission_id)

    @property
    def feedback_key(self) -> str | None:
        """Next to the upload; for a key that cannot be written to, or whose name leaves no room for the
        feedback's suffix (feedback_moved), in the team's folder when that folder can be named; else None
        (the organizers see the record)."""
        beside = catalog.feedback_key(self.key)
        if self.feedback_fits and is_valid_key(beside):
            return beside
        fallback = catalog.unusable_feedback_key(self.team, self.submission_id)
        return fallback if is_valid_key(fallback) and self.team and len(self.team.encode()) <= MAX_FOLDER_BYTES else None

    @property
    def feedback_moved(self) -> bool:
        """Whether the upload's key is valid but too long for a feedback key beside it."""
        return is_valid_key(self.key) and self.feedback_key != catalog.feedback_key(self.key)


@dataclass
class Inbox:
    """What one listing of `submissions` holds."""

    submissions: list[Submission]
    feedback: set[str]  # keys of feedback files already written
    final_choices: dict[tuple[str, str], ObjectInfo]  # (team, task) → the FINAL file
    ignored: list[str]
    unusable: list[tuple[Submission, str]] = field(default_factory=list)  # uploads that cannot be read, and why
    histories: set[str] = field(default_factory=set)  # keys of the teams' history.json files (written by scoring)
    messages: dict[str, ObjectInfo] = field(default_factory=dict)  # upload key → its note (challenge submit --message)


def key_problem(info: ObjectInfo, submissions: Storage | None = None) -> str | None:
    """Why a listed upload cannot be used at all (a key no storage accepts, or longer than `submissions` holds,
    or not a regular file)."""
    try:
        validate_key(info.key)
        if submissions is not None:
            submissions.uri_for(info.key)  # KeyTooLong past S3's 1,024 bytes with the prefix (moto lists one)
    except KeyTooLong as exc:
        return f"{exc}, and upload it again"
    except StorageError as exc:
        return f"{exc}; upload it again as <team>/<task_id>/<name>.csv with a plain name"
    if info.problem:
        return (f"{shown(info.key.rsplit('/', 1)[-1])} is {info.problem}; only regular files are read: "
                "upload the file itself")
    return None


def discover(submissions: Storage) -> Inbox:
    """One paginated pass over `submissions`. A key that cannot be used goes to `unusable`, with the
    reason, and never stops the pass."""
    inbox = Inbox([], set(), {}, [])
    for info in submissions.list(""):
        parts = info.key.split("/")
        problem = key_problem(info, submissions)
        if problem:
            name = parts[-1] if parts[-1] else "(no name)"
            team, task = (parts + ["", ""])[:2] if len(parts) >= 2 else ("", "")
            inbox.unusable.append((replace(_submission(info, [team, task, name]),
                                           feedback_fits=key_fits(submissions, catalog.feedback_key(info.key))), problem))
        elif info.key.endswith(catalog.FEEDBACK_SUFFIX):
            inbox.feedback.add(info.key)
        elif info.key.endswith(catalog.MESSAGE_SUFFIX) and len(parts) == 3:
            inbox.messages[info.key.removesuffix(catalog.MESSAGE_SUFFIX)] = info
        elif len(parts) == 3 and parts[2] == catalog.FINAL_CHOICE:
            inbox.final_choices[(parts[0], parts[1])] = info
        elif len(parts) == 3 and parts[2] == catalog.HISTORY:
            inbox.histories.add(info.key)
        elif len(parts) == 3 and parts[2].lower().endswith(SUBMISSION_SUFFIXES):
            inbox.submissions.append(replace(_submission(info, parts),
                                             feedback_fits=key_fits(submissions, catalog.feedback_key(info.key))))
        else:
            inbox.ignored.append(info.key)
    inbox.submissions = sorted((replace(s, has_message=True) if s.key in inbox.messages else s for s in inbox.submissions),
                               key=lambda s: (s.uploaded_at, s.key))
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
    if name.startswith(".") or lower.endswith(catalog.FEEDBACK_SUFFIX):
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


def after_close(sub: Submission, config: ChallengeConfig, finalized_at: datetime | None = None) -> str | None:
    """Why `sub` came after the challenge ended ("finalized" or "closed"), else None. The reserved team
    `baseline` is not held to `closes_at`, only to finalize."""
    if finalized_at and sub.uploaded_at > finalized_at:
        return "finalized"
    if config.policy.closes_at and sub.uploaded_at > config.policy.closes_at and sub.team != BASELINE_TEAM:
        return "closed"
    return None


def admit(sub: Submission, config: ChallengeConfig, tasks: set[str], finalized_at: datetime | None = None) -> str:
    """Admission before reading the file, in order: known team and task, on time, size. Returns the
    submission's phase: "challenge", or "benchmark" for an upload after the close when
    `policy.after_close` is `benchmark` (scored on the post-challenge board, never the final one).

    The reserved team `baseline` is admitted though challenge.yaml does not list it (config
    rejects a team of that id), and at any time until the challenge is finalized: it is the
    organizers' reference, not a competitor. Otherwise nothing uploaded after the close is scored.
    """
    policy = config.policy
    baseline = sub.team == BASELINE_TEAM
    if not baseline and sub.team not in {t.id for t in config.teams}:
        raise ParticipantVisibleError(f"unknown team '{sub.team}': upload under your team's id", "rejected")
    if sub.task_id in config.withdrawn and sub.task_id not in tasks:
        raise ParticipantVisibleError(
            f"task '{sub.task_id}' is withdrawn: {config.withdrawn[sub.task_id]}", "rejected")
    if sub.task_id not in tasks:
        raise ParticipantVisibleError(
            f"unknown task '{sub.task_id}': the current release has {', '.join(sorted(tasks))}", "rejected")
    if policy.opens_at and sub.uploaded_at < policy.opens_at and not baseline:
        raise ParticipantVisibleError(
            f"early: uploaded at {sub.uploaded_at.isoformat()}, before the challenge opens at "
            f"{policy.opens_at.isoformat()}; uploads before the opening are not scored: upload it again "
            "after the opening", "rejected: early")
    ended = after_close(sub, config, finalized_at)
    phase = "challenge"
    if ended and policy.after_close == "benchmark":
        phase = "benchmark"
    elif ended == "finalized":
        raise ParticipantVisibleError(
            f"closed: uploaded at {sub.uploaded_at.isoformat()}, after the challenge was finalized at "
            f"{finalized_at.isoformat() if finalized_at else ''}; the final standings do not change", "rejected: closed")
    elif ended:
        raise ParticipantVisibleError(
            f"closed: uploaded at {sub.uploaded_at.isoformat()}, after the challenge closed at "
            f"{policy.closes_at.isoformat() if policy.closes_at else ''}", "rejected: closed")
    if sub.size > policy.max_submission_mb * 1024 * 1024:
        raise ParticipantVisibleError(
            f"the file is {sub.size / 1048576:.1f} MB; the limit is {policy.max_submission_mb} MB", "rejected")
    return phase


def check_quota(sub: Submission, config: ChallengeConfig, scored_today: int) -> None:
    """The last admission rule: scored submissions of this team and task on the upload's UTC day.

    The reserved team `baseline` has no quota (one file per task and release, re-run at will).
    """
    limit = config.policy.max_submissions_per_day
    if scored_today >= limit and sub.team != BASELINE_TEAM:
        raise ParticipantVisibleError(
            f"quota: {scored_today} submission(s) already scored for {sub.task_id} on "
            f"{sub.uploaded_at.date().isoformat()} (UTC); the limit is {limit} a day", "rejected: quota")


def row_limit(test_rows: int) -> int:
    """Rows a submission may have before it is refused unread (a multiple of the test set)."""
    return ROWS_ALLOWED * test_rows + 1000


def id_label_problem(names: list[str], parquet: bool = True) -> str | None:
    """What is wrong with a file's columns, or None when they are exactly id,label (in either order): a pandas
    index, too many, a repeated, a missing or an unexpected column is named, cut to a short message. The one
    check of an id,label file: submissions and answer-key corrections (`parquet`: whether Parquet is accepted)."""
    if names and (names[0] in PANDAS_INDEX_NAMES or any(n.startswith("__index_level_") for n in names)):
        return ("the file has an unnamed first column: it was written with its pandas index. Write it with "
                "df.to_csv(path, index=False)" + (" (or df.to_parquet(path, index=False))" if parquet else "")
                + " so that the columns are exactly id,label")
    if len(names) > 20:
        return (f"columns must be exactly id,label: the file has {len(names)} columns "
                f"(starting {', '.join(shown(n, 30) for n in names[:3])}, …)")
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if repeated:
        return f"columns must be exactly id,label: {', '.join(shown(n) for n in repeated[:5])} appears more than once"
    missing, extra = [c for c in ("id", "label") if c not in names], [c for c in names if c not in ("id", "label")]
    if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
        return (f"the header {shown(names[0])!r} is one column: separate the columns with commas (id,label)"
                + (", or upload Parquet" if parquet else ""))
    if not (missing or extra):
        return None
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unexpected {', '.join(shown(c) for c in extra[:5])}" + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")]
        if extra else [])
    got = ", ".join(shown(n) for n in names[:8]) + (", …" if len(names) > 8 else "")
    case = " (write the names in lower case, without spaces around them)" if missing and sorted(
        n.strip().lower() for n in names) == ["id", "label"] else ""
    return f"columns must be exactly id,label: {'; '.join(parts)} (got {got or 'none'}){case}"


def _check_columns(names: list[str]) -> None:
    problem = id_label_problem(names)
    if problem:
        raise ParticipantVisibleError(problem)


def _csv_header(data: bytes, name: str = "the file") -> list[str]:
    """The column names on a CSV's first line (a UTF-8 byte-order mark dropped; a line ends with LF, CRLF
    or a CR alone, as the CSV reader reads it)."""
    newline = data.find(b"\n")
    newline = len(data) if newline < 0 else newline
    cr = data.find(b"\r", 0, newline)
    line = data[:cr if cr >= 0 else newline]
    text = line.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    try:
        return next(csv.reader([text]), []) if text else []
    except csv.Error:  # a value past the csv module's 128 KB field limit
        raise ParticipantVisibleError(
            f"the first line of {shown(name)} is {len(line) / 1048576:.1f} MB with a value longer than 128 KB: the first "
            "line must be the header id,label, then one id,label pair per line") from None


def _not_what_it_is_named(data: bytes, name: str, parquet: bool) -> ParticipantVisibleError | None:
    """For bytes that are not the format the name says (UTF-16 text, gzip, a workbook, Parquet named .csv, CSV
    named .parquet), the problem and its fix."""
    kind = binary_kind(data[:4096])
    if parquet:
        if data.startswith(b"PAR1") and data.endswith(b"PAR1"):
            return None
        if kind is None and b"," in data[:data.find(b"\n") if b"\n" in data[:4096] else 4096]:
            return ParticipantVisibleError(f"{shown(name)} is CSV text, not Parquet: upload it as a .csv file")
        if kind is None or kind == PARQUET:
            return None
    elif kind is None:
        return None
    elif kind == PARQUET:
        return ParticipantVisibleError(f"{shown(name)} is a Parquet file named .csv: upload it with the .parquet "
                                       "extension")
    fix = ("save it as UTF-8 (pandas: df.to_csv(path, index=False); Excel: Save As 'CSV UTF-8')" if kind in TEXT_KINDS
           else "upload the plain file: a UTF-8 .csv (df.to_csv(path, index=False)) or a .parquet file "
                "(compressed by itself)")
    return ParticipantVisibleError(f"{shown(name)} is {kind}, not {'Parquet' if parquet else 'CSV text'}: {fix}, "
                                   "with columns id,label")


def _reader_problem(exc: Exception, name: str, parquet: bool) -> ParticipantVisibleError:
    """The reader's failure on the participant's bytes, in words that say what to fix."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "straddling object straddles two block boundaries" in first:
        return ParticipantVisibleError(
            f"{shown(name)} has a line longer than {CSV_BLOCK_BYTES >> 20} MB; ids and labels are short (at most "
            f"{MAX_LABEL_CHARS} characters): write one id,label pair per line")
    return ParticipantVisibleError(f"{shown(name)} cannot be read as {'Parquet' if parquet else 'CSV'}: {shown(first, 300)}")


def _is_text(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind))


def _too_long(name: str, longest: int) -> ParticipantVisibleError:
    return ParticipantVisibleError(f"a value of the {name} column is {longest} bytes long; ids and labels are "
                                   f"short (at most {MAX_LABEL_CHARS} characters)")


def _check_id_dictionaries(data: bytes, metadata: pq.FileMetaData) -> bool:
    """Whether the id column may be read as plain text: each row group's Parquet dictionary (the only way
    a few bytes expand to many) is read alone, from the group's first row, and a long value refused
    before any row expands. False (read it dictionary-encoded) past MAX_PEEKED_ROW_GROUPS groups."""
    if metadata.num_row_groups > MAX_PEEKED_ROW_GROUPS:
        return False
    source = pq.ParquetFile(io.BytesIO(data), metadata=metadata, read_dictionary=["id"])
    for group in range(metadata.num_row_groups):
        if not metadata.row_group(group).num_rows:
            continue
        first = next(source.iter_batches(batch_size=1, row_groups=[group], columns=["id"], use_threads=False), None)
        column = first.column(0) if first is not None else None
        if column is not None and pa.types.is_dictionary(column.type) and _is_text(column.type.value_type) \
                and len(column.dictionary):
            longest = pc.max(pc.binary_length(column.dictionary)).as_py() or 0
            if longest > MAX_LABEL_CHARS:
                raise _too_long("id", longest)
    return True


def _read_parquet(data: bytes, test_rows: int | None, max_rows: int | None) -> pa.Table:
    """Checks on the metadata (columns, rows, decoded size), then the columns id and label. Labels are read
    dictionary-encoded (a few distinct values: no row is copied); ids as plain text once their dictionaries
    are known to be short (see _check_id_dictionaries)."""
    source = pq.ParquetFile(io.BytesIO(data))
    schema, metadata = source.schema_arrow, source.metadata
    _check_columns(schema.names)
    rows = metadata.num_rows
    if max_rows is not None and rows > max_rows:
        raise ParticipantVisibleError(f"the file has {rows} rows; the test set has {test_rows}")
    decoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if max_rows is not None and decoded > BYTES_PER_ROW * max_rows:
        raise ParticipantVisibleError(
            f"the file decodes to {decoded / 1048576:.0f} MB, far more than {test_rows} ids and labels need")
    texts = {f.name for f in schema if _is_text(f.type) or pa.types.is_dictionary(f.type)}
    dictionary = [n for n in ("id", "label") if n in texts]
    if "id" in texts and _check_id_dictionaries(data, metadata):
        dictionary.remove("id")
    return pq.ParquetFile(io.BytesIO(data), metadata=metadata, read_dictionary=dictionary).read(
        columns=["id", "label"], use_pandas_metadata=False)


def read_submission(data: bytes, name: str, test_rows: int | None = None) -> pa.Table:
    """The uploaded table (columns id and label), read within bounds: a Parquet file's rows and
    decoded size are checked in its metadata before anything is decoded; any failure of the reader
    is a ParticipantVisibleError (the file is the participant's)."""
    parquet = name.lower().endswith(".parquet")
    max_rows = row_limit(test_rows) if test_rows is not None else None
    if not data[:1024].strip() and not data.strip():  # (a strip copies: only for a file that starts blank)
        raise ParticipantVisibleError(f"{shown(name)} is empty: upload a file with columns id,label and one row per test id")
    wrong = _not_what_it_is_named(data, name, parquet)
    if wrong is not None:
        raise wrong
    try:
        if parquet:
            table = _read_parquet(data, test_rows, max_rows)
        else:
            _check_columns(_csv_header(data, name))  # before the rows are parsed
            table = pa_csv.read_csv(
                io.BytesIO(data), read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
                convert_options=pa_csv.ConvertOptions(
                    column_types={"id": pa.string(), "label": pa.string()}, strings_can_be_null=True),
            )
            if max_rows is not None and table.num_rows > max_rows:
                raise ParticipantVisibleError(f"the file has {table.num_rows} rows; the test set has {test_rows}")
    except ParticipantVisibleError:
        raise
    except Exception as exc:  # noqa: BLE001 (whatever the reader makes of the participant's bytes)
        raise _reader_problem(exc, name, parquet) from None
    return table


def _examples(values: pa.Array | pa.ChunkedArray) -> str:
    examples = [shown(str(v)) for v in values.slice(0, MAX_EXAMPLES).to_pylist()]
    return ", ".join(examples) + (", …" if len(values) > MAX_EXAMPLES else "")


def _check_lengths(column: pa.ChunkedArray, name: str) -> None:
    """Ids and labels are short: a huge value is refused before it is copied (on the dictionary of a
    dictionary-encoded column, before it expands)."""
    values = [chunk.dictionary if pa.types.is_dictionary(chunk.type) else chunk for chunk in column.chunks]
    longest = max((pc.max(pc.binary_length(v)).as_py() or 0 for v in values if _is_text(v.type) and len(v)), default=0)
    if longest > MAX_LABEL_CHARS:
        raise _too_long(name, longest)


def _as_text(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """A column as strings: whole floats as integers (1.0 → "1"); lists, structs and binary refused."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)):
        raise ParticipantVisibleError(f"the {name} column holds {shown(str(kind), 40)} values; write plain text or numbers")
    if pa.types.is_floating(kind):
        finite = pc.is_finite(column)
        whole = pc.all(pc.or_kleene(pc.invert(finite), pc.equal(column, pc.round(column)))).as_py()
        if whole and (pc.all(finite).as_py() is not False):
            column = pc.cast(column, pa.int64())
    return column if column.type == pa.string() else pc.cast(column, pa.string())


class IdIndex:
    """Where each test id sits, for fast lookups of submitted ids.

    Published ids are `<prefix><zero-padded number>` (tasks/release/opaque_ids.py), so
    the fast path parses numbers and looks them up in a numpy array with one
    entry per number up to the largest test id's: numbers run over the whole
    task (train and test), so the array has about 1/test_fraction entries per
    test id; past MAX_LOOKUP_PER_ID (not published ids, or a tiny test set),
    and for any other id format, a hash lookup.
    """

    def __init__(self, test_ids: pa.Array):
        self.test_ids = test_ids
        self.lookup: np.ndarray | None = None
        self.digits = 0  # W when every test id is W ASCII digits: then a shorter id of digits is padded (see padded)
        first = test_ids[0].as_py() if len(test_ids) else None
        match = re.match(r"^(\D*)(\d+)$", first or "")
        if match:
            self.prefix, self.width = match.group(1), len(match.group(2))
            numbers = self._numbers(test_ids)
            if numbers is not None and (numbers >= 0).all() and not self.prefix:
                self.digits = self.width
            if numbers is not None and (numbers >= 0).all() and \
                    int(numbers.max()) < MAX_LOOKUP_PER_ID * len(test_ids) + 65536:
                # number + 1 → position: -1 (not of the published form) maps to index 0, past the end clips to -1
                self._by_number = np.full(int(numbers.max()) + 3, -1, dtype=np.int32)
                self._by_number[numbers + 1] = np.arange(len(test_ids), dtype=np.int32)
                self.lookup = self._by_number[1:-1]

    def _fixed_width_numbers(self, ids: pa.Array) -> np.ndarray | None:
        """_numbers read straight from the Arrow buffers when every id has the published width in bytes and
        none is null (the usual upload): a few passes of numpy over the characters. None otherwise."""
        width, prefix = len(self.prefix) + self.width, self.prefix.encode()
        if (not pa.types.is_string(ids.type) or ids.null_count or not len(ids) or len(prefix) != len(self.prefix)
                or self.width > 18):
            return None
        offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32, count=len(ids) + 1, offset=ids.offset * 4)
        if offsets[-1] - offsets[0] != width * len(ids) or not (np.diff(offsets) == width).all():
            return None
        chars = np.frombuffer(ids.buffers()[2], dtype=np.uint8, count=width * len(ids), offset=int(offsets[0]))
        chars = chars.reshape(len(ids), width)
        not_digit = (chars[:, len(prefix):] - 48) > 9  # ASCII 0-9 only (a byte of ٣ or ³ is not one); uint8 wraps
        other_prefix = chars[:, :len(prefix)] != np.frombuffer(prefix, dtype=np.uint8)
        numbers = np.zeros(len(ids), dtype=np.int32 if self.width <= 8 else np.int64)  # '9' * 11111111 < 2**31
        for column in range(len(prefix), width):
            numbers *= 10
            numbers += chars[:, column]
        numbers -= 48 * int("1" * self.width)  # the '0's
        odd = not_digit.any()
        if odd and self.digits:  # e.g. "3.00" (the number 3): the general path reads it
            return None
        if odd or other_prefix.any():
            numbers[not_digit.any(axis=1) | other_prefix.any(axis=1)] = -1
        return numbers

    def _short_numbers(self, ids: pa.Array) -> np.ndarray | None:
        """In digits mode, _numbers of integers written as text (`3`, `11`, `0003`): padded with zeros to W
        by Arrow, then read as _fixed_width_numbers does. None when an id is null, empty, wider than W or not
        ASCII digits (the general path names those)."""
        if not pa.types.is_string(ids.type) or ids.null_count or not len(ids) or not pc.min(pc.binary_length(ids)).as_py():
            return None
        return self._fixed_width_numbers(pc.ascii_lpad(ids, width=self.digits, padding="0"))

    def _numbers(self, ids: pa.Array) -> np.ndarray | None:
        """The number of each id of the published form, -1 for any other (or null) id."""
        if pa.types.is_integer(ids.type) and self.digits:  # integer ids (Parquet int64): the numbers themselves
            numbers = pc.fill_null(ids.cast(pa.int64(), safe=False), -1).to_numpy()
            return np.where((numbers >= 0) & (numbers < 10 ** min(self.digits, 18)), numbers, -1)
        if not _is_text(ids.type):
            ids = pc.cast(ids, pa.string())
        fast = self._fixed_width_numbers(ids)
        if fast is None and self.digits:
            fast = self._short_numbers(ids)
        if fast is not None:
            return fast
        if self.digits:  # "3", "0003" and "3.0" are the number 3 (see padded)
            ids = _whole_decimals_as_integers(ids)
            ok = pc.fill_null(pc.and_(pc.ascii_is_decimal(ids), pc.less_equal(pc.binary_length(ids), self.digits)), False)
            return pc.cast(pc.if_else(ok, ids, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
        ok = pc.and_(pc.starts_with(ids, self.prefix), pc.equal(pc.utf8_length(ids), len(self.prefix) + self.width))
        digits = pc.utf8_slice_codeunits(ids, len(self.prefix))
        ok = pc.fill_null(pc.and_(ok, pc.ascii_is_decimal(digits)), False)  # ASCII 0-9 only (not ٣ or ³)
        numbers = pc.cast(pc.if_else(ok, digits, "-1"), pa.int64())
        return numbers.to_numpy(zero_copy_only=False)

    def positions(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Index of each submitted id among the test ids; -1 when it is not one."""
        if self.lookup is None:
            ids = ids if _is_text(ids.type) else pc.cast(ids, pa.string())
            return pc.fill_null(pc.index_in(self.padded(ids), value_set=self.test_ids), -1).to_numpy(
                zero_copy_only=False).astype(np.int64)
        chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
        blocks = [chunk.slice(start, LOOKUP_BLOCK) for chunk in chunks for start in range(0, len(chunk), LOOKUP_BLOCK)]
        found = [np.take(self._by_number, self._numbers(block) + 1, mode="clip") for block in blocks]
        return np.concatenate(found) if found else np.empty(0, dtype=np.int32)

    def padded(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        """The submitted ids as the published ids they stand for. When every test id is W ASCII digits
        (classification ids, `0003`), an id of ASCII digits only and shorter than W is that id padded with
        zeros ("3" → "0003": what pandas, polars and DuckDB make of `0003` when they read it as a number,
        written back), and a whole decimal ("3.0", a float column written as text) is its integer part.
        Nothing else changes: no spaces stripped, no signs, no other digits; an id wider than W stays
        unknown. Other ids (`r…`, `p…` of matching tasks) are returned as they are."""
        if not self.digits:
            return ids
        ids = _whole_decimals_as_integers(ids)
        short = pc.fill_null(pc.and_(pc.ascii_is_decimal(ids), pc.less(pc.binary_length(ids), self.digits)), False)
        return pc.if_else(short, pc.utf8_lpad(ids, width=self.digits, padding="0"), ids)


WHOLE_DECIMAL = r"^(-?[0-9]+)\.0+$"  # 3.0, -2.00: how a float column prints a whole number
INTEGER_NAME = r"^(0|-?[1-9][0-9]*)$"  # how an integer column prints: a class set of these takes 3.0 for 3


def _whole_decimals_as_integers(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """"3.0" → "3" (ASCII digits, a zero fraction); every other value unchanged."""
    if not len(values) or not pc.any(pc.match_substring(values, ".")).as_py():
        return values
    return pc.replace_substring_regex(values, WHOLE_DECIMAL, r"\1")


def _as_classes(labels: pa.Array | pa.ChunkedArray, classes: pa.Array) -> pa.Array | pa.ChunkedArray:
    """Labels with whole decimals read as integers ("3.0" → "3") when every class is an integer's name
    ("0".."9" of digits; 0/1 of matching): a float column of predictions, written as text, names the
    class it means. Any other class set takes its labels as they are."""
    if not len(classes) or not pc.all(pc.match_substring_regex(classes, INTEGER_NAME)).as_py():
        return labels
    return _whole_decimals_as_integers(labels)


def _class_index(labels: pa.Array | pa.ChunkedArray, classes: pa.Array) -> pa.Array | pa.ChunkedArray:
    """Each label's index in `classes` (null when it names none); 3.0 is looked at only when a label is
    not a class as written (see _as_classes)."""
    found = pc.index_in(labels, value_set=classes)
    if found.null_count and (named := _as_classes(labels, classes)) is not labels:
        found = pc.index_in(named, value_set=classes)
    return found


def _label_codes(column: pa.ChunkedArray, classes: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Each label's index in `classes` and whether each class occurs, when every label is one of them
    (and not blank: see validate); None otherwise. A dictionary-encoded column is looked up on its
    dictionaries only."""
    allowed = pc.not_equal(pc.utf8_trim_whitespace(classes), "").to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type) and column.num_chunks <= 64:
        codes = []
        for chunk in column.chunks:
            if chunk.indices.null_count:
                return None
            found = pc.fill_null(_class_index(chunk.dictionary, classes), -1).to_numpy(zero_copy_only=False)
            codes.append(found[chunk.indices.to_numpy()])
        codes = np.concatenate(codes) if codes else np.empty(0, dtype=np.int32)
        if len(codes) and codes.min() < 0:
            return None
    else:
        found = _class_index(_as_text(column, "label"), classes)
        if found.null_count:
            return None
        codes = found.to_numpy()
    if not allowed.all() and not allowed[codes].all():
        return None
    return codes, np.bincount(codes, minlength=len(classes)) > 0


def _aligned(position: np.ndarray, codes: np.ndarray, used: np.ndarray, classes: pa.Array,
             size: int) -> pa.DictionaryArray | None:
    """The labels in the order of the `size` test ids, as a dictionary of the classes `used` (the
    metrics' label set); None unless each test id is found exactly once."""
    if len(position) != size or (size and position.min() < 0):
        return None
    aligned = np.full(size, -1, dtype=np.int32)
    aligned[position] = codes
    if size and aligned.min() < 0:  # as many rows as test ids, one missing: another is repeated
        return None
    if not used.all():
        aligned = (np.cumsum(used, dtype=np.int32) - 1)[aligned]
        classes = classes.filter(pa.array(used))
    return pa.DictionaryArray.from_arrays(pa.array(aligned), classes)


def validate(table: pa.Table, index: IdIndex, classes: pa.Array) -> pa.Array:
    """The predicted labels aligned with `test_ids`, or a ParticipantVisibleError saying what to fix.

    One lookup of the submitted ids in the test ids gives the alignment, one of
    the labels in the classes their codes; when either finds a problem, the
    slow path names every problem. What a reader makes of a published id or
    class is that id or class when it cannot be another: `3` or `3.0` for
    `0003` (IdIndex.padded), `3.0` for the class `3` (_as_classes).
    """
    _check_columns(table.column_names)
    for name in ("id", "label"):
        _check_lengths(table[name], name)
    numeric = index.digits and pa.types.is_integer(table["id"].type)  # looked up as numbers, not written as text
    ids = table["id"] if numeric else _as_text(table["id"], "id")
    with ThreadPoolExecutor(1) as pool:  # labels hashed while the ids are parsed
        labels = pool.submit(_label_codes, table["label"], classes)
        position = index.positions(ids)
        coded = labels.result()
    aligned = _aligned(position, *coded, classes, len(index.test_ids)) if coded is not None and not ids.null_count else None
    if aligned is not None:
        return aligned
    ids = _as_text(ids, "id") if numeric else ids
    return _validate_slowly(ids.combine_chunks(), _as_text(table["label"], "label").combine_chunks(), position, index,
                            classes)


def _same_ids(ids: pa.Array, position: np.ndarray, repeated: np.ndarray, width: int) -> str:
    """For a repeated test id written two ways ("3" and "0003"), a note saying they are the same id."""
    rows = np.flatnonzero(repeated[np.maximum(position, 0)] & (position >= 0))
    spelled = pa.table({"position": position[rows], "id": ids.take(pa.array(rows))}).group_by("position").aggregate(
        [("id", "count_distinct"), ("id", "min"), ("id", "max")])
    twice = spelled.filter(pc.greater(spelled["id_count_distinct"], 1))
    if not twice.num_rows:
        return ""
    pair = sorted((twice["id_min"][0].as_py(), twice["id_max"][0].as_py()), key=lambda t: (len(t), t))
    return (f"; {shown(pair[0])} and {shown(pair[1])} are the same id (an id of digits only is the published id "
            f"padded with zeros to {width} digits): keep one row per id")


def _validate_slowly(ids: pa.Array, labels: pa.Array, position: np.ndarray, index: IdIndex,
                     classes: pa.Array) -> pa.Array:
    """validate's answer when some id or label is not as expected: unknown, repeated and missing ids
    and empty or unknown labels, each named; label checks run on the distinct labels only."""
    test_ids = index.test_ids
    problems = []
    if ids.null_count:
        problems.append(f"{ids.null_count} row(s) have no id")
    unknown = pc.and_(pa.array(position < 0), pc.is_valid(ids))
    if pc.any(unknown).as_py():
        bad = pc.filter(ids, unknown)
        problems.append(f"{len(bad)} id(s) are not test ids (e.g. {_examples(bad)})")
    found = position[position >= 0]
    seen = np.bincount(found, minlength=len(test_ids))
    if (seen > 1).any():
        repeated = test_ids.take(pa.array(np.flatnonzero(seen > 1)))
        same = _same_ids(ids, position, seen > 1, index.digits) if index.digits else ""
        problems.append(f"{len(repeated)} id(s) appear more than once (e.g. {_examples(repeated)}){same}")
    if (seen == 0).any():
        absent = test_ids.take(pa.array(np.flatnonzero(seen == 0)))
        problems.append(f"{len(absent)} test id(s) are missing (e.g. {_examples(absent)})")
    encoded = pc.dictionary_encode(labels)
    distinct = encoded.dictionary
    named = pc.is_in(_as_classes(distinct, classes), value_set=classes)  # 3.0 names the class 3 (see _as_classes)
    # "nan"/"none"/"null" are empty labels, unless the task has a class of that name
    blank = pc.or_(pc.equal(pc.utf8_trim_whitespace(distinct), ""),
                   pc.and_(pc.is_in(pc.utf8_lower(distinct), value_set=pa.array(["nan", "none", "null"])),
                           pc.invert(named)))
    empty_codes = pa.array(np.flatnonzero(blank.to_numpy(zero_copy_only=False)), pa.int32())
    empty = pc.or_(pc.is_null(labels), pc.fill_null(pc.is_in(encoded.indices, value_set=empty_codes), False))
    n_empty = pc.sum(empty).as_py() or 0
    if n_empty:
        problems.append(f"{n_empty} row(s) have an empty or NaN label (ids e.g. {_examples(pc.filter(ids, empty))})")
    outside = pc.filter(distinct, pc.and_(pc.invert(blank), pc.invert(named)))
    if len(outside):
        problems.append(f"{len(outside)} label(s) are not classes of this task (e.g. {_examples(outside)}); "
                        f"valid: {_examples(classes) if len(classes) > 20 else ', '.join(classes.to_pylist())}")
    if problems:
        raise ParticipantVisibleError("; ".join(problems))
    order = np.empty(len(test_ids), dtype=np.int64)
    order[position] = np.arange(len(position))
    encoded = pc.dictionary_encode(_as_classes(labels, classes))
    distinct = encoded.dictionary
    # Reorder the small integer codes, not the strings.
    return pa.DictionaryArray.from_arrays(encoded.indices.take(pa.array(order)), distinct)
