"""The results report (issue 14): who has the better algorithm, and would it work on another team's data?

Built from the final snapshot's board (private scores, intervals, ties) and the public board at the
close (for the public→private shake-up). A step: no storage inside; `<public>/leaderboard/final/`
results.html (self-contained, no script) and results.md are written by tasks/boards/publish.py.
"""

from __future__ import annotations

import html
from typing import Any

from challenge.core.formats import utc_minute
from challenge.core.inert import markdown_text
from challenge.core.records import Board, Entry
from challenge.tasks.boards.page import STYLE

REPORT_STYLE = STYLE + """
.heat td.num{min-width:5.5em}.up{color:#1a7f37}.down{color:#b3261e}
.podium{font-size:1.05em;margin:.2em 0 .8em;padding-left:0;list-style:none}.podium li{margin:.15em 0}
"""


def _ranked(entries: list[Entry]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("rank") is not None]


def _name(entry: Entry) -> str:
    return entry.get("team_name") or entry["team"]


def _interval(entry: Entry) -> str:
    ci = entry.get("ci95")
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _rank_text(entry: Entry) -> str:
    ranks = entry.get("rank_ci95")
    spread = f" ({ranks[0]}–{ranks[1]})" if ranks and ranks[0] != ranks[1] else ""
    return f"{entry['rank']}{spread}" + (" ≈" if entry.get("tied_with_above") else "")


def winners(board: Board) -> list[dict[str, Any]]:
    """Per task: the winner, its score and its margin over the baseline (None when there is no baseline)."""
    out = []
    for task_id, info in board["tasks"].items():
        ranked = _ranked(info["entries"])
        baseline = next((e for e in info["entries"] if e.get("baseline")), None)
        if not ranked:
            out.append({"task": task_id, "title": info.get("title") or task_id, "metric": info["metric"], "winner": None})
            continue
        top = ranked[0]
        out.append({"task": task_id, "title": info.get("title") or task_id, "metric": info["metric"], "winner": _name(top),
                    "score": top["score"], "ci95": top.get("ci95"), "tied": len(ranked) > 1 and ranked[1].get("tied_with_above"),
                    "runner_up": _name(ranked[1]) if len(ranked) > 1 else None,
                    "baseline": baseline["score"] if baseline else None,
                    "margin": round(top["score"] - baseline["score"], 6) if baseline else None})
    return out


def shake_up(final: Board, public: Board) -> dict[str, list[dict[str, Any]]]:
    """Per track: each team's rank on the public board at the close and in the final standings."""
    out = {}
    for track, info in final["tracks"].items():
        before = {e["team"]: e["rank"] for e in public["tracks"].get(track, {}).get("entries", []) if e.get("rank")}
        out[track] = [{"team": e["team"], "name": _name(e), "public_rank": before.get(e["team"]), "final_rank": e["rank"],
                       "change": (before[e["team"]] - e["rank"]) if e["team"] in before else None}
                      for e in _ranked(info["entries"])]
    return out


def relative_scores(board: Board) -> tuple[list[str], list[dict[str, Any]]]:
    """Task ids, and per team (in track-mean order) its final score on each task divided by the best score
    on that task (None where it has none): a team strong everywhere works on other teams' data."""
    tasks = sorted(board["tasks"])
    best = {t: max((e["score"] for e in board["tasks"][t]["entries"]), default=0.0) for t in tasks}
    teams: dict[str, dict[str, Any]] = {}
    for t in tasks:
        for e in board["tasks"][t]["entries"]:
            row = teams.setdefault(e["team"], {"team": e["team"], "name": _name(e), "baseline": bool(e.get("baseline")),
                                               "scores": {}})
            row["scores"][t] = round(e["score"] / best[t], 4) if best[t] > 0 else None
    rows = sorted(teams.values(), key=lambda r: (-sum(v or 0 for v in r["scores"].values()), r["team"]))
    return tasks, rows


def _colour(value: float | None) -> str:
    """White (far from the best) to green (the best)."""
    if value is None:
        return "#f3f3f3"
    v = max(0.0, min(1.0, value))
    return f"rgb({int(255 - 155 * v)},{int(255 - 40 * v)},{int(255 - 140 * v)})"


def render_report_html(final: Board, public: Board, title: str) -> str:
    """The report as one self-contained page."""
    snap = final.get("snapshot") or {}
    iv = final.get("intervals") or {}
    e = html.escape
    parts = [f"<h1>{e(title)}: results</h1>",
             f"<p class='muted'>Final standings on the private part of the test sets · release {e(str(snap.get('release', final['release'])))}"
             + (f" · finalized {e(utc_minute(snap['finalized_at']))}" if snap.get("finalized_at") else "") + "</p>"]
    if iv:
        parts.append(f"<p class='note'>Intervals: {iv['level']:.0%}, {e(iv['method'])}; {iv['resamples']} resamples, seed "
                     f"{iv['seed']}. ≈: statistically tied with the team above (the {iv['level']:.0%} interval of the paired "
                     "difference contains 0).</p>")
    for track, info in final["tracks"].items():
        ranked = _ranked(info["entries"])
        podium = "".join(f"<li>{e(_rank_text(x))}. <b>{e(_name(x))}</b> {x['score']:.4f} {e(_interval(x))}</li>"
                         for x in ranked[:3])
        rows = "".join(f"<tr><td>{e(_rank_text(x)) if x.get('rank') else '–'}</td><td>{e(_name(x))}"
                       f"{' (baseline)' if x.get('baseline') else ''}</td><td class=num>{x['score']:.4f}</td>"
                       f"<td class=num>{e(_interval(x))}</td></tr>" for x in info["entries"])
        parts += [f"<h2>Track: {e(track)}</h2>", f"<ul class='podium'>{podium or '<li>no ranked team</li>'}</ul>",
                  f"<table id='standings-{e(track)}'><thead><tr><th>rank (95% interval)</th><th>team</th><th>mean score</th>"
                  f"<th>95% interval</th></tr></thead><tbody>{rows}</tbody></table>"]
    parts.append("<h2>Task winners</h2>")
    rows = ""
    for w in winners(final):
        if w["winner"] is None:
            rows += f"<tr><td>{e(w['title'])}</td><td colspan=4 class=muted>no ranked team</td></tr>"
            continue
        margin = f"{w['margin']:+.4f}" if w["margin"] is not None else "no baseline"
        tie = f" (tied with {e(w['runner_up'])})" if w["tied"] else ""
        rows += (f"<tr><td>{e(w['title'])} <span class=muted>{e(w['task'])}</span></td><td>{e(w['winner'])}{tie}</td>"
                 f"<td class=num>{w['score']:.4f} {e(_interval(w))}</td><td>{e(w['metric'])}</td><td class=num>{margin}</td></tr>")
    parts.append(f"<table id='winners'><thead><tr><th>task</th><th>winner</th><th>score</th><th>metric</th>"
                 f"<th>margin over the baseline</th></tr></thead><tbody>{rows}</tbody></table>")
    parts.append("<h2>Public → private shake-up</h2>")
    for track, moves in shake_up(final, public).items():
        rows = ""
        for m in moves:
            change = m["change"]
            arrow = "" if change is None else (f"<span class=up>▲ {change}</span>" if change > 0 else
                                                f"<span class=down>▼ {-change}</span>" if change < 0 else "=")
            rows += (f"<tr><td>{e(m['name'])}</td><td class=num>{m['public_rank'] or '–'}</td>"
                     f"<td class=num>{m['final_rank']}</td><td>{arrow}</td></tr>")
        parts.append(f"<h3>{e(track)}</h3><table id='shake-up-{e(track)}'><thead><tr><th>team</th><th>public rank</th>"
                     f"<th>final rank</th><th>change</th></tr></thead><tbody>{rows}</tbody></table>")
    tasks, matrix = relative_scores(final)
    head = "".join(f"<th>{e(t)}</th>" for t in tasks)
    body = "".join(
        f"<tr><td>{e(r['name'])}{' (baseline)' if r['baseline'] else ''}</td>"
        + "".join(f"<td class=num style='background:{_colour(r['scores'].get(t))}'>"
                  f"{'–' if r['scores'].get(t) is None else format(r['scores'][t], '.3f')}</td>" for t in tasks) + "</tr>"
        for r in matrix)
    parts += ["<h2>Would it work on another team's data?</h2>",
              "<p class='note'>Each team's final score on each task divided by the best final score on that task (1 = the "
              "best); green is close to the best. A team strong on every task's data, not only one, has the more "
              "general algorithm.</p>",
              f"<table class='heat' id='relative'><thead><tr><th>team</th>{head}</tr></thead><tbody>{body}</tbody></table>"]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}: results</title>"
            f"<style>{REPORT_STYLE}</style></head><body>{''.join(parts)}</body></html>")


def render_report_markdown(final: Board, public: Board, title: str) -> str:
    """The same report as Markdown."""
    snap = final.get("snapshot") or {}
    md = markdown_text  # every team name and title is someone's text: inert
    lines = [f"# {md(title)}: results", "", f"Final standings on the private part of the test sets, release "
             f"{snap.get('release', final['release'])}.", ""]
    for track, info in final["tracks"].items():
        lines += [f"## Track: {track}", "", "| rank (95%) | team | mean score | 95% interval |", "|---|---|---|---|"]
        lines += [f"| {_rank_text(x) if x.get('rank') else '–'} | {md(_name(x))}{' (baseline)' if x.get('baseline') else ''} | "
                  f"{x['score']:.4f} | {_interval(x)} |" for x in info["entries"]]
        top = ", ".join(f"{i + 1}. {md(_name(x))}" for i, x in enumerate(_ranked(info["entries"])[:3]))
        lines += ["", f"Top three: {top or 'none'}.", ""]
    lines += ["## Task winners", "", "| task | winner | score | margin over the baseline |", "|---|---|---|---|"]
    for w in winners(final):
        if w["winner"] is None:
            lines.append(f"| {w['task']} | – | – | – |")
        else:
            margin = f"{w['margin']:+.4f}" if w["margin"] is not None else "no baseline"
            lines.append(f"| {w['task']} | {md(w['winner'])}{' (tied)' if w['tied'] else ''} | {w['score']:.4f} | {margin} |")
    lines += ["", "## Public → private shake-up", ""]
    for track, moves in shake_up(final, public).items():
        lines += [f"### {track}", "", "| team | public rank | final rank | change |", "|---|---|---|---|"]
        lines += [f"| {md(m['name'])} | {m['public_rank'] or '–'} | {m['final_rank']} | "
                  f"{'' if m['change'] is None else format(m['change'], '+d')} |" for m in moves]
        lines.append("")
    tasks, matrix = relative_scores(final)
    lines += ["## Would it work on another team's data?", "", "Final score divided by the best final score on each task.",
              "", "| team | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    lines += [f"| {md(r['name'])} | " + " | ".join('–' if r['scores'].get(t) is None else f"{r['scores'][t]:.3f}" for t in tasks)
              + " |" for r in matrix]
    return "\n".join(lines) + "\n"
