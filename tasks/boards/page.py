"""The leaderboard as one self-contained web page: tables, footnotes and a step chart per task.

No script, no font, no request: the page opens from a local folder, a bucket or
a web server alike. Every text that comes from a team or a contributor is escaped.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from typing import Any

from challenge.core.formats import MISSING, interval_text, score_text, utc_minute
from challenge.core.records import Board, Entry
from challenge.tasks.scoring.score import WHOLE

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
DASHES = ["", "6 3", "2 3", "8 3 2 3"]  # beyond the palette, lines differ by dash as well
BASELINE_COLOUR = "#7f7f7f"
MIN_SPAN = 0.2  # the score axis covers at least this much
PART_NAMES = {"public": "the public part of the test set", "private": "the private part of the test set",
              WHOLE: "the whole test set"}  # what a board's scores and intervals are computed on

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin:1.6em 0 .3em}h2 small{font-weight:normal;color:#666;font-size:.65em}
table{border-collapse:collapse;margin:.5em 0 .4em}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666}.note{color:#555;font-size:.9em;margin:.2em 0 1em}
.ci{color:#777;font-size:.82em;white-space:nowrap}.tie{color:#b35900;font-weight:bold;cursor:help}
.badge{display:inline-block;margin-left:.4em;padding:0 .45em;border-radius:.7em;background:#e7eefa;color:#1d4f91;
font-size:.8em;border:1px solid #b9cbe8}
.chart{display:block;margin:.6em 0 .2em;max-width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.4em;margin:0 0 1.2em;padding:0;list-style:none;font-size:.9em}
.legend svg{vertical-align:middle;margin-right:.35em}
.desc{color:#666;font-size:.82em;max-width:28em;overflow-wrap:anywhere}
"""


class _Markup(str):
    """A table cell that is already HTML (built from escaped parts): not escaped again."""


def _cell(value: Any) -> str:
    if isinstance(value, _Markup):
        return value
    return html.escape(str(value))


def _team_cell(entry: Entry) -> _Markup:
    badge = ' <span class="badge">baseline</span>' if entry.get("baseline") else ""  # a reference, not ranked
    note = entry.get("description")  # the team's note on the submission that counts (challenge submit --message)
    described = f"<div class='desc'>{html.escape(note)}</div>" if note else ""
    return _Markup(html.escape(entry["team_name"]) + badge + described)


def _rank_cell(entry: Entry) -> str:
    """The rank, its 95% interval when it is not a single rank, and ≈ when tied with the entry above."""
    if entry["rank"] is None:
        return MISSING
    ranks = entry.get("rank_ci95")
    text = html.escape(str(entry["rank"]))
    if ranks and ranks[0] != ranks[1]:
        text += f" <span class='ci'>({ranks[0]}–{ranks[1]})</span>"
    if entry.get("tied_with_above"):
        text += " <span class='tie' title='statistically tied with the entry above'>≈</span>"
    return _Markup(text)


def _score_cell(entry: Entry) -> _Markup:
    """The score to four decimals and its 95% interval."""
    ci = entry.get("ci95")
    interval = f" <span class='ci'>{interval_text(ci)}</span>" if ci else ""
    return _Markup(f"{score_text(entry['score'])}{interval}")


def _number(value: float | None, footnote: bool = False) -> _Markup:
    """A score to four decimals, or `–` (with a footnote mark) when there is none."""
    if value is None:
        return _Markup(MISSING + ("<sup>*</sup>" if footnote else ""))
    return _Markup(score_text(value))


def _table(table_id: str, columns: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{_cell(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table id='{html.escape(table_id)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- the chart ---------------------------------------------------------------

def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving about `ticks` intervals over `span`."""
    raw = span / max(ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def score_range(values: list[float]) -> tuple[float, float, float]:
    """Axis low, high and tick step covering `values` (scores in [0, 1]) with round ends."""
    lo, hi = min(values), max(values)
    if hi - lo < MIN_SPAN:  # a few close scores: show them against a readable range, not a magnified sliver
        lo, hi = max(0.0, min(lo, hi - MIN_SPAN)), min(1.0, max(hi, lo + MIN_SPAN))
    span = max(hi - lo, 0.05)
    step = nice_step(span, 4)
    low = max(0.0, math.floor((lo - span * 0.05) / step) * step)
    high = min(1.0, math.ceil((hi + span * 0.05) / step) * step)
    if high <= low:
        low, high = max(0.0, high - step), high if high > 0 else step
    return low, high, step


def time_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """About five round ticks on a UTC time axis; a tick shows its date when it is the first or the day changed."""
    span = hi - lo
    steps = [60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400,
             14 * 86400, 28 * 86400]
    step = next((s for s in steps if span / s <= 6), steps[-1] * max(1, math.ceil(span / steps[-1] / 6)))
    ticks, previous_day = [], None
    for t in range(int(math.ceil(lo / step) * step), int(hi) + 1, step):
        moment = datetime.fromtimestamp(t, timezone.utc)
        daily = step >= 86400
        label = moment.strftime("%b %d") if daily else moment.strftime("%H:%M")
        if not daily and moment.date() != previous_day:
            label = moment.strftime("%b %d ") + label
        previous_day = moment.date()
        ticks.append((float(t), label))
    return ticks


def team_styles(labels: list[str], baseline_label: str | None) -> dict[str, tuple[str, str]]:
    """(colour, dash pattern) per team label, the same in every chart of the page; the baseline grey, dashed."""
    others = sorted(set(labels) - {baseline_label})
    styles = {label: (PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]) for i, label in enumerate(others)}
    if baseline_label:
        styles[baseline_label] = (BASELINE_COLOUR, "4 3")
    return styles


def chart(series: dict[str, list[tuple[str, float]]], until: str, styles: dict[str, tuple[str, str]],
          so_far: str = "best public score so far") -> str:
    """Each team's best-so-far score over time as step lines, with axes, ticks and a legend below the plot
    (so it never covers a line). `series`: team label → (upload time, new best) points, in the legend's
    order; `until`: the board's update time, where every line ends; `styles`: team_styles; `so_far`: what
    the score axis shows (which part of the test set)."""
    if not series:
        return "<p class='muted'>No scored submission yet.</p>"
    end = datetime.fromisoformat(until).timestamp()
    times = [datetime.fromisoformat(t).timestamp() for points in series.values() for t, _ in points]
    t0, t1 = min(times), max(max(times), end)
    if t1 - t0 < 600:  # everything within minutes: show the hour around it
        t0, t1 = t0 - 1800, t1 + 1800
    t0 -= (t1 - t0) * 0.02
    y0, y1, ystep = score_range([s for points in series.values() for _, s in points])
    headroom = (y1 - y0) * 0.04  # a line at the top or bottom tick stays clear of the frame
    width, height, left, right, top, bottom = 760, 300, 56, 20, 14, 44
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return top + (y1 + headroom - v) / (y1 - y0 + 2 * headroom) * plot_h

    parts = [f"<rect x='{left}' y='{top}' width='{plot_w}' height='{plot_h}' fill='#fcfcfc' stroke='#bbb'/>"]
    n = round((y1 - y0) / ystep)
    for i in range(n + 1):
        v = y0 + i * ystep
        parts.append(f"<line x1='{left}' x2='{left + plot_w}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e6e6e6'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end' font-size='11'>{v:.2f}</text>")
    for t, label in time_ticks(t0, t1):
        parts.append(f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{top + plot_h}' y2='{top + plot_h + 5}' stroke='#888'/>"
                     f"<text x='{x(t):.1f}' y='{top + plot_h + 18}' text-anchor='middle' font-size='11'>"
                     f"{html.escape(label)}</text>")
    parts.append(f"<text x='{left + plot_w / 2}' y='{height - 6}' text-anchor='middle' font-size='11' fill='#555'>"
                 "upload time (UTC)</text>"
                 f"<text transform='translate(13 {top + plot_h / 2}) rotate(-90)' text-anchor='middle' font-size='11' "
                 f"fill='#555'>{html.escape(so_far)}</text>")
    legend = []
    for i, (label, points) in enumerate(series.items()):
        colour, dash = styles[label]
        # earlier lines are wider: where two teams' lines coincide, the one below shows as a border
        stroke_width = 2 + 2.5 * (len(series) - 1 - i) / max(len(series) - 1, 1)
        path = f"M{x(datetime.fromisoformat(points[0][0]).timestamp()):.1f},{y(points[0][1]):.1f}"
        for t, v in points[1:]:
            path += f" H{x(datetime.fromisoformat(t).timestamp()):.1f} V{y(v):.1f}"
        path += f" H{x(t1):.1f}"
        dashes = f" stroke-dasharray='{dash}'" if dash else ""
        style = f"stroke='{colour}' stroke-width='{stroke_width:.1f}'{dashes}"
        name = html.escape(label)
        parts.append(f"<path d='{path}' fill='none' {style}><title>{name}</title></path>")
        parts += [f"<circle cx='{x(datetime.fromisoformat(t).timestamp()):.1f}' cy='{y(v):.1f}' r='3' fill='{colour}'>"
                  f"<title>{name}: {v:.4f} at {html.escape(utc_minute(t))}</title></circle>" for t, v in points]
        legend.append(f"<li><svg width='26' height='10' aria-hidden='true'><line x1='1' y1='5' x2='25' y2='5' "
                      f"stroke='{colour}' stroke-width='2.5'{dashes}/>"
                      f"</svg>{name}</li>")
    svg = (f"<svg class='chart' viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' "
           f"aria-label='{html.escape(so_far)} over time'>{''.join(parts)}</svg>")
    return svg + f"<ul class='legend'>{''.join(legend)}</ul>"


# --- the page ----------------------------------------------------------------

def render_html(board: Board, title: str, root: str = "../") -> str:
    """Track tables with a footnote on the mean, then per task: title, metric, card link, table, chart.
    `root`: the way from the page's folder to the public location's root (for the cards and trails)."""
    final, benchmark = board["final"], board.get("benchmark", False)
    snapshot = board.get("snapshot")
    state = ("Post-challenge benchmark: uploads after the close, ranked by their score on the whole test set; "
             "the final standings do not change" if benchmark
             else "Final standings (private scores)" if final
             else "Public leaderboard (private scores stay hidden until the end)")
    when = (f"finalized {html.escape(utc_minute(snapshot['finalized_at']))}" if snapshot
            else f"updated {html.escape(utc_minute(board['updated_at']))}")
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='muted'>{html.escape(state)} · release {html.escape(board['release'])} · {when}</p>"]
    if snapshot:
        keys = "; ".join(f"{html.escape(t)}: {html.escape(str(info['answers_sha256'])[:12])}…"
                         + (f" (version {info['answer_version']})" if info.get("answer_version", 1) > 1 else "")
                         for t, info in snapshot["tasks"].items())
        parts.append(f"<p class='note' id='snapshot'>This snapshot is final: no later run changes it. Computed by "
                     f"challenge {html.escape(str(snapshot['code_version']))} on release {html.escape(snapshot['release'])}; "
                     f"answer keys (SHA-256): {keys}</p>")
    for task_id, reason in (board.get("withdrawn") or {}).items():
        parts.append(f"<p class='note withdrawn'>Task {html.escape(task_id)} is withdrawn: {html.escape(reason)}</p>")
    if any(e.get("baseline") for info in board["tasks"].values() for e in info["entries"]):
        parts.append("<p class='note'><span class=\"badge\">baseline</span> the organizers' scikit-learn reference "
                     "model, shown for comparison and not ranked.</p>")
    intervals = board.get("intervals")
    if intervals:
        parts.append(
            f"<p class='note' id='intervals'>[low, high]: {intervals['level']:.0%} interval of the score; (best–worst): "
            f"{intervals['level']:.0%} interval of the rank; <span class='tie'>≈</span>: statistically tied with the "
            f"entry above (the {intervals['level']:.0%} interval of their paired score difference contains 0). "
            f"Method: {html.escape(intervals['method'])}, "
            f"on {html.escape(PART_NAMES.get(intervals['part'], intervals['part']))}; "
            f"{intervals['resamples']} resamples, seed {intervals['seed']}.</p>")
    score_kind = ("best score on the whole test set" if benchmark else
                  "final score (the best private score among its FINAL picks, else the private score of its best "
                  "public submission)" if final
                  else "best public score")
    so_far = ("best score on the whole test set so far" if benchmark else "best private score so far" if final
              else "best public score so far")  # the charts: the part of the test set the board ranks by
    history = board.get("_history", {})
    styles = team_styles([label for series in history.values() for label in series], board.get("_baseline_label"))
    for track, info in board["tracks"].items():
        task_ids = info.get("tasks") or sorted({t for e in info["entries"] for t in e["tasks"]})
        missing_any = any(e["tasks"].get(t) is None for e in info["entries"] for t in task_ids)
        rows = [[_rank_cell(e), _team_cell(e), _score_cell(e)]
                + [_number(e["tasks"].get(t), footnote=True) for t in task_ids]
                for e in info["entries"]]
        parts += [f"<h2>Track: {html.escape(track)}</h2>",
                  _table(f"track-{track}", ["rank", "team", "mean score", *task_ids], rows, set(range(2, 3 + len(task_ids))))]
        note = (f"Mean score: the average of a team's {score_kind} over the {len(task_ids)} task(s) of this track; "
                "the prize goes to the best mean.")
        if missing_any:
            note += f" <sup>*</sup>{MISSING}: no scored submission to that task yet; it counts as 0 in the mean."
        parts.append(f"<p class='note'>{note}</p>")
    for task_id, info in board["tasks"].items():
        rows = [[_rank_cell(e), _team_cell(e), _score_cell(e), e["submissions"], utc_minute(e["last_submitted_at"])]
                for e in info["entries"]]
        card = info.get("card")
        card_link = f" · <a href='{html.escape(root + card)}'>dataset card</a>" if card else ""
        changed = info.get("changed_in")
        if changed:
            card_link += (f" · unchanged since release {html.escape(changed)}" if changed != board["release"]
                          else f" · last changed in release {html.escape(changed)}")
        version = info.get("answer_version", 1)
        if version > 1:
            trail = info.get("corrections")
            corrected = f"answer key corrected (version {version})"
            card_link += f" · <a href='{html.escape(root + trail)}'>{corrected}</a>" if trail else f" · {corrected}"
        parts += [f"<h2 id='task-{html.escape(task_id)}-title'>{html.escape(info.get('title') or task_id)} "
                  f"<small>{html.escape(task_id)} · {html.escape(info['kind'])} · metric {html.escape(info['metric'])}"
                  f"{card_link}</small></h2>",
                  _table(f"task-{task_id}", ["rank", "team", "score", "submissions", "last submission"], rows, {2, 3}),
                  f"<p class='note'>Ranked by {score_kind} ({html.escape(info['metric'])}); a tie goes to the earlier upload.</p>",
                  chart(history.get(task_id, {}), board["updated_at"], styles, so_far)]
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
