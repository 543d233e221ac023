"""A second release: unchanged tasks are carried over byte for byte and keep their results on the boards;
a changed task is rebuilt; `publish --task X` rebuilds X and keeps every other task (issue 13)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved, stores
from test_publish import EXAMPLE_TASKS, stage

from challenge.core.catalog import Manifest, answers_key, manifest_key, parse_record
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import score_submissions

pytestmark = pytest.mark.usefixtures("prefect_harness")


def manifest(config, release: str, task: str) -> Manifest:  # noqa: ANN001
    return parse_record(Manifest, stores(config)[0].read_bytes(manifest_key(release, task)), task)


def folder(config, location: int, release: str, task: str) -> dict[str, bytes]:  # noqa: ANN001
    """path → bytes of every object of a task's release folder (0: public, 1: private)."""
    storage, prefix = stores(config)[location], f"releases/{release}/{task}/"
    return {i.key[len(prefix):]: storage.read_bytes(i.key) for i in storage.list(prefix)}


def submit_perfect(config, release: str, team: str) -> None:  # noqa: ANN001
    _, private, submissions = stores(config)
    for task in EXAMPLE_TASKS:
        truth = pq.read_table(io.BytesIO(private.read_bytes(answers_key(release, task)))).select(["id", "label"])
        out = io.BytesIO()
        pa_csv.write_csv(truth, out)
        submissions.write_bytes(f"{team}/{task}/perfect-{release}.csv", out.getvalue())


def entries(board: dict, task: str) -> list[tuple]:
    return [(e["rank"], e["team"], e["score"], e["submissions"]) for e in board["tasks"][task]["entries"]]


@pytest.fixture(params=["local", "s3"])
def season(request: pytest.FixtureRequest, tmp_path: Path) -> tuple:
    """Release r1 of the three example tasks, a perfect submission per task from team-a, scored."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    config = make_config(request.param, tmp_path / "challenge", endpoint, teams=[{"id": "team-a", "name": "A"}],
                         policy={"max_submissions_per_day": 1})
    for task, contributor in EXAMPLE_TASKS.items():
        stage(config, EXAMPLES / contributor / task, contributor)
    publish_release(config_path=saved(config), release="r1")
    submit_perfect(config, "r1", "team-a")
    board = score_submissions(config_path=saved(config)).board
    return config, tmp_path, board


def test_a_changed_task_is_rebuilt_and_unchanged_ones_keep_files_and_results(season: tuple) -> None:
    config, tmp_path, before = season
    assert all(entries(before, t) == [(1, "team-a", 1.0, 1)] for t in EXAMPLE_TASKS)
    changed = tmp_path / "v2" / "penguins"  # the contributor fixes the drop: ten rows removed
    shutil.copytree(EXAMPLES / "penguin-lab" / "penguins", changed)
    lines = (changed / "penguins.csv").read_text().splitlines(keepends=True)
    (changed / "penguins.csv").write_text("".join(lines[:-10]))
    stage(config, changed, "penguin-lab")

    run = publish_release(config_path=saved(config), release="r2")
    actions = {s["task_id"]: s["action"] for s in run.summaries}
    assert run.task_ids == sorted(EXAMPLE_TASKS) and actions["penguins"] == "built"
    for task in ("digits", "febrl-people"):
        assert actions[task].startswith("carried over from r1")
        assert folder(config, 0, "r2", task) == folder(config, 0, "r1", task)  # byte for byte, public
        assert folder(config, 1, "r2", task) == folder(config, 1, "r1", task)  # and private (the answer key)
        assert manifest(config, "r2", task).release == "r1"  # unchanged since r1
    assert manifest(config, "r2", "penguins").answers_sha256 != manifest(config, "r1", "penguins").answers_sha256
    assert manifest(config, "r2", "penguins").split.counts["train"] + \
        manifest(config, "r2", "penguins").split.counts["test"] == 334

    _, private, submissions = stores(config)
    records_before = {i.key: private.read_bytes(i.key) for i in private.list("results/")}
    after = score_submissions(config_path=saved(config))
    assert after.pending == 0 and after.corrected == 0  # nothing rescored: the earlier results are final
    assert after.superseded == 1  # team-a's penguins result, scored against r1's penguins
    records_after = {i.key: private.read_bytes(i.key) for i in private.list("results/")}
    changed = sorted(k for k in records_after if records_after[k] != records_before.get(k))
    assert len(changed) == 1 and changed[0].startswith("results/team-a/penguins/")  # unchanged tasks: not touched
    old = json.loads(records_after[changed[0]])
    assert old["status"] == "superseded" and old["history"][0]["status"] == "scored"
    note = json.loads(submissions.read_bytes("team-a/penguins/perfect-r1.csv.result.json"))
    assert note["status"] == "superseded" and "penguins changed in release r2" in note["message"]
    assert "submit again" in note["message"] and note["public_score"] is None
    history = json.loads(submissions.read_bytes("team-a/penguins/history.json"))
    (row,) = history["submissions"]
    assert row["status"] == "superseded" and row["public_score"] == 1.0 and row["counts_on_leaderboard"] is False
    assert history["task_changed_in"] == "r2" and history["quota"]["used"] == 0 and history["quota"]["left"] == 1
    for task in ("digits", "febrl-people"):
        assert entries(after.board, task) == entries(before, task)  # the board survives the release
        assert after.board["tasks"][task]["changed_in"] == "r1"
    assert entries(after.board, "penguins") == []  # scored against the old answer key: not ranked now
    assert after.board["tasks"]["penguins"]["changed_in"] == "r2"
    page = stores(config)[0].read_bytes("leaderboard/index.html").decode()
    assert "unchanged since release r1" in page
    # the quota (1 a day) counts results against a task's current key: penguins changed, so team-a may resubmit
    submit_perfect(config, "r2", "team-a")
    assert score_submissions(config_path=saved(config)).statuses == {"scored": 1, "rejected: quota": 2}
    submissions = stores(config)[2]
    status = {t: json.loads(submissions.read_bytes(f"team-a/{t}/perfect-r2.csv.result.json"))["status"] for t in EXAMPLE_TASKS}
    assert status == {"penguins": "scored", "digits": "rejected: quota", "febrl-people": "rejected: quota"}
    history = json.loads(submissions.read_bytes("team-a/penguins/history.json"))
    assert [(r["name"], r["status"]) for r in history["submissions"]] == [("perfect-r1.csv", "superseded"),
                                                                          ("perfect-r2.csv", "scored")]
    assert history["quota"]["left"] == 0
    assert not submissions.exists("team-a/penguins/history.json.result.json")  # not taken for an upload
    version = submissions.head("team-a/penguins/history.json").version
    score_submissions(config_path=saved(config))
    assert submissions.head("team-a/penguins/history.json").version == version  # unchanged: not rewritten
    submissions.delete("team-a/penguins/history.json")
    score_submissions(config_path=saved(config))
    assert json.loads(submissions.read_bytes("team-a/penguins/history.json")) == history  # deleted: written again


def test_publish_task_rebuilds_it_and_keeps_every_other_task(season: tuple) -> None:
    config, _, before = season
    run = publish_release(config_path=saved(config), release="r2", tasks=["digits"])
    actions = {s["task_id"]: s["action"] for s in run.summaries}
    assert run.task_ids == sorted(EXAMPLE_TASKS)
    assert actions["digits"] == "built" and all(actions[t].startswith("carried over") for t in ("penguins", "febrl-people"))
    # the same staged data, seed and key give the same files: the rebuilt answer key is the same key
    assert manifest(config, "r2", "digits").answers_sha256 == manifest(config, "r1", "digits").answers_sha256
    assert manifest(config, "r2", "digits").release == "r2"
    board = score_submissions(config_path=saved(config)).board
    assert all(entries(board, t) == entries(before, t) for t in EXAMPLE_TASKS)
    latest = json.loads(stores(config)[0].read_bytes("latest.json"))
    assert latest["release"] == "r2" and latest["tasks"] == sorted(EXAMPLE_TASKS)
