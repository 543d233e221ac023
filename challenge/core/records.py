"""The JSON records scoring stores and passes between steps, typed.

These are TypedDicts, not models: a record is read from JSON as it was written, by this version or an older
one, and steps pass it on as a dict; the types say which fields exist and what they hold, and
`schema_version` says which shape a stored result record has (records written before it was recorded
are version 1, the same shape). The tests check every record a whole demo season stores against them
(pydantic, unknown fields refused), so a writer and its type cannot drift apart. Damaged or missing records give the errors
of the steps that read them (tasks/scoring/records.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict  # typing_extensions: pydantic checks these on Python 3.11

EXACT = ConfigDict(extra="forbid")  # for checks against these types (tests/test_fresh_machine.py, tests/test_season.py): no field unknown to them

RESULT_SCHEMA_VERSION = 1  # the shape of ResultRecord; records without the field have this shape too


@with_config(EXACT)
class ScoredBy(TypedDict):
    """What scored a result: the package and the answer key (None for a rejection before a key was read)."""

    package: str
    version: str
    metric: str | None
    answers_sha256: str | None
    answers_version: int | None


@with_config(EXACT)
class Quota(TypedDict):
    """A team's scored submissions for one task on one UTC day (`limit`, `left`: None for the baseline team)."""

    day: str
    limit: int | None
    used: int
    left: int | None
    resets_at: str


@with_config(EXACT)
class Superseded(TypedDict):
    at: str
    changed_in: str | None
    answers_sha256: str


@with_config(EXACT)
class ResultRecord(TypedDict):
    """results/<team>/<task>/<submission id>.json (private): one submission's final result.

    `metrics`: part ("public", "private", the whole test set) → metric name → value; empty unless scored.
    `history`: the earlier versions of this record (a rescore, a supersession), oldest first.
    `schema_version`: RESULT_SCHEMA_VERSION when written; absent in records written before it was."""

    schema_version: NotRequired[int]
    submission_id: str
    key: str
    etag: str
    bytes: int
    uploaded_at: str
    team: str
    task_id: str
    name: str
    release: str | None
    status: str
    message: str
    phase: str
    primary_metric: str | None
    metrics: dict[str, dict[str, float]]
    scored_at: str
    scored_by: ScoredBy
    quota: NotRequired[Quota | None]
    description: NotRequired[str]
    superseded: NotRequired[Superseded]
    history: NotRequired[list[Mapping[str, object]]]  # as they were stored, older shapes included


@with_config(EXACT)
class ErrorRecord(TypedDict):
    """results/.../<submission id>.error.json (private): an internal error; the next run retries."""

    submission_id: str
    key: str
    etag: str
    status: str
    message: str
    attempts: int
    at: str


@with_config(EXACT)
class Feedback(TypedDict):
    """<team>/<task>/<file>.result.json (submissions): what the team may read of its result."""

    submission: str
    status: str
    message: str
    public_score: float | None
    metric: str | None
    release: str | None
    scored_at: str
    quota: Quota | None
    description: NotRequired[str]
    phase: NotRequired[str]
    test_score: NotRequired[float | None]


@with_config(EXACT)
class Notice(TypedDict):
    """The feedback file of an upload that is not scored (a misplaced file, notes.txt)."""

    submission: str
    status: str
    message: str
    checked_at: str


@with_config(EXACT)
class HistoryRow(TypedDict):
    name: str
    uploaded_at: str
    status: str
    public_score: float | None
    release: str | None
    final_pick: bool
    counts_on_leaderboard: bool
    description: NotRequired[str]
    phase: NotRequired[str]
    test_score: NotRequired[float | None]


@with_config(EXACT)
class History(TypedDict):
    """<team>/<task>/history.json (submissions): every submission of a team to a task, and today's quota."""

    team: str
    task_id: str
    release: str
    metric: str
    task_changed_in: str | None
    answer_version: int
    quota: Quota
    submissions: list[HistoryRow]


@with_config(EXACT)
class FinalAnswer(TypedDict):
    """<team>/<task>/FINAL.result.json (submissions): which submissions a FINAL file picks, and why."""

    final: str
    names: list[str]
    status: str
    submissions: list[str]
    message: str
    checked_at: NotRequired[str]


@with_config(EXACT)
class IndexEntry(TypedDict):
    """One result record in cache/results-index.json.gz (private): its bytes and their version (MD5)."""

    version: str
    raw: str


@with_config(EXACT)
class FinalMarker(TypedDict):
    """final.json (private): the challenge was finalized at this moment; scoring is closed."""

    finalized_at: str


# ---- the leaderboards (<public>/leaderboard/<board>/leaderboard.json) ------------------------------------


@with_config(EXACT)
class TaskEntry(TypedDict):
    """A team's row on a task's board. `rank`: None for the baseline; the intervals (ci95, rank_ci95,
    tied_with_above) once add_intervals ran (None where the team's labels could not be read). `_record`:
    the result the score comes from, while the board is built; never written."""

    rank: int | None
    team: str
    score: float
    submissions: int
    last_submitted_at: str
    baseline: bool
    team_name: NotRequired[str]
    description: NotRequired[str]
    ci95: NotRequired[list[float] | None]
    rank_ci95: NotRequired[list[int] | None]
    tied_with_above: NotRequired[bool]
    _record: NotRequired[ResultRecord]


@with_config(EXACT)
class TrackEntry(TypedDict):
    """A team's row on a track's board: the mean over the track's tasks (`tasks`: task id → its score there,
    None where it has none, also listed in `missing`)."""

    rank: int | None
    team: str
    score: float
    tasks: dict[str, float | None]
    missing: list[str]
    baseline: bool
    team_name: NotRequired[str]
    ci95: NotRequired[list[float] | None]
    rank_ci95: NotRequired[list[int] | None]
    tied_with_above: NotRequired[bool]


@with_config(EXACT)
class TaskBoard(TypedDict):
    kind: str
    metric: str
    title: str
    card: str
    changed_in: str
    answer_version: int
    corrections: NotRequired[str]  # the public corrections trail's key, once the answer key was corrected
    entries: list[TaskEntry]


@with_config(EXACT)
class TrackBoard(TypedDict):
    tasks: list[str]
    mean: str  # how the track's score is computed, in words
    entries: list[TrackEntry]


@with_config(EXACT)
class IntervalMethod(TypedDict):
    """How a board's intervals were computed (tasks/boards/bootstrap.py)."""

    method: str
    resamples: int
    seed: int
    level: float
    part: str
    per_task_seed: str


@with_config(EXACT)
class SnapshotTask(TypedDict):
    answers_sha256: str
    answer_version: int
    changed_in: str | None


@with_config(EXACT)
class Snapshot(TypedDict):
    """What the final standings were computed with (the final snapshot only)."""

    finalized_at: str
    code_version: str
    release: str
    tasks: dict[str, SnapshotTask]


@with_config(EXACT)
class Board(TypedDict):
    """leaderboard.json of a board (live, final, post-challenge benchmark). `_history` (each task's chart: team
    label → (upload time, best score so far)) and `_baseline_label` are for the page only, never written."""

    challenge: str
    release: str
    updated_at: str
    final: bool
    benchmark: bool
    tasks: dict[str, TaskBoard]
    tracks: dict[str, TrackBoard]
    withdrawn: dict[str, str]
    intervals: NotRequired[IntervalMethod]
    snapshot: NotRequired[Snapshot]
    _history: NotRequired[dict[str, dict[str, list[tuple[str, float]]]]]
    _baseline_label: NotRequired[str]


Entry = TaskEntry | TrackEntry  # a row of either kind of board


@with_config(EXACT)
class CachedIntervals(TypedDict):
    """The intervals of one task or track board, and the digest of what they were computed from."""

    digest: str
    entries: list[dict[str, object]]  # per entry, in board order: ci95, rank_ci95, tied_with_above


@with_config(EXACT)
class BoardIntervals(TypedDict):
    """One board's part of cache/intervals.json (private; board name → this): task and track → its intervals."""

    tasks: dict[str, CachedIntervals]
    tracks: dict[str, CachedIntervals]


# ---- the other notes a run stores, and the summaries flows return ----------------------------------------


@with_config(EXACT)
class SlotNote(TypedDict):
    """scoring-slot.json (private): who holds the scoring slot, since when, and its last renewal (seconds since
    the epoch); a holder whose renewal is older than its lease is dead (challenge/core/scoring_slot.py)."""

    holder: str
    since: str
    renewed_at: float
    lease_seconds: float
    lease_id: str | None


@with_config(EXACT)
class GateNote(TypedDict):
    """reports/<task>/latest-<contributor>.json (private): a drop's last gate, and what it depended on: its
    fingerprint (files and rules), its task id's owner and why, the intake limits; `retry`: gate it again."""

    fingerprint: str
    outcome: dict[str, object]  # DropOutcome's fields
    owner: str | None
    owner_reason: str
    intake: dict[str, object]  # challenge.yaml's intake section as it was
    retry: bool


class TaskSummary(TypedDict):
    """What publishing did with one task (a publish run's summary, and its artifact's row)."""

    task_id: str
    kind: str
    counts: dict[str, int]
    classes: int | None
    files: int
    notes: dict[str, object]
    leaks: list[str]
    card: str
    action: str  # "built", or "carried over from <release> (...)"


class BaselineSummary(TypedDict):
    """What a baseline run did for one task (the run's summary, and its artifact's row)."""

    task_id: str
    kind: str
    release: str
    model: str
    metric: str
    validation_score: float
    train_rows: int
    test_rows: int
    download_seconds: float
    train_seconds: float
    submission: str
    key: str
    uploaded: bool
