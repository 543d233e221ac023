"""The leaderboard page after weeks of a season, as a participant opens it: headless Chromium,
with a screenshot kept in build/test-artifacts/leaderboard-season.png."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from conftest import chromium

from challenge.core.catalog import card_key
from challenge.core.storage import LocalStorage
from challenge.tasks.boards.tables import build_leaderboard, write_leaderboard
from challenge.tasks.release.latest import ReleasedTask
from challenge.tasks.scoring.standings import Standings

TASKS = {
    "penguins": ReleasedTask("penguins", "classification", "macro_f1", "Palmer penguins species", card_key("r2", "penguins")),
    "digits": ReleasedTask("digits", "classification", "accuracy", "Handwritten digits (8x8)", card_key("r2", "digits")),
    "febrl-people": ReleasedTask("febrl-people", "matching", "f1", "FEBRL person records", card_key("r2", "febrl-people")),
}
TEAMS = {f"team-{c}": name for c, name in zip("abcdefg", ["Aurora", "Byte Club", "Cascade", "Delta Force",
                                                         "Eigen & Sons", "Foxtrot", "<b>Gamma</b>"])}


def season_records(seed: int = 4) -> list[dict]:
    """Three weeks of uploads: every team improves now and then; team-g never submits to digits."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
    records = []
    for team in [*TEAMS, "baseline"]:
        for task_id, task in TASKS.items():
            if team == "team-g" and task_id == "digits":
                continue
            uploads = 1 if team == "baseline" else int(rng.integers(3, 12))
            level = rng.uniform(0.55, 0.8)
            for i in range(uploads):
                at = start + timedelta(hours=float(rng.uniform(0, 21 * 24)))
                score = round(float(min(0.99, level + rng.uniform(-0.05, 0.15) + 0.01 * i)), 6)
                records.append({
                    "submission_id": f"{team}-{task_id}-{i}", "key": f"{team}/{task_id}/s{i}.csv", "name": f"s{i}.csv",
                    "team": team, "task_id": task_id, "release": "r2", "status": "scored",
                    "uploaded_at": at.isoformat(), "metrics": {"public": {task.metric: score},
                                                               "private": {task.metric: score}},
                })
    return records


def test_a_season_of_uploads_reads_well(tmp_path: Path) -> None:
    public = LocalStorage(tmp_path / "public")
    for task in TASKS.values():
        public.write_bytes(task.card, f"# {task.title}\n".encode())
    board = build_leaderboard("season", Standings("r2", TASKS, season_records(), {}), False, TEAMS)
    write_leaderboard(public, board, "A season of the challenge")
    page = tmp_path / "public" / "leaderboard" / "index.html"
    source = page.read_text()
    assert "<script" not in source and "<link" not in source and "http" not in source.replace(
        "http://www.w3.org", "")  # self-contained: nothing to fetch

    dom = chromium(page.as_uri(), tmp_path / "profile", screenshot="leaderboard-season.png", window=(1280, 3600))
    classification = dom.split('<table id="track-classification">')[1].split("</table>")[0]
    gamma_row = next(row for row in classification.split("<tr>") if "&lt;b&gt;Gamma&lt;/b&gt;" in row)
    assert "–<sup>*</sup>" in gamma_row  # the missing task, marked
    assert "counts as 0 in the mean" in dom and "average of a team's best public score over the 2 task(s)" in dom
    for task_id, task in TASKS.items():
        heading = dom.split(f'id="task-{task_id}-title"')[1].split("</h2>")[0]
        assert task.title in heading and f"metric {task.metric}" in heading
        link = re.search(r'href="([^"]+)"', heading).group(1)
        assert (page.parent / link).resolve() == (tmp_path / "public" / task.card).resolve()
    times = re.findall(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?(?: UTC)?", dom)
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", t) for t in times)  # to the minute, UTC
    charts = re.findall(r"<svg class=\"chart\".*?</svg>\s*<ul class=\"legend\">(.*?)</ul>", dom, re.S)
    assert len(charts) == len(TASKS)
    teams_in = {task_id: len({r["team"] for r in season_records() if r["task_id"] == task_id}) for task_id in TASKS}
    assert [legend.count("<li>") for legend in charts] == [teams_in[t] for t in sorted(TASKS)]
    assert re.findall(r'<svg class="chart" viewBox="0 0 (\d+) (\d+)"', dom) == [("760", "300")] * len(TASKS)
    first_chart = dom.split('<svg class="chart"')[1].split("</svg>")[0]
    assert first_chart.count("<path") == teams_in["digits"] and "H" in first_chart  # step lines
    assert first_chart.count("upload time (UTC)") == 1 and len(re.findall(r">\d\.\d\d</text>", first_chart)) >= 3


def test_the_final_snapshot_page_says_what_it_was_computed_with(tmp_path: Path) -> None:
    """The results workshop's page: final, with the code version, release and answer keys; a withdrawn task's
    reason; a corrected key's version (issue 13)."""
    from dataclasses import replace

    public = LocalStorage(tmp_path / "public")
    tasks = {t: replace(task, answers_sha256=f"{i}" * 64, changed_in="r1" if t == "digits" else "r2",
                        answer_version=2 if t == "penguins" else 1)
             for i, (t, task) in enumerate(TASKS.items(), start=1)}
    records = [{**r, "scored_by": {"answers_sha256": tasks[r["task_id"]].answers_sha256}} for r in season_records()]
    board = build_leaderboard("season", Standings("r2", tasks, records, {}), True, TEAMS, withdrawn={"shoes": "<i>labels</i> under review"})
    board["snapshot"] = {"finalized_at": "2026-11-23T17:00:00Z", "code_version": "9.9.9", "release": "r2",
                         "tasks": {t: {"answers_sha256": task.answers_sha256, "answer_version": task.answer_version}
                                   for t, task in tasks.items()}}
    write_leaderboard(public, board, "A season of the challenge", "leaderboard/final")
    page = tmp_path / "public" / "leaderboard" / "final" / "index.html"
    dom = chromium(page.as_uri(), tmp_path / "profile", screenshot="leaderboard-final-snapshot.png", window=(1280, 3200))
    assert "Final standings (private scores)" in dom and "finalized 2026-11-23 17:00 UTC" in dom
    assert "This snapshot is final" in dom and "challenge 9.9.9 on release r2" in dom and "penguins: 111111111111… (version 2)" in dom
    assert "Task shoes is withdrawn: &lt;i&gt;labels&lt;/i&gt; under review" in dom  # escaped
    assert "answer key corrected (version 2)" in dom and "unchanged since release r1" in dom
    assert "final score (the best private score among its FINAL picks" in dom
    assert "best private score so far" in dom and "best public score so far" not in dom  # the charts say what they show
    assert "public part" not in dom
    for task_id, task in tasks.items():  # from leaderboard/final/ too, the card and the corrections trail open
        heading = dom.split(f'id="task-{task_id}-title"')[1].split("</h2>")[0]
        links = re.findall(r'href="([^"]+)"', heading)
        assert (page.parent / links[0]).resolve() == (tmp_path / "public" / task.card).resolve()
        if task.answer_version > 1:
            trail = tmp_path / "public" / "corrections" / "r2" / f"{task_id}.json"
            assert (page.parent / links[1]).resolve() == trail.resolve()
            assert "answer key corrected (version 2)</a>" in heading


def test_the_benchmark_page_says_its_scores_are_on_the_whole_test_set(tmp_path: Path) -> None:
    """The post-challenge board: ranked, charted and its intervals computed on the whole test set, and it says so."""
    public = LocalStorage(tmp_path / "public")
    records = []
    for r in season_records():
        score = r["metrics"]["public"][TASKS[r["task_id"]].metric]
        records.append({**r, "phase": "benchmark", "metrics": {**r["metrics"], "test": {
            TASKS[r["task_id"]].metric: round(1 - score, 6)}}})  # the whole test set ranks the other way round
    board = build_leaderboard("season", Standings("r2", TASKS, records, {}), True, TEAMS, benchmark=True)
    board["intervals"] = {"method": "bootstrap", "resamples": 1000, "seed": 0, "level": 0.95, "part": "test"}
    write_leaderboard(public, board, "A season of the challenge", "leaderboard/benchmark")
    penguins = [e["score"] for e in board["tasks"]["penguins"]["entries"] if not e["baseline"]]
    best_whole = {}
    for r in records:
        if r["task_id"] == "penguins" and r["team"] != "baseline":
            best_whole[r["team"]] = max(best_whole.get(r["team"], 0), r["metrics"]["test"]["macro_f1"])
    assert penguins == sorted(best_whole.values(), reverse=True)
    page = tmp_path / "public" / "leaderboard" / "benchmark" / "index.html"
    dom = chromium(page.as_uri(), tmp_path / "profile", screenshot="leaderboard-benchmark.png", window=(1280, 3200))
    assert "Post-challenge benchmark" in dom and "ranked by their score on the whole test set" in dom
    assert "on the whole test set;" in dom and "private part" not in dom and "public part" not in dom
    assert "best score on the whole test set so far" in dom and "best public score so far" not in dom
    assert "average of a team's best score on the whole test set" in dom
