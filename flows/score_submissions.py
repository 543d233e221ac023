"""Flow: score new submissions, then rebuild the leaderboards (SPEC §8–§9).

One flow, `score-submissions`, runs every few minutes; `rescore=True` recomputes
every scored result after an answer-key fix. `finalize-challenge` switches the
leaderboards to private scores. Only one scoring run per challenge holds the
scoring slot at a time (flows/scoring_slot.py).
"""

from __future__ import annotations

import json
from typing import Any

from prefect import flow, tags, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.states import State

from challenge.config import ChallengeConfig, load_config
from challenge.errors import ChallengeError, ScoringErrors
from challenge.task_runners import task_runner_from_env
from challenge.flows.run_names import run_name, stamp, with_tasks
from challenge.flows.run_states import failed_run, listing
from challenge.flows.scoring_slot import scoring_slot
from challenge.tasks.artifacts import leaderboard_artifacts, table_artifact
from challenge.tasks.final_choices import answer_final_choices
from challenge.tasks.leaderboard import FINAL_MARKER, PAGE_KEY, build_leaderboard, write_leaderboard
from challenge.tasks.scoring import (
    AnswerKey,
    feedback,
    load_answer_key,
    process_batch,
    reject_unusable,
    rescore,
    scored_per_day,
    write_notices,
    write_result,
)
from challenge.tasks.releases import LATEST_KEY, ReleasedTask, current_release, read_latest, release_tasks
from challenge.tasks.result_records import load_results, scan_results
from challenge.storage import Storage, open_location
from challenge.tasks.submissions import Inbox, Submission, discover


def _locations(config: ChallengeConfig) -> tuple[Storage, Storage, Storage]:
    return open_location(config, "public"), open_location(config, "private"), open_location(config, "submissions")


class _Progress:
    """A Prefect progress artifact for one batch, updated about every 5 %."""

    def __init__(self, total: int, description: str):
        self.total, self.step, self.last = total, max(1, total // 20), 0
        self.artifact_id = create_progress_artifact(progress=0.0, description=description)

    def __call__(self, done: int) -> None:
        if done - self.last >= self.step or done == self.total:
            self.last = done
            update_progress_artifact(self.artifact_id, progress=100.0 * done / self.total)


@task(name="score-batch", task_run_name="score-{task_id}", cache_policy=NO_CACHE)
def score_batch(config: ChallengeConfig, task_id: str, subs: list[Submission], release: str | None,
                task_ids: set[str], counts: dict[tuple[str, str, str], int], had_error: dict[str, int]) -> dict[str, Any]:
    """One task's pending submissions (threads inside; the daily quota is applied in upload order).

    Returns the new final records and the (key, error) of submissions that hit an internal error.
    """
    logger = get_run_logger()
    public, private, submissions = _locations(config)
    key: AnswerKey | None = load_answer_key(public, private, release, task_id) if release and task_id in task_ids else None
    progress = _Progress(len(subs), f"Scoring {len(subs)} submission(s) to {task_id}")
    records, errors = process_batch(subs, config, key, task_ids, counts, private, submissions, had_error,
                                    progress=progress)
    for failed, reason in errors:
        logger.error("%s: internal error, will be retried on the next run: %s", failed, reason)
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    logger.info("%s: %d submission(s): %s", task_id, len(subs), statuses)
    return {"records": records, "errors": errors}


def refresh_leaderboard(config: ChallengeConfig, records: list[dict[str, Any]] | None = None,
                        inbox: Inbox | None = None, latest: dict[str, Any] | None = None,
                        tasks: dict[str, ReleasedTask] | None = None) -> tuple[dict[str, Any], str]:
    """Rebuild every leaderboard from the result records, publish it and show it as artifacts; answer
    the teams' FINAL files. Returns the board and the page's address. `records`, `inbox`, `latest` and
    `tasks` are passed when already read."""
    public, private, submissions = _locations(config)
    latest = current_release(public) if latest is None else latest
    tasks = release_tasks(public, latest) if tasks is None else tasks
    records = load_results(private) if records is None else records
    inbox = discover(submissions) if inbox is None else inbox
    choices = answer_final_choices(submissions, private, inbox, records, latest["release"], tasks)
    final = private.exists(FINAL_MARKER)
    board = build_leaderboard(config.name, latest["release"], tasks, records, final, choices,
                              {t.id: t.name for t in config.teams})
    write_leaderboard(public, board, config.title)
    page = public.uri_for(PAGE_KEY)
    leaderboard_artifacts(config, board)
    return board, page


def _check_tasks(chosen: list[str] | None, known: list[str]) -> set[str]:
    unknown = sorted(set(chosen or []) - set(known))
    if unknown:
        raise ChallengeError(f"unknown task id(s) {', '.join(unknown)}: the current release has {', '.join(known)}")
    return set(chosen or known)


def score_new(config: ChallengeConfig, only: list[str] | None = None) -> dict[str, Any]:
    """Score every submission without a final result (of the `only` tasks, if given); rebuild the leaderboards.

    `errors` in the result lists (key, error) of submissions that hit an internal error (retried next run).
    """
    logger = get_run_logger()
    public, private, submissions = _locations(config)
    latest = read_latest(public)
    if latest is None:  # a schedule started before the first release: not a failure
        message = f"no release yet ({public.uri_for(LATEST_KEY)} is missing): nothing to score"
        logger.warning(message)
        return {"pending": 0, "statuses": {}, "errors": [], "leaderboard": None, "board": None, "message": message}
    tasks = release_tasks(public, latest)
    chosen = _check_tasks(only, latest["tasks"])
    inbox = discover(submissions)
    noticed = write_notices(submissions, inbox.ignored, inbox.feedback)
    if noticed:
        logger.info("%d upload(s) that are not submissions were told why: %s", len(noticed), listing(noticed))
    records, had_error = scan_results(private)
    done = {r["submission_id"]: r for r in records}
    unusable = reject_unusable(private, submissions, inbox.unusable, set(done))
    for record in unusable:
        logger.warning("%r: rejected: %s", record["key"], record["message"])
    for sub in inbox.submissions:  # a crash between record and feedback: write the feedback now
        if sub.submission_id in done and sub.feedback_key and sub.feedback_key not in inbox.feedback:
            submissions.write_bytes(sub.feedback_key, json.dumps(feedback(done[sub.submission_id]), indent=2).encode())
    pending = [s for s in inbox.submissions if s.submission_id not in done and (not only or s.task_id in chosen)]
    logger.info("%d submission(s) in %s, %d already final, %d to score", len(inbox.submissions),
                config.storage.submissions, len(done), len(pending))
    counts = scored_per_day(records)
    by_task: dict[str, list[Submission]] = {}
    for sub in pending:
        by_task.setdefault(sub.task_id, []).append(sub)
    futures = {}
    for task_id, subs in sorted(by_task.items()):
        kind = tasks[task_id].kind if task_id in tasks else "unknown"
        with tags(f"task:{task_id}", f"track:{kind}"):
            futures[task_id] = score_batch.submit(config, task_id, subs, latest["release"], set(latest["tasks"]),
                                                  counts, had_error)
    batches = {task_id: future.result() for task_id, future in futures.items()}
    new = unusable + [r for batch in batches.values() for r in batch["records"]]
    errors = [e for batch in batches.values() for e in batch["errors"]]
    board, page = refresh_leaderboard(config, records + new, inbox, latest, tasks)
    statuses: dict[str, int] = {}
    per_task: dict[str, dict[str, int]] = {t: {} for t in by_task}
    for r in new:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        if r["task_id"] in per_task:
            per_task[r["task_id"]][r["status"]] = per_task[r["task_id"]].get(r["status"], 0) + 1
    for task_id, batch in batches.items():
        if batch["errors"]:
            per_task[task_id]["error (retried)"] = len(batch["errors"])
    table_artifact("scoring-run", [{"task": t, "pending": len(by_task[t]), **per_task[t]} for t in sorted(by_task)],
                   f"What this run scored (release {latest['release']})", {"task": "nothing new", "pending": 0}, fill=0)
    logger.info("scored %d submission(s): %s; leaderboard %s", len(new), statuses or "nothing new", page)
    return {"pending": len(pending) + len(unusable), "statuses": statuses, "errors": errors, "leaderboard": page, "board": board,
            "notices": noticed}


@task(name="rescore-task", task_run_name="rescore-{task_id}", cache_policy=NO_CACHE)
def rescore_task(config: ChallengeConfig, task_id: str, release: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every scored submission of one task, against its current answer key."""
    public, private, submissions = _locations(config)
    key = load_answer_key(public, private, release, task_id)
    updated: list[dict[str, Any]] = []
    for record in records:
        new = rescore(record, key, submissions)
        if new is None:
            get_run_logger().warning("%s: the uploaded file is gone or replaced; result kept as it was", record["key"])
            continue
        sub = Submission.from_record(record)
        write_result(private, submissions, sub, new)
        updated.append(new)
    get_run_logger().info("%s: rescored %d of %d submission(s)", task_id, len(updated), len(records))
    return updated


def rescore_all(config: ChallengeConfig, only: list[str] | None = None) -> dict[str, Any]:
    """After an organizer fixes an answer key: recompute every scored result, keeping the old one as history."""
    public, private, _ = _locations(config)
    latest = current_release(public)
    tasks = release_tasks(public, latest)
    chosen = _check_tasks(only, latest["tasks"])
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in load_results(private):
        if r["status"] == "scored" and r["task_id"] in chosen:
            by_task.setdefault(r["task_id"], []).append(r)
    futures = []
    for task_id, records in sorted(by_task.items()):
        with tags(f"task:{task_id}", f"track:{tasks[task_id].kind}"):
            futures.append(rescore_task.submit(config, task_id, latest["release"], records))
    updated = [r for f in futures for r in f.result()]
    board, page = refresh_leaderboard(config, latest=latest, tasks=tasks)
    return {"rescored": len(updated), "leaderboard": page, "board": board}


@flow(name="score-submissions", flow_run_name=run_name(lambda p: "rescore" if p.get("rescore") else "score", with_tasks),
      task_runner=task_runner_from_env())
def score_submissions(config_path: str | None = None, rescore: bool = False,
                      tasks: list[str] | None = None) -> dict[str, Any] | State:
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
    with scoring_slot(config):
        if rescore:
            return rescore_all(config, tasks)
        result = score_new(config, tasks)
    if result["errors"]:
        keys = [key for key, _ in result["errors"]]
        return failed_run(ScoringErrors(
            f"{len(keys)} submission(s) hit an internal error and will be retried on the next run: {listing(keys)}",
            result))
    return result


@flow(name="finalize-challenge", flow_run_name=run_name("finalize"))
def finalize_challenge(config_path: str | None = None) -> dict[str, Any]:
    """Switch the leaderboards to private scores, for good (the end of the challenge).

    Args:
        config_path: Path of challenge.yaml (default: $CHALLENGE_CONFIG, else ./challenge.yaml).
    """
    config = load_config(config_path)
    private = open_location(config, "private")
    with scoring_slot(config):
        private.write_bytes(FINAL_MARKER, json.dumps({"finalized_at": stamp()}).encode())
        board, page = refresh_leaderboard(config)
    get_run_logger().info("finalized: the leaderboards now rank by private scores; %s", page)
    return {"leaderboard": page, "board": board}
