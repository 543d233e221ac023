"""Flow: score new submissions, then rebuild the leaderboards (SPEC §8–§9)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from challenge.config import ChallengeConfig, load_config
from tasks.leaderboard import FINAL_MARKER, build_leaderboard, write_leaderboard
from tasks.scoring import (
    AnswerKey,
    current_release,
    feedback,
    load_answer_key,
    load_results,
    process_batch,
    rescore,
    scan_results,
    scored_per_day,
    write_result,
)
from tasks.storage import Storage, open_location
from tasks.submissions import Inbox, Submission, discover


def _locations(config: ChallengeConfig) -> tuple[Storage, Storage, Storage]:
    return open_location(config, "public"), open_location(config, "private"), open_location(config, "submissions")


@task(name="score-batch", task_run_name="score-{task_id}", cache_policy=NO_CACHE)
def score_batch(config: ChallengeConfig, task_id: str, subs: list[Submission], release: str | None,
                tasks: set[str], counts: dict[tuple[str, str, str], int], had_error: set[str]) -> list[dict[str, Any]]:
    """One task's pending submissions (threads inside; the daily quota is applied in upload order)."""
    public, private, submissions = _locations(config)
    key: AnswerKey | None = load_answer_key(public, private, release, task_id) if release and task_id in tasks else None
    records, errors = process_batch(subs, config, key, tasks, counts, private, submissions, had_error)
    for failed in errors:
        get_run_logger().error("%s: internal error, will be retried on the next run", failed)
    return records


def refresh_leaderboard(config: ChallengeConfig, records: list[dict[str, Any]] | None = None,
                        inbox: Inbox | None = None) -> dict[str, Any]:
    """Rebuild every leaderboard from the result records and publish it (`records` and `inbox` when already read)."""
    public, private, submissions = _locations(config)
    latest = current_release(public)
    records = load_results(private) if records is None else records
    inbox = discover(submissions) if inbox is None else inbox
    tasks = {}
    for task_id in latest["tasks"]:
        manifest = json.loads(public.read_bytes(f"releases/{latest['release']}/{task_id}/manifest.json"))
        tasks[task_id] = (manifest["kind"], manifest["metric"])
    choices = {}
    for (team, task_id), final_key in inbox.final_choices.items():
        choices[(team, task_id)] = submissions.read_bytes(final_key).decode("utf-8", "replace").strip()
    final = private.exists(FINAL_MARKER)
    board = build_leaderboard(config.name, latest["release"], tasks, records, final, choices,
                              {t.id: t.name for t in config.teams})
    write_leaderboard(public, board, config.title)
    return board


def _artifacts(board: dict[str, Any]) -> None:
    for track, info in board["tracks"].items():
        create_table_artifact(key=f"leaderboard-{track}", table=[
            {"rank": e["rank"], "team": e["team"], "score": e["score"], **e["tasks"]} for e in info["entries"]],
            description=f"Track {track}{' (final)' if board['final'] else ''}")
    for task_id, info in board["tasks"].items():
        create_table_artifact(key=f"leaderboard-{task_id}", table=info["entries"] or [{"rank": None, "team": None}],
                              description=f"{task_id}: {info['metric']}{' (final)' if board['final'] else ''}")


def _run_name() -> str:
    return "score-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


@flow(name="score-submissions", flow_run_name=_run_name)
def score_submissions(config: ChallengeConfig | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Find submissions without a final result, score them, rebuild the leaderboards."""
    logger = get_run_logger()
    config = config or load_config(config_path)
    public, private, submissions = _locations(config)
    latest = current_release(public)
    tasks = set(latest["tasks"])
    inbox = discover(submissions)
    records, had_error = scan_results(private)
    done = {r["submission_id"]: r for r in records}
    for sub in inbox.submissions:  # a crash between record and feedback: write the feedback now
        if sub.submission_id in done and sub.feedback_key not in inbox.feedback:
            submissions.write_bytes(sub.feedback_key, json.dumps(feedback(done[sub.submission_id]), indent=2).encode())
    pending = [s for s in inbox.submissions if s.submission_id not in done]
    counts = scored_per_day(records)
    by_task: dict[str, list[Submission]] = {}
    for sub in pending:
        by_task.setdefault(sub.task_id, []).append(sub)
    futures = [score_batch.submit(config, task_id, subs, latest["release"], tasks, counts, had_error)
               for task_id, subs in sorted(by_task.items())]
    new = [r for f in futures for r in f.result()]
    board = refresh_leaderboard(config, records + new, inbox)
    _artifacts(board)
    statuses: dict[str, int] = {}
    for r in new:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    logger.info("scored run: %d pending, %s", len(pending), statuses)
    return {"pending": len(pending), "statuses": statuses, "errors": len(pending) - len(new),
            "leaderboard": public.uri_for("leaderboard/index.html"), "board": board}


@task(name="rescore-task", task_run_name="rescore-{task_id}", cache_policy=NO_CACHE)
def rescore_task(config: ChallengeConfig, task_id: str, release: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every scored submission of one task, against its current answer key."""
    public, private, submissions = _locations(config)
    key = load_answer_key(public, private, release, task_id)
    updated = []
    for record in records:
        new = rescore(record, key, submissions)
        if new is None:
            get_run_logger().warning("%s: the uploaded file is gone or replaced; result kept as it was", record["key"])
            continue
        sub = Submission.from_record(record)
        write_result(private, submissions, sub, new)
        updated.append(new)
    return updated


@flow(name="rescore-submissions", flow_run_name=lambda: "rescore-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
def rescore_submissions(config: ChallengeConfig | None = None, config_path: str | None = None,
                        task_ids: list[str] | None = None) -> dict[str, Any]:
    """After an organizer fixes an answer key: recompute every scored result, keeping the old one as history."""
    config = config or load_config(config_path)
    public, private, _ = _locations(config)
    latest = current_release(public)
    records = load_results(private)
    chosen = set(task_ids or latest["tasks"])
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r["status"] == "scored" and r["task_id"] in chosen and r["task_id"] in latest["tasks"]:
            by_task.setdefault(r["task_id"], []).append(r)
    futures = [rescore_task.submit(config, t, latest["release"], rs) for t, rs in sorted(by_task.items())]
    updated = [r for f in futures for r in f.result()]
    board = refresh_leaderboard(config)
    _artifacts(board)
    return {"rescored": len(updated), "leaderboard": public.uri_for("leaderboard/index.html"), "board": board}


@flow(name="finalize-challenge")
def finalize_challenge(config: ChallengeConfig | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Switch the leaderboards to private scores, for good."""
    config = config or load_config(config_path)
    public, private, _ = _locations(config)
    private.write_bytes(FINAL_MARKER, json.dumps({"finalized_at": datetime.now(timezone.utc).isoformat()}).encode())
    board = refresh_leaderboard(config)
    _artifacts(board)
    return {"leaderboard": public.uri_for("leaderboard/index.html"), "board": board}
