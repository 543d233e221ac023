"""Intervals on the real boards (issue 14), on both backends: the JSON fields on task and track boards
before and after finalize, the CSV columns, the page and the terminal; no private information in a live
board's intervals; recomputed only when the entries change."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved, stores
from test_publish import stage
from test_scoring import upload

from challenge.app.cli import main
from challenge.core import catalog
from challenge.core.config import ChallengeConfig
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import finalize_challenge, score_submissions

pytestmark = pytest.mark.usefixtures("prefect_harness")
FIELDS = ("ci95", "rank_ci95", "tied_with_above")


@pytest.fixture(params=["local", "s3"])
def scored(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ChallengeConfig, pa.Table]:
    """penguins released; team-a perfect, team-b and team-c equal on the public rows, different on the private ones."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    config = make_config(request.param, tmp_path / "challenge", endpoint, policy={"max_submissions_per_day": 20},
                         teams=[{"id": f"team-{c}", "name": c.upper()} for c in "abc"])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    # a fixed id key: the published ids' order, and so which rows the noisy teams get wrong, is the same
    # in every run (with a random key, team-b was now and then near-perfect on the ~20 public rows)
    stores(config)[1].write_bytes(catalog.ID_KEY, b"interval-test-key".ljust(32, b"."))
    publish_release(config_path=saved(config), release="r1")
    key = pq.read_table(io.BytesIO(stores(config)[1].read_bytes("releases/r1/penguins/answers.parquet")))
    private_rows = pc.equal(key["usage"], "private").to_numpy(zero_copy_only=False)
    labels = np.array(key["label"].to_pylist(), dtype=object)
    rng = np.random.default_rng(8)
    noisy = np.where(rng.random(len(labels)) < 0.4, labels, rng.choice(["Adelie", "Gentoo", "Chinstrap"], len(labels)))
    other = noisy.copy()
    other[private_rows] = "Adelie"  # differs from team-b's on the private rows only
    upload(config, "team-a/penguins/perfect.csv", key.select(["id", "label"]))
    upload(config, "team-b/penguins/noisy.csv", pa.table({"id": key["id"], "label": pa.array(noisy.tolist())}))
    upload(config, "team-c/penguins/noisy.csv", pa.table({"id": key["id"], "label": pa.array(other.tolist())}))
    return config, key


def by_team(board: dict, where: str, name: str) -> dict[str, dict]:
    return {e["team"]: e for e in board[where][name]["entries"]}


def test_intervals_before_and_after_finalize(scored: tuple[ChallengeConfig, pa.Table],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = scored
    public, private, _ = stores(config)
    live = score_submissions(config_path=saved(config)).board
    assert live["intervals"]["part"] == "public" and live["intervals"]["resamples"] == 1000
    for where, name in (("tasks", "penguins"), ("tracks", "classification")):
        entries = by_team(live, where, name)
        assert all(all(f in e for f in FIELDS) for e in entries.values())
        assert entries["team-a"]["ci95"] == [1.0, 1.0] and entries["team-a"]["rank_ci95"] == [1, 1]
        assert not any(e["tied_with_above"] for e in entries.values() if e["rank"] == 2)  # clearly below perfect
        # team-b and team-c differ only on private rows: a live board's intervals cannot tell them apart
        assert entries["team-b"]["ci95"] == entries["team-c"]["ci95"]
        assert {entries["team-b"]["rank"], entries["team-c"]["rank"]} == {2, 3}
        below = max(entries["team-b"], entries["team-c"], key=lambda e: e["rank"])
        assert below["tied_with_above"] is True
    rows = list(csv.DictReader(io.StringIO(public.read_bytes("leaderboard/task-penguins.csv").decode())))
    assert {"ci95_low", "ci95_high", "rank_best", "rank_worst", "tied_with_above"} <= set(rows[0])
    page = public.read_bytes("leaderboard/index.html").decode()
    assert "95% interval of the score" in page and "1000 resamples, seed 20261126" in page and "class='tie'" in page
    assert main(["--config", saved(config), "leaderboard", "--tasks"]) == 0
    assert "95% CI" in capsys.readouterr().out

    # nothing new: the intervals are not recomputed
    cache = private.head("cache/intervals.json").version
    again = score_submissions(config_path=saved(config)).board
    assert private.head("cache/intervals.json").version == cache
    assert by_team(again, "tasks", "penguins") == by_team(live, "tasks", "penguins")

    final = finalize_challenge(config_path=saved(config)).board
    assert final["intervals"]["part"] == "private"
    entries = by_team(final, "tasks", "penguins")
    assert entries["team-b"]["ci95"] != entries["team-c"]["ci95"]  # now the private rows count
    snapshot = json.loads(public.read_bytes("leaderboard/final/leaderboard.json"))
    assert by_team(snapshot, "tasks", "penguins")["team-b"]["ci95"] == entries["team-b"]["ci95"]
    assert all(all(f in e for f in FIELDS) for e in snapshot["tracks"]["classification"]["entries"])


def test_labels_not_kept_at_scoring_are_read_again_from_the_upload(scored: tuple[ChallengeConfig, pa.Table]) -> None:
    config, _ = scored
    _, private, _ = stores(config)
    first = score_submissions(config_path=saved(config)).board
    kept = [i.key for i in private.list("predictions/")]
    assert len(kept) == 3
    private.delete_many([*kept, "cache/intervals.json"])  # e.g. results scored before labels were kept
    board = score_submissions(config_path=saved(config)).board
    assert by_team(board, "tasks", "penguins") == by_team(first, "tasks", "penguins")
    assert sorted(i.key for i in private.list("predictions/")) == sorted(kept)


def test_the_results_report(scored: tuple[ChallengeConfig, pa.Table], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """finalize writes results.html and results.md; `challenge report` writes them again; the page is read in
    headless Chromium (screenshot kept)."""
    from conftest import chromium

    config, key = scored
    public = stores(config)[0]
    labels = np.array(key["label"].to_pylist(), dtype=object)
    baseline = labels.copy()
    baseline[::4] = "Adelie"  # the organizers' reference: decent, not perfect
    upload(config, "baseline/penguins/baseline-r1.csv", pa.table({"id": key["id"], "label": pa.array(baseline.tolist())}))
    score_submissions(config_path=saved(config))
    final = finalize_challenge(config_path=saved(config)).board
    markdown = public.read_bytes("leaderboard/final/results.md").decode()
    assert "## Track: classification" in markdown and "Top three: 1. A" in markdown
    assert "| penguins | A |" in markdown and "## Public → private shake-up" in markdown
    before = public.read_bytes("leaderboard/final/results.html")
    assert main(["--config", saved(config), "report"]) == 0
    assert "results report: " in capsys.readouterr().out and public.read_bytes("leaderboard/final/results.html") == before

    page = tmp_path / "results.html"
    page.write_bytes(before)
    dom = chromium(page.as_uri(), tmp_path / "profile", screenshot="results-report.png", window=(1100, 1500))
    assert "<script" not in before.decode()
    entries = {e["team"]: e for e in final["tasks"]["penguins"]["entries"]}
    margin = entries["team-a"]["score"] - entries["baseline"]["score"]
    winners = dom.split('id="winners"')[1].split("</table>")[0]
    assert "Palmer penguins" in winners and f"{margin:+.4f}" in winners and ">A<" in winners
    shake = dom.split('id="shake-up-classification"')[1].split("</table>")[0]
    assert shake.count("<tr>") == 4  # header + three teams
    heat = dom.split('id="relative"')[1].split("</table>")[0]
    assert "1.000" in heat and "background" in heat and "(baseline)" in heat
