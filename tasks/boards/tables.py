"""Where a leaderboard is written (SPEC §9): rebuilt from result records every run.

Per task: each team's best public score (earlier upload wins a tie). Per
track: the mean over the track's tasks of each team's task score, a missing
task counting as 0. After `challenge finalize`: the best private score among
each team's picks (its FINAL file), else the private score of its best public
submission. The post-challenge benchmark board (uploads after the close, with
`policy.after_close: benchmark`) ranks each team's best score on the whole test
set (computed once the challenge is finalized). Each task's chart follows the
same part: public, private or the whole test set.

The reserved team `baseline` (tasks/baselines/models.py) is shown in its score order
with `"baseline": true`, the name "Baseline" and no rank: teams are ranked
1..n as if it were not there.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

from challenge.core import catalog
from challenge.core.inert import csv_cell
from challenge.core.records import Board, Entry, ResultRecord, TaskEntry
from challenge.core.storage import Storage
from challenge.tasks.boards.page import render_html
from challenge.tasks.scoring.score import WHOLE, counts_for
from challenge.tasks.scoring.standings import Standings
from challenge.tasks.scoring.submissions import BASELINE_TEAM

BASELINE_NAME = "Baseline"
TRACK_MEAN = ("the average of a team's score on every task of the track; a task without a scored "
              "submission counts as 0")


def _rank(entries: list[Entry]) -> None:
    """Ranks 1..n over the teams, in list order; the baseline gets none (and `baseline: true`)."""
    rank = 0
    for entry in entries:
        entry["baseline"] = entry["team"] == BASELINE_TEAM
        if entry["baseline"]:
            entry["rank"] = None
        else:
            rank += 1
            entry["rank"] = rank


PARTS = {"live": "public", "final": "private", "benchmark": WHOLE}  # the part of the test set each board ranks by


def _task_entries(records: list[ResultRecord], metric: str, mode: str, choices: dict[str, list[str]]) -> list[TaskEntry]:
    """`mode`: "live" (best public score), "final" (the best private score among the team's FINAL picks, else the
    private score of its best public submission) or "benchmark" (best score on the whole test set, of the results
    that have one). `choices`: team → picked ids."""
    by_team: dict[str, list[ResultRecord]] = {}
    for record in records:
        if record["status"] != "rejected: closed":  # after the close: not a submission to the challenge
            by_team.setdefault(record["team"], []).append(record)
    part = PARTS[mode]
    entries = []
    for team, team_records in by_team.items():
        scored = [r for r in team_records if r["status"] == "scored" and part in r["metrics"]]
        if not scored:
            continue
        best = min(scored, key=lambda r: (-r["metrics"]["public"][metric], r["uploaded_at"]))
        picked = [r for r in scored if r["submission_id"] in choices.get(team, [])]
        if mode == "benchmark" or (mode == "final" and picked):
            best = min(picked or scored, key=lambda r: (-r["metrics"][part][metric], r["uploaded_at"]))
        entries.append({
            "team": team,
            "score": best["metrics"][part][metric],
            "submissions": len(scored),
            "last_submitted_at": max(r["uploaded_at"] for r in team_records),
            "description": best.get("description"),  # the team's note on the submission that counts
            "_tiebreak": best["uploaded_at"],
            "_record": best,  # the result the score comes from (for its intervals; never written)
        })
    entries.sort(key=lambda e: (-e["score"], e["team"] == BASELINE_TEAM, e["_tiebreak"]))  # a tie goes to the team
    _rank(entries)
    return [{k: e[k] for k in ("rank", "team", "score", "submissions", "last_submitted_at", "baseline", "_record")}
            | ({"description": e["description"]} if e["description"] else {}) for e in entries]


def _history(records: list[ResultRecord], metric: str, part: str = "public") -> dict[str, list[tuple[str, float]]]:
    """Per team, (upload time, best score on `part` so far) at each improvement, for the chart."""
    out: dict[str, list[tuple[str, float]]] = {}
    for record in sorted((r for r in records if r["status"] == "scored" and part in r["metrics"]),
                         key=lambda r: r["uploaded_at"]):
        points = out.setdefault(record["team"], [])
        score = record["metrics"][part][metric]
        if not points or score > points[-1][1]:
            points.append((record["uploaded_at"], score))
    return out


def build_leaderboard(challenge_name: str, standings: Standings, final: bool, team_names: dict[str, str] | None = None,
                      benchmark: bool = False, withdrawn: dict[str, str] | None = None) -> Board:
    """Task and track boards. Only records scored with a task's current answer key count (whatever release
    they were scored in: a task carried over unchanged keeps its results); FINAL picks from
    `standings.choices`. A track entry's task without a scored submission is None in
    `tasks`, listed in `missing`, and counts as 0 in the mean. `benchmark`: the post-challenge board (only
    uploads after the close, ranked by private score). `withdrawn`: task id → why it was withdrawn."""
    release, tasks, records, choices = standings.release, standings.tasks, standings.records, standings.choices
    mode = "benchmark" if benchmark else "final" if final else "live"
    board: Board = {"challenge": challenge_name, "release": release,
                             "updated_at": datetime.now(timezone.utc).isoformat(), "final": final and not benchmark,
                             "benchmark": benchmark, "tasks": {}, "tracks": {}, "withdrawn": dict(withdrawn or {})}
    history = {}
    for task_id, task in sorted(tasks.items()):
        task_records = [r for r in records if r["task_id"] == task_id
                        and counts_for(r, task, "benchmark" if benchmark else "challenge", release)]
        team_choices = {team: chosen for (team, t), chosen in choices.items() if t == task_id}
        board["tasks"][task_id] = {"kind": task.kind, "metric": task.metric, "title": task.title, "card": task.card,
                                   "changed_in": task.changed_in or release, "answer_version": task.answer_version,
                                   **({"corrections": catalog.corrections_key(release, task_id)}
                                      if task.answer_version > 1 else {}),
                                   "entries": _task_entries(task_records, task.metric, mode, team_choices)}
        history[task_id] = _history(task_records, task.metric, PARTS[mode])
    for track in sorted({task.kind for task in tasks.values()}):
        track_tasks = sorted(t for t, task in tasks.items() if task.kind == track)
        teams = sorted({e["team"] for t in track_tasks for e in board["tasks"][t]["entries"]})
        rows = []
        for team in teams:
            scores = {t: next((e["score"] for e in board["tasks"][t]["entries"] if e["team"] == team), None)
                      for t in track_tasks}
            mean = sum(v for v in scores.values() if v is not None) / len(track_tasks)
            rows.append({"team": team, "score": round(mean, 6), "tasks": scores,
                         "missing": [t for t, v in scores.items() if v is None]})
        rows.sort(key=lambda r: (-r["score"], r["team"] == BASELINE_TEAM, r["team"]))
        _rank(rows)
        board["tracks"][track] = {"tasks": track_tasks, "mean": TRACK_MEAN, "entries": [{"rank": r.pop("rank"), **r} for r in rows]}
    names = {**(team_names or {}), BASELINE_TEAM: BASELINE_NAME}
    for info in [*board["tasks"].values(), *board["tracks"].values()]:
        for entry in info["entries"]:
            entry["team_name"] = names.get(entry["team"], entry["team"])
    shown = list(names.values())
    label = {team: name if shown.count(name) == 1 else f"{name} ({team})" for team, name in names.items()}
    # the chart's legend shows display names, in the order of the task's table
    board["_history"] = {task_id: {label.get(e["team"], e["team"]): history[task_id][e["team"]]
                                   for e in board["tasks"][task_id]["entries"] if e["team"] in history[task_id]}
                         for task_id in history}
    board["_baseline_label"] = label[BASELINE_TEAM]
    return board


INTERVAL_COLUMNS = ["ci95_low", "ci95_high", "rank_best", "rank_worst", "tied_with_above"]


def _interval_columns(entry: Entry) -> dict[str, Any]:
    """An entry's intervals as CSV columns (empty when it has none)."""
    ci, ranks = entry.get("ci95") or [None, None], entry.get("rank_ci95") or [None, None]
    return {"ci95_low": ci[0], "ci95_high": ci[1], "rank_best": ranks[0], "rank_worst": ranks[1],
            "tied_with_above": entry.get("tied_with_above", False)}


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)  # a team name is never a formula
    return out.getvalue().encode()


def write_leaderboard(public: Storage, board: Board, title: str, folder: str = catalog.LEADERBOARD) -> list[str]:
    """leaderboard.json, one CSV per task and per track, and index.html under `<public>/<folder>/`; the CSV
    of a task or track no longer on the board (a withdrawn task, a track left without tasks) is removed, so
    no stale standings stay published (the result records they came from stay in private)."""
    history, baseline_label = board.pop("_history", {}), board.pop("_baseline_label", None)
    for info in [*board["tasks"].values(), *board["tracks"].values()]:  # what is only for building it
        info["entries"] = [{k: v for k, v in e.items() if not k.startswith("_")} for e in info["entries"]]
    files = {catalog.board_json(folder): catalog.json_bytes(board)}
    for task_id, info in board["tasks"].items():
        rows = [{**e, **_interval_columns(e)} for e in info["entries"]]
        files[catalog.task_board_csv(task_id, folder)] = _csv(rows, ["rank", "team", "score", *INTERVAL_COLUMNS, "submissions",
                                                                     "last_submitted_at"])
    for track, info in board["tracks"].items():
        rows = [{**{k: e[k] for k in ("rank", "team", "score")}, **_interval_columns(e), **e["tasks"]} for e in info["entries"]]
        tasks = info["tasks"]
        files[catalog.track_board_csv(track, folder)] = _csv(rows, ["rank", "team", "score", *INTERVAL_COLUMNS, *tasks])
    root = "../" * (folder.count("/") + 1)  # from the page's folder to the root of public
    files[catalog.board_page(folder)] = render_html({**board, "_history": history, "_baseline_label": baseline_label},
                                                    title, root).encode()
    for key, data in files.items():
        public.write_bytes(key, data)
    for info in list(public.list(folder + "/")):
        if catalog.is_board_csv(info.key, folder) and info.key not in files:
            public.delete(info.key)
    return list(files)
