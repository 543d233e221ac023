"""Where a leaderboard is written (SPEC §9): rebuilt from result records every run.

Per task: each team's best public score (earlier upload wins a tie). Per
track: the mean over the track's tasks of each team's task score, a missing
task counting as 0. After `challenge finalize` the private score of each
team's chosen submission (its FINAL file, else its best public one) is shown.

The reserved team `baseline` (tasks/baselines.py) is shown in its score order
with `"baseline": true`, the name "Baseline" and no rank: teams are ranked
1..n as if it were not there.
"""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime, timezone
from typing import Any

from tasks.storage import Storage
from tasks.submissions import BASELINE_TEAM

FINAL_MARKER = "final.json"
BASELINE_NAME = "Baseline"


def _rank(entries: list[dict[str, Any]]) -> None:
    """Ranks 1..n over the teams, in list order; the baseline gets none (and `baseline: true`)."""
    rank = 0
    for entry in entries:
        entry["baseline"] = entry["team"] == BASELINE_TEAM
        if entry["baseline"]:
            entry["rank"] = None
        else:
            rank += 1
            entry["rank"] = rank


def _task_entries(records: list[dict[str, Any]], metric: str, final: bool, choices: dict[str, str]) -> list[dict[str, Any]]:
    by_team: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_team.setdefault(record["team"], []).append(record)
    entries = []
    for team, team_records in by_team.items():
        scored = [r for r in team_records if r["status"] == "scored"]
        if not scored:
            continue
        best = min(scored, key=lambda r: (-r["metrics"]["public"][metric], r["uploaded_at"]))
        chosen = next((r for r in scored if r["name"] == choices.get(team)), best) if final else best
        entries.append({
            "team": team,
            "score": chosen["metrics"]["private" if final else "public"][metric],
            "submissions": len(scored),
            "last_submitted_at": max(r["uploaded_at"] for r in team_records),
            "_tiebreak": chosen["uploaded_at"],
        })
    entries.sort(key=lambda e: (-e["score"], e["team"] == BASELINE_TEAM, e["_tiebreak"]))  # a tie goes to the team
    _rank(entries)
    return [{k: e[k] for k in ("rank", "team", "score", "submissions", "last_submitted_at", "baseline")} for e in entries]


def _history(records: list[dict[str, Any]], metric: str) -> dict[str, list[tuple[str, float]]]:
    """Per team, (upload time, best public score so far), for the chart."""
    out: dict[str, list[tuple[str, float]]] = {}
    for record in sorted((r for r in records if r["status"] == "scored"), key=lambda r: r["uploaded_at"]):
        points = out.setdefault(record["team"], [])
        score = record["metrics"]["public"][metric]
        points.append((record["uploaded_at"], max(score, points[-1][1]) if points else score))
    return out


def build_leaderboard(challenge_name: str, release: str, tasks: dict[str, tuple[str, str]],
                      records: list[dict[str, Any]], final: bool, choices: dict[tuple[str, str], str],
                      team_names: dict[str, str] | None = None) -> dict[str, Any]:
    """`tasks`: task_id → (kind, metric). Only records scored against `release` count."""
    current = [r for r in records if r.get("release") == release]
    board: dict[str, Any] = {"challenge": challenge_name, "release": release,
                             "updated_at": datetime.now(timezone.utc).isoformat(), "final": final, "tasks": {}, "tracks": {}}
    history = {}
    for task_id, (kind, metric) in sorted(tasks.items()):
        task_records = [r for r in current if r["task_id"] == task_id]
        team_choices = {team: name for (team, task), name in choices.items() if task == task_id}
        board["tasks"][task_id] = {"kind": kind, "metric": metric,
                                   "entries": _task_entries(task_records, metric, final, team_choices)}
        history[task_id] = _history(task_records, metric)
    for track in sorted({kind for kind, _ in tasks.values()}):
        track_tasks = sorted(t for t, (kind, _) in tasks.items() if kind == track)
        teams = sorted({e["team"] for t in track_tasks for e in board["tasks"][t]["entries"]})
        rows = []
        for team in teams:
            scores = {t: next((e["score"] for e in board["tasks"][t]["entries"] if e["team"] == team), 0.0) for t in track_tasks}
            rows.append({"team": team, "score": round(sum(scores.values()) / len(track_tasks), 6), "tasks": scores})
        rows.sort(key=lambda r: (-r["score"], r["team"] == BASELINE_TEAM, r["team"]))
        _rank(rows)
        board["tracks"][track] = {"entries": [{"rank": r.pop("rank"), **r} for r in rows]}
    names = {**(team_names or {}), BASELINE_TEAM: BASELINE_NAME}
    for info in [*board["tasks"].values(), *board["tracks"].values()]:
        for entry in info["entries"]:
            entry["team_name"] = names.get(entry["team"], entry["team"])
    shown = list(names.values())
    label = {team: name if shown.count(name) == 1 else f"{name} ({team})" for team, name in names.items()}
    board["_history"] = {task_id: {label.get(team, team): points for team, points in teams.items()}
                         for task_id, teams in history.items()}  # the chart's legend shows display names
    return board


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _chart(points: dict[str, list[tuple[str, float]]]) -> str:
    """An inline SVG of best-so-far public score over time, one line per team."""
    if not points:
        return "<p class='muted'>No scored submissions yet.</p>"
    times = sorted({datetime.fromisoformat(t).timestamp() for series in points.values() for t, _ in series})
    lo, hi = times[0], max(times[-1], times[0] + 1)
    width, height, pad = 560, 180, 30
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    lines = []
    for i, (team, series) in enumerate(sorted(points.items())):
        xy = [(pad + (datetime.fromisoformat(t).timestamp() - lo) / (hi - lo) * (width - 2 * pad),
               height - pad - s * (height - 2 * pad)) for t, s in series]
        colour = colours[i % len(colours)]
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{coords}'>"
                     f"<title>{html.escape(team)}</title></polyline>")
        lines += [f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{colour}'/>" for x, y in xy]
        lines.append(f"<text x='{width - pad}' y='{14 + 14 * i}' fill='{colour}' text-anchor='end' font-size='11'>"
                     f"{html.escape(team)}</text>")
    return (f"<svg class='chart' width='{width}' height='{height}' role='img' aria-label='score over time'>"
            f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#999'/>"
            f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#999'/>"
            f"<text x='4' y='{pad}' font-size='10'>1.0</text><text x='4' y='{height - pad}' font-size='10'>0.0</text>"
            f"<text x='{pad}' y='{height - 8}' font-size='10'>{html.escape(datetime.fromtimestamp(lo, timezone.utc).strftime('%Y-%m-%d %H:%M'))}</text>"
            f"<text x='{width - pad}' y='{height - 8}' font-size='10' text-anchor='end'>"
            f"{html.escape(datetime.fromtimestamp(hi, timezone.utc).strftime('%Y-%m-%d %H:%M'))}</text>"
            + "".join(lines) + "</svg>")


class _Markup(str):
    """A table cell that is already HTML (built from escaped parts): not escaped again."""


def _cell(value: Any) -> str:
    return value if isinstance(value, _Markup) else html.escape(str(value))


def _team_cell(entry: dict[str, Any]) -> _Markup:
    badge = ' <span class="badge">baseline</span>' if entry.get("baseline") else ""  # a reference, not ranked
    return _Markup(html.escape(entry["team_name"]) + badge)


def _rank_cell(entry: dict[str, Any]) -> str:
    return "–" if entry["rank"] is None else str(entry["rank"])


def _table(table_id: str, columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table id='{html.escape(table_id)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(board: dict[str, Any], title: str) -> str:
    """A self-contained page: track tables, task tables and a score-over-time chart per task."""
    state = "Final standings (private scores)" if board["final"] else "Public leaderboard (private scores hidden until the end)"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(state)} · release {html.escape(board['release'])} · updated {html.escape(board['updated_at'])}</p>"]
    if any(e.get("baseline") for info in board["tasks"].values() for e in info["entries"]):
        parts.append("<p class='muted'><span class=\"badge\">baseline</span> the organizers' scikit-learn reference "
                     "model, shown for comparison and not ranked.</p>")
    for track, info in board["tracks"].items():
        tasks = sorted({t for e in info["entries"] for t in e["tasks"]})
        rows = [[_rank_cell(e), _team_cell(e), f"{e['score']:.4f}"] + [f"{e['tasks'][t]:.4f}" for t in tasks]
                for e in info["entries"]]
        parts += [f"<h2>Track: {html.escape(track)}</h2>", _table(f"track-{track}", ["rank", "team", "mean score", *tasks], rows)]
    for task_id, info in board["tasks"].items():
        rows = [[_rank_cell(e), _team_cell(e), f"{e['score']:.4f}", e["submissions"], e["last_submitted_at"]]
                for e in info["entries"]]
        parts += [f"<h2>Task: {html.escape(task_id)} <small>({html.escape(info['kind'])}, {html.escape(info['metric'])})</small></h2>",
                  _table(f"task-{task_id}", ["rank", "team", "score", "submissions", "last submission"], rows),
                  _chart(board.get("_history", {}).get(task_id, {}))]
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0 1em}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}.muted{color:#777}"
             ".badge{display:inline-block;margin-left:.4em;padding:0 .45em;border-radius:.7em;background:#e7eefa;"
             "color:#1d4f91;font-size:.8em;border:1px solid #b9cbe8}")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_leaderboard(public: Storage, board: dict[str, Any], title: str) -> list[str]:
    """leaderboard.json, one CSV per task and per track, and index.html under `<public>/leaderboard/`."""
    history = board.pop("_history", {})
    files = {"leaderboard/leaderboard.json": json.dumps(board, indent=2).encode()}
    for task_id, info in board["tasks"].items():
        files[f"leaderboard/task-{task_id}.csv"] = _csv(info["entries"], ["rank", "team", "score", "submissions", "last_submitted_at"])
    for track, info in board["tracks"].items():
        rows = [{**{k: e[k] for k in ("rank", "team", "score")}, **e["tasks"]} for e in info["entries"]]
        tasks = sorted({t for e in info["entries"] for t in e["tasks"]})
        files[f"leaderboard/track-{track}.csv"] = _csv(rows, ["rank", "team", "score", *tasks])
    files["leaderboard/index.html"] = render_html({**board, "_history": history}, title).encode()
    for key, data in files.items():
        public.write_bytes(key, data)
    return list(files)
