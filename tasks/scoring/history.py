"""A team's own history of a task: `<submissions>/<team>/<task_id>/history.json`.

Readable by that team alone (it sits in the team's folder, like its feedback):
every submission with its upload time, status, public score and whether it is
a final pick, and the quota left today. Rewritten only when what it says
changed (a digest per file is kept in `<private>/cache/histories.json`), so a
scoring run every few minutes writes a handful of files, not one per team and task.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone

from challenge.core import catalog
from challenge.core.config import ChallengeConfig
from challenge.core.records import History, ResultRecord
from challenge.core.storage import TRANSFER_THREADS, Storage
from challenge.tasks.release.latest import ReleasedTask
from challenge.tasks.scoring.score import WHOLE, counts_for, day_quota
from challenge.tasks.scoring.standings import Standings
from challenge.tasks.scoring.submissions import BASELINE_TEAM


@dataclass(frozen=True)
class HistoryDay:
    """What every history.json of one refresh shares: the current release, the daily quota, the UTC day."""

    release: str
    limit: int
    today: str


def team_history(team: str, task: ReleasedTask, records: list[ResultRecord], picks: list[str], day: HistoryDay) -> History:
    """What history.json says (never a private score while the challenge runs; a post-challenge upload's
    score on the whole test set, `test_score`, once the challenge is finalized, as in its feedback). `picks`: the
    submission ids FINAL picks; `today`: the UTC day."""
    rows, used = [], 0
    for r in sorted(records, key=lambda r: (r["uploaded_at"], r["key"])):
        metric = r.get("primary_metric") or task.metric
        scores = r.get("metrics") or {}
        row = {"name": r["name"], "uploaded_at": r["uploaded_at"], "status": r["status"],
               "public_score": scores.get("public", {}).get(metric) if r["status"] in ("scored", "superseded") else None,
               "release": r.get("release"), "final_pick": r["submission_id"] in picks,
               "counts_on_leaderboard": counts_for(r, task) and r["status"] == "scored"}
        if r.get("description"):
            row["description"] = r["description"]
        if r.get("phase") == "benchmark":
            row["phase"] = "benchmark"
            row["test_score"] = scores.get(WHOLE, {}).get(metric) if r["status"] == "scored" else None  # once finalized
        rows.append(row)
        if r["status"] == "scored" and r["uploaded_at"][:10] == day.today and counts_for(r, task, r.get("phase", "challenge")):
            used += 1
    return {"team": team, "task_id": task.task_id, "release": day.release, "metric": task.metric,
            "task_changed_in": task.changed_in, "answer_version": task.answer_version,
            "quota": day_quota(team, date.fromisoformat(day.today), day.limit, used), "submissions": rows}


def write_histories(submissions: Storage, private: Storage, standings: Standings, config: ChallengeConfig,
                    existing: set[str], now: datetime | None = None) -> int:
    """history.json of every team (of challenge.yaml, and the baseline) and task of the release with a
    submission, written when it changed or is not among the `existing` keys (deleted); returns how many
    were written."""
    today = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date().isoformat()
    day = HistoryDay(standings.release, config.policy.max_submissions_per_day, today)
    tasks, records, choices = standings.tasks, standings.records, standings.choices
    teams = {t.id for t in config.teams}
    grouped: dict[tuple[str, str], list[ResultRecord]] = {}
    for r in records:
        if r.get("task_id") in tasks and (r.get("team") in teams or r.get("team") == BASELINE_TEAM):
            grouped.setdefault((r["team"], r["task_id"]), []).append(r)
    written = catalog.read_cache(private, catalog.HISTORY_CACHE)
    due: dict[str, bytes] = {}
    for (team, task_id), team_records in sorted(grouped.items()):
        body = team_history(team, tasks[task_id], team_records, choices.get((team, task_id), []), day)
        data = catalog.json_bytes(body)
        key = catalog.history_key(team, task_id)
        digest = hashlib.sha256(data).hexdigest()
        if written.get(key) != digest or key not in existing:
            due[key] = data
            written[key] = digest
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        list(pool.map(lambda item: submissions.write_bytes(*item), due.items()))
    if due:
        catalog.write_json(private, catalog.HISTORY_CACHE, written, indent=1)
    return len(due)
