"""The catalog: where every stored object lives, and the typed records read back from storage.

Each object is declared here once and used by name (as in Kedro's `catalog.yml`); no other module
spells a storage key (tests/test_catalog.py checks it). The locations are those of SPEC §3:

public (participants read it)
    latest.json                                     Latest: the current release
    challenge.json                                  ChallengeInfo: the rules now and when scoring runs next
    releases/<release>/release.json                 Latest: written when the release is complete
    releases/<release>/<task>/                      the task's files (release_files), e.g.
        manifest.json  README.md  croissant.json  <table>.parquet|.csv  sample_submission.csv  images/
    corrections/<release>/<task>.json               answer-key corrections of a task of a release (dates, versions,
                                                    SHA-256s): outside the release folders, which never change
    releases/<release>/<task>/corrections.json      the same, where earlier versions wrote it (left as it is, never
                                                    read, not carried into a later release)
    leaderboard/leaderboard.json, index.html, task-<task>.csv, track-<track>.csv
    leaderboard/final/                              the final snapshot (same files), written once by finalize,
                                                    and the results report (results.html, results.md)
    leaderboard/final-replaced/<time>/              a snapshot replaced by finalize --force
    leaderboard/benchmark/                          the post-challenge board (policy.after_close: benchmark)
private (organizers only)
    staged/<task>/current.json                      StagedPointer: the task's current staged version
    staged/<task>/<version>/                        staged.json (StagedMeta), <table>.parquet, images/
    reports/<task folder>/<contributor folder>/<run time>/  the gate's report.json, report.md, data_docs/ (each
                                                    contributor's drops apart; reports/<task folder>/<run time>/:
                                                    earlier versions', still read through their latest notes)
    reports/<task folder>/latest-<contributor>.json the newest report of a contributor's drop
    releases/<release>/<task>/                      answers.parquet (the hidden key), id_map.parquet,
                                                    pair_id_map.parquet, leak_checks.json,
                                                    answers-v<n>.parquet, answer_versions.json (corrections)
    results/<team>/<task>/<submission id>.json      a result record (.error.json: an internal error)
    results/_unusable/<submission id>.json          the record of an upload whose key cannot be used
    predictions/<team>/<task>/<submission id>.parquet  a scored file's labels in answer-key order (intervals)
    cache/results-index.json.gz, cache/final-feedback.json, cache/histories.json, cache/intervals.json,
    cache/bootstrap/<board>/<task>.npz
    locks/scoring-slot.json                         who holds the scoring slot
    secrets/opaque-id-key                           the key of the published ids
    final.json                                      written by finalize: boards show private scores
submissions (each team writes its own folder)
    <team>/<task>/<file>                            an upload; <file>.result.json is its feedback,
                                                    <file>.message.json the team's note on it
    <team>/<task>/FINAL                             the team's final picks; FINAL.result.json its feedback
    <team>/<task>/history.json                      every submission of the team to the task, its quota
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from challenge.core.errors import ChallengeError
from challenge.core.storage import Storage

# ---- public: releases ---------------------------------------------------------------------------------

LATEST = "latest.json"
CHALLENGE_INFO = "challenge.json"  # the rules participants' tools read (quota, window, next scoring run)
RELEASES = "releases"
RELEASE_MARKER = "release.json"  # releases/<release>/release.json, written once the release is complete
MANIFEST = "manifest.json"
CARD = "README.md"
CROISSANT = "croissant.json"
SAMPLE_SUBMISSION = "sample_submission.csv"
RELEASED_TABLES = {"classification": ("train", "test"), "matching": ("records", "train", "test")}  # by task kind
IMAGES = "images"
TABLE_FORMATS = ("parquet", "csv")


def release_prefix(release: str) -> str:
    return f"{RELEASES}/{release}"


def release_marker_key(release: str) -> str:
    return f"{RELEASES}/{release}/{RELEASE_MARKER}"


def is_release_marker_key(key: str) -> bool:
    """Whether a listed key is a release's marker (releases/<release>/release.json)."""
    return key.count("/") == 2 and key.startswith(f"{RELEASES}/") and key.endswith(f"/{RELEASE_MARKER}")


def task_prefix(release: str, task_id: str) -> str:
    """The folder of one task of a release (public files in public, the hidden ones in private)."""
    return f"{RELEASES}/{release}/{task_id}"


def release_file_key(release: str, task_id: str, path: str) -> str:
    """A file of a task's release folder, by its path inside it (as the manifest lists it)."""
    return f"{task_prefix(release, task_id)}/{path}"


def manifest_key(release: str, task_id: str) -> str:
    return release_file_key(release, task_id, MANIFEST)


def card_key(release: str, task_id: str) -> str:
    return release_file_key(release, task_id, CARD)


def table_file(name: str, fmt: str = "parquet") -> str:
    """A table's file name in a release or staged folder: <name>.parquet or <name>.csv."""
    return f"{name}.{fmt}"


def image_file(name: str) -> str:
    """An image's path inside a release or staged folder."""
    return f"{IMAGES}/{name}"


# ---- private: release secrets --------------------------------------------------------------------------

ANSWERS = "answers.parquet"
ID_MAP = "id_map.parquet"
PAIR_ID_MAP = "pair_id_map.parquet"
LEAK_CHECKS = "leak_checks.json"
ID_KEY = "secrets/opaque-id-key"


ANSWER_VERSIONS = "answer_versions.json"  # private: the answer key's corrected versions (AnswerVersions)
CORRECTIONS = "corrections"  # public: when each answer key was corrected, never which labels
LEGACY_CORRECTIONS = "corrections.json"  # the trail inside a release folder, where earlier versions wrote it


def answers_key(release: str, task_id: str, version: int = 1) -> str:
    """The hidden answer key of a task (version 1 as built; later versions written by correct-answers)."""
    return release_file_key(release, task_id, ANSWERS if version == 1 else f"answers-v{version}.parquet")


def answer_versions_key(release: str, task_id: str) -> str:
    return release_file_key(release, task_id, ANSWER_VERSIONS)


def corrections_key(release: str, task_id: str) -> str:
    """The public corrections trail of a task's answer key in `release`: beside the release folders, not
    inside them (a published release folder never changes)."""
    return f"{CORRECTIONS}/{release}/{task_id}.json"


# ---- private: staged data and gate reports -------------------------------------------------------------

STAGED = "staged"
STAGED_POINTER = "current.json"
STAGED_META = "staged.json"
REPORTS = "reports"
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
DATA_DOCS = "data_docs"


def staged_pointer_key(task_id: str) -> str:
    return f"{STAGED}/{task_id}/{STAGED_POINTER}"


def staged_version_prefix(task_id: str, version: str) -> str:
    return f"{STAGED}/{task_id}/{version}"


def staged_file_key(prefix: str, path: str) -> str:
    """A file of a staged version (prefix from its pointer)."""
    return f"{prefix}/{path}"


def staged_task_of(key: str) -> str | None:
    """The task id of a listed staged/<task>/current.json key, else None."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == STAGED and parts[2] == STAGED_POINTER else None


def reports_prefix(folder: str) -> str:
    return f"{REPORTS}/{folder}"


def report_prefix(folder: str, contributor_folder: str, run_time: str) -> str:
    """The folder of one gate report: per task and contributor, so that two drops of one task id never
    share it (contributor_folder: tasks/intake/drops.py, a name without dots)."""
    return f"{REPORTS}/{folder}/{contributor_folder}/{run_time}"


def latest_report_key(folder: str, contributor: str) -> str:
    return f"{REPORTS}/{folder}/latest-{contributor}.json"


def data_docs_page(report_prefix_: str) -> str:
    return f"{report_prefix_}/{DATA_DOCS}/index.html"


def report_key(report_prefix_: str) -> str:
    return f"{report_prefix_}/{REPORT_JSON}"


# ---- private: results, caches, locks ------------------------------------------------------------------

RESULTS = "results"
UNUSABLE = "_unusable"  # results of uploads whose key cannot be stored under their team and task
RESULT_SUFFIX = ".json"
ERROR_SUFFIX = ".error.json"
RESULTS_INDEX = "cache/results-index.json.gz"
FINAL_FEEDBACK_CACHE = "cache/final-feedback.json"  # feedback key → digest of the feedback last written
SCORING_SLOT_NOTE = "locks/scoring-slot.json"
HISTORY_CACHE = "cache/histories.json"  # history key → digest of the history last written
INTERVALS_CACHE = "cache/intervals.json"  # the boards' bootstrap intervals, by what they were computed from
PREDICTIONS = "predictions"  # predictions/<team>/<task>/<submission id>.parquet: a scored file's labels, in key order


def predictions_key(team: str, task_id: str, submission_id: str) -> str:
    return f"{PREDICTIONS}/{team}/{task_id}/{submission_id}.parquet"


def bootstrap_samples_key(board: str, task_id: str) -> str:
    """The cached resampled scores of one task's board (board: live, final or benchmark)."""
    return f"cache/bootstrap/{board}/{task_id}.npz"
FINAL_MARKER = "final.json"


def result_key(team: str, task_id: str, submission_id: str) -> str:
    return f"{RESULTS}/{team}/{task_id}/{submission_id}{RESULT_SUFFIX}"


def unusable_result_key(submission_id: str) -> str:
    return f"{RESULTS}/{UNUSABLE}/{submission_id}{RESULT_SUFFIX}"


def error_key(result_key_: str) -> str:
    """The internal-error note beside a result record's key."""
    return result_key_.removesuffix(RESULT_SUFFIX) + ERROR_SUFFIX


def submission_id_of_error(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(ERROR_SUFFIX)


# ---- public: leaderboards --------------------------------------------------------------------------------

LEADERBOARD = "leaderboard"
BOARD_JSON = f"{LEADERBOARD}/leaderboard.json"
PAGE = f"{LEADERBOARD}/index.html"


FINAL_BOARD = f"{LEADERBOARD}/final"  # the snapshot finalize writes once (board_json(FINAL_BOARD), ...)
BENCHMARK_BOARD = f"{LEADERBOARD}/benchmark"  # uploads after the close, with policy.after_close: benchmark
REPLACED_FINALS = f"{LEADERBOARD}/final-replaced"  # earlier final snapshots, kept by finalize --force


RESULTS_REPORT_HTML = f"{FINAL_BOARD}/results.html"  # the results report (challenge report; finalize writes it)
RESULTS_REPORT_MARKDOWN = f"{FINAL_BOARD}/results.md"


def board_json(folder: str = LEADERBOARD) -> str:
    return f"{folder}/leaderboard.json"


def board_page(folder: str = LEADERBOARD) -> str:
    return f"{folder}/index.html"


def task_board_csv(task_id: str, folder: str = LEADERBOARD) -> str:
    return f"{folder}/task-{task_id}.csv"


def track_board_csv(track: str, folder: str = LEADERBOARD) -> str:
    return f"{folder}/track-{track}.csv"


def is_board_csv(key: str, folder: str = LEADERBOARD) -> bool:
    """Whether `key` is a task's or a track's CSV of the board in `folder` (not one of a board below it)."""
    name = key[len(folder) + 1:] if key.startswith(folder + "/") else ""
    return "/" not in name and name.endswith(".csv") and name.startswith(("task-", "track-"))


def replaced_final_folder(stamp: str) -> str:
    return f"{REPLACED_FINALS}/{stamp}"


# ---- submissions ----------------------------------------------------------------------------------------

FEEDBACK_SUFFIX = ".result.json"
MESSAGE_SUFFIX = ".message.json"  # <file>.message.json: the team's note on an upload (challenge submit --message)
FINAL_CHOICE = "FINAL"
HISTORY = "history.json"  # <team>/<task>/history.json: the team's own submissions, written by scoring


def task_folder(team: str, task_id: str) -> str:
    return f"{team}/{task_id}"


def submission_key(team: str, task_id: str, name: str) -> str:
    return f"{team}/{task_id}/{name}"


def feedback_key(key: str) -> str:
    return f"{key}{FEEDBACK_SUFFIX}"


def unusable_feedback_key(team: str, submission_id: str) -> str:
    """Feedback, in the team's folder, for an upload whose own key cannot be written beside."""
    return f"{team}/{UNUSABLE}-{submission_id}{FEEDBACK_SUFFIX}"


def message_key(key: str) -> str:
    """The note a team wrote about the upload `key` (uploaded just before it by `challenge submit`)."""
    return f"{key}{MESSAGE_SUFFIX}"


def final_choice_key(team: str, task_id: str) -> str:
    return submission_key(team, task_id, FINAL_CHOICE)


def history_key(team: str, task_id: str) -> str:
    return submission_key(team, task_id, HISTORY)


# ---- intake ---------------------------------------------------------------------------------------------

TASK_FILE = "task.yaml"


def drop_prefix(contributor: str, folder: str) -> str:
    return f"{contributor}/{folder}/"


# ---- typed records --------------------------------------------------------------------------------------


class Record(BaseModel):
    """A JSON record in storage: known fields typed, unknown ones kept (an older or newer writer's)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json", exclude_unset=True, by_alias=True), indent=2).encode()


class Latest(Record):
    """latest.json and each release's release.json: a complete release and its tasks (and the tasks
    withdrawn from it, with the organizers' reason)."""

    release: str
    published_at: str | None = None
    tasks: list[str]
    withdrawn: dict[str, str] = {}


class ScoringSchedule(Record):
    """When scoring ran last and runs next (None: not scheduled, the organizer starts runs by hand)."""

    last_run_at: str | None = None
    every_minutes: float | None = None
    next_run_due: str | None = None


class ChallengeInfo(Record):
    """public/challenge.json: the rules now, for participants' tools (`challenge submit` reads the quota and
    the window from it); rewritten by every publish and scoring run."""

    schema_version: int = 1
    challenge: str
    title: str | None = None
    max_submissions_per_day: int
    max_submission_mb: float
    opens_at: str | None = None
    closes_at: str | None = None
    finalized_at: str | None = None
    after_close: str = "reject"
    public_fraction: float
    final_picks: int
    scoring: ScoringSchedule = ScoringSchedule()
    updated_at: str | None = None


class AnswerVersion(Record):
    """One version of a task's answer key: version 1 is the built one, later ones corrections."""

    version: int
    answers_sha256: str
    corrected_at: str | None = None
    labels_changed: int = 0
    release: str | None = None  # the release the correction was made in
    staged_fingerprint: str | None = None  # the staged data after the fix (carries the task over)
    source_sha256: str | None = None  # of the corrections file (private)


class AnswerVersions(Record):
    """releases/<release>/<task>/answer_versions.json (private): every version of the key, the last in use."""

    task_id: str
    versions: list[AnswerVersion]


class StagedPointer(Record):
    """staged/<task>/current.json: the task's current staged version."""

    task_id: str
    kind: str | None = None  # None in pointers staged before kinds were recorded
    contributor: str
    version: str
    prefix: str
    fingerprint: str
    staged_at: str


class StagedMeta(Record):
    """staged/<task>/<version>/staged.json: what was staged, from which drop, with its task.yaml."""

    task_id: str
    kind: str
    fingerprint: str
    tables: Any
    spec: dict[str, Any]
    content_sha256: str | None = None  # staged.content_digest; None in versions staged before it was recorded


class ColumnInfo(Record):
    modality: str
    description: str | None = None


class SplitInfo(Record):
    """How the task was split: the method, its seed and fractions, the row counts, public notes."""

    method: str | None = None
    seed: int
    test_fraction: float
    public_fraction: float
    counts: dict[str, int]
    notes: dict[str, JsonValue] = {}


class LeakCheck(Record):
    """A leak check's finding, as participants see it (tasks/release/leaks/checks.py, LeakFinding.public)."""

    check: str
    column: str | None = None
    test_rows: int
    fraction: float
    detail: str
    refusable: bool


class SchemaField(Record):
    name: str
    type: str


class ManifestFile(Record):
    """A published file: its path in the task folder, size and SHA-256; a table's rows and schema too."""

    path: str
    bytes: int
    sha256: str
    rows: int | None = None
    table_schema: list[SchemaField] | None = Field(default=None, alias="schema")


class Manifest(Record):
    """releases/<release>/<task>/manifest.json: the task's files and their checksums, and the key's. The build
    writes it from this model (the fields in this order) and every reader reads it with it; fields added
    later have defaults, so manifests of older releases still read."""

    task_id: str
    kind: str
    release: str
    metric: str
    title: str | None = None
    columns: dict[str, ColumnInfo] = {}
    staged_fingerprint: str | None = None
    split: SplitInfo | None = None
    leak_checks: list[LeakCheck] = []
    answers_sha256: str
    files: list[ManifestFile]
    build_inputs: dict[str, JsonValue] | None = None  # what the files depend on: equal inputs, equal files


def parse_record(model: type[Record], data: bytes, where: str) -> Any:
    """`data` as a `model`; a clear error naming `where` when it is not one."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()[:5])
        raise ChallengeError(f"{where} is not a valid {model.__name__} record ({problems})") from None


def read_record(location: Storage, key: str, model: type[Record]) -> Any:
    """The record stored at `key`, typed; a clear error when it is missing or damaged."""
    return parse_record(model, location.read_bytes(key), location.uri_for(key))


def write_record(location: Storage, key: str, record: Record) -> None:
    location.write_bytes(key, record.to_json())


def json_bytes(value: object, indent: int | None = 2) -> bytes:
    """A JSON record as the product stores it: `indent` spaces deep; None: one line without spaces (caches
    and indexes, read only by the product)."""
    return json.dumps(value, indent=indent, separators=None if indent is not None else (",", ":")).encode()


def write_json(location: Storage, key: str, value: object, indent: int | None = 2) -> None:
    """Store a JSON record (a typed dict of challenge/core/records.py, a cache) at `key`."""
    location.write_bytes(key, json_bytes(value, indent))


def read_cache(location: Storage, key: str) -> dict[str, Any]:
    """A JSON cache of the product's own at `key`; empty when it is missing or damaged (a damaged cache costs
    a recomputation and a rewrite, nothing else)."""
    try:
        cache = json.loads(location.read_bytes(key)) if location.exists(key) else {}
    except ValueError:
        return {}
    return cache if isinstance(cache, dict) else {}


def read_manifest(public: Storage, release: str, task_id: str) -> Manifest:
    return read_record(public, manifest_key(release, task_id), Manifest)


def read_staged_pointer(private: Storage, task_id: str) -> StagedPointer | None:
    """The task's current staged version; None when the task has never passed the gate."""
    key = staged_pointer_key(task_id)
    return read_record(private, key, StagedPointer) if private.exists(key) else None
