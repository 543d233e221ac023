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

EXACT = ConfigDict(extra="forbid")  # for checks against these types (tests/test_demo.py): no field unknown to them

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
