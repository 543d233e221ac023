"""score_submissions on Prefect's real engine, on both backends: every status,
quota, reruns after a crash, leaderboards, finalize, and the page in headless Chromium."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import EXAMPLES, make_config, saved, stores
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from test_publish import stage

from challenge.core.config import ChallengeConfig
from challenge.core.errors import ChallengeError, ScoringErrors
from challenge.flows.publish_release import publish_release
from challenge.flows.score_submissions import finalize_challenge, score_submissions

pytestmark = pytest.mark.usefixtures("prefect_harness")
EVIL = "<script>alert('pwned')</script> & co"


def challenge(backend: str, root: Path, endpoint: str | None, **policy: object) -> ChallengeConfig:
    return make_config(backend, root, endpoint, policy=policy, teams=[
        {"id": "team-a", "name": "Team A"}, {"id": "team-b", "name": EVIL}, {"id": "team-c", "name": "C"}])


@pytest.fixture(scope="module", params=["local", "s3"])
def released(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ChallengeConfig:
    """penguins and febrl-people staged and released once per backend."""
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    config = challenge(request.param, tmp_path_factory.mktemp(f"score-{request.param}"), endpoint, max_submissions_per_day=3)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    stage(config, EXAMPLES / "linkage-team" / "febrl-people", "linkage-team")
    publish_release(config_path=saved(config), release="r1")
    return config


def answers(config: ChallengeConfig, task: str) -> pa.Table:
    _, private, _ = stores(config)
    return pq.read_table(io.BytesIO(private.read_bytes(f"releases/r1/{task}/answers.parquet")))


def upload(config: ChallengeConfig, key: str, table: pa.Table | bytes) -> None:
    _, _, submissions = stores(config)
    if isinstance(table, pa.Table):
        out = io.BytesIO()
        (pq.write_table if key.endswith(".parquet") else pa_csv.write_csv)(table, out)
        table = out.getvalue()
    submissions.write_bytes(key, table)


def feedback(config: ChallengeConfig, key: str) -> dict:
    return json.loads(stores(config)[2].read_bytes(key + ".result.json"))


def results(config: ChallengeConfig) -> list[dict]:
    _, private, _ = stores(config)
    return [json.loads(private.read_bytes(i.key)) for i in private.list("results/") if not i.key.endswith(".error.json")]


def ensure_scored(config: ChallengeConfig) -> None:
    """A perfect (team-a) and a random (team-b) penguins submission, scored: tests need not run in order."""
    _, _, submissions = stores(config)
    if not submissions.exists("team-a/penguins/baseline.csv"):
        key = answers(config, "penguins").select(["id", "label"])
        rng = np.random.default_rng(7)
        upload(config, "team-a/penguins/baseline.csv", key)
        upload(config, "team-b/penguins/baseline.csv", key.set_column(
            1, "label", pa.array(rng.choice(["Adelie", "Gentoo", "Chinstrap"], key.num_rows))))
    score_submissions(config_path=saved(config))


def test_every_status_and_the_feedback_a_team_reads(released: ChallengeConfig) -> None:
    key = answers(released, "penguins")
    perfect = key.select(["id", "label"])
    rng = np.random.default_rng(1)
    cases = {
        "team-a/penguins/perfect.csv": perfect,
        "team-a/penguins/as-parquet.parquet": perfect,
        "team-a/penguins/extra-column.csv": perfect.append_column("proba", pa.array([0.5] * key.num_rows)),
        "team-a/penguins/no-label.csv": perfect.select(["id"]),
        "team-a/penguins/duplicate.csv": pa.concat_tables([perfect, perfect.slice(0, 2)]),
        "team-a/penguins/missing.csv": perfect.slice(3),
        "team-a/penguins/unknown.csv": pa.concat_tables([perfect, pa.table({"id": ["zzz-999"], "label": ["Adelie"]})]),
        "team-a/penguins/bad-label.csv": perfect.set_column(1, "label", pa.array(["Emperor"] * key.num_rows)),
        "team-a/penguins/empty-label.csv": perfect.set_column(1, "label", pa.array([None] + ["Adelie"] * (key.num_rows - 1))),
        "team-a/penguins/garbage.parquet": b"definitely not parquet",
        "nobody/penguins/x.csv": perfect,
        "team-a/no-such-task/x.csv": perfect,
        "team-b/penguins/random.csv": perfect.set_column(1, "label", pa.array(rng.choice(["Adelie", "Gentoo", "Chinstrap"], key.num_rows))),
    }
    for name, table in cases.items():
        upload(released, name, table)
    result = score_submissions(config_path=saved(released))
    assert result.errors == []
    expect = {
        "team-a/penguins/perfect.csv": ("scored", "scored"),
        "team-a/penguins/as-parquet.parquet": ("scored", "scored"),
        "team-a/penguins/extra-column.csv": ("invalid", "unexpected proba"),
        "team-a/penguins/no-label.csv": ("invalid", "missing label"),
        "team-a/penguins/duplicate.csv": ("invalid", "2 id(s) appear more than once"),
        "team-a/penguins/missing.csv": ("invalid", "3 test id(s) are missing"),
        "team-a/penguins/unknown.csv": ("invalid", "1 id(s) are not test ids (e.g. zzz-999)"),
        "team-a/penguins/bad-label.csv": ("invalid", "not classes of this task (e.g. Emperor)"),
        "team-a/penguins/empty-label.csv": ("invalid", "1 row(s) have an empty or NaN label"),
        "team-a/penguins/garbage.parquet": ("invalid", "cannot be read as Parquet"),
        "nobody/penguins/x.csv": ("rejected", "unknown team 'nobody'"),
        "team-a/no-such-task/x.csv": ("rejected", "unknown task 'no-such-task'"),
        "team-b/penguins/random.csv": ("scored", "scored"),
    }
    for name, (status, message) in expect.items():
        note = feedback(released, name)
        assert note["status"] == status and message in note["message"], (name, note)
        assert "private" not in json.dumps(note)
    assert feedback(released, "team-a/penguins/perfect.csv")["public_score"] == 1.0
    records = {r["key"]: r for r in results(released)}
    perfect_record = records["team-a/penguins/perfect.csv"]
    assert perfect_record["metrics"]["private"]["macro_f1"] == 1.0
    assert perfect_record["scored_by"]["answers_sha256"] and perfect_record["release"] == "r1"
    assert {"key", "etag", "bytes", "uploaded_at", "team", "task_id", "status", "message", "metrics", "scored_at"} <= set(perfect_record)
    # a rerun scores nothing again; a re-upload under the same key is a new submission
    assert score_submissions(config_path=saved(released)).pending == 0
    upload(released, "team-b/penguins/random.csv", perfect)
    again = score_submissions(config_path=saved(released))
    assert again.pending == 1 and again.statuses == {"scored": 1}
    assert sum(r["key"] == "team-b/penguins/random.csv" for r in results(released)) == 2


def test_quota_counts_scored_submissions_only(released: ChallengeConfig) -> None:
    perfect = answers(released, "febrl-people").select(["id", "label"])
    upload(released, "team-c/febrl-people/broken.csv", perfect.slice(5))  # invalid: does not count
    for i in range(4):
        upload(released, f"team-c/febrl-people/try-{i}.csv", perfect)
    score_submissions(config_path=saved(released))
    statuses = [feedback(released, f"team-c/febrl-people/try-{i}.csv")["status"] for i in range(4)]
    assert statuses == ["scored", "scored", "scored", "rejected: quota"]
    assert "limit is 3 a day" in feedback(released, "team-c/febrl-people/try-3.csv")["message"]


def test_leaderboard_ranks_escapes_and_hides_private_scores(released: ChallengeConfig, tmp_path: Path) -> None:
    from prefect.artifacts import Artifact

    ensure_scored(released)
    public, private, submissions = stores(released)
    board = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    for artifact_key in ("leaderboard-penguins", "leaderboard-febrl-people", "leaderboard-classification", "leaderboard-matching"):
        artifact = Artifact.get(artifact_key)
        assert artifact is not None and artifact.type == "table", artifact_key
    rows = json.loads(Artifact.get("leaderboard-penguins").data)
    assert rows[0]["team"] == "Team A" and "team-a" not in str(rows)  # display names, not ids
    assert all(list(row) == list(rows[0]) for row in rows)  # one set of columns in every row
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", rows[0]["last submission"])
    for track in ("leaderboard-classification", "leaderboard-matching"):
        track_rows = json.loads(Artifact.get(track).data)
        assert all(list(row) == list(track_rows[0]) for row in track_rows), track
    assert board["final"] is False and board["release"] == "r1"
    penguins = board["tasks"]["penguins"]["entries"]
    assert [e["team"] for e in penguins][:1] == ["team-a"] and penguins[0]["score"] == 1.0 and penguins[0]["rank"] == 1
    track = board["tracks"]["classification"]["entries"]
    assert all(set(e["tasks"]) == {"penguins"} for e in track)
    matching = {e["team"]: e for e in board["tracks"]["matching"]["entries"]}
    assert "team-b" not in matching or matching["team-b"]["tasks"]["febrl-people"] >= 0
    # no private score anywhere under public, nor in feedback files, before finalize
    scored = [r for r in results(released) if r["status"] == "scored"]
    public_values = {v for r in scored for v in r["metrics"]["public"].values()}
    private_values = {json.dumps(v) for r in scored for v in r["metrics"]["private"].values()
                      if v not in public_values and v not in (0.0, 1.0)}  # values only a private score has
    assert private_values
    for storage, keys in ((public, [i.key for i in public.list("")]),
                          (submissions, [i.key for i in submissions.list("") if i.key.endswith(".result.json")])):
        for key in keys:
            if key.endswith((".json", ".csv", ".html", ".md")):
                text = storage.read_bytes(key).decode()
                # the chart's y-axis ticks (0.25, 0.75, ...) are round numbers, not scores: a private score of
                # exactly 0.75 is not leaked by a tick at 0.75
                text = re.sub(r"<text [^>]*text-anchor='end'[^>]*>\d\.\d\d</text>", "", text)
                assert not any(re.search(rf"(?<![\d.]){re.escape(v)}(?!\d)", text) for v in private_values), key
    html = public.read_bytes("leaderboard/index.html").decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; co" in html


def test_leaderboard_page_in_headless_chromium(released: ChallengeConfig, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required (make test installs it)"
    ensure_scored(released)
    public, _, _ = stores(released)
    page = tmp_path / "index.html"
    page.write_bytes(public.read_bytes("leaderboard/index.html"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<table id=\"task-penguins\">" in dom and "<table id=\"track-classification\">" in dom
    penguins_rows = dom.split('<table id="task-penguins">')[1].split("</table>")[0].count("<tr>")
    board = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    assert penguins_rows == len(board["tasks"]["penguins"]["entries"]) + 1  # header row
    assert "<script>alert" not in dom and "&lt;script&gt;alert('pwned')&lt;/script&gt; &amp; co" in dom
    shots = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"leaderboard-{released.storage.public.startswith('s3://') and 's3' or 'local'}.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000


def test_finalize_reveals_private_scores_of_the_chosen_submission(released: ChallengeConfig) -> None:
    ensure_scored(released)
    public, private, submissions = stores(released)
    key = answers(released, "penguins")
    half = key.select(["id", "label"])
    flipped = np.array(half["label"].to_pylist(), dtype=object)
    flipped[pa.compute.equal(key["usage"], "private").to_numpy(zero_copy_only=False)] = "Adelie"  # worse on private
    upload(released, "team-c/penguins/good-public.csv", half.set_column(1, "label", pa.array(flipped.tolist())))
    upload(released, "team-c/penguins/plain.csv", half)
    score_submissions(config_path=saved(released))
    upload(released, "team-c/penguins/FINAL", b"plain.csv\n")
    result = finalize_challenge(config_path=saved(released))
    board = json.loads(public.read_bytes("leaderboard/leaderboard.json"))
    assert board["final"] is True and result.board["final"] is True
    records = results(released)
    by_key = {r["key"]: r for r in records if r["team"] == "team-c"}
    team_c = next(e for e in board["tasks"]["penguins"]["entries"] if e["team"] == "team-c")
    assert team_c["score"] == by_key["team-c/penguins/plain.csv"]["metrics"]["private"]["macro_f1"]
    team_b = next(e for e in board["tasks"]["penguins"]["entries"] if e["team"] == "team-b")
    team_b_best = min((r for r in records if r["team"] == "team-b" and r["task_id"] == "penguins"
                       and r["status"] == "scored"), key=lambda r: (-r["metrics"]["public"]["macro_f1"], r["uploaded_at"]))
    assert team_b["score"] == team_b_best["metrics"]["private"]["macro_f1"]
    assert public.read_bytes("leaderboard/final/leaderboard.json")  # the final snapshot
    private.delete("final.json")  # leave the module's challenge running for other tests
    public.delete_many([i.key for i in public.list("leaderboard/final/")])


def penguins_released(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[ChallengeConfig, pa.Table]:
    """A fresh challenge (quota 100) with penguins released as r1, and its answer key as a perfect submission."""
    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = challenge(backend, tmp_path, endpoint, max_submissions_per_day=100)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    return config, answers(config, "penguins").select(["id", "label"])


def test_crash_midway_then_rerun_gives_exactly_one_result_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              backend: str, request: pytest.FixtureRequest) -> None:
    config, perfect = penguins_released(backend, tmp_path, request)
    for i in range(10):
        upload(config, f"team-a/penguins/s{i}.csv", perfect)
    import itertools

    import challenge.tasks.scoring.score as scoring

    original, calls = scoring.predict, itertools.count(1)  # next() is atomic: batches score in threads

    def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if next(calls) > 5:
            raise ConnectionError("injected: storage went away")
        return original(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(scoring, "predict", flaky)
        state = score_submissions(config_path=saved(config), return_state=True)
    with get_client(sync_client=True) as client:  # what the UI and automations see
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.state.is_failed() and run.state.name == "ScoringErrors"
    assert "5 submission(s) hit an internal error" in run.state.message and "team-a/penguins/s" in run.state.message
    with pytest.raises(ScoringErrors) as failed:  # calling the flow raises, with the run's summary
        state.result()
    first = failed.value.result
    assert len(first.errors) == 5 and all("ConnectionError: injected" in e for _, e in first.errors)
    _, private, _ = stores(config)
    assert len([i for i in private.list("results/") if i.key.endswith(".error.json")]) == 5
    second = score_submissions(config_path=saved(config))
    assert second.pending == 5 and second.errors == []
    records = results(config)
    assert sorted(r["key"] for r in records) == sorted(f"team-a/penguins/s{i}.csv" for i in range(10))
    assert not [i for i in private.list("results/") if i.key.endswith(".error.json")]
    # a crash between the record and the feedback file: the next run writes the feedback, scores nothing
    _, _, submissions = stores(config)
    submissions.delete("team-a/penguins/s3.csv.result.json")
    assert score_submissions(config_path=saved(config)).pending == 0
    assert feedback(config, "team-a/penguins/s3.csv")["status"] == "scored"


def test_two_scoring_runs_at_once_take_turns_on_the_concurrency_limit(tmp_path: Path, backend: str,
                                                                      request: pytest.FixtureRequest,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two flows started together in one process (no deployment around them): the global concurrency
    limit challenge-<name>-scoring makes the second wait, so it finds nothing left to score."""
    from concurrent.futures import ThreadPoolExecutor

    config, perfect = penguins_released(backend, tmp_path, request)
    for i in range(8):
        upload(config, f"team-a/penguins/s{i}.csv", perfect.slice(0, perfect.num_rows - i % 2))
    import time

    import challenge.tasks.scoring.score as scoring

    original = scoring.predict

    def slow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.5)  # long enough for the second run to start while the first scores
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, "predict", slow)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: score_submissions(config_path=saved(config)), range(2)))
    assert sorted(r.pending for r in runs) == [0, 8]
    assert sorted(r["key"] for r in results(config)) == sorted(f"team-a/penguins/s{i}.csv" for i in range(8))


def test_rescore_after_an_answer_key_fix_keeps_history(tmp_path: Path, backend: str, request: pytest.FixtureRequest,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from challenge.app.cli import main

    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = challenge(backend, tmp_path, endpoint)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    key = answers(config, "penguins")
    upload(config, "team-a/penguins/perfect.csv", key.select(["id", "label"]))
    config_file = tmp_path / "challenge.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["--config", str(config_file), "score"]) == 0
    assert "1 new submission(s): 1 scored" in capsys.readouterr().out
    # the organizer edits the answer key by hand: refused (its SHA-256 no longer matches), nothing changes
    _, private, _ = stores(config)
    labels = key["label"].to_pylist()
    labels[0] = "Chinstrap" if labels[0] != "Chinstrap" else "Adelie"
    original = private.read_bytes("releases/r1/penguins/answers.parquet")
    out = io.BytesIO()
    pq.write_table(key.set_column(1, "label", pa.array(labels)), out)
    private.write_bytes("releases/r1/penguins/answers.parquet", out.getvalue())
    assert main(["--config", str(config_file), "score", "--rescore", "--task", "penguins"]) == 2  # a ChallengeError
    err = capsys.readouterr().err
    assert "was changed outside the product" in err and "challenge correct-answers" in err
    private.write_bytes("releases/r1/penguins/answers.parquet", original)
    # the same fix through correct-answers: a new key version, the result rescored with its history
    fix = tmp_path / "corrections.csv"
    fix.write_text(f"id,label\n{key['id'][0]},{labels[0]}\n")
    assert main(["--config", str(config_file), "correct-answers", "--task", "penguins", "--file", str(fix)]) == 0
    out_text = capsys.readouterr().out
    assert "answer key version 2 in use in release r1: 1 label(s) changed" in out_text and "1 result(s) rescored" in out_text
    (record,) = results(config)
    assert len(record["history"]) == 1 and record["history"][0]["metrics"]["public"]["macro_f1"] == 1.0
    assert min(record["metrics"]["public"]["macro_f1"], record["metrics"]["private"]["macro_f1"]) < 1.0
    assert record["scored_by"]["answers_version"] == 2
    assert main(["--config", str(config_file), "score", "--rescore", "--task", "penguins"]) == 0
    assert "rescored 1 submission(s)" in capsys.readouterr().out
    assert main(["--config", str(config_file), "score", "--task", "nope"]) == 2
    assert "unknown task id(s) nope: the current release has" in capsys.readouterr().err


def test_late_and_oversized_submissions_are_rejected(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    from challenge.core.config import Policy

    endpoint = request.getfixturevalue("s3_endpoint") if backend == "s3" else None
    config = challenge(backend, tmp_path, endpoint)
    stage(config, EXAMPLES / "penguin-lab" / "penguins", "penguin-lab")
    publish_release(config_path=saved(config), release="r1")
    perfect = answers(config, "penguins").select(["id", "label"])
    closed = config.model_copy(update={"policy": Policy(opens_at="2000-01-01T00:00:00Z", closes_at="2000-01-02T00:00:00Z")})
    upload(config, "team-a/penguins/late.csv", perfect)
    assert score_submissions(config_path=saved(closed)).statuses == {"rejected: closed": 1}  # issue 13's name
    note = feedback(config, "team-a/penguins/late.csv")
    assert note["status"] == "rejected: closed" and "after the challenge closed at 2000-01-02" in note["message"]
    not_open = config.model_copy(update={"policy": Policy(opens_at="2999-01-01T00:00:00Z")})
    upload(config, "team-a/penguins/early.csv", perfect)
    assert score_submissions(config_path=saved(not_open)).statuses == {"rejected: early": 1}
    note = feedback(config, "team-a/penguins/early.csv")
    assert "before the challenge opens at 2999-01-01" in note["message"] and "late" not in note["message"]
    tiny = config.model_copy(update={"policy": Policy(max_submission_mb=0.0001)})
    upload(config, "team-a/penguins/big.csv", perfect)
    assert score_submissions(config_path=saved(tiny)).statuses == {"rejected": 1}
    assert "the limit is 0.0001 MB" in feedback(config, "team-a/penguins/big.csv")["message"]
    # rejected submissions have a final result: an open challenge does not score them later
    assert score_submissions(config_path=saved(config)).pending == 0


def test_scheduled_scoring_before_the_first_release_completes_with_nothing_to_do(
        config: ChallengeConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """A schedule may start before anything is published: the run completes and says so."""
    from challenge.app.cli import main
    from challenge.core.errors import ChallengeError

    result = score_submissions(config_path=saved(config))
    assert result.pending == 0 and "no release yet" in result.message
    assert main(["--config", saved(config), "score"]) == 0
    assert "no release yet" in capsys.readouterr().out
    with pytest.raises(ChallengeError, match="no release yet"):  # a manual rescore has nothing to rescore
        score_submissions(config_path=saved(config), rescore=True)


def test_feedback_answers_the_next_question(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config, perfect = penguins_released(backend, tmp_path, request)
    with_index = io.BytesIO()
    perfect.to_pandas().to_csv(with_index)  # pandas writes its index as an unnamed first column
    uploads = {
        "team-a/penguins/first.csv": perfect,
        "team-a/penguins/second.parquet": perfect,
        "team-a/penguins/with-index.csv": with_index.getvalue(),
        "team-a/penguins/notes.txt": b"we tried a random forest\n",
        "team-a/penguins/preds.xlsx": b"PK\x03\x04 not really a workbook",
        "team-a/preds.csv": perfect,  # not in a task folder
        "team-a/penguins/.DS_Store": b"\x00",  # hidden: no feedback
        "team-b/penguins/FINAL": b"nope.csv\n",  # names no submission of team-b
        "team-c/penguins/only.csv": perfect,
        "team-c/penguins/FINAL": b"only.csv\n",
    }
    for key, data in uploads.items():
        upload(config, key, data)
    score_submissions(config_path=saved(config))

    second = feedback(config, "team-a/penguins/second.parquet")
    uploaded = datetime.fromisoformat(next(r for r in results(config) if r["key"].endswith("second.parquet"))["uploaded_at"])
    day = uploaded.astimezone(timezone.utc).date()  # the quota's day is the upload's UTC day
    assert second["quota"] == {"day": day.isoformat(), "limit": 100, "used": 2, "left": 98,
                               "resets_at": f"{day + timedelta(days=1)}T00:00:00Z"}
    assert feedback(config, "team-a/penguins/first.csv")["quota"]["left"] == 99  # as it was after that one

    index = feedback(config, "team-a/penguins/with-index.csv")
    assert index["status"] == "invalid" and "pandas index" in index["message"] and "index=False" in index["message"]
    assert index["quota"]["used"] == 2  # an invalid file does not count
    for key, needle in {"team-a/penguins/notes.txt": "only .csv and .parquet files",
                        "team-a/penguins/preds.xlsx": "spreadsheet", "team-a/preds.csv": "not in a task folder"}.items():
        note = feedback(config, key)
        assert note["status"] == "rejected: not a submission" and needle in note["message"], (key, note)
    _, _, submissions = stores(config)
    assert not submissions.exists("team-a/penguins/.DS_Store.result.json")

    refused = json.loads(submissions.read_bytes("team-b/penguins/FINAL.result.json"))
    assert refused["status"] == "not accepted" and "'nope.csv', which is not a submission of team-b" in refused["message"]
    assert "best public submission counts" in refused["message"]
    accepted = json.loads(submissions.read_bytes("team-c/penguins/FINAL.result.json"))
    assert accepted["status"] == "accepted" and accepted["submissions"] == ["team-c/penguins/only.csv"]

    # the next run writes nothing new for them; a corrected FINAL is answered again
    before = {k: submissions.head(k).version for k in ("team-b/penguins/FINAL.result.json", "team-a/penguins/notes.txt.result.json")}
    score_submissions(config_path=saved(config))
    assert {k: submissions.head(k).version for k in before} == before
    upload(config, "team-b/penguins/only.csv", perfect)
    upload(config, "team-b/penguins/FINAL", b"only.csv")
    score_submissions(config_path=saved(config))
    assert json.loads(submissions.read_bytes("team-b/penguins/FINAL.result.json"))["status"] == "accepted"


def test_leaderboard_link_opens_in_a_browser_when_public_is_served(backend: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    from prefect.artifacts import Artifact

    config, perfect = penguins_released(backend, tmp_path, request)
    served = config.model_copy(update={"storage": config.storage.model_copy(
        update={"public_url": "https://challenge.example.com/public"})})
    upload(served, "team-a/penguins/perfect.csv", perfect)
    score_submissions(config_path=saved(served))
    link = Artifact.get("leaderboard-page")
    assert link.data == "[Leaderboard page](https://challenge.example.com/public/leaderboard/index.html)"


def test_an_internal_error_is_retried_a_bounded_number_of_times_then_failed(tmp_path: Path, backend: str,
                                                                           request: pytest.FixtureRequest,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import challenge.tasks.scoring.score as scoring

    config, perfect = penguins_released(backend, tmp_path, request)
    upload(config, "team-a/penguins/cursed.csv", perfect)
    upload(config, "team-a/penguins/fine.csv", perfect)
    original = scoring.predict

    def broken(sub, data, key):  # noqa: ANN001, ANN202
        if sub.name == "cursed.csv":
            raise ConnectionError("injected: a fault of ours on this one file")
        return original(sub, data, key)

    monkeypatch.setattr(scoring, "predict", broken)
    for attempt in range(1, scoring.MAX_ATTEMPTS):
        with pytest.raises(ScoringErrors):
            score_submissions(config_path=saved(config))
        _, private, _ = stores(config)
        (note,) = [json.loads(private.read_bytes(i.key)) for i in private.list("results/") if i.key.endswith(".error.json")]
        assert note["attempts"] == attempt
    final = score_submissions(config_path=saved(config))  # the last attempt: recorded, not retried forever
    assert final.statuses == {"failed": 1} and final.errors == []
    note = feedback(config, "team-a/penguins/cursed.csv")
    assert note["status"] == "failed" and "problem on our side" in note["message"] and note["quota"]["used"] == 1
    assert feedback(config, "team-a/penguins/fine.csv")["status"] == "scored"
    assert score_submissions(config_path=saved(config)).pending == 0


def test_a_scoring_run_killed_with_sigkill_does_not_keep_the_slot(tmp_path: Path, request: pytest.FixtureRequest,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    from challenge.core.scoring_slot import scoring_limit_name

    config, perfect = penguins_released("local", tmp_path, request)
    _, _, submissions = stores(config)
    data = io.BytesIO()
    pa_csv.write_csv(perfect, data)
    for i in range(300):
        submissions.write_bytes(f"team-{'abc'[i % 3]}/penguins/s{i:03d}.csv", data.getvalue())
    monkeypatch.setenv("CHALLENGE_SCORING_STALE_SECONDS", "3")
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "ERROR"}
    run = subprocess.Popen([str(Path(sys.executable).parent / "challenge"), "--config", saved(config), "score"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name, deadline = scoring_limit_name(config), time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and run.poll() is None:
            try:
                if client.read_global_concurrency_limit_by_name(name).active_slots >= 1:
                    break
            except Exception:  # noqa: BLE001 (not created yet)
                pass
            time.sleep(0.05)
        assert run.poll() is None, "the scoring run ended before it could be killed holding the slot"
        run.send_signal(signal.SIGKILL)
        run.wait()
        assert client.read_global_concurrency_limit_by_name(name).active_slots == 1  # left taken by the dead run
    started = time.monotonic()
    result = score_submissions(config_path=saved(config))  # waits for the slot to free itself, then scores
    assert time.monotonic() - started < 60 and result.errors == []
    keys = [r["key"] for r in results(config)]
    assert sorted(keys) == sorted(f"team-{'abc'[i % 3]}/penguins/s{i:03d}.csv" for i in range(300))  # one each


def test_a_run_that_cannot_get_the_scoring_slot_says_so(tmp_path: Path, request: pytest.FixtureRequest,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from challenge.core.scoring_slot import ensure_scoring_limit

    config, perfect = penguins_released("local", tmp_path, request)
    monkeypatch.setenv("CHALLENGE_SCORING_WAIT_SECONDS", "2")
    name = ensure_scoring_limit(config)
    with get_client(sync_client=True) as client:  # another run holds the slot
        client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency", lease_duration=300)
    try:
        with pytest.raises(ChallengeError, match=r"the scoring slot .* stayed taken for \d+ s: another scoring or finalize run"):
            score_submissions(config_path=saved(config))
    finally:  # the slot is per challenge name: free it for the tests after this one
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))


def test_finalize_scores_what_came_before_and_nothing_after(tmp_path: Path, backend: str,
                                                            request: pytest.FixtureRequest) -> None:
    """Finalize is final (issue 13): it scores the uploads that arrived before it, then closes and writes the final
    snapshot; a later upload is `rejected: closed`, the snapshot stays byte for byte, finalizing twice is refused
    unless --force, which keeps the previous snapshot."""
    config, perfect = penguins_released(backend, tmp_path, request)
    labels = perfect["label"].to_pylist()
    worse = perfect.set_column(1, "label", pa.array(labels[1:] + labels[:1]))  # most labels shifted by one row
    upload(config, "team-a/penguins/before.csv", worse)  # not scored yet when the organizer finalizes
    final = finalize_challenge(config_path=saved(config))
    assert feedback(config, "team-a/penguins/before.csv")["status"] == "scored"
    standings = final.board["tasks"]["penguins"]["entries"]
    assert [e["team"] for e in standings] == ["team-a"] and standings[0]["score"] < 1.0
    public = stores(config)[0]

    def snapshot() -> dict[str, bytes]:
        return {i.key: public.read_bytes(i.key) for i in public.list("leaderboard/final/")}

    frozen = snapshot()
    assert {"leaderboard/final/leaderboard.json", "leaderboard/final/index.html",
            "leaderboard/final/task-penguins.csv"} <= set(frozen)
    facts = json.loads(frozen["leaderboard/final/leaderboard.json"])["snapshot"]
    manifest = json.loads(public.read_bytes("releases/r1/penguins/manifest.json"))
    assert facts["release"] == "r1" and facts["tasks"]["penguins"]["answers_sha256"] == manifest["answers_sha256"]
    assert facts["code_version"] and "This snapshot is final" in frozen["leaderboard/final/index.html"].decode()
    upload(config, "team-a/penguins/after.csv", perfect)  # a perfect file, too late
    run = score_submissions(config_path=saved(config))
    assert snapshot() == frozen
    assert run.statuses == {"rejected: closed": 1}
    note = feedback(config, "team-a/penguins/after.csv")
    assert "after the challenge was finalized" in note["message"] and note["public_score"] is None
    assert run.board["final"] is True and run.board["tasks"]["penguins"]["entries"] == standings
    with pytest.raises(ChallengeError, match=r"already finalized.*finalize --force"):
        finalize_challenge(config_path=saved(config))
    assert snapshot() == frozen
    again = finalize_challenge(config_path=saved(config), force=True)  # rebuilt; the previous one kept
    assert again.board["tasks"]["penguins"]["entries"] == standings
    kept = {i.key.split("/", 3)[3]: public.read_bytes(i.key) for i in public.list("leaderboard/final-replaced/")}
    assert kept == {k.removeprefix("leaderboard/final/"): v for k, v in frozen.items()}
