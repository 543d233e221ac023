"""`challenge demo` end to end in a temporary folder, twice: the second run reuses everything."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from challenge.app.demo import run_demo
from challenge.core import records

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_demo_runs_the_whole_lifecycle_and_reuses_its_folder(tmp_path: Path) -> None:
    out = io.StringIO()
    result = run_demo(tmp_path / "demo", out=out)
    text = out.getvalue()
    assert [int(n) for n in re.findall(r"^\[(\d+)/10\]", text, re.M)] == list(range(1, 11))
    assert "3 drop(s): 3 passed, 0 failed" in text and "12 new submission(s): 3 invalid, 9 scored" in text
    # the second release: penguins changed, the other tasks carried over; what happened to each team's results
    assert "release demo-2: digits carried over from demo-1" in text and "penguins built" in text
    assert "3 result(s) superseded this run" in text
    for team in ("team-a", "team-b", "baseline"):
        assert (f"{team}: kept on the boards: digits, febrl-people; superseded (task changed, resubmit): penguins; "
                f"scored against demo-2: penguins") in text

    board = json.loads((tmp_path / "demo" / "public" / "leaderboard" / "leaderboard.json").read_text())
    assert board == result["board"]
    for task_id in ("digits", "penguins", "febrl-people"):
        entries = board["tasks"][task_id]["entries"]
        assert {e["team"] for e in entries} == {"baseline", "team-a", "team-b"}
        assert [e["rank"] for e in entries if not e["baseline"]] == [1, 2]
        assert [e["rank"] for e in entries if e["baseline"]] == [None]
    assert {e["team"] for e in board["tracks"]["classification"]["entries"]} == {"baseline", "team-a", "team-b"}
    assert Path(result["page"]).is_file() and "leaderboard page: " + result["page"] in text
    assert_records_typed(tmp_path / "demo")

    again = io.StringIO()
    run_demo(tmp_path / "demo", out=again)
    second = again.getvalue()
    assert "reusing" in second and "3 unchanged" in second and "release demo-2 already published" in second
    assert "0 uploaded as team baseline" in second and "0 new submission(s): nothing new" in second
    assert json.loads((tmp_path / "demo" / "public" / "leaderboard" / "leaderboard.json").read_text())["tasks"] == \
        board["tasks"]


def assert_records_typed(folder: Path) -> None:
    """Every result record, feedback file and history a demo season stores has exactly the fields and types of
    challenge/core/records.py (unknown fields refused): a writer cannot drift from its type."""
    kinds = {"record": records.ResultRecord, "history": records.History, "final": records.FinalAnswer}
    checked: dict[str, int] = {}
    for path in sorted((folder / "private" / "results").rglob("*.json")):
        TypeAdapter(records.ErrorRecord if path.name.endswith(".error.json") else records.ResultRecord).validate_json(
            path.read_bytes())
        checked["record"] = checked.get("record", 0) + 1
        assert json.loads(path.read_bytes())["schema_version"] == records.RESULT_SCHEMA_VERSION
    submissions = folder / "submissions"
    for path in sorted([*submissions.rglob("*.result.json"), *submissions.rglob("history.json")]):
        body = json.loads(path.read_bytes())
        if path.name == "history.json":
            kind = "history"
        elif path.name == "FINAL.result.json":
            kind = "final"
        else:
            kind = "feedback" if "public_score" in body else "notice"
        TypeAdapter(kinds.get(kind) or (records.Feedback if kind == "feedback" else records.Notice)).validate_python(body)
        checked[kind] = checked.get(kind, 0) + 1
    assert checked.get("record", 0) >= 12 and checked.get("feedback", 0) >= 12 and checked.get("history", 0) >= 9, checked
