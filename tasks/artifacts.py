"""What the Prefect UI shows: table rows with one set of columns, and links a browser can open.

Prefect draws a table artifact with the first row's keys as columns, so every
row must carry the same keys. A link artifact must be an address a browser
opens: an https address when challenge.yaml says where `public` is served
(`storage.public_url`), otherwise a markdown artifact says where the file is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from challenge.core import catalog, inert
from challenge.core.config import public_web_address
from challenge.core.formats import MISSING, interval_text, score_text, utc_minute
from challenge.core.records import Board, Entry, ResultRecord
from challenge.core.run_context import RunContext

MAX_LISTED = 200  # files named in a run's table of files not scored; the rest are counted
REASON_CHARS = 240  # a reason longer than this is cut (the feedback file has it whole)


def uniform_rows(rows: Iterable[dict[str, Any]], fill: Any = MISSING, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """Every row with every column (first-seen order, or `columns`), missing cells set to `fill`."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    return [{c: row.get(c, fill) for c in columns} for row in rows]


def table_artifact(key: str, rows: list[dict[str, Any]], description: str, empty: dict[str, Any],
                   fill: Any = MISSING) -> None:
    """A table artifact whose rows share their columns; `empty` is the one row shown when there is none."""
    create_table_artifact(key=key, table=uniform_rows(rows, fill) if rows else [empty], description=description)


def public_page_artifact(run: RunContext, key: str, object_key: str, text: str, description: str) -> None:
    """A link to a public object when it has a browser address; else a note saying where it is."""
    address = public_web_address(run.config, object_key)
    if address:
        create_link_artifact(key=key, link=address, link_text=text, description=description)
        return
    where = run.public.uri_for(object_key)
    if where.startswith("s3://"):
        how = ("It is in the public bucket; participants open it where that bucket is served (an S3 static "
               "website or a CDN).")
    else:
        how = "It is a file on the machine that ran this flow: open it there in a browser."
    create_markdown_artifact(key=key, description=description, markdown=(
        f"**{text}**: `{where}`\n\n{how} Set `storage.public_url` in challenge.yaml to the https address "
        "where the public location is served, and this becomes a link."))


def one_line(text: str, limit: int = REASON_CHARS) -> str:
    """`text` on one line (control characters and line breaks as spaces), cut to `limit` characters with `…`."""
    flat = inert.one_line(text)
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def not_scored_rows(records: list[ResultRecord], team_names: dict[str, str] | None = None,
                    limit: int = MAX_LISTED) -> list[dict[str, str]]:
    """One row per record that is not `scored` (invalid, rejected, failed): team, file, status and the reason
    the team was told, on one line; ordered by task, team and file. Past `limit`, one last row counts the rest."""
    names = team_names or {}
    shown = sorted((r for r in records if r["status"] != "scored"),
                   key=lambda r: (str(r.get("task_id")), str(r.get("team")), str(r.get("name")), r["uploaded_at"]))
    rows = [{"task": one_line(r.get("task_id") or MISSING, 80),
             "team": one_line(f"{names[r['team']]} ({r['team']})" if r.get("team") in names else r.get("team") or MISSING, 80),
             "file": one_line(r.get("name") or r["key"], 120), "status": r["status"],
             "reason": one_line(r.get("message") or "")} for r in shown[:limit]]
    if len(shown) > limit:
        rows.append({"task": MISSING, "team": f"and {len(shown) - limit} more", "file": MISSING, "status": MISSING,
                     "reason": f"each has its result record under {catalog.RESULTS}/ in the private location, and its "
                               "feedback file beside the upload"})
    return rows


def not_scored_artifact(records: list[ResultRecord], release: str, team_names: dict[str, str] | None = None) -> None:
    """`scoring-run-not-scored`: the files of this scoring run that were not scored, and why (see not_scored_rows)."""
    rows = not_scored_rows(records, team_names)
    count = sum(r["status"] != "scored" for r in records)
    table_artifact("scoring-run-not-scored", rows,
                   f"Files of this run not scored (release {release}): {count}, with the reason each team was told",
                   {"task": MISSING, "team": "none: every file of this run was scored", "file": MISSING,
                    "status": MISSING, "reason": MISSING})


def _team_label(entry: Entry) -> str:
    name = one_line(entry.get("team_name") or entry["team"], 120)
    return f"{name} (baseline, not ranked)" if entry.get("baseline") else name


def _uncertainty(entry: Entry) -> dict[str, str]:
    """The entry's 95% interval, rank interval and tie, as table cells."""
    ci, ranks = entry.get("ci95"), entry.get("rank_ci95")
    return {"95% interval": interval_text(ci) if ci else MISSING,
            "rank 95%": (f"{ranks[0]}–{ranks[1]}" if ranks[0] != ranks[1] else str(ranks[0])) if ranks else MISSING,
            "tied with above": "≈" if entry.get("tied_with_above") else ""}


def leaderboard_artifacts(run: RunContext, board: Board) -> None:
    """One table per track and per task (display names; the baseline marked), and the page's address."""
    final = " (final, private scores)" if board["final"] else " (public scores)"
    for track, info in board["tracks"].items():
        rows = [{"rank": e["rank"] if e["rank"] is not None else MISSING, "team": _team_label(e),
                 "mean score": score_text(e["score"]), **_uncertainty(e),
                 **{t: MISSING if e["tasks"].get(t) is None else score_text(e["tasks"][t]) for t in info["tasks"]}}
                for e in info["entries"]]
        table_artifact(f"leaderboard-{track}", rows,
                       f"Track {track}{final}: mean over {len(info['tasks'])} task(s); {MISSING} counts as 0",
                       {"rank": MISSING, "team": "no scored submission yet", "mean score": MISSING})
    for task_id, info in board["tasks"].items():
        rows = [{"rank": e["rank"] if e["rank"] is not None else MISSING, "team": _team_label(e), "score": score_text(e["score"]),
                 **_uncertainty(e), "submissions": e["submissions"], "last submission": utc_minute(e["last_submitted_at"])}
                for e in info["entries"]]
        table_artifact(f"leaderboard-{task_id}", rows, f"{info.get('title') or task_id}: {info['metric']}{final}",
                       {"rank": MISSING, "team": "no scored submission yet", "score": MISSING})
    public_page_artifact(run, "leaderboard-page", catalog.PAGE, "Leaderboard page", f"Release {board['release']}{final}")


class ProgressArtifact:
    """A Prefect progress artifact for a batch of `total` items, updated about every 5 %."""

    def __init__(self, total: int, description: str):
        self.total, self.step, self.last = total, max(1, total // 20), 0
        self.artifact_id = create_progress_artifact(progress=0.0, description=description)

    def __call__(self, done: int) -> None:
        if done - self.last >= self.step or done == self.total:
            self.last = done
            update_progress_artifact(self.artifact_id, progress=100.0 * done / self.total)
