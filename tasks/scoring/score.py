"""Score admitted, valid submissions against the hidden answer key (SPEC §8).

Every submission gets exactly one final result record in
`<private>/results/<team>/<task_id>/<submission id>.json` (scored, invalid or
rejected), written once; an internal failure writes `<id>.error.json`
instead, which the next run retries. The team's feedback file holds the
status, the message and the public score only (a post-challenge upload's also
`test_score`, its score on the whole test set, once the challenge is finalized).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import challenge
from challenge.core import catalog, leases
from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError, StorageError
from challenge.core.logs import step_logger
from challenge.core.metrics import confusion_matrices, score_all, scores_from_matrix
from challenge.core.records import RESULT_SCHEMA_VERSION, ErrorRecord, Feedback, Notice, Quota, ResultRecord
from challenge.core.run_context import RunContext
from challenge.core.storage import TRANSFER_THREADS, KeyTooLong, ObjectChanged, ObjectExists, Storage, key_fits
from challenge.tasks.release.latest import read_answer_versions
from challenge.tasks.scoring.notes import read_description
from challenge.tasks.scoring.submissions import (
    BASELINE_TEAM,
    NOT_SCORED,
    IdIndex,
    ParticipantVisibleError,
    Submission,
    admit,
    check_quota,
    read_submission,
    shown,
    validate,
    why_not_scored,
)

log = step_logger(__name__)

MAX_ATTEMPTS = 3  # internal errors on one submission before it is recorded as `failed`
FINAL_STATUSES = ("scored", "invalid", "rejected", "rejected: early", "rejected: closed", "rejected: late",  # late: before 0.2
                  "rejected: quota", "failed", "superseded")


@dataclass
class AnswerKey:
    """What scoring one task needs from the current release."""

    release: str
    task_id: str
    kind: str
    metric: str
    sha256: str
    ids: pa.Array
    labels: pa.Array
    public: pa.Array  # bool mask over ids
    classes: pa.Array
    version: int = 1  # the answer key's version (corrections make new ones)

    @cached_property
    def index(self) -> IdIndex:
        return IdIndex(self.ids)

    @cached_property
    def labels_encoded(self) -> pa.DictionaryArray:
        return pc.dictionary_encode(self.labels)


def load_answer_key(public: Storage, private: Storage, release: str, task_id: str) -> AnswerKey:
    """The answer key in use for a task of `release` (its last corrected version, if any), checked against
    the SHA-256 recorded for it: a key edited by hand is refused, not silently scored with."""
    manifest = catalog.read_manifest(public, release, task_id)
    versions = read_answer_versions(private, release, task_id)
    last = versions.versions[-1] if versions and versions.versions else None
    key_name = catalog.answers_key(release, task_id, last.version if last else 1)
    expected = last.answers_sha256 if last else manifest.answers_sha256
    data = private.read_bytes(key_name)
    if hashlib.sha256(data).hexdigest() != expected:
        raise ChallengeError(
            f"{private.uri_for(key_name)} does not match the SHA-256 recorded for it ({expected[:12]}…): the answer "
            "key was changed outside the product. Restore it; fix labels with `challenge correct-answers`, which "
            "keeps the old version and tells the teams")
    answers = pq.read_table(io.BytesIO(data))
    answers = answers.cast(pa.schema([pa.field(n, pa.string()) for n in answers.column_names]))  # e.g. large_string
    if manifest.kind == "classification":
        train = pq.read_table(io.BytesIO(public.read_bytes(catalog.release_file_key(release, task_id, catalog.table_file("train")))),
                              columns=["label"])
        classes = pc.unique(pa.chunked_array(train["label"].cast(pa.string()).chunks + answers["label"].chunks)).sort()
    else:
        classes = pa.array(["0", "1"])
    return AnswerKey(
        release=release, task_id=task_id, kind=manifest.kind, metric=manifest.metric,
        sha256=expected, ids=answers["id"].combine_chunks(), labels=answers["label"].combine_chunks(),
        public=pc.equal(answers["usage"], "public").combine_chunks(), classes=classes,
        version=last.version if last else 1,
    )


WHOLE = "test"  # the metrics part (and `test_score` in feedback) of the whole test set: public and private together


def score_predictions(key: AnswerKey, predicted: pa.Array, whole: bool = False) -> dict[str, dict[str, float]]:
    """Every metric of the task's kind on the public and on the private part; with `whole`, on the whole
    test set too (part WHOLE: the post-challenge benchmark's score, once the challenge is finalized)."""
    truth, pred = key.labels_encoded, predicted
    if key.kind == "matching":
        truth, pred = pc.cast(key.labels, pa.int8()), pc.cast(pred.dictionary_decode(), pa.int8())
        parts = {"public": key.public, "private": pc.invert(key.public)}
        scores = {part: {n: round(v, 6) for n, v in score_all(key.kind, pc.filter(truth, mask), pc.filter(pred, mask)).items()}
                  for part, mask in parts.items()}
        if whole:
            scores[WHOLE] = {n: round(v, 6) for n, v in score_all(key.kind, truth, pred).items()}
        return scores
    # classification: both parts' confusion matrices from one pass over the rows (their sum: the whole set)
    private = np.asarray(pc.invert(key.public).to_numpy(zero_copy_only=False), dtype=np.int8)
    public_cm, private_cm = confusion_matrices(truth, pred, private, 2)
    matrices = [("public", public_cm), ("private", private_cm)] + ([(WHOLE, public_cm + private_cm)] if whole else [])
    return {part: {n: round(v, 6) for n, v in scores_from_matrix(key.kind, cm).items()} for part, cm in matrices}


def predict(sub: Submission, data: bytes, key: AnswerKey) -> pa.DictionaryArray:
    """The file's labels aligned with the answer key's ids; raises ParticipantVisibleError for an invalid
    file, whatever in the file makes the reader or a check fail (an upload never becomes an internal error,
    retried forever)."""
    return checked_labels(data, sub.name, key.index, key.classes, sub.key)


def checked_labels(data: bytes, name: str, index: IdIndex, classes: pa.Array, where: str | None = None) -> pa.DictionaryArray:
    """The one check of a submission file against a task's test ids and classes, used by the scorer and by
    `challenge submit` before an upload (same checks, same messages); see predict."""
    table = read_submission(data, name, len(index.test_ids))
    try:
        return validate(table, index, classes)
    except ParticipantVisibleError:
        raise
    except Exception as exc:  # noqa: BLE001 (logged for organizers; the team reads a short message)
        log.warning("%s: validation failed on its content: %s: %s", where or name, type(exc).__name__, exc)
        raise ParticipantVisibleError(
            f"{shown(name)} could not be checked ({type(exc).__name__}); check that ids are the test ids "
            "and labels plain class names, one row per test id") from None


def evaluate(sub: Submission, data: bytes, key: AnswerKey, whole: bool = False) -> dict[str, dict[str, float]]:
    """Validate then score (see predict and score_predictions)."""
    return score_predictions(key, predict(sub, data, key), whole)


def write_predictions(private: Storage, sub: Submission, predicted: pa.DictionaryArray) -> None:
    """A scored file's labels in answer-key order, kept for the boards' bootstrap intervals."""
    out = io.BytesIO()
    pq.write_table(pa.table({"label": predicted}), out, compression="zstd")
    private.write_bytes(catalog.predictions_key(sub.team, sub.task_id, sub.submission_id), out.getvalue())


def read_upload(submissions: Storage, sub: Submission, limit_bytes: int) -> bytes:
    """The bytes of the upload as listed (same version), at most `limit_bytes`: the size is checked on
    what is read, not only on the listing. Raises ObjectChanged when it was replaced meanwhile."""
    data = submissions.read_limited(sub.key, limit_bytes, sub.etag)
    if len(data) > limit_bytes:
        raise ParticipantVisibleError(
            f"the file is larger than {limit_bytes / 1048576:g} MB, the limit", "rejected")
    return data


class Scores(NamedTuple):
    """A scored upload's metrics per part (public, private, whole test set) and its phase: "challenge", or
    "benchmark" for an upload scored after the close (post-challenge board)."""

    metrics: dict[str, dict[str, float]]
    phase: str = "challenge"


def result_record(sub: Submission, status: str, message: str, release: str | None,
                  key: AnswerKey | None = None, scores: Scores | None = None) -> ResultRecord:
    """A final result record: `scores` for a scored upload."""
    metrics, phase = scores or Scores({})
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "submission_id": sub.submission_id, "key": sub.key, "etag": sub.etag, "bytes": sub.size,
        "uploaded_at": sub.uploaded_at.isoformat(), "team": sub.team, "task_id": sub.task_id, "name": sub.name,
        "release": release, "status": status, "message": message, "phase": phase,
        "primary_metric": key.metric if key else None,
        "metrics": metrics,
        "scored_at": datetime.now(timezone.utc).isoformat(),
        "scored_by": {"package": "challenge", "version": challenge.__version__,
                      "metric": key.metric if key else None, "answers_sha256": key.sha256 if key else None,
                      "answers_version": key.version if key else None},
    }


def feedback(record: ResultRecord) -> Feedback:
    """What the team may read: never a private score. `quota` says how many scored submissions the
    team has left for the task on the upload's UTC day, and when that count resets."""
    public = record["metrics"].get("public", {})
    body = {
        "submission": record["key"], "status": record["status"], "message": record["message"],
        "public_score": public.get(record["primary_metric"]) if record["status"] == "scored" else None,
        "metric": record["primary_metric"], "release": record["release"], "scored_at": record["scored_at"],
        "quota": record.get("quota"),
    }
    if record.get("description"):
        body["description"] = record["description"]
    if record.get("phase") == "benchmark":  # the whole test set's score, once the challenge is finalized
        body["phase"] = "benchmark"
        body["test_score"] = whole_test_score(record)
    return body


def whole_test_score(record: ResultRecord) -> float | None:
    """A post-challenge upload's score on the whole test set (`test_score`); None until the challenge is
    finalized (it is computed then: before, it would tell the private part's labels while FINAL picks can change)."""
    if record["status"] != "scored":
        return None
    return record["metrics"].get(WHOLE, {}).get(record["primary_metric"])


def scored_message(metrics: dict[str, dict[str, float]], metric: str, phase: str, done: str = "scored") -> str:
    """What a scored result says: its public score; a post-challenge upload's whole-test-set score once
    there is one, else when it comes."""
    if phase != "benchmark":
        return f"{done}: public {metric} {metrics['public'][metric]:.4f}"
    if WHOLE in metrics:
        return f"{done} (post-challenge benchmark): whole test set {metric} {metrics[WHOLE][metric]:.4f}"
    return (f"{done} (post-challenge benchmark): public {metric} {metrics['public'][metric]:.4f}; the score on the "
            "whole test set comes once the challenge is finalized")


def day_quota(team: str, day: date, limit: int, used: int) -> Quota:
    """A team's quota for a task on a UTC day: used, left, reset time. The reserved team `baseline` has
    no quota (`limit` and `left` are None)."""
    resets = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    unlimited = team == BASELINE_TEAM
    return {"day": day.isoformat(), "limit": None if unlimited else limit, "used": used,
            "left": None if unlimited else max(limit - used, 0), "resets_at": resets.strftime("%Y-%m-%dT%H:%M:%SZ")}


def quota_status(sub: Submission, limit: int, used: int) -> Quota:
    """The team's quota for this task on the upload's UTC day, after this submission (see day_quota)."""
    return day_quota(sub.team, sub.uploaded_at.astimezone(timezone.utc).date(), limit, used)


def scored_with(record: ResultRecord) -> str | None:
    """The SHA-256 of the answer key a result record was scored with (None when it was not scored with one)."""
    return (record.get("scored_by") or {}).get("answers_sha256")


def counts_for(record: ResultRecord, task: Any, phase: str = "challenge", release: str | None = None) -> bool:
    """Whether a result counts on the task's board of `phase` ("challenge", or "benchmark" for the
    post-challenge board): scored with the task's current answer key, whatever release it was scored in.
    `task`: the task's ReleasedTask. Without a key's SHA-256 on either side (a rejection before any key
    was read, records of old versions), a record counts in the release it was made in (`release`)."""
    if record.get("phase", "challenge") != phase:
        return False
    used = scored_with(record)
    if used and task.answers_sha256:
        return used == task.answers_sha256
    return record.get("release") == (release or task.changed_in)


def scored_per_day(records: list[ResultRecord],
                   current_keys: dict[str, str | None] | None = None) -> dict[tuple[str, str, str], int]:
    """(team, task, UTC day) → scored submissions, for the daily quota. With `current_keys` (task id →
    the SHA-256 of its current answer key), a result scored with another key does not count: when a task
    changes in a release, the teams get their quota back to resubmit."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in records:
        used = scored_with(r)
        current = (current_keys or {}).get(r["task_id"])
        if r["status"] == "scored" and not (used and current and used != current):
            day = (r["team"], r["task_id"], r["uploaded_at"][:10])
            counts[day] = counts.get(day, 0) + 1
    return counts


def supersede(records: list[ResultRecord], current: dict[str, Any], now: datetime) -> list[ResultRecord]:
    """New records for the scored results of tasks whose answer key changed since (a new release rebuilt
    the task, or its key was corrected and the upload could not be rescored): status `superseded`, kept
    as history, not ranked, not counted in any quota; the message tells the team to resubmit.
    `current`: task id → its ReleasedTask in the current release. A step: no storage inside."""
    out = []
    for r in records:
        task = current.get(r["task_id"])
        used = scored_with(r)
        if r["status"] != "scored" or task is None or not used or not task.answers_sha256 or used == task.answers_sha256:
            continue
        version = f", answer key version {task.answer_version}" if task.answer_version > 1 else ""
        new = {k: v for k, v in r.items() if k != "history"}
        new.update(status="superseded", scored_at=now.isoformat(), quota=None,
                   superseded={"at": now.isoformat(), "changed_in": task.changed_in, "answers_sha256": task.answers_sha256},
                   message=(f"superseded: {r['task_id']} changed in release {task.changed_in}{version} after this file "
                            f"was scored (public {r['primary_metric']} "
                            f"{r['metrics'].get('public', {}).get(r['primary_metric'], float('nan')):.4f}); it no longer "
                            "counts on the leaderboard or in your daily quota: download the current release and "
                            "submit again"),
                   history=[*r.get("history", []), {k: v for k, v in r.items() if k != "history"}])
        out.append(new)
    return out


def _day(sub: Submission) -> tuple[str, str, str]:
    return (sub.team, sub.task_id, sub.uploaded_at.astimezone(timezone.utc).date().isoformat())


def _first_pass(sub: Submission, config: Any, key: AnswerKey | None, task_ids: set[str],
                submissions: Storage, finalized_at: datetime | None = None) -> tuple[str, Any]:
    """Admission before reading, then validation and scoring: ("final", record) or ("valid", metrics)."""
    release = key.release if key else None
    description = None
    try:
        phase = admit(sub, config, task_ids, finalized_at)
        assert key is not None
        data = read_upload(submissions, sub, int(config.policy.max_submission_mb * 1024 * 1024))
        description = read_description(submissions, sub, data)
        predicted = predict(sub, data, key)
        whole = phase == "benchmark" and finalized_at is not None  # after finalize: the whole test set's score too
        return "valid", {**score_predictions(key, predicted, whole), "phase": phase, "predicted": predicted,
                         "description": description}
    except ParticipantVisibleError as exc:
        return "final", described(result_record(sub, exc.status, str(exc), release, key), description)
    except ObjectChanged:
        return "changed", None


def described(record: ResultRecord, description: str | None) -> ResultRecord:
    """`record` with the team's note on the upload (challenge submit --message), when it has one."""
    if description:
        record["description"] = description
    return record


@dataclass(frozen=True)
class ScoringContext:
    """What every batch of one scoring run shares, made once by the flow: the run's configuration and locations
    (`run`), the current release's task ids, the scored submissions per (team, task, UTC day) (updated in upload order as
    submissions are scored), the attempts of submissions that hit an internal error, the close (nothing
    uploaded later counts in the challenge) and the threads per batch."""

    run: RunContext
    task_ids: set[str]
    counts: dict[tuple[str, str, str], int]
    had_error: dict[str, int]
    finalized_at: datetime | None = None
    workers: int = TRANSFER_THREADS

    @property
    def config(self) -> ChallengeConfig:
        return self.run.config


def read_and_score(subs: list[Submission], context: ScoringContext, key: AnswerKey | None, submissions: Storage,
                   progress: Callable[[int], None] | None = None) -> list[tuple[str, Any]]:
    """Admit, read, validate and score each submission in threads: per submission ("final", record),
    ("valid", metrics), ("changed", None) when it was replaced while read, or ("error", exception).
    `progress(n)` is called with the number of submissions done so far. Once the run's lease on the scoring
    slot lapses (challenge/core/leases.py), no further submission is taken: LeaseLost is raised."""
    lease = leases.current()

    def first(sub: Submission) -> tuple[str, Any]:
        if lease is not None:
            lease.check()
        try:
            return _first_pass(sub, context.config, key, context.task_ids, submissions, context.finalized_at)
        except Exception as exc:  # internal: retried next run
            return "error", exc

    outcomes = []
    with ThreadPoolExecutor(max_workers=context.workers) as pool:
        for outcome in pool.map(first, subs):
            outcomes.append(outcome)
            if progress:
                progress(len(outcomes))
    return outcomes


def settle(subs: list[Submission], outcomes: list[tuple[str, Any]], context: ScoringContext,
           key: AnswerKey | None) -> tuple[list[tuple[Submission, ResultRecord]], list[tuple[Submission, BaseException]]]:
    """Decide each submission's final record, in upload order: the daily quota counts only scored
    submissions (`counts` is updated); an internal error is retried (MAX_ATTEMPTS in all, then `failed`);
    a submission replaced while it was read is left for the next run. A step: no storage inside.
    Returns (submission, final record) and (submission, error) of those retried next run."""
    finals: list[tuple[Submission, ResultRecord]] = []
    errors: list[tuple[Submission, BaseException]] = []
    config, counts, had_error = context.config, context.counts, context.had_error
    limit = config.policy.max_submissions_per_day
    team_ids = {t.id for t in config.teams}
    for sub, (kind, value) in sorted(zip(subs, outcomes), key=lambda pair: (pair[0].uploaded_at, pair[0].key)):
        if kind == "changed":
            continue
        if kind == "error":
            if had_error.get(sub.submission_id, 0) + 1 < MAX_ATTEMPTS:
                errors.append((sub, value))
                continue
            log.error("%s: internal error on attempt %d of %d, given up: %s", sub.key, MAX_ATTEMPTS, MAX_ATTEMPTS, value)
            kind, value = "final", result_record(
                sub, "failed", "this file could not be scored because of a problem on our side (the organizers "
                "see it); it does not count against your quota: upload it again later", key.release if key else None, key)
        if kind == "final":
            record = value
        else:
            assert key is not None  # a valid submission was scored against it
            try:
                check_quota(sub, config, counts.get(_day(sub), 0))
            except ParticipantVisibleError as exc:
                record = described(result_record(sub, exc.status, str(exc), key.release, key), value.get("description"))
            else:
                counts[_day(sub)] = counts.get(_day(sub), 0) + 1
                metrics = {part: value[part] for part in ("public", "private", WHOLE) if part in value}
                phase = value.get("phase", "challenge")
                record = described(result_record(sub, "scored", scored_message(metrics, key.metric, phase),
                                                 key.release, key, Scores(metrics, phase)), value.get("description"))
        if sub.task_id in context.task_ids and (sub.team == BASELINE_TEAM or sub.team in team_ids):  # a quota to report
            record["quota"] = quota_status(sub, limit, counts.get(_day(sub), 0))
        finals.append((sub, record))
    return finals, errors


def process_batch(subs: list[Submission], context: ScoringContext, key: AnswerKey | None, private: Storage,
                  submissions: Storage, progress: Callable[[int], None] | None = None,
                  ) -> tuple[list[ResultRecord], list[tuple[str, str]]]:
    """Score one task's pending submissions: read and score them (read_and_score), decide their final
    records (settle), then write results and feedback in threads.

    Returns the new final records and, for each submission retried next run, its key and the error.
    """
    outcomes = read_and_score(subs, context, key, submissions, progress)
    finals, errors = settle(subs, outcomes, context, key)
    had_error = context.had_error
    predicted = {sub.submission_id: value["predicted"] for sub, (kind, value) in zip(subs, outcomes)
                 if kind == "valid" and "predicted" in value}
    lease = leases.current()  # the scoring slot's: a run that lost it writes no more results

    def write(item: tuple[Submission, ResultRecord]) -> None:
        sub, record = item
        if lease is not None:
            lease.check()
        if record["status"] == "scored" and sub.submission_id in predicted:  # before the record: it is final
            write_predictions(private, sub, predicted[sub.submission_id])
        write_result(private, submissions, sub, record, sub.submission_id in had_error, first=True)

    with ThreadPoolExecutor(max_workers=context.workers) as pool:
        list(pool.map(write, finals))
        list(pool.map(lambda item: write_error(private, *item, had_error.get(item[0].submission_id, 0) + 1), errors))
    return [record for _, record in finals], [(sub.key, f"{type(exc).__name__}: {exc}") for sub, exc in errors]


def write_result(private: Storage, submissions: Storage, sub: Submission, record: ResultRecord,
                 had_error: bool = True, first: bool = False) -> bool:
    """The result record first (the durable truth), then the team's feedback file; False when not written.

    `first`: the submission's first final record (a scoring run's; a rescore or supersede rewrites one, not
    `first`). It is written only if no record is there (a conditional write), so that of two runs scoring the
    same submission at once (the scoring slot let both in) exactly one writes it: the other keeps that record,
    writes no feedback, and says so. A damaged record there is replaced (it is scored again, as documented).
    Where the server ignores If-None-Match (an old S3-compatible one), the scoring slot alone keeps runs apart.
    An upload whose name leaves no room for its feedback key beside it gets its feedback in the team's folder,
    and its message (record and feedback) says so.
    """
    target = feedback_target(submissions, sub)
    beside = catalog.feedback_key(sub.key)
    if target and target != beside and key_fits(submissions, sub.key) and MOVED not in record["message"]:
        record["message"] += (f"; {MOVED}: {shown(sub.name)} leaves no room for the {catalog.FEEDBACK_SUFFIX} suffix "
                              f"beside it ({_rule_broken(submissions, beside)}), so it is in {target}: upload under a "
                              "shorter name")
    body = catalog.json_bytes(record)
    try:
        private.write_bytes(sub.result_key, body, if_absent=first)
    except ObjectExists:
        if _final_record_there(private, sub):
            log.warning("%s: another scoring run wrote its final result first; kept (this run's is dropped)", sub.key)
            return False
        private.write_bytes(sub.result_key, body)
    if had_error:
        private.delete(catalog.error_key(sub.result_key))
    if target:
        submissions.write_bytes(target, catalog.json_bytes(feedback(record)))
    return True


MOVED = "this feedback is not beside the upload"


def _rule_broken(storage: Storage, key: str) -> str:
    """The length limit `key` is past on `storage`, in words."""
    try:
        storage.uri_for(key)
    except KeyTooLong as exc:
        return exc.limit
    except StorageError:
        pass
    return "past the storage's limits"


def feedback_target(submissions: Storage, sub: Submission) -> str | None:
    """Where `sub`'s feedback is written: its feedback_key when `submissions` holds that key, else the fallback
    in the team's folder (a record made from a result only learns here that the name is too long), else None."""
    key = sub.feedback_key
    if key is not None and not key_fits(submissions, key) and sub.feedback_fits:
        key = replace(sub, feedback_fits=False).feedback_key
    return key if key is not None and key_fits(submissions, key) else None


def _final_record_there(private: Storage, sub: Submission) -> bool:
    """Whether `sub`'s result key holds a readable final record of it (not a damaged one)."""
    try:
        existing = json.loads(private.read_bytes(sub.result_key))
    except (StorageError, ValueError):
        return False
    return isinstance(existing, dict) and existing.get("submission_id") == sub.submission_id and "status" in existing


def reject_unusable(private: Storage, submissions: Storage, unusable: list[tuple[Submission, str]],
                    done: set[str], workers: int = TRANSFER_THREADS) -> list[ResultRecord]:
    """A `rejected` record (and feedback where a feedback key can be formed) for each upload that
    cannot be used (a key no storage accepts, a symbolic link, a FIFO), once. Returns the new records."""
    due = [(sub, result_record(sub, "rejected", reason, None)) for sub, reason in unusable
           if sub.submission_id not in done]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda item: write_result(private, submissions, *item, had_error=False, first=True), due))
    return [record for _, record in due]


def write_notices(submissions: Storage, ignored: list[str], feedback_written: set[str],
                  workers: int = TRANSFER_THREADS) -> list[str]:
    """A feedback file for each upload that will not be scored (notes.txt, an .xlsx, a misplaced file),
    once: uploads that already have one are skipped. Returns the keys given feedback."""
    now = datetime.now(timezone.utc).isoformat()
    due = {}
    for key in ignored:
        reason = why_not_scored(key)
        feedback_key = catalog.feedback_key(key)
        if reason and feedback_key not in feedback_written and key_fits(submissions, feedback_key):  # else none
            due[feedback_key] = Notice(submission=key, status=NOT_SCORED, message=reason, checked_at=now)

    def write(item: tuple[str, Notice]) -> None:
        submissions.write_bytes(item[0], catalog.json_bytes(item[1]))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, due.items()))
    return [body["submission"] for body in due.values()]


def write_error(private: Storage, sub: Submission, exc: BaseException, attempts: int = 1) -> None:
    """Not final: the next run retries this submission (`attempts` so far)."""
    record: ErrorRecord = {"submission_id": sub.submission_id, "key": sub.key, "etag": sub.etag, "status": "error",
              "message": f"{type(exc).__name__}: {str(exc)[:1000]}", "attempts": attempts,
              "at": datetime.now(timezone.utc).isoformat()}
    private.write_bytes(catalog.error_key(sub.result_key), catalog.json_bytes(record))


def rescore(record: ResultRecord, key: AnswerKey, submissions: Storage, whole: bool | None = None) -> ResultRecord | None:
    """Score a scored submission again against the current answer key; the old result goes to history.
    `whole`: score the whole test set too (None: if the result had that score).

    None when the uploaded object is gone or was replaced (its ETag changed), or no longer passes the
    checks (then the next scoring run marks it superseded).
    """
    sub = Submission.from_record(record)
    try:  # the bytes that were scored: that version, no more than that size
        data = submissions.read_limited(sub.key, sub.size, sub.etag)
    except StorageError:  # gone (ObjectChanged: replaced)
        return None
    if len(data) > sub.size:
        return None
    try:
        metrics = evaluate(sub, data, key, WHOLE in record.get("metrics", {}) if whole is None else whole)
    except ParticipantVisibleError as exc:
        log.warning("%s: no longer valid against answer key version %d: %s", sub.key, key.version, exc)
        return None
    corrected = f" with the corrected answer key (version {key.version})" if key.version > 1 else ""
    phase = record.get("phase", "challenge")
    newly_whole = bool(whole) and WHOLE not in record.get("metrics", {})  # its benchmark score, now it may be told
    done = "scored" if newly_whole else f"rescored{corrected}"
    new = result_record(sub, "scored", scored_message(metrics, key.metric, phase, done), record.get("release"), key,
                        Scores(metrics, phase))
    for kept in ("quota", "description"):
        if kept in record:
            new[kept] = record[kept]
    previous = {k: v for k, v in record.items() if k != "history"}
    new["history"] = [*record.get("history", []), previous]
    return new
