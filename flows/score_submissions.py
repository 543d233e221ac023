"""Flows: score new submissions, then rebuild the leaderboards (SPEC §8–§9); finalize the challenge.

`score-submissions` runs every few minutes: list the submissions, tell uploads that are not
submissions why, reject unusable keys, score each task's pending batch (one Prefect task per task),
rebuild the boards. `rescore=True` recomputes every scored result after an answer-key fix.
`finalize-challenge` switches the leaderboards to private scores. One scoring run per challenge
holds the scoring slot at a time (challenge/core/scoring_slot.py). The steps live in tasks/scoring/batches.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect import flow, tags
from prefect.logging import get_run_logger
from prefect.states import State

from challenge.core import catalog
from challenge.core.config import load_config
from challenge.core.errors import ScoringErrors
from challenge.core.records import Board, ResultRecord
from challenge.core.run_context import RunContext
from challenge.core.scoring_slot import scoring_slot
from challenge.core.task_runners import task_runner_from_env, warn_unseen_storage
from challenge.flows.run_names import run_name, stamp, with_tasks
from challenge.flows.run_states import failed_run, listing
from challenge.flows.scoring_schedule import scoring_schedule
from challenge.tasks.artifacts import not_scored_artifact, table_artifact
from challenge.tasks.boards.publish import AlreadyRead, refresh_leaderboard, write_final_snapshot, write_results_report
from challenge.tasks.corrections.apply import sync_public_corrections
from challenge.tasks.release.challenge_info import refresh_challenge_info
from challenge.tasks.release.latest import ReleasedTask, current_release, read_answer_versions, read_latest, release_tasks
from challenge.tasks.scoring.batches import (
    check_task_ids,
    corrected_pending,
    finalized_at,
    missing_feedback,
    pending_by_task,
    rescore_batch,
    score_batch,
    tally,
    without_test_score,
    write_final_marker,
)
from challenge.tasks.scoring.records import load_results, scan_results
from challenge.tasks.scoring.score import (
    ScoringContext,
    reject_unusable,
    scored_per_day,
    scored_with,
    supersede,
    write_notices,
    write_result,
)
from challenge.tasks.scoring.submissions import Submission, discover


@dataclass
class ScoringRun:
    """What one scoring run did."""

    pending: int = 0  # submissions without a final result when the run started (of the chosen tasks)
    statuses: dict[str, int] = field(default_factory=dict)  # status → new final results
    errors: list[tuple[str, str]] = field(default_factory=list)  # (key, error): retried on the next run
    notices: list[str] = field(default_factory=list)  # uploads told they are not submissions
    rescored: int | None = None  # results recomputed (a rescore run)
    leaderboard: str | None = None  # the page's address
    board: Board | None = None
    message: str = ""  # why nothing was done, when nothing could be
    corrected: int = 0  # results rescored with a corrected answer key
    superseded: int = 0  # results marked superseded (their task changed)


def score_new(run: RunContext, only: list[str] | None = None, closing_at: datetime | None = None) -> ScoringRun:
    """Score every submission without a final result (of the `only` tasks, if given); rebuild the leaderboards.

    Once the challenge is finalized (or while it is, `closing_at`), later uploads are `rejected: closed`."""
    logger = get_run_logger()
    started = datetime.now(timezone.utc)
    config, public, private, submissions = run.config, run.public, run.private, run.submissions
    latest = read_latest(public)
    if latest is None:  # a schedule started before the first release: not a failure
        message = f"no release yet ({public.uri_for(catalog.LATEST)} is missing): nothing to score"
        logger.warning(message)
        return ScoringRun(message=message)
    released = release_tasks(public, latest, private)
    chosen = check_task_ids(only, latest.tasks)
    inbox = discover(submissions)
    noticed = write_notices(submissions, inbox.ignored, inbox.feedback)
    if noticed:
        logger.info("%d upload(s) that are not submissions were told why: %s", len(noticed), listing(noticed))
    records, had_error = scan_results(private)
    records, corrected = rescore_corrected(run, latest.release, records, released)
    records, superseded = mark_superseded(run, records, released)
    if closing_at is None and finalized_at(private) is not None:
        records, _ = score_whole_test_set(run, latest.release, records, released,
                                          {sub.submission_id for sub in inbox.submissions})
    done = {r["submission_id"]: r for r in records}
    unusable = reject_unusable(private, submissions, inbox.unusable, set(done))
    for record in unusable:
        logger.warning("%r: rejected: %s", record["key"], record["message"])
    for key, body in missing_feedback(inbox, done):
        submissions.write_bytes(key, body)
    pending = pending_by_task(inbox, set(done), chosen if only else None)
    logger.info("%d submission(s) in %s, %d already final, %d to score", len(inbox.submissions),
                config.storage.submissions, len(done), sum(map(len, pending.values())))
    counts = scored_per_day(records, {task_id: task.answers_sha256 for task_id, task in released.items()})
    context = ScoringContext(run, set(latest.tasks), counts, had_error, closing_at or finalized_at(private))
    futures = {}
    for task_id, subs in pending.items():
        kind = released[task_id].kind if task_id in released else "unknown"
        with tags(f"task:{task_id}", f"track:{kind}"):
            futures[task_id] = score_batch.submit(context, task_id, subs, latest.release)
    batches = {task_id: future.result() for task_id, future in futures.items()}
    new = unusable + [r for batch in batches.values() for r in batch.records]
    board, page = refresh_leaderboard(run, AlreadyRead(records + new, inbox, latest, released))
    statuses, per_task = tally(new, batches)
    table_artifact("scoring-run", [{"task": t, "pending": len(pending[t]), **per_task[t]} for t in pending],
                   f"What this run scored (release {latest.release})", {"task": "nothing new", "pending": 0}, fill=0)
    not_scored_artifact(new, latest.release, {t.id: t.name for t in config.teams})
    logger.info("scored %d submission(s): %s; leaderboard %s", len(new), statuses or "nothing new", page)
    refresh_challenge_info(public, config, finalized_at(private), scoring_schedule(started))
    return ScoringRun(pending=sum(map(len, pending.values())) + len(unusable), statuses=statuses,
                      errors=[e for batch in batches.values() for e in batch.errors], notices=noticed,
                      leaderboard=page, board=board, corrected=corrected, superseded=superseded)


def rescore_corrected(run: RunContext, release: str, records: list[ResultRecord],
                      released: dict[str, ReleasedTask]) -> tuple[list[ResultRecord], int]:
    """Rescore the results scored with an earlier version of a corrected answer key (one Prefect task per
    task), and bring each corrected task's public corrections trail (catalog.corrections_key) up to date;
    returns the records with the rescored ones replaced, and how many. Done by every scoring run, so a
    correction stopped half-way heals (and a task corrected by an earlier version, whose trail was inside
    the release folder, gets its trail where it now lives)."""
    public, private = run.public, run.private
    for task_id, task in released.items():
        versions = read_answer_versions(private, release, task_id) if task.answer_version > 1 else None
        if versions is not None and sync_public_corrections(public, release, versions):
            get_run_logger().warning("%s: the public corrections trail was behind the answer key in use; rewritten at %s",
                                     task_id, public.uri_for(catalog.corrections_key(release, task_id)))
    pending = corrected_pending(records, released)
    futures = []
    for task_id, chosen in pending.items():
        with tags(f"task:{task_id}", f"track:{released[task_id].kind}"):
            futures.append(rescore_batch.submit(run, task_id, release, chosen))
    rescored = {r["submission_id"]: r for f in futures for r in f.result()}
    return [rescored.get(r["submission_id"], r) for r in records], len(rescored)


def score_whole_test_set(run: RunContext, release: str, records: list[ResultRecord],
                         released: dict[str, ReleasedTask], present: set[str] | None = None) -> tuple[list[ResultRecord], int]:
    """Once the challenge is finalized: give each post-challenge result scored before that its score on the
    whole test set (result and feedback rewritten, the old result kept as history; one Prefect task per task).
    `present`: the submission ids still uploaded (a file deleted since cannot be scored again). Returns the
    records with those replaced, and how many."""
    futures = []
    due = [r for r in records if present is None or r["submission_id"] in present]
    for task_id, chosen in without_test_score(due, released).items():
        with tags(f"task:{task_id}", f"track:{released[task_id].kind}"):
            futures.append(rescore_batch.submit(run, task_id, release, chosen, whole=True))
    scored = {r["submission_id"]: r for f in futures for r in f.result()}
    if scored:
        get_run_logger().info("%d post-challenge result(s) got their score on the whole test set", len(scored))
    return [scored.get(r["submission_id"], r) for r in records], len(scored)


def mark_superseded(run: RunContext, records: list[ResultRecord],
                    released: dict[str, ReleasedTask]) -> tuple[list[ResultRecord], int]:
    """Mark the results of tasks whose answer key changed `superseded` (result and feedback rewritten, the
    old result kept as history); returns the records with those replaced, and how many."""
    new = supersede(records, released, datetime.now(timezone.utc))
    if not new:
        return records, 0
    for record in new:
        write_result(run.private, run.submissions, Submission.from_record(record), record, had_error=False)
    get_run_logger().warning("%d result(s) scored against an earlier version of their task are superseded; "
                             "their teams were told to resubmit", len(new))
    replaced = {r["submission_id"]: r for r in new}
    return [replaced.get(r["submission_id"], r) for r in records], len(new)


def rescore_all(run: RunContext, only: list[str] | None = None) -> ScoringRun:
    """Recompute every result scored with a task's current answer key (e.g. after a metric fix in the code),
    keeping the old one as history. Answer-key fixes go through `challenge correct-answers`."""
    public, private = run.public, run.private
    latest = current_release(public)
    released = release_tasks(public, latest, private)
    chosen = check_task_ids(only, latest.tasks)
    by_task: dict[str, list[ResultRecord]] = {}
    for r in load_results(private):
        if r["status"] == "scored" and r["task_id"] in chosen and scored_with(r) == released[r["task_id"]].answers_sha256:
            by_task.setdefault(r["task_id"], []).append(r)
    futures = []
    for task_id, records in sorted(by_task.items()):
        with tags(f"task:{task_id}", f"track:{released[task_id].kind}"):
            futures.append(rescore_batch.submit(run, task_id, latest.release, records))
    rescored = sum(len(f.result()) for f in futures)
    board, page = refresh_leaderboard(run, AlreadyRead(latest=latest, released=released))
    return ScoringRun(rescored=rescored, leaderboard=page, board=board)


@flow(name="score-submissions", flow_run_name=run_name(lambda p: "rescore" if p.get("rescore") else "score", with_tasks),
      task_runner=task_runner_from_env())
def score_submissions(config_path: str | None = None, rescore: bool = False,
                      tasks: list[str] | None = None) -> ScoringRun | State:
    """Score new submissions and rebuild the leaderboards; one scoring run per challenge at a time.

    A run in which any submission hit an internal error still writes every other result and the
    boards, then ends Failed (state ScoringErrors, naming the submissions); the next run retries them.
    Calling the flow then raises ScoringErrors, whose `result` is the run's summary.

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
        rescore: Recompute every scored result against the current answer keys (after an answer-key fix).
        tasks: Score only these task ids (default: every task of the current release).
    """
    config = load_config(config_path)
    warn_unseen_storage(config)
    context = RunContext(config)
    with scoring_slot(context):
        done = rescore_all(context, tasks) if rescore else score_new(context, tasks)
    if done.errors:
        keys = [key for key, _ in done.errors]
        return failed_run(ScoringErrors(
            f"{len(keys)} submission(s) hit an internal error and will be retried on the next run: {listing(keys)}", done))
    return done


@flow(name="results-report", flow_run_name=run_name("report"))
def results_report(config_path: str | None = None) -> str:
    """Write the results report of a finalized challenge (final standings with intervals and ties, task
    winners and their margin over the baseline, the public→private shake-up, each team's score relative
    to the best on every task) under `<public>/leaderboard/final/`; returns the page's address.

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
    """
    page = write_results_report(RunContext(load_config(config_path)))
    get_run_logger().info("results report: %s", page)
    return page


@flow(name="finalize-challenge", flow_run_name=run_name("finalize"))
def finalize_challenge(config_path: str | None = None, force: bool = False) -> ScoringRun | State:
    """Score every upload that arrived before now, then close the challenge for good: the leaderboards
    switch to private scores, the final snapshot `<public>/leaderboard/final/` is written once (with the
    code version, release and answer-key SHA-256 of every task), and anything uploaded later is
    `rejected: closed` (or goes to the post-challenge board, with `policy.after_close: benchmark`).
    When a submission hits an internal error, nothing is finalized: the run ends Failed (state
    ScoringErrors) and calling the flow raises ScoringErrors.

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
        force: Rebuild the final snapshot of a finalized challenge (the previous one is kept).
    """
    config = load_config(config_path)
    run = RunContext(config)
    public, private = run.public, run.private
    logger = get_run_logger()
    with scoring_slot(run):
        now = datetime.now(timezone.utc)
        closed = finalized_at(private)
        if closed is None:
            last = score_new(run, closing_at=now)  # the uploads before the close count, later ones do not
            if last.errors:  # ends Failed (state ScoringErrors); calling the flow raises it
                return failed_run(ScoringErrors(f"{len(last.errors)} submission(s) hit an internal error; the challenge "
                                                "is not finalized: run `challenge finalize` again", last))
            write_final_marker(private, stamp(now))
            closed = finalized_at(private)
            latest = current_release(public)
            score_whole_test_set(run, latest.release, load_results(private), release_tasks(public, latest, private))
            refresh_challenge_info(public, config, closed)
        elif force:
            logger.warning("finalize --force: rebuilding the final snapshot of a challenge finalized at %s", closed)
        final, final_page, previous = write_final_snapshot(run, stamp(closed), force)
        if previous:
            logger.warning("the previous final snapshot is kept at %s", previous)
        logger.info("results report: %s", write_results_report(run))
        refresh_leaderboard(run)
    logger.info("finalized: the final standings are at %s", final_page)
    return ScoringRun(leaderboard=final_page, board=final)
