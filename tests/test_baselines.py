"""Baselines on Prefect's real engine, on both backends: they beat the majority predictor, are
byte-reproducible, never open `private`, are scored like any upload and marked on the leaderboard."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, stores
from test_publish import EXAMPLE_TASKS, stage

from challenge.core import storage as storage_module
from challenge.core.catalog import ColumnInfo
from challenge.core.config import ChallengeConfig, load_config, write_config
from challenge.core.errors import ConfigError
from challenge.core.metrics import score
from challenge.core.task_spec import Modality
from challenge.flows.publish_release import publish_release
from challenge.flows.run_baselines import BaselineRun, run_baselines
from challenge.flows.score_submissions import score_submissions
from challenge.core.errors import BaselineError
from challenge.tasks.baselines.features import pair_features
from challenge.tasks.baselines.models import download_task, submission_key
from challenge.tasks.baselines.training import _declared, column_modalities, train_baseline
from challenge.tasks.scoring.submissions import (
    BASELINE_TEAM,
    ParticipantVisibleError,
    Submission,
    admit,
    check_quota,
)

pytestmark = pytest.mark.usefixtures("prefect_harness")
CSV_TYPES = pa_csv.ConvertOptions(column_types={"id": pa.string(), "label": pa.string()})


@dataclass
class World:
    """The three example tasks released as r1, baselines run once, a majority (team-a) and a
    perfect (team-b) submission per task, everything scored."""

    config: ChallengeConfig
    path: str
    run: BaselineRun


def read_csv(data: bytes) -> pa.Table:
    return pa_csv.read_csv(pa.BufferReader(data), convert_options=CSV_TYPES)


def answers(config: ChallengeConfig, task: str) -> pa.Table:
    return pq.read_table(io.BytesIO(stores(config)[1].read_bytes(f"releases/r1/{task}/answers.parquet")))


@pytest.fixture(scope="module", params=["local", "s3"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> World:
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    root = tmp_path_factory.mktemp(f"baselines-{request.param}")
    config = make_config(request.param, root, endpoint, policy={"max_submissions_per_day": 1},
                         teams=[{"id": "team-a", "name": "Team A"}, {"id": "team-b", "name": "Team B"}])
    for task, contributor in EXAMPLE_TASKS.items():
        stage(config, EXAMPLES / contributor / task, contributor)
    path = str(write_config(config, root / "challenge.yaml"))
    publish_release(config_path=path, release="r1")
    run = run_baselines(config_path=path)
    public, _, submissions = stores(config)
    for task in EXAMPLE_TASKS:
        sample = public.read_bytes(f"releases/r1/{task}/sample_submission.csv")  # majority class / all zeros
        submissions.write_bytes(f"team-a/{task}/majority.csv", sample)
        perfect = io.BytesIO()
        pa_csv.write_csv(answers(config, task).select(["id", "label"]), perfect)
        submissions.write_bytes(f"team-b/{task}/perfect.csv", perfect.getvalue())
    # a second baseline file on the same day: over the quota of 1 for a team, not for the baseline
    submissions.copy(submission_key("penguins", "r1"), "baseline/penguins/again.csv")
    score_submissions(config_path=path)
    return World(config, path, run)


def results(config: ChallengeConfig) -> dict[str, dict]:
    _, private, _ = stores(config)
    return {r["key"]: r for r in (json.loads(private.read_bytes(i.key)) for i in private.list("results/")
                                  if not i.key.endswith(".error.json"))}


def test_baselines_beat_the_majority_predictor(world: World) -> None:
    summaries = {s["task_id"]: s for s in world.run.baselines}
    assert sorted(summaries) == sorted(EXAMPLE_TASKS) and world.run.release == "r1"
    assert world.run.uploaded == 3 and world.run.unchanged == 0
    records = results(world.config)
    _, _, submissions = stores(world.config)
    for task, summary in sorted(summaries.items()):
        metric = summary["metric"]
        mine, majority = records[submission_key(task, "r1")], records[f"team-a/{task}/majority.csv"]
        assert mine["status"] == "scored" and mine["team"] == BASELINE_TEAM, mine["message"]
        for part in ("public", "private"):  # through the real scoring path
            assert mine["metrics"][part][metric] > majority["metrics"][part][metric], (task, part)
        # and on the whole test set, against the answer key
        key = answers(world.config, task)
        predicted = read_csv(submissions.read_bytes(submission_key(task, "r1")))
        sample = read_csv(submissions.read_bytes(f"team-a/{task}/majority.csv"))
        assert predicted["id"].to_pylist() == key["id"].to_pylist() == sample["id"].to_pylist()
        to = (lambda c: np.asarray(c.to_pylist(), dtype=np.int64)) if summary["kind"] == "matching" else (lambda c: c)
        ours, theirs = (score(metric, to(key["label"]), to(t["label"])) for t in (predicted, sample))
        assert ours > theirs
        assert 0 <= summary["validation_score"] <= 1 and summary["train_seconds"] < 60
        print(f"\n{world.config.storage.public[:2]} {task:13} {metric:9} baseline {ours:.4f} majority {theirs:.4f} "
              f"validation {summary['validation_score']:.4f} train {summary['train_seconds']:.2f}s "
              f"download {summary['download_seconds']:.2f}s  {summary['model']}")


def test_predictions_are_byte_identical_across_runs(world: World, tmp_path: Path) -> None:
    public, _, submissions = stores(world.config)
    for task in EXAMPLE_TASKS:  # a run by hand on a download gives the bytes the flow uploaded
        by_hand = train_baseline(download_task(public, "r1", task, tmp_path / task))
        assert by_hand.csv == submissions.read_bytes(submission_key(task, "r1"))
        sample = public.read_bytes(f"releases/r1/{task}/sample_submission.csv")
        assert by_hand.csv.split(b"\n", 1)[0] == sample.split(b"\n", 1)[0]  # the sample's exact format
        assert read_csv(by_hand.csv)["id"].equals(read_csv(sample)["id"])
    # the flow again trains again: the same bytes, so they are not uploaded again and nothing new is scored
    versions = {t: submissions.head(submission_key(t, "r1")).version for t in EXAMPLE_TASKS}
    again = run_baselines(config_path=world.path)
    assert again.uploaded == 0 and again.unchanged == 3
    assert {t: submissions.head(submission_key(t, "r1")).version for t in EXAMPLE_TASKS} == versions
    assert score_submissions(config_path=world.path).pending == 0


def test_baselines_never_open_private(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `private` unreachable (a path under a plain file, or a bucket that does not exist),
    the baselines still run; and no storage is ever opened on the private location."""
    if world.config.storage.private.startswith("s3://"):
        blocked = f"s3://no-such-bucket-{uuid.uuid4().hex[:12]}/private"
    else:
        (tmp_path / "plain-file").write_text("not a folder")
        blocked = str(tmp_path / "plain-file" / "private")
    config = world.config.model_copy(update={"storage": world.config.storage.model_copy(update={"private": blocked})})
    path = str(write_config(config, tmp_path / "challenge.yaml"))
    opened: list[str] = []
    for cls in (storage_module.LocalStorage, storage_module.S3Storage):
        original = cls.__init__

        def spy(self, uri, *args, _original=original, **kwargs):
            opened.append(str(uri))
            _original(self, uri, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spy)
    result = run_baselines(config_path=path)
    assert result.unchanged == 3  # it ran to the end, and found its own earlier uploads
    assert opened and not any(uri.startswith((blocked, world.config.storage.private)) for uri in opened), opened
    assert {u.rstrip("/") for u in opened} <= {config.storage.public, config.storage.submissions}


def test_leaderboard_marks_the_baseline_and_ranks_teams_without_it(world: World,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from challenge.app.cli import _print_board

    public, _, _ = stores(world.config)
    board = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    tables = [*board["tasks"].values(), *board["tracks"].values()]
    for info in tables:
        entries = info["entries"]
        (baseline,) = [e for e in entries if e["team"] == BASELINE_TEAM]
        assert baseline["baseline"] is True and baseline["rank"] is None and baseline["team_name"] == "Baseline"
        teams = [e for e in entries if e["team"] != BASELINE_TEAM]
        assert all(e["baseline"] is False for e in teams)
        assert [e["rank"] for e in teams] == list(range(1, len(teams) + 1))
        assert [e["team"] for e in teams] == ["team-b", "team-a"]  # perfect, then majority
        scores = [e["score"] for e in entries]
        assert scores == sorted(scores, reverse=True)  # the baseline sits in its score order
        assert entries[-1]["team"] == "team-a"  # the baseline beats the majority predictor
    html = public.read_bytes("leaderboard/index.html").decode()
    assert html.count('<span class="badge">baseline</span>') >= len(tables)
    assert "Baseline <span" in html
    rows = public.read_bytes("leaderboard/task-penguins.csv").decode().splitlines()
    assert any(line.startswith(",baseline,") for line in rows)  # no rank
    _print_board(board, "classification", "table")
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["-", "Baseline"] and "unranked" in line for line in lines)
    assert "None" not in "\n".join(lines)
    # the baseline is exempt from the daily quota (1 here): its second file that day was scored
    again = json.loads(stores(world.config)[2].read_bytes("baseline/penguins/again.csv.result.json"))
    assert again["status"] == "scored"


def test_unknown_task_id_is_a_clear_error(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from challenge.app.cli import main

    with pytest.raises(BaselineError, match=r"unknown task id\(s\): nope; the latest release has digits, febrl-people, penguins"):
        run_baselines(config_path=world.path, tasks=["nope", "penguins"])
    assert main(["--config", world.path, "baseline", "--task", "nope"]) == 2
    assert "unknown task id(s): nope" in capsys.readouterr().err
    assert main(["--config", world.path, "baseline", "--task", "penguins"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("penguins") and "macro_f1" in line and "unchanged" in line


def test_baseline_team_id_is_reserved(tmp_path: Path) -> None:
    path = tmp_path / "challenge.yaml"
    path.write_text("name: c1\ntitle: T\nstorage: {intake: i, public: p, private: q, submissions: s}\n"
                    "teams:\n  - {id: team-a, name: A}\n  - {id: baseline, name: Sneaky}\n")
    with pytest.raises(ConfigError, match="reserved") as info:
        load_config(path)
    assert str(path) in str(info.value) and "teams" in str(info.value)


def test_admission_and_quota_let_the_baseline_in(tmp_path: Path) -> None:
    config = make_config("local", tmp_path, None, teams=[{"id": "team-a", "name": "A"}],
                         policy={"opens_at": "2000-01-01T00:00:00Z", "closes_at": "2000-01-02T00:00:00Z"})
    now = datetime.now(UTC)
    mine = Submission("baseline/penguins/baseline-r1.csv", BASELINE_TEAM, "penguins", "baseline-r1.csv", "e", 10, now)
    admit(mine, config, {"penguins"})  # not in challenge.yaml, outside the window: still admitted
    check_quota(mine, config, scored_today=1000)
    theirs = Submission("team-a/penguins/x.csv", "team-a", "penguins", "x.csv", "e", 10, now)
    with pytest.raises(ParticipantVisibleError, match="closed"):
        admit(theirs, config, {"penguins"})
    with pytest.raises(ParticipantVisibleError, match="quota"):
        check_quota(theirs, config, scored_today=1000)
    with pytest.raises(ParticipantVisibleError, match="unknown task"):
        admit(mine, config, {"digits"})


def test_modalities_come_from_the_manifest_else_from_the_data() -> None:
    columns = {"title": ColumnInfo(modality="text", description=""), "y": ColumnInfo(modality="image"),
               "z": ColumnInfo(modality="hologram")}  # a modality of a later version: not declared here
    assert _declared(columns) == {"title": Modality.text, "y": Modality.image}
    table = pa.table({"id": ["1", "2"], "title": ["a b", "c d"], "mass": [1.5, 2.0], "label": ["x", "y"]})
    assert column_modalities(columns, table) == {"title": Modality.text, "mass": Modality.numeric}
    assert _declared({}) == {}


def test_pair_features_are_similarities(tmp_path: Path) -> None:
    records = pa.table({"id": ["a", "b", "c"], "name": ["John  Smith", "john smith", None],
                        "city": pa.array(["x", "x", "y"]).dictionary_encode(), "age": [30.0, 33.0, None]})
    modalities = {"name": Modality.text, "city": Modality.categorical, "age": Modality.numeric}
    features, names = pair_features(records, np.array([0, 0]), np.array([1, 2]), modalities, tmp_path)
    assert names == ["name:jaccard", "name:ratio", "city:equal", "age:abs_diff", "age:rel_diff"]
    assert features[0].tolist() == pytest.approx([1.0, 1.0, 1.0, 3.0, 3.0 / 33.0])
    assert np.isnan(features[1, [0, 1, 3, 4]]).all() and features[1, 2] == 0.0


def test_text_categorical_numeric_and_image_columns_together(tmp_path: Path) -> None:
    """Every modality in one classification table, with missing values: trains offline, deterministically."""
    from PIL import Image

    from challenge.tasks.baselines.training import ReleasedTask

    rng = np.random.default_rng(3)
    n = 120
    labels = rng.choice(["fruit", "tool"], n)
    words = {"fruit": ["ripe apple", "sweet pear", "green plum"], "tool": ["steel hammer", "long saw", "flat wrench"]}
    (tmp_path / "images").mkdir()
    paths = []
    for i, label in enumerate(labels):
        shade = 200 if label == "fruit" else 40
        Image.fromarray(np.full((12, 12), shade + rng.integers(0, 30), dtype=np.uint8)).save(tmp_path / f"images/{i:03d}.png")
        paths.append(f"images/{i:03d}.png" if i % 10 else None)  # some rows have no image
    table = pa.table({
        "id": [f"{i:03d}" for i in range(n)],
        "title": [None if i % 7 == 0 else str(rng.choice(words[lab])) for i, lab in enumerate(labels)],
        "shop": pa.array(rng.choice(["north", "south", None], n).tolist()).dictionary_encode(),
        "weight": [None if i % 5 == 0 else float(rng.normal(1 if lab == "fruit" else 3)) for i, lab in enumerate(labels)],
        "photo": paths,
        "label": labels.tolist(),
    })
    train, test = table.slice(0, 90), table.slice(90)
    pq.write_table(train, tmp_path / "train.parquet")
    pq.write_table(test.drop_columns(["label"]), tmp_path / "test.parquet")
    pa_csv.write_csv(pa.table({"id": test["id"], "label": pa.array(["fruit"] * test.num_rows)}),
                     tmp_path / "sample_submission.csv")
    modalities = {"title": Modality.text, "shop": Modality.categorical, "weight": Modality.numeric, "photo": Modality.image}
    task = ReleasedTask("x", "things", "classification", "accuracy", modalities, tmp_path)
    first, second = train_baseline(task), train_baseline(task)
    assert first.csv == second.csv and "1 text, 1 numeric, 1 categorical, 1 image" in first.model
    predicted = read_csv(first.csv)
    assert predicted["id"].equals(test["id"]) and score("accuracy", test["label"], predicted["label"]) > 0.9
