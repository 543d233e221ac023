"""A season's later events (issue 13), on both backends: final picks, the post-challenge benchmark board,
answer-key corrections with a trail, and withdrawing a task."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved, stores
from pydantic import TypeAdapter
from test_publish import stage
from test_scoring import upload

from challenge.app.cli import main
from challenge.core import records
from challenge.core.config import ChallengeConfig
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import finalize_challenge, score_submissions

pytestmark = pytest.mark.usefixtures("prefect_harness")


def key_of(config: ChallengeConfig, release: str, task: str, version: int = 1) -> pa.Table:
    name = "answers.parquet" if version == 1 else f"answers-v{version}.parquet"
    return pq.read_table(io.BytesIO(stores(config)[1].read_bytes(f"releases/{release}/{task}/{name}")))


def with_labels(key: pa.Table, mask: np.ndarray, label: str) -> pa.Table:
    """The key's ids and labels, `label` where `mask` holds."""
    labels = np.array(key["label"].to_pylist(), dtype=object)
    labels[mask] = label
    return pa.table({"id": key["id"], "label": pa.array(labels.tolist(), pa.string())})


def entry(board: dict, task: str, team: str) -> dict | None:
    return next((e for e in board["tasks"][task]["entries"] if e["team"] == team), None)


def everything(config: ChallengeConfig) -> dict[str, bytes]:
    """Every object of public and private (to check that a refused command changed nothing)."""
    public, private, _ = stores(config)
    return {f"{n}:{i.key}": s.read_bytes(i.key) for n, s in (("public", public), ("private", private)) for i in s.list("")}


@pytest.fixture(params=["local", "s3"])
def penguins(request: pytest.FixtureRequest, tmp_path: Path) -> ChallengeConfig:
    """penguins (and febrl-people) released as r1 for teams a and b, 20 submissions a day."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    config = make_config(request.param, tmp_path / "challenge", endpoint, policy={"max_submissions_per_day": 20},
                         teams=[{"id": "team-a", "name": "A"}, {"id": "team-b", "name": "B"}])
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    stage(config, EXAMPLES / "linkage-team" / "febrl-people", "linkage-team")
    publish_release(config_path=saved(config), release="r1")
    return config


def test_final_score_is_the_best_private_score_among_the_picks(penguins: ChallengeConfig) -> None:
    key = key_of(penguins, "r1", "penguins")
    private_rows = pc.equal(key["usage"], "private").to_numpy(zero_copy_only=False)
    public_rows = ~private_rows
    first_private = np.zeros(len(key), bool)
    first_private[np.flatnonzero(private_rows)[:5]] = True
    upload(penguins, "team-a/penguins/public-star.csv", with_labels(key, private_rows, "Adelie"))  # perfect public only
    upload(penguins, "team-a/penguins/steady.csv", with_labels(key, first_private, "Gentoo"))  # good on both
    upload(penguins, "team-a/penguins/wild.csv", with_labels(key, public_rows | private_rows, "Gentoo"))
    upload(penguins, "team-b/penguins/public-star.csv", with_labels(key, private_rows, "Adelie"))
    upload(penguins, "team-a/penguins/FINAL", b"public-star.csv\nsteady.csv\n")
    upload(penguins, "team-b/penguins/FINAL", b"public-star.csv\na.csv\nb.csv\n")  # three names: over the limit of 2
    score_submissions(config_path=saved(penguins))
    submissions = stores(penguins)[2]
    picks = json.loads(submissions.read_bytes("team-a/penguins/FINAL.result.json"))
    assert picks["status"] == "accepted" and picks["submissions"] == ["team-a/penguins/public-star.csv",
                                                                       "team-a/penguins/steady.csv"]
    refused = json.loads(submissions.read_bytes("team-b/penguins/FINAL.result.json"))
    assert refused["status"] == "not accepted" and "the limit is 2" in refused["message"]
    history = json.loads(submissions.read_bytes("team-a/penguins/history.json"))
    assert {r["name"]: r["final_pick"] for r in history["submissions"]} == {
        "public-star.csv": True, "steady.csv": True, "wild.csv": False}
    assert all("private_score" not in r for r in history["submissions"])  # hidden while the challenge runs

    final = finalize_challenge(config_path=saved(penguins)).board
    records = {r["key"]: r for r in (json.loads(stores(penguins)[1].read_bytes(i.key))
                                     for i in stores(penguins)[1].list("results/team-"))}

    def private(key_: str) -> float:
        return records[key_]["metrics"]["private"]["macro_f1"]

    assert entry(final, "penguins", "team-a")["score"] == max(private("team-a/penguins/public-star.csv"),
                                                              private("team-a/penguins/steady.csv"))
    assert private("team-a/penguins/steady.csv") > private("team-a/penguins/public-star.csv")
    # team-b's FINAL was refused: the private score of its best public submission counts
    assert entry(final, "penguins", "team-b")["score"] == private("team-b/penguins/public-star.csv")


def test_after_close_benchmark_scores_later_uploads_on_their_own_board(penguins: ChallengeConfig,
                                                                     tmp_path: Path) -> None:
    config = penguins.model_copy(update={"policy": penguins.policy.model_copy(update={"after_close": "benchmark"})})
    key = key_of(config, "r1", "penguins")
    upload(config, "team-a/penguins/during.csv", with_labels(key, np.arange(len(key)) % 3 == 0, "Gentoo"))
    final = finalize_challenge(config_path=saved(config))
    public = stores(config)[0]
    frozen = {i.key: public.read_bytes(i.key) for i in public.list("leaderboard/final/")}
    upload(config, "team-b/penguins/later.csv", key.select(["id", "label"]))  # perfect, after the close
    run = score_submissions(config_path=saved(config))
    assert run.statuses == {"scored": 1}
    note = json.loads(stores(config)[2].read_bytes("team-b/penguins/later.csv.result.json"))
    assert note["phase"] == "benchmark" and note["test_score"] == 1.0 and "private_score" not in note
    assert note["message"] == "scored (post-challenge benchmark): whole test set macro_f1 1.0000"
    assert entry(run.board, "penguins", "team-b") is None  # not on the challenge's board
    assert run.board["tasks"]["penguins"]["entries"] == final.board["tasks"]["penguins"]["entries"]
    assert {i.key: public.read_bytes(i.key) for i in public.list("leaderboard/final/")} == frozen
    bench = json.loads(public.read_bytes("leaderboard/benchmark/leaderboard.json"))
    assert bench["benchmark"] is True and [(e["team"], e["score"]) for e in bench["tasks"]["penguins"]["entries"]] == [
        ("team-b", 1.0)]
    for folder in ("leaderboard", "leaderboard/final", "leaderboard/benchmark"):  # as stored: exactly their type's fields
        TypeAdapter(records.Board).validate_json(public.read_bytes(f"{folder}/leaderboard.json"))
    page = public.read_bytes("leaderboard/benchmark/index.html").decode()
    assert "Post-challenge benchmark" in page and "ranked by their score on the whole test set" in page
    assert "on the whole test set;" in page and "private part" not in page  # the intervals' note says the same
    assert "best score on the whole test set so far" in page and "best public score so far" not in page
    assert bench["intervals"]["part"] == "test"


def test_a_post_challenge_upload_before_finalize_tells_no_private_part(penguins: ChallengeConfig) -> None:
    """Closed but not finalized: FINAL picks can still change, so an upload after the close gets no score that
    the private part's labels are in (feedback, history, a public board); finalize then adds its score on the
    whole test set, which its feedback and the benchmark board show."""
    policy = penguins.policy.model_copy(update={"after_close": "benchmark", "opens_at": None,
                                                "closes_at": datetime(2000, 1, 2, tzinfo=timezone.utc)})
    config = penguins.model_copy(update={"policy": policy})
    public, private, submissions = stores(config)
    key = key_of(config, "r1", "penguins")
    upload(config, "team-b/penguins/after-close.csv", key.select(["id", "label"]))
    assert score_submissions(config_path=saved(config)).statuses == {"scored": 1}
    note = json.loads(submissions.read_bytes("team-b/penguins/after-close.csv.result.json"))
    assert note["phase"] == "benchmark" and note["test_score"] is None and "private_score" not in note
    assert note["public_score"] == 1.0 and "comes once the challenge is finalized" in note["message"]
    history = json.loads(submissions.read_bytes("team-b/penguins/history.json"))["submissions"]
    assert [(r["test_score"], "private_score" in r) for r in history] == [(None, False)]
    assert not public.exists("leaderboard/benchmark/leaderboard.json")  # no public board of it yet

    finalize_challenge(config_path=saved(config))
    note = json.loads(submissions.read_bytes("team-b/penguins/after-close.csv.result.json"))
    assert note["test_score"] == 1.0 and note["message"] == "scored (post-challenge benchmark): whole test set macro_f1 1.0000"
    record = next(json.loads(private.read_bytes(i.key)) for i in private.list("results/team-b/"))
    assert record["metrics"]["test"]["macro_f1"] == 1.0 and "test" not in record["history"][0]["metrics"]
    bench = json.loads(public.read_bytes("leaderboard/benchmark/leaderboard.json"))
    assert [(e["team"], e["score"]) for e in bench["tasks"]["penguins"]["entries"]] == [("team-b", 1.0)]
    history = json.loads(submissions.read_bytes("team-b/penguins/history.json"))["submissions"]
    assert [r["test_score"] for r in history] == [1.0]
    again = score_submissions(config_path=saved(config))  # once is enough
    assert again.statuses == {} and json.loads(private.read_bytes(
        next(i.key for i in private.list("results/team-b/"))))["scored_at"] == record["scored_at"]


def test_an_answer_key_correction_leaves_a_trail_and_the_next_release_keeps_it(penguins: ChallengeConfig,
                                                                               tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config_file = saved(penguins)
    public, private, submissions = stores(penguins)
    key = key_of(penguins, "r1", "penguins")
    upload(penguins, "team-a/penguins/perfect.csv", key.select(["id", "label"]))
    upload(penguins, "team-b/penguins/gone.csv", key.select(["id", "label"]))
    score_submissions(config_path=config_file)
    submissions.delete("team-b/penguins/gone.csv")  # an upload the team deleted: cannot be rescored
    ids, labels = key["id"].to_pylist(), key["label"].to_pylist()
    other = {label: next(c for c in ("Adelie", "Gentoo", "Chinstrap") if c != label) for label in set(labels)}

    # bad files: a clear error naming the problem, and nothing stored changes
    before = everything(penguins)
    bad = {"unknown-id.csv": f"id,label\nt-nope,{labels[0]}\n", "unknown-label.csv": f"id,label\n{ids[0]},Emperor\n",
           "duplicate.csv": f"id,label\n{ids[0]},{other[labels[0]]}\n{ids[0]},{labels[0]}\n",
           "columns.csv": f"id,species\n{ids[0]},{other[labels[0]]}\n"}
    needles = {"unknown-id.csv": "t-nope", "unknown-label.csv": "Emperor", "duplicate.csv": ids[0],
               "columns.csv": "species"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        assert main(["--config", config_file, "correct-answers", "--task", "penguins", "--file", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert name in err and needles[name] in err, err
    assert everything(penguins) == before

    # a good file: two labels fixed
    fix = tmp_path / "corrections.csv"
    fix.write_text(f"id,label\n{ids[0]},{other[labels[0]]}\n{ids[1]},{other[labels[1]]}\n")
    assert main(["--config", config_file, "correct-answers", "--task", "penguins", "--file", str(fix)]) == 0
    out = capsys.readouterr().out
    assert "2 label(s) changed" in out and "1 result(s) rescored, 1 superseded" in out
    v2 = hashlib.sha256(private.read_bytes("releases/r1/penguins/answers-v2.parquet")).hexdigest()
    assert private.exists("releases/r1/penguins/answers.parquet")  # the old version kept
    trail = json.loads(public.read_bytes("corrections/r1/penguins.json"))  # beside the release, which never changes
    assert trail["answers_sha256_in_use"] == v2 and [(c["version"], c["labels_changed"]) for c in trail["corrections"]] == [(2, 2)]
    assert ids[0] not in json.dumps(trail)  # never which labels
    assert not [i.key for i in public.list("releases/r1/") if "corrections" in i.key]
    records = {r["key"]: r for r in (json.loads(private.read_bytes(i.key)) for i in private.list("results/team-"))}
    rescored = records["team-a/penguins/perfect.csv"]
    assert rescored["scored_by"]["answers_sha256"] == v2 and rescored["history"][0]["scored_by"]["answers_sha256"] != v2
    assert rescored["metrics"]["public"]["macro_f1"] < 1.0 or rescored["metrics"]["private"]["macro_f1"] < 1.0
    assert records["team-b/penguins/gone.csv"]["status"] == "superseded"
    board = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    assert [e["team"] for e in board["tasks"]["penguins"]["entries"]] == ["team-a"]
    assert board["tasks"]["penguins"]["answer_version"] == 2
    page = public.read_bytes("leaderboard/index.html").decode()
    assert "<a href='../corrections/r1/penguins.json'>answer key corrected (version 2)</a>" in page

    # a trail where an earlier version wrote it (inside the release folder), and none where it now lives: the
    # next scoring run writes it from the private record; the old file breaks nothing and is never carried over
    legacy = public.read_bytes("corrections/r1/penguins.json")
    public.write_bytes("releases/r1/penguins/corrections.json", legacy)
    public.delete("corrections/r1/penguins.json")
    score_submissions(config_path=config_file)
    assert public.read_bytes("corrections/r1/penguins.json") == legacy

    # a matching task's key too: a pair label flipped, fixed in the staged pairs through the pair id map
    pairs_key = key_of(penguins, "r1", "febrl-people")
    pair, label = pairs_key["id"][0].as_py(), pairs_key["label"][0].as_py()
    (tmp_path / "pairs.csv").write_text(f"id,label\n{pair},{1 - int(label)}\n")
    assert main(["--config", config_file, "correct-answers", "--task", "febrl-people", "--file", str(tmp_path / "pairs.csv")]) == 0
    assert "1 label(s) changed" in capsys.readouterr().out
    pair_map = pq.read_table(io.BytesIO(private.read_bytes("releases/r1/febrl-people/pair_id_map.parquet"))).to_pylist()
    left, right = next((m["left_original"], m["right_original"]) for m in pair_map if m["id"] == pair)
    pointer = json.loads(private.read_bytes("staged/febrl-people/current.json"))
    staged_pairs = pq.read_table(io.BytesIO(private.read_bytes(pointer["prefix"] + "/pairs.parquet"))).to_pylist()
    assert [p["label"] for p in staged_pairs if (p["left_id"], p["right_id"]) == (left, right)] == [1 - int(label)]

    # the staged data holds the fix: the next release carries the corrected key over, results stay
    run = publish_release(config_path=config_file, release="r2")
    actions = {s["task_id"]: s["action"] for s in run.summaries}
    assert actions["penguins"].startswith("carried over from r1") and actions["febrl-people"].startswith("carried over")
    assert hashlib.sha256(private.read_bytes("releases/r2/penguins/answers-v2.parquet")).hexdigest() == v2
    assert not public.exists("releases/r2/penguins/corrections.json")  # the old trail stays in r1
    after = score_submissions(config_path=config_file)
    assert after.superseded == 0 and after.corrected == 0
    r2_trail = json.loads(public.read_bytes("corrections/r2/penguins.json"))  # the key in use in r2 has its trail
    assert r2_trail["answers_sha256_in_use"] == v2 and [c["version"] for c in r2_trail["corrections"]] == [2]
    assert "href='../corrections/r2/penguins.json'" in public.read_bytes("leaderboard/index.html").decode()
    assert after.board["tasks"]["penguins"]["entries"] == board["tasks"]["penguins"]["entries"]
    # and a rebuild from the staged data produces the corrected labels
    rebuilt = publish_release(config_path=config_file, release="r3", tasks=["penguins"])
    assert {s["task_id"]: s["action"] for s in rebuilt.summaries}["penguins"] == "built"
    maps = pq.read_table(io.BytesIO(private.read_bytes("releases/r1/penguins/id_map.parquet")))
    originals = dict(zip(maps["id"].to_pylist(), maps["original_id"].to_pylist()))
    r3 = key_of(penguins, "r3", "penguins")
    r3_maps = pq.read_table(io.BytesIO(private.read_bytes("releases/r3/penguins/id_map.parquet")))
    published = dict(zip(r3_maps["original_id"].to_pylist(), r3_maps["id"].to_pylist()))
    r3_labels = dict(zip(r3["id"].to_pylist(), r3["label"].to_pylist()))
    for i in (0, 1):
        new_id = published[originals[ids[i]]]
        if new_id in r3_labels:  # still a test row in the rebuilt split
            assert r3_labels[new_id] == other[labels[i]]


def test_a_withdrawn_task_leaves_the_next_release_and_the_boards(penguins: ChallengeConfig) -> None:
    key = key_of(penguins, "r1", "penguins")
    upload(penguins, "team-a/penguins/perfect.csv", key.select(["id", "label"]))
    score_submissions(config_path=saved(penguins))
    reason = "labels under review by the contributor"
    withdrawn = penguins.model_copy(update={"withdrawn": {"penguins": reason}})
    with pytest.raises(Exception, match="withdrawn"):
        publish_release(config_path=saved(withdrawn), release="r2", tasks=["penguins"])
    public = stores(penguins)[0]
    assert public.exists("leaderboard/task-penguins.csv") and public.exists("leaderboard/track-classification.csv")
    run = publish_release(config_path=saved(withdrawn), release="r2")
    assert run.task_ids == ["febrl-people"]
    latest = json.loads(public.read_bytes("latest.json"))
    assert latest["tasks"] == ["febrl-people"] and latest["withdrawn"] == {"penguins": reason}
    # the publish takes its standings off every board file at once: no stale CSV, no track still carrying it
    assert not public.exists("leaderboard/task-penguins.csv") and not public.exists("leaderboard/track-classification.csv")
    assert public.exists("leaderboard/task-febrl-people.csv") and public.exists("leaderboard/track-matching.csv")
    published = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    assert published["release"] == "r2" and set(published["tasks"]) == {"febrl-people"}
    assert set(published["tracks"]) == {"matching"} and published["withdrawn"] == {"penguins": reason}
    assert f"Task penguins is withdrawn: {reason}" in public.read_bytes("leaderboard/index.html").decode()
    upload(penguins, "team-a/penguins/late.csv", key.select(["id", "label"]))
    scored = score_submissions(config_path=saved(withdrawn))
    assert "penguins" not in scored.board["tasks"] and scored.board["withdrawn"] == {"penguins": reason}
    note = json.loads(stores(penguins)[2].read_bytes("team-a/penguins/late.csv.result.json"))
    assert note["status"] == "rejected" and reason in note["message"]
    assert f"Task penguins is withdrawn: {reason}" in stores(penguins)[0].read_bytes("leaderboard/index.html").decode()
