"""The leaderboard as text for the terminal: tables (or CSV/JSON) of tracks and tasks."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, TextIO

from challenge.core.inert import csv_cell, terminal_text
from challenge.core.records import Board, Entry


def _rank(entry: Entry, blank: str) -> Any:
    return blank if entry["rank"] is None else entry["rank"]  # the baseline: in score order, not ranked


def _who(entry: Entry) -> str:
    name = terminal_text(entry.get("team_name") or entry["team"], 60)  # a team's own text: no escape sequence
    return f"{name} (reference, unranked)" if entry.get("baseline") else name


def _score(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.4f}"


def _table(title: str, header: list[str], rows: list[list[Any]], out: TextIO) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(title, file=out)
    for row in [header, *rows]:
        print("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip(), file=out)
    if not rows:
        print("  (no scored submission yet)", file=out)


def _ci(entry: Entry, blank: str) -> str:
    ci = entry.get("ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else blank


def _rank_ci(entry: Entry, blank: str) -> str:
    ranks = entry.get("rank_ci95")
    return (f"{ranks[0]}-{ranks[1]}" if ranks[0] != ranks[1] else str(ranks[0])) if ranks else blank


def _tie(entry: Entry, writer: bool) -> str:
    if writer:
        return str(bool(entry.get("tied_with_above"))).lower()
    return "≈ above" if entry.get("tied_with_above") else ""


def print_board(board: Board, track: str | None = None, fmt: str = "table", tasks: bool = False,
                out: TextIO | None = None) -> None:
    """Track tables (one track or all), then with `tasks` one table per task; or the JSON document."""
    out = out or sys.stdout
    if fmt == "json":
        print(json.dumps(board if not track else board["tracks"][track], indent=2), file=out)
        return
    scores = (" (post-challenge benchmark, whole test set)" if board.get("benchmark")
              else " (final, private scores)" if board["final"] else " (public scores)")
    writer = csv.writer(out) if fmt == "csv" else None
    for name in [track] if track else sorted(board["tracks"]):
        entries = board["tracks"][name]["entries"]
        task_ids = board["tracks"][name].get("tasks") or sorted({t for e in entries for t in e["tasks"]})
        header = ["rank", "team", "score", "95% CI", "rank 95%", "tie", *task_ids]
        rows = [[_rank(e, "" if writer else "-"), e["team"] if writer else _who(e), f"{e['score']:.4f}",
                 _ci(e, "" if writer else "-"), _rank_ci(e, "" if writer else "-"), _tie(e, bool(writer)),
                 *(_score(e["tasks"].get(t), "" if writer else "–") for t in task_ids)] for e in entries]
        if writer:
            writer.writerow(["track", *header])
            writer.writerows([csv_cell(x) for x in [name, *row]] for row in rows)
        else:
            _table(f"track {name}{scores}", header, rows, out)
            if any(e["tasks"].get(t) is None for e in entries for t in task_ids):
                print("  –: no scored submission to that task yet; it counts as 0 in the mean", file=out)
            if any(e.get("tied_with_above") for e in entries):
                print("  ≈ above: statistically tied with the entry above (95% interval of the paired difference holds 0)",
                      file=out)
    if not tasks or writer:
        return
    for task_id, info in sorted(board["tasks"].items()):
        if track and info.get("kind", track) != track:
            continue
        rows = [[_rank(e, "-"), _who(e), f"{e['score']:.4f}", _ci(e, "-"), _rank_ci(e, "-"), _tie(e, False),
                 e.get("submissions", "")] for e in info["entries"]]
        _table(f"task {task_id}: {info['metric']}{scores}", ["rank", "team", "score", "95% CI", "rank 95%", "tie", "entries"],
               rows, out)
