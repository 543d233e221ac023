"""The scoring run's steps: pending submissions grouped by task, one Prefect task per task's batch, and
what the run did (SPEC §8). The flow, flows/score_submissions.py, wires them in order."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.core import catalog
from challenge.core.errors import ChallengeError
from challenge.core.records import FinalMarker, ResultRecord
from challenge.core.run_context import RunContext
from challenge.core.storage import TRANSFER_THREADS, Storage
from challenge.tasks.artifacts import ProgressArtifact
from challenge.tasks.release.latest import ReleasedTask
from challenge.tasks.scoring.score import (
    WHOLE,
    AnswerKey,
    ScoringContext,
    counts_for,
    feedback,
    load_answer_key,
    process_batch,
    rescore,
    scored_with,
    write_result,
)
from challenge.tasks.scoring.submissions import Inbox, Submission


def check_task_ids(chosen: list[str] | None, known: list[str]) -> set[str]:
    """The task ids a run works on: `chosen` (each must be in the release), else every task of it."""
    unknown = sorted(set(chosen or []) - set(known))
    if unknown:
        raise ChallengeError(f"unknown task id(s) {', '.join(unknown)}: the current release has {', '.join(known)}")
    return set(chosen or known)


def pending_by_task(inbox: Inbox, done: set[str], task_ids: set[str] | None) -> dict[str, list[Submission]]:
    """Task id → the submissions without a final result, in listing order (of `task_ids` when given)."""
    by_task: dict[str, list[Submission]] = {}
    for sub in inbox.submissions:
        if sub.submission_id not in done and (task_ids is None or sub.task_id in task_ids):
            by_task.setdefault(sub.task_id, []).append(sub)
    return dict(sorted(by_task.items()))


def finalized_at(private: Storage) -> datetime | None:
    """When the challenge was finalized (nothing uploaded later is scored); None while it runs."""
    if not private.exists(catalog.FINAL_MARKER):
        return None
    try:
        return datetime.fromisoformat(json.loads(private.read_bytes(catalog.FINAL_MARKER))["finalized_at"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ChallengeError(f"{private.uri_for(catalog.FINAL_MARKER)} is damaged ({exc}); it says when the "
                             "challenge was finalized: restore it, or run `challenge finalize` again") from None


def write_final_marker(private: Storage, finalized: str) -> None:
    """final.json: the challenge is finalized as of `finalized` (an ISO time); finalized_at reads it."""
    marker: FinalMarker = {"finalized_at": finalized}
    catalog.write_json(private, catalog.FINAL_MARKER, marker)


def missing_feedback(inbox: Inbox, done: dict[str, ResultRecord]) -> list[tuple[str, bytes]]:
    """(feedback key, bytes) for final results whose feedback is not there (a crash between the two)."""
    return [(sub.feedback_key, catalog.json_bytes(feedback(done[sub.submission_id])))
            for sub in inbox.submissions
            if sub.submission_id in done and sub.feedback_key and sub.feedback_key not in inbox.feedback]


@dataclass
class BatchOutcome:
    """One task's batch: the new final records, and (key, error) of submissions retried on the next run."""

    records: list[ResultRecord] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def tally(new: list[ResultRecord], batches: dict[str, BatchOutcome]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Status → count over the new records, and the same per task (with the retried errors)."""
    statuses: dict[str, int] = {}
    per_task: dict[str, dict[str, int]] = {task_id: {} for task_id in batches}
    for record in new:
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        if record["task_id"] in per_task:
            counts = per_task[record["task_id"]]
            counts[record["status"]] = counts.get(record["status"], 0) + 1
    for task_id, batch in batches.items():
        if batch.errors:
            per_task[task_id]["error (retried)"] = len(batch.errors)
    return statuses, per_task


@task(name="score-batch", task_run_name="score-{task_id}", cache_policy=NO_CACHE)
def score_batch(context: ScoringContext, task_id: str, subs: list[Submission], release: str | None) -> BatchOutcome:
    """One task's pending submissions (threads inside; the daily quota is applied in upload order)."""
    logger = get_run_logger()
    public, private, submissions = context.run.public, context.run.private, context.run.submissions
    key: AnswerKey | None = (load_answer_key(public, private, release, task_id)
                             if release and task_id in context.task_ids else None)
    progress = ProgressArtifact(len(subs), f"Scoring {len(subs)} submission(s) to {task_id}")
    records, errors = process_batch(subs, context, key, private, submissions, progress=progress)
    for failed, reason in errors:
        logger.error("%s: internal error, will be retried on the next run: %s", failed, reason)
    statuses, _ = tally(records, {})
    logger.info("%s: %d submission(s): %s", task_id, len(subs), statuses)
    return BatchOutcome(records, errors)


def without_test_score(records: list[ResultRecord], released: dict[str, ReleasedTask]) -> dict[str, list[ResultRecord]]:
    """Task id → its scored post-challenge (benchmark) results that have no whole-test-set score yet (scored
    before the challenge was finalized): to be scored on the whole test set once it is."""
    out: dict[str, list[ResultRecord]] = {}
    for r in records:
        task = released.get(r["task_id"])
        if (r["status"] == "scored" and r.get("phase") == "benchmark" and task is not None
                and WHOLE not in r.get("metrics", {}) and counts_for(r, task, "benchmark")):
            out.setdefault(r["task_id"], []).append(r)
    return dict(sorted(out.items()))


def corrected_pending(records: list[ResultRecord], released: dict[str, ReleasedTask]) -> dict[str, list[ResultRecord]]:
    """Task id → its scored results scored with an earlier version of its answer key (corrected since):
    to be rescored with the version in use."""
    out: dict[str, list[ResultRecord]] = {}
    for r in records:
        task = released.get(r["task_id"])
        if r["status"] == "scored" and task is not None and scored_with(r) in task.earlier_keys:
            out.setdefault(r["task_id"], []).append(r)
    return dict(sorted(out.items()))


@task(name="rescore-task", task_run_name="rescore-{task_id}", cache_policy=NO_CACHE)
def rescore_batch(run: RunContext, task_id: str, release: str, records: list[ResultRecord],
                  whole: bool | None = None) -> list[ResultRecord]:
    """These scored submissions of one task, against its answer key in use (the old result kept as history);
    `whole`: on the whole test set too (None: those that had that score)."""
    logger = get_run_logger()
    private, submissions = run.private, run.submissions
    key = load_answer_key(run.public, private, release, task_id)

    def one(record: ResultRecord) -> ResultRecord | None:
        new = rescore(record, key, submissions, whole)
        if new is not None:
            write_result(private, submissions, Submission.from_record(record), new, had_error=False)
        return new

    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        outcomes = list(pool.map(one, records))
    updated = [new for new in outcomes if new is not None]
    for record, new in zip(records, outcomes):
        if new is None:
            logger.warning("%s: the uploaded file is gone, replaced or no longer valid; not rescored", record["key"])
    logger.info("%s: rescored %d of %d submission(s)", task_id, len(updated), len(records))
    return updated
