"""What the Prefect UI's tables say: the files a scoring run did not score (bounded, one line each, hostile
names made harmless) and scores rounded as on the leaderboard page."""

from __future__ import annotations

from typing import Any

import pytest

from challenge.core.formats import score_text
from challenge.tasks import artifacts
from challenge.tasks.artifacts import MAX_LISTED, leaderboard_artifacts, not_scored_rows, one_line


def record(i: int, status: str = "invalid", team: str = "team-a", message: str = "3 test id(s) are missing") -> dict[str, Any]:
    return {"submission_id": f"s{i}", "key": f"{team}/penguins/f{i:04d}.csv", "name": f"f{i:04d}.csv", "team": team,
            "task_id": "penguins", "status": status, "message": message, "uploaded_at": f"2026-11-25T10:{i % 60:02d}:00+00:00"}


def test_each_file_not_scored_is_listed_with_its_team_and_reason() -> None:
    records = [record(1, "scored"), record(2, message="line one\nline two\tand a tab"),
               record(3, "rejected: quota", "team-b", "quota: 5 of 5 used today"), record(4, "rejected", "team-z")]
    rows = not_scored_rows(records, {"team-a": "Team A", "team-b": "Team B"})
    assert [(r["team"], r["file"], r["status"]) for r in rows] == [
        ("Team A (team-a)", "f0002.csv", "invalid"), ("Team B (team-b)", "f0003.csv", "rejected: quota"),
        ("team-z", "f0004.csv", "rejected")]
    assert rows[0]["reason"] == "line one line two and a tab"  # one line
    assert all(set(r) == {"task", "team", "file", "status", "reason"} for r in rows)


def test_the_list_is_bounded_and_says_how_many_more() -> None:
    rows = not_scored_rows([record(i) for i in range(MAX_LISTED + 37)])
    assert len(rows) == MAX_LISTED + 1
    assert rows[-1]["team"] == "and 37 more" and "results/" in rows[-1]["reason"]
    assert [r["file"] for r in rows[:3]] == ["f0000.csv", "f0001.csv", "f0002.csv"]  # in file order


@pytest.mark.parametrize(("text", "expected"), [
    ("x" * 300, "x" * 239 + "…"),
    ("a\r\nb\x1b[31mred\x00", "a b [31mred"),
    ("  spaced   out  ", "spaced out"),
])
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected and len(one_line(text)) <= 240


def test_a_hostile_file_name_stays_one_short_line() -> None:
    rows = not_scored_rows([{**record(1), "name": "evil\n" + "é" * 500 + ".csv"}])
    assert "\n" not in rows[0]["file"] and len(rows[0]["file"]) <= 120


def test_leaderboard_tables_round_as_the_page_does(monkeypatch: pytest.MonkeyPatch) -> None:
    tables: dict[str, list[dict[str, Any]]] = {}
    monkeypatch.setattr(artifacts, "create_table_artifact", lambda key, table, description: tables.update({key: table}))
    monkeypatch.setattr(artifacts, "public_page_artifact", lambda *args: None)
    entry = {"rank": 1, "team": "team-a", "team_name": "Team A", "score": 0.123456789, "submissions": 2,
             "last_submitted_at": "2026-11-25T10:00:00+00:00", "ci95": [0.1000001, 0.2999999], "rank_ci95": [1, 2]}
    board = {"final": False, "release": "r1",
             "tasks": {"penguins": {"title": "Penguins", "metric": "macro_f1", "entries": [entry]}},
             "tracks": {"classification": {"tasks": ["penguins"],
                                           "entries": [{**entry, "score": 0.98765432, "tasks": {"penguins": 0.98765432}}]}}}
    leaderboard_artifacts(None, board)  # type: ignore[arg-type]
    assert tables["leaderboard-penguins"][0]["score"] == score_text(0.123456789) == "0.1235"
    assert tables["leaderboard-penguins"][0]["95% interval"] == "[0.100, 0.300]"
    track = tables["leaderboard-classification"][0]
    assert track["mean score"] == "0.9877" and track["penguins"] == "0.9877"
